"""Stratified AUC: hand-computed cases, an independent brute-force pair count and scikit-learn, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from raysid.data.splits import FeedbackSet
from raysid.metrics.auc import (
    auc_by_bucket,
    evaluate_feedback,
    session_auc,
    stratified_auc,
)


def brute_force_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Count every (played, skipped) pair: 1 if the played track scores higher, 1/2 on a tie."""
    played, skipped = scores[labels == 1], scores[labels == 0]
    wins = sum(1.0 if p > s else 0.5 if p == s else 0.0 for p, s in itertools.product(played, skipped))
    return wins / (len(played) * len(skipped))


SCORES = [np.array([0.9, 0.2, 0.5, 0.5]), np.array([1.0, 2.0, 3.0]), np.array([0.3, 0.1]), np.array([4.0, 5.0])]
LABELS = [np.array([1, 0, 1, 0]), np.array([1, 1, 0]), np.array([1, 1]), np.array([0, 1])]


def test_hand_computed_sessions() -> None:
    # session 0: played {0.9, 0.5} vs skipped {0.2, 0.5}: 1 + 1 + 1 + 1/2 of 4 pairs
    assert session_auc(SCORES[0], LABELS[0]) == pytest.approx(3.5 / 4)
    assert session_auc(SCORES[1], LABELS[1]) == 0.0  # the skipped track scores highest
    assert np.isnan(session_auc(SCORES[2], LABELS[2]))  # no skipped track: not a stratum
    assert session_auc(SCORES[3], LABELS[3]) == 1.0


def test_hand_computed_stratified_auc_by_session_and_by_pair() -> None:
    result = stratified_auc(SCORES, LABELS)
    assert result.auc == pytest.approx((0.875 + 0.0 + 1.0) / 3)  # the paper: every session weighs the same
    assert (result.sessions, result.pairs) == (3, 4 + 2 + 0 + 1)
    np.testing.assert_allclose(result.per_session, [0.875, 0.0, np.nan, 1.0])
    pooled = stratified_auc(SCORES, LABELS, weighting="pair")
    assert pooled.auc == pytest.approx((3.5 + 0.0 + 1.0) / 7)


def test_matches_brute_force_pairs_and_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    scores, labels = [], []
    for _ in range(60):
        n = int(rng.integers(1, 12))
        scores.append(np.round(rng.normal(size=n), 1))  # rounding makes ties
        labels.append((rng.random(n) < 0.6).astype(np.int8))
    result = stratified_auc(scores, labels)
    expected = [brute_force_auc(s, l) for s, l in zip(scores, labels) if 0 < l.sum() < len(l)]
    assert result.sessions == len(expected) > 20
    assert result.auc == pytest.approx(np.mean(expected), abs=1e-12)
    both = [(s, l) for s, l in zip(scores, labels) if 0 < l.sum() < len(l)]
    assert result.auc == pytest.approx(np.mean([roc_auc_score(l, s) for s, l in both]), abs=1e-12)
    weights = [l.sum() * (len(l) - l.sum()) for _, l in both]
    pooled = stratified_auc(scores, labels, weighting="pair").auc
    assert pooled == pytest.approx(np.average([brute_force_auc(s, l) for s, l in both], weights=weights), abs=1e-12)


def test_auc_is_rank_based() -> None:
    scores, labels = np.array([0.1, 3.0, -2.0, 0.7, 0.7]), np.array([1, 0, 0, 1, 0])
    assert session_auc(scores, labels) == session_auc(np.exp(scores) * 10, labels) == brute_force_auc(scores, labels)


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([np.array([0.1, 0.2])], [np.array([1, 0]), np.array([1])], "scores for 1 sessions but labels for 2"),
        ([np.array([0.1]), np.array([0.1, 0.2])], [np.array([1]), np.array([1, 0, 1])], "session 1: scores shape"),
        ([np.array([0.1, np.nan])], [np.array([1, 0])], "session 0: scores must be finite"),
        ([np.array([0.1, 0.2])], [np.array([1, 2])], "session 0: label 2; expected 1 .played. or 0 .skipped."),
        ([np.array([0.1, 0.2]), np.array([0.3])], [np.array([1, 1]), np.array([0])],
         "none of the 2 sessions has both a played and a skipped track"),
    ],
)
def test_bad_input_names_the_session(scores, labels, message) -> None:
    with pytest.raises(ValueError, match=message):
        stratified_auc(scores, labels)


