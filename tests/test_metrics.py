"""Ranking and codebook metrics against values worked out by hand on small explicit inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raysid.metrics.codebook import (
    cardinality,
    codebook_underutilisation,
    conflict_rate,
    sid_quality,
)
from raysid.metrics.ranking import hits_by_rank, ranking_metrics

# Four users; the target sits at rank 1, rank 3, nowhere (list padded with -1), and rank 6.
RANKED = np.array(
    [
        [7, 3, 9, 1, 5, 2],
        [4, 8, 6, 0, 2, 1],
        [1, 2, -1, -1, -1, -1],
        [0, 1, 2, 3, 4, 5],
    ],
    dtype=np.int64,
)
TARGETS = np.array([7, 6, 5, 5], dtype=np.int64)


def test_hits_by_rank_gives_one_based_rank_or_zero():
    assert hits_by_rank(RANKED, TARGETS).tolist() == [1, 3, 0, 6]


def test_padding_never_matches_and_first_duplicate_counts():
    ranked = np.array([[3, -1, -1], [2, 2, 9]])
    assert hits_by_rank(ranked, np.array([-1, 2])).tolist() == [0, 1]


def test_ranking_metrics_match_hand_computation():
    metrics = ranking_metrics(RANKED, TARGETS, ks=(1, 3, 5))
    assert metrics["hr@1"] == pytest.approx(1 / 4)
    assert metrics["hr@3"] == pytest.approx(2 / 4)
    assert metrics["hr@5"] == pytest.approx(2 / 4)  # rank 6 is outside the top 5
    assert metrics["ndcg@1"] == pytest.approx(1 / 4)
    assert metrics["ndcg@3"] == pytest.approx((1 / math.log2(2) + 1 / math.log2(4)) / 4)
    assert metrics["ndcg@5"] == pytest.approx((1.0 + 0.5 + 0.0 + 0.0) / 4)
    for k in (1, 3, 5):
        assert metrics[f"recall@{k}"] == metrics[f"hr@{k}"]
    assert metrics["mrr"] == pytest.approx((1 + 1 / 3 + 0 + 1 / 6) / 4)  # MRR uses the whole list
    assert all(type(v) is float for v in metrics.values())


def test_ndcg_at_full_length_counts_the_last_rank():
    metrics = ranking_metrics(RANKED, TARGETS, ks=(6,))
    assert metrics["ndcg@6"] == pytest.approx((1 + 1 / math.log2(4) + 0 + 1 / math.log2(7)) / 4)
    assert metrics["hr@6"] == pytest.approx(3 / 4)


@pytest.mark.parametrize(
    ("ranked", "targets", "ks", "message"),
    [
        (np.arange(5), np.array([1]), (1,), "2-D"),
        (np.zeros((3, 5), dtype=np.int64), np.array([1, 2]), (1,), "3 users but targets has 2"),
        (np.zeros((2, 5), dtype=np.int64), np.array([1, 2]), (10,), "k=10"),
        (np.zeros((0, 5), dtype=np.int64), np.zeros(0, dtype=np.int64), (1,), "empty"),
    ],
)
def test_ranking_metrics_reject_bad_inputs_naming_shapes(ranked, targets, ks, message):
    with pytest.raises(ValueError, match=message) as error:
        ranking_metrics(ranked, targets, ks=ks)
    assert "shape" in str(error.value)


# Two positions with K = (4, 3). Position 0 uses {0, 2, 3}, position 1 uses {0, 1, 2};
# items 0 and 1 share the ID (0, 1).
CODES = np.array([[0, 1], [0, 1], [2, 0], [3, 1], [2, 2]], dtype=np.int64)
SIZES = (4, 3)


def test_codebook_underutilisation_counts_unused_entries():
    unused = (4 - 3) + (3 - 3)
    assert codebook_underutilisation(CODES, SIZES) == pytest.approx(unused / 7)
    assert codebook_underutilisation(CODES, 4) == pytest.approx(((4 - 3) + (4 - 3)) / 8)  # int K per position


def test_cardinality_and_conflict_rate_with_one_collision_group():
    assert cardinality(CODES) == 4  # (0,1), (2,0), (3,1), (2,2)
    assert conflict_rate(CODES) == pytest.approx(2 / 5)
    assert conflict_rate(np.array([[1, 1], [1, 1], [1, 1], [0, 0]])) == pytest.approx(3 / 4)
    assert conflict_rate(np.array([[0], [1], [2]])) == 0.0


def test_sid_quality_on_all_items_and_on_a_subset():
    assert sid_quality(CODES, SIZES) == pytest.approx(
        {"cur": 1 / 7, "cardinality": 4, "conflict_rate": 0.4, "num_items": 5}
    )
    # items 0, 2, 3: position 0 uses {0, 2, 3} (1 unused), position 1 uses {1, 0} (1 unused), no collision
    assert sid_quality(CODES, SIZES, items=np.array([0, 2, 3])) == pytest.approx(
        {"cur": 2 / 7, "cardinality": 3, "conflict_rate": 0.0, "num_items": 3}
    )
    # items 0, 1 collide with each other: both conflicted, one distinct ID, (3 + 2) of 7 entries unused
    assert sid_quality(CODES, SIZES, items=np.array([0, 1])) == pytest.approx(
        {"cur": 5 / 7, "cardinality": 1, "conflict_rate": 1.0, "num_items": 2}
    )


def test_codes_out_of_range_name_the_position():
    with pytest.raises(ValueError, match="position 1 must lie in \\[0, 3\\)"):
        sid_quality(np.array([[0, 3]]), SIZES)
    with pytest.raises(ValueError, match="position 0"):
        codebook_underutilisation(np.array([[-1, 0]]), SIZES)
    with pytest.raises(ValueError, match="3 entries but codes has 2 positions"):
        codebook_underutilisation(CODES, (4, 3, 2))
    with pytest.raises(ValueError, match="2-D"):
        cardinality(np.array([1, 2, 3]))
