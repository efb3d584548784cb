"""Stratified AUC on (played, skipped) pairs, as Semantic IDs for Music Recommendation evaluates (Sect. 3).

The paper measures "the accuracy of ranking correctly the songs in a (positive, negative) feedback pair from
the same user or session", averaged over all users/sessions, and calls it a stratified AUC: one stratum per
session, each session's AUC (the share of its (played, skipped) pairs whose played track scores higher) weighted
equally. Only sessions with at least one played and one skipped track count. A tie between a played and a
skipped score counts one half (Mann-Whitney). ``weighting="pair"`` weights each session by its number of pairs
instead (the pooled within-session AUC), for comparison.

``evaluate_feedback`` runs a model over a ``FeedbackSet`` (raysid/data/splits.py) and adds the AUC per history
length bucket (the paper's Fig. 3 lift by history length): any model with
``score_items(histories, items, history_feedback) -> list of (items_i,) scores`` can be evaluated; with ``ks``
it also ranks the full catalogue (``recommend(histories, k, history_feedback)``) for the period's first played
track (HR/NDCG@k, MRR).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
from scipy.stats import rankdata

from raysid.metrics.buckets import DEFAULT_BUCKETS, bucket_labels, bucket_of
from raysid.metrics.ranking import ranking_metric_names, ranking_metrics

if TYPE_CHECKING:
    from raysid.data.splits import FeedbackSet


@dataclass(frozen=True)
class StratifiedAuc:
    """The stratified AUC and what it was computed from."""

    auc: float  # mean of the per-session AUCs (weighted as asked)
    sessions: int  # sessions with at least one played and one skipped track
    pairs: int  # (played, skipped) pairs in those sessions
    per_session: np.ndarray  # (sessions given,) float64 AUC of each session, NaN where it has one class only


def session_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUC of one session: P(score of a played track > score of a skipped one), ties 1/2; NaN without both.

    ``scores`` (n,) float, ``labels`` (n,) 1 = played, 0 = skipped. Computed from average ranks in O(n log n).
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    played = labels == 1
    num_played, num_skipped = int(played.sum()), int((~played).sum())
    if num_played == 0 or num_skipped == 0:
        return float("nan")
    ranks = rankdata(scores, method="average")  # (n,) 1-based, ties share their mean rank
    wins = ranks[played].sum() - num_played * (num_played + 1) / 2.0  # pairs won, ties counted 1/2
    return float(wins / (num_played * num_skipped))


def stratified_auc(
    scores: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    weighting: Literal["session", "pair"] = "session",
) -> StratifiedAuc:
    """Per-session AUCs of ``scores`` against ``labels`` (one array each per session), averaged.

    Raises ValueError naming the session when arrays are misaligned, labels are not 0/1 or scores not finite,
    and when no session has both a played and a skipped track.
    """
    if weighting not in ("session", "pair"):
        raise ValueError(f"weighting must be 'session' or 'pair', got {weighting!r}")
    if len(scores) != len(labels):
        raise ValueError(f"got scores for {len(scores)} sessions but labels for {len(labels)}")
    per_session = np.full(len(scores), np.nan)
    pairs = np.zeros(len(scores), dtype=np.int64)
    for session, (score, label) in enumerate(zip(scores, labels)):
        score, label = _check_session(session, score, label)
        per_session[session] = session_auc(score, label)
        pairs[session] = int((label == 1).sum()) * int((label == 0).sum())
    counted = ~np.isnan(per_session)
    if not counted.any():
        raise ValueError(
            f"stratified AUC: none of the {len(scores)} sessions has both a played and a skipped track"
        )
    weights = pairs[counted] if weighting == "pair" else np.ones(int(counted.sum()))
    auc = float(np.average(per_session[counted], weights=weights))
    return StratifiedAuc(auc, int(counted.sum()), int(pairs.sum()), per_session)


def _check_session(session: int, scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if scores.ndim != 1 or scores.shape != labels.shape:
        raise ValueError(f"session {session}: scores shape {scores.shape} and labels shape {labels.shape} differ")
    if not np.isfinite(scores).all():
        raise ValueError(f"session {session}: scores must be finite, got {scores[~np.isfinite(scores)][:3]}")
    if labels.size and not np.isin(labels, (0, 1)).all():
        bad = labels[~np.isin(labels, (0, 1))][0]
        raise ValueError(f"session {session}: label {bad.item()!r}; expected 1 (played) or 0 (skipped)")
    return scores, labels.astype(np.int64)


def auc_by_bucket(
    per_session: np.ndarray, lengths: Sequence[int], bounds: Sequence[int] = DEFAULT_BUCKETS
) -> dict[str, tuple[float, int]]:
    """{bucket label: (mean AUC, sessions)} over the counted sessions whose history length falls in each bucket.

    Buckets as in ``raysid.metrics.buckets`` (lower bounds; (1, 3, 6, 11) gives 1-2, 3-5, 6-10, 11-inf);
    ``per_session`` is ``StratifiedAuc.per_session`` (NaN = not counted). An empty bucket gets (NaN, 0).
    """
    per_session, lengths = np.asarray(per_session, dtype=np.float64), np.asarray(lengths)
    if per_session.shape != lengths.shape:
        raise ValueError(f"{len(per_session)} session AUCs but {len(lengths)} lengths")
    bucket = bucket_of(lengths, bounds)  # (sessions,) -1 below the first bound
    result = {}
    for index, label in enumerate(bucket_labels(bounds)):
        inside = (bucket == index) & ~np.isnan(per_session)
        result[label] = (float(per_session[inside].mean()) if inside.any() else float("nan"), int(inside.sum()))
    return result


class FeedbackScorer(Protocol):
    """What ``evaluate_feedback`` needs of a model."""

    def score_items(
        self, histories: list[np.ndarray], items: list[np.ndarray], history_feedback: list[np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """One (len(items[i]),) float array of scores per history; higher = more likely played."""
        ...

    def recommend(self, histories: list[np.ndarray], k: int, history_feedback: list[np.ndarray] | None = None) -> np.ndarray:
        """(users, k) ranked item ids (only needed for ``evaluate_feedback(..., ks=...)``)."""
        ...


def feedback_metric_names(ks: tuple[int, ...] = (), bounds: Sequence[int] = DEFAULT_BUCKETS) -> set[str]:
    """The keys ``evaluate_feedback`` returns (unprefixed)."""
    names = {"auc", "auc_sessions", "auc_pairs"}
    names |= {f"{name}/len_{label}" for label in bucket_labels(bounds) for name in ("auc", "auc_sessions")}
    return names | (ranking_metric_names(tuple(ks)) if ks else set())


def evaluate_feedback(
    model: FeedbackScorer,
    evalset: FeedbackSet,
    bounds: Sequence[int] = DEFAULT_BUCKETS,
    prefix: str = "",
    ks: tuple[int, ...] = (),
) -> dict[str, float]:
    """Stratified AUC of ``model`` on an evaluation period, overall and per history-length bucket.

    Keys (each prefixed by ``prefix``): ``auc``, ``auc_sessions``, ``auc_pairs``, and per history-length bucket
    ``auc/len_1-2``, ``auc_sessions/len_1-2``, ... (the length of the model's input; NaN AUC for an empty bucket).
    With ``ks``: ``hr@k``, ``ndcg@k``, ``recall@k``, ``mrr`` of the full-catalogue ranking for the period's
    first played track, from the same input (sessions whose period has a played track).
    """
    if len(evalset) == 0:
        raise ValueError("evaluate_feedback: the feedback evaluation set has no sessions")
    scores = model.score_items(evalset.histories, evalset.items, evalset.history_feedback)
    result = stratified_auc(scores, evalset.feedback)
    metrics = {"auc": result.auc, "auc_sessions": float(result.sessions), "auc_pairs": float(result.pairs)}
    lengths = [len(history) for history in evalset.histories]
    for label, (auc, sessions) in auc_by_bucket(result.per_session, lengths, bounds).items():
        metrics[f"auc/len_{label}"] = auc
        metrics[f"auc_sessions/len_{label}"] = float(sessions)
    if ks:
        rows = [i for i, labels in enumerate(evalset.feedback) if (np.asarray(labels) == 1).any()]
        target = evalset.next_played()
        ranked = model.recommend(target.histories, max(ks), [evalset.history_feedback[i] for i in rows])
        metrics.update(ranking_metrics(ranked, target.targets, tuple(ks)))
    return {f"{prefix}{key}": value for key, value in metrics.items()}
