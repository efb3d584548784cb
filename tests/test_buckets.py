"""HR/NDCG by history-length bucket against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raysid.metrics.buckets import bucket_labels, bucket_of, metrics_by_history_length

# history lengths 1, 2 | 3, 5 | 7 | 12; target ranks 1, absent | 2, 3 | absent | 1
HISTORIES = [np.arange(n) for n in (1, 2, 3, 5, 7, 12)]
RANKED = np.array([[9, 1, 2], [1, 2, 3], [1, 9, 2], [1, 2, 9], [1, 2, 3], [9, 1, 2]])
TARGETS = np.full(6, 9)


def test_labels_and_assignment():
    assert bucket_labels((1, 3, 6, 11)) == ["1-2", "3-5", "6-10", "11-inf"]
    np.testing.assert_array_equal(bucket_of([1, 2, 3, 5, 6, 10, 11, 500], (1, 3, 6, 11)), [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(bucket_of([1, 2, 3], (2, 3)), [-1, 0, 1])


def test_metrics_by_hand():
    got = metrics_by_history_length(RANKED, HISTORIES, TARGETS, ks=(1, 3), bounds=(1, 3, 6, 11))
    expected = {
        "users/len_1-2": 2, "hr@1/len_1-2": 0.5, "ndcg@1/len_1-2": 0.5, "hr@3/len_1-2": 0.5, "ndcg@3/len_1-2": 0.5,
        "users/len_3-5": 2, "hr@1/len_3-5": 0.0, "ndcg@1/len_3-5": 0.0, "hr@3/len_3-5": 1.0,
        "ndcg@3/len_3-5": (1 / math.log2(3) + 1 / math.log2(4)) / 2,
        "users/len_6-10": 1, "hr@1/len_6-10": 0.0, "ndcg@1/len_6-10": 0.0, "hr@3/len_6-10": 0.0, "ndcg@3/len_6-10": 0.0,
        "users/len_11-inf": 1, "hr@1/len_11-inf": 1.0, "ndcg@1/len_11-inf": 1.0, "hr@3/len_11-inf": 1.0,
        "ndcg@3/len_11-inf": 1.0,
    }
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key


def test_empty_bucket_is_nan_and_short_histories_are_left_out():
    got = metrics_by_history_length(RANKED, HISTORIES, TARGETS, ks=(1,), bounds=(2, 13))
    assert got["users/len_2-12"] == 5 and got["hr@1/len_2-12"] == pytest.approx(1 / 5)  # user 0 (length 1) is in none
    assert got["users/len_13-inf"] == 0 and math.isnan(got["hr@1/len_13-inf"]) and math.isnan(got["ndcg@1/len_13-inf"])


@pytest.mark.parametrize("bounds", [(), (0, 3), (3, 3), (5, 2), ("a",), (1.5,)])
def test_bad_buckets_fail_clearly(bounds):
    with pytest.raises(ValueError, match="buckets must be"):
        metrics_by_history_length(RANKED, HISTORIES, TARGETS, ks=(1,), bounds=bounds)


def test_misaligned_inputs_fail():
    with pytest.raises(ValueError, match="must align"):
        metrics_by_history_length(RANKED, HISTORIES[:5], TARGETS, ks=(1,))
