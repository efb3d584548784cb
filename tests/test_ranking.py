"""FusID's MRR and Recall@K, and ranks from exact full-catalogue scores, against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from raysid.metrics.ranking import (
    metrics_from_ranks,
    mrr,
    ranking_metrics,
    ranks_from_scores,
    recall_at_k,
)

# Five users, each ranking items 0..19 in order (lists of 20, FusID's largest K); the targets sit at
# ranks 1, 2, 5 and 20, and the last one (item 99) is absent.
RANKED = np.tile(np.arange(20, dtype=np.int64), (5, 1))
TARGETS = np.array([0, 1, 4, 19, 99], dtype=np.int64)


def test_mrr_by_hand():
    assert mrr(RANKED, TARGETS) == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 20 + 0) / 5)  # = 0.35
    assert mrr(RANKED, TARGETS) == pytest.approx(0.35)
    assert mrr(np.array([[4, -1, -1]]), np.array([-1])) == 0.0  # padding never matches


@pytest.mark.parametrize(("k", "expected"), [(1, 1 / 5), (5, 3 / 5), (10, 3 / 5), (20, 4 / 5)])
def test_recall_at_fusids_ks_by_hand(k, expected):
    assert recall_at_k(RANKED, TARGETS, k) == pytest.approx(expected)
    metrics = ranking_metrics(RANKED, TARGETS, ks=(1, 5, 10, 20))
    assert metrics[f"recall@{k}"] == metrics[f"hr@{k}"] == pytest.approx(expected)  # one target: Recall@K = HR@K


def test_metrics_from_ranks_equal_the_list_based_ones():
    ranks = np.array([1, 2, 5, 20, 0])
    assert metrics_from_ranks(ranks, (1, 5, 10, 20)) == ranking_metrics(RANKED, TARGETS, (1, 5, 10, 20))
    with pytest.raises(ValueError, match="ranks must be"):
        metrics_from_ranks(np.array([1, -1]))
    with pytest.raises(ValueError, match="k=0"):
        metrics_from_ranks(np.array([1]), ks=(0,))


def test_ranks_from_scores_by_hand_with_ties_to_the_lower_id():
    scores = np.array(
        [
            [0.1, 0.9, 0.3, 0.3],  # target 3: 0.9 and the tied 0.3 of item 2 (lower id) rank ahead -> 3
            [0.5, 0.5, 0.5, 0.5],  # target 0: all tied, lowest id -> 1
            [-1.0, -3.0, -2.0, -0.5],  # target 1: every other item is higher -> 4
        ]
    )
    assert ranks_from_scores(scores, np.array([3, 0, 1])).tolist() == [3, 1, 4]
    order = np.argsort(-scores, axis=1, kind="stable")  # the same ranks from a materialised stable ranking
    assert ranking_metrics(order, np.array([3, 0, 1]), (1, 3)) == metrics_from_ranks(np.array([3, 1, 4]), (1, 3))


def test_ranks_from_scores_reject_bad_inputs():
    with pytest.raises(ValueError, match="targets must be item ids in \\[0, 2\\)"):
        ranks_from_scores(np.zeros((1, 2)), np.array([2]))
    with pytest.raises(ValueError, match="shapes"):
        ranks_from_scores(np.zeros((2, 2)), np.array([0]))
    with pytest.raises(ValueError, match="NaN"):
        ranks_from_scores(np.array([[np.nan, 0.0]]), np.array([0]))