def test_buckets_by_history_length() -> None:
    per_session = np.array([1.0, 0.5, np.nan, 0.0, 0.25, 1.0])
    lengths = [1, 4, 6, 9, 25, 0]  # the last is below the first bound: in no bucket
    by_bucket = auc_by_bucket(per_session, lengths, (1, 5, 10, 20))
    assert list(by_bucket) == ["1-4", "5-9", "10-19", "20-inf"]
    assert by_bucket["1-4"] == (0.75, 2) and by_bucket["5-9"] == (0.0, 1) and by_bucket["20-inf"] == (0.25, 1)
    assert np.isnan(by_bucket["10-19"][0]) and by_bucket["10-19"][1] == 0
    with pytest.raises(ValueError, match="increasing"):
        auc_by_bucket(per_session, lengths, (5, 5))


class ItemIdScorer:
    """Scores an item by its id times the sign of the history's last item parity (+ for even); 10 items."""

    def score_items(self, histories, items, history_feedback=None):
        return [np.asarray(i, dtype=np.float64) * (1 if h[-1] % 2 == 0 else -1) for h, i in zip(histories, items)]

    def recommend(self, histories, k, history_feedback=None):
        assert [len(f) for f in history_feedback] == [len(h) for h in histories]
        scores = self.score_items(histories, [np.arange(10)] * len(histories))
        return np.stack([np.argsort(-s, kind="stable")[:k] for s in scores])


def test_evaluate_feedback_by_hand() -> None:
    evalset = FeedbackSet(
        histories=[np.array([2]), np.array([1, 3, 5, 7, 9]), np.array([4, 6]), np.array([8])],
        history_feedback=[np.array([1]), np.ones(5, np.int8), np.array([1, 0]), np.array([1])],
        items=[np.array([3, 1, 2]), np.array([0, 4]), np.array([5, 6]), np.array([7])],
        feedback=[np.array([1, 0, 1]), np.array([0, 1]), np.array([0, 1]), np.array([1])],
    )
    metrics = evaluate_feedback(ItemIdScorer(), evalset, bounds=(1, 5), prefix="test/")
    # session 0 (+ids): played {3, 2} vs skipped {1}: 1. session 1 (-ids): played -4 vs skipped 0: 0.
    # session 2 (+ids): played 6 vs skipped 5: 1. session 3: one class only.
    assert metrics == pytest.approx({
        "test/auc": 2 / 3, "test/auc_sessions": 3.0, "test/auc_pairs": 4.0,
        "test/auc/len_1-4": 1.0, "test/auc_sessions/len_1-4": 2.0,
        "test/auc/len_5-inf": 0.0, "test/auc_sessions/len_5-inf": 1.0,
    })
    ranking = evaluate_feedback(ItemIdScorer(), evalset, ks=(5, 10))
    # first played track of each period and its rank: 3 -> 7th (9 8 7 6 5 4 3), 4 -> 5th (0 1 2 3 4), 6 -> 4th, 7 -> 3rd
    ranks = np.array([7, 5, 4, 3])
    assert ranking["hr@5"] == 0.75 and ranking["hr@10"] == 1.0
    assert ranking["ndcg@10"] == pytest.approx(np.mean(1 / np.log2(ranks + 1)))
    assert ranking["mrr"] == pytest.approx(np.mean(1 / ranks))
    with pytest.raises(ValueError, match="has no sessions"):
        evaluate_feedback(ItemIdScorer(), FeedbackSet([], [], [], []))
