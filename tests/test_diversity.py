"""Coverage, distinct items/artists per list and repetition on a hand-made case; the report's keys and values."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from raysid.metrics.diversity import (
    coverage,
    distinct_artists,
    distinct_items,
    item_artists,
    repetition,
)
from raysid.metrics.report import invalid_rate, recommendation_report

# 8 items; artist of item i: 0 0 0 1 1 2 2 3
ITEMS = pl.DataFrame({"item_id": np.arange(8), "artist": [0, 0, 0, 1, 1, 2, 2, 3]})
RANKED = np.array([[3, 1, 1, -1], [0, 2, 4, 6], [5, 5, -1, -1]])
HISTORIES = [np.array([1, 7]), np.array([4]), np.array([2, 3])]
TARGETS = np.array([3, 7, 2])


def test_diversity_by_hand():
    # top-3: [3 1 1] [0 2 4] [5 5 -]: items {0..5} of 8; distinct per list 2, 3, 1
    assert coverage(RANKED, 3, 8) == pytest.approx(6 / 8)
    assert distinct_items(RANKED, 3, 8) == pytest.approx(2.0)
    # artists: [1 0 0] -> 2, [0 0 1] -> 2, [2 2] -> 1
    artists = item_artists(ITEMS)
    assert distinct_artists(RANKED, 3, artists) == pytest.approx(5 / 3)
    # repeats: user 0: 1 in history, 1 again -> 2 of 3; user 1: 4 in history -> 1 of 3; user 2: 5 twice -> 1 of 2
    assert repetition(RANKED, HISTORIES, 3, 8) == pytest.approx(4 / 8)
    # top-4 adds item 6 for user 1 only: items {0..6}; distinct 2, 4, 1; repeats 4 of 9 slots
    assert coverage(RANKED, 4, 8) == pytest.approx(7 / 8)
    assert distinct_items(RANKED, 4, 8) == pytest.approx(7 / 3)
    assert distinct_artists(RANKED, 4, artists) == pytest.approx((2 + 3 + 1) / 3)
    assert repetition(RANKED, HISTORIES, 4, 8) == pytest.approx(4 / 9)
    assert distinct_items(np.array([[-1, -1]]), 2, 8) == 0.0
    assert math.isnan(repetition(np.array([[-1, -1]]), [np.array([0])], 2, 8))


def test_report_keys_and_values():
    report = recommendation_report(RANKED, HISTORIES, TARGETS, ITEMS, ks=(3,), buckets=(1, 2), generated=RANKED)
    assert report["coverage@3"] == pytest.approx(0.75) and report["distinct_artists@3"] == pytest.approx(5 / 3)
    assert report["distinct_items@3"] == pytest.approx(2.0) and report["repetition@3"] == pytest.approx(0.5)
    # lengths 2, 1, 2 -> bucket 1-1: user 1 (target 7 absent), bucket 2-inf: users 0 (rank 1) and 2 (absent)
    assert report["users/len_1-1"] == 1 and report["hr@3/len_1-1"] == 0.0
    assert report["users/len_2-inf"] == 2 and report["hr@3/len_2-inf"] == 0.5 and report["ndcg@3/len_2-inf"] == 0.5
    assert report["invalid_rate"] == pytest.approx(3 / 12)  # three -1 of twelve slots
    assert all(isinstance(value, float) for value in report.values())
    without_artist = recommendation_report(RANKED, HISTORIES, TARGETS, ITEMS.drop("artist"), ks=(3,), buckets=(1,))
    assert "distinct_artists@3" not in without_artist and "invalid_rate" not in without_artist
    assert invalid_rate(np.array([[0, -1], [-1, -1]])) == 0.75


def test_bad_input_fails_clearly():
    with pytest.raises(ValueError, match=r"ranked\[1, 2\] = 9 is not an item id in \[0, 8\)"):
        coverage(np.array([[0, 1, 2], [3, 4, 9]]), 3, 8)
    with pytest.raises(ValueError, match="k=5 must be in"):
        distinct_items(RANKED, 5, 8)
    with pytest.raises(ValueError, match="lacks column"):
        item_artists(ITEMS.drop("artist"))
    with pytest.raises(ValueError, match="'item_id' must equal the row index"):
        item_artists(ITEMS.reverse())
    with pytest.raises(ValueError, match="3 users but histories has 2"):
        repetition(RANKED, HISTORIES[:2], 3, 8)
    with pytest.raises(ValueError, match="at least one generated"):
        invalid_rate(np.array([]))


def test_artist_names_of_imported_data_become_dense_ids_in_name_order():
    items = pl.DataFrame({"item_id": [0, 1, 2, 3], "artist": ["Zappa", "ABBA", "Zappa", "Bowie"]})
    assert item_artists(items).tolist() == [2, 0, 2, 1]
    assert distinct_artists(np.array([[0, 2, 1]]), 3, item_artists(items)) == 2.0
    with pytest.raises(ValueError, match="must name an artist for every item"):
        item_artists(items.with_columns(pl.Series("artist", ["a", None, "b", "c"])))
