"""Paired differences over seeds, checked against values computed by hand."""

from __future__ import annotations

import math

import polars as pl
import pytest

from raysid.reporting.paired import BASELINE, against_best, all_pairs, best_row, paired_difference
from raysid.reporting.summary import ReportLayout

T_DF2 = 4.302652730  # t(0.975, 2)
T_DF1 = 12.706204736  # t(0.975, 1)
LAYOUT = ReportLayout(rows=("ratio",), metrics=("m",), best="m", mode="max")


def make_trials() -> pl.DataFrame:
    """Rows A, B, C on seeds 0-2, D on seeds 0-1 only, E with a NaN on seed 2; a per-seed baseline."""
    values = {"A": [0.30, 0.20, 0.25], "B": [0.10, 0.15, 0.05], "C": [0.19, 0.11, 0.15], "D": [0.10, 0.30],
              "E": [0.20, 0.10, float("nan")]}
    ratio, seed, m = [], [], []
    for row, row_values in values.items():
        ratio += [row] * len(row_values)
        seed += list(range(len(row_values)))
        m += row_values
    baseline = [[0.05, 0.06, 0.07][s] for s in seed]
    return pl.DataFrame({"ratio": ratio, "seed": seed, "m": m, "popularity/m": baseline})


def test_difference_whose_interval_includes_zero_does_not_separate():
    d = paired_difference(make_trials(), LAYOUT, "m", "A", "B")
    # differences 0.20, 0.05, 0.20: mean 0.15, sample std sqrt(0.0075) = 0.0866, half = t * 0.0866 / sqrt(3)
    half = T_DF2 * math.sqrt(0.0075) / math.sqrt(3)
    assert d.seeds == 3 and d.mean == pytest.approx(0.15)
    assert (d.low, d.high) == (pytest.approx(0.15 - half), pytest.approx(0.15 + half))
    assert d.low == pytest.approx(-0.0651326, abs=1e-6)
    assert d.verdict == "does not separate" and not d.favours_first("max")


def test_difference_whose_interval_excludes_zero_separates():
    d = paired_difference(make_trials(), LAYOUT, "m", "A", "C")
    # differences 0.11, 0.09, 0.10: mean 0.10, std 0.01, half = t * 0.01 / sqrt(3) = 0.0248413
    assert d.mean == pytest.approx(0.10)
    assert (d.low, d.high) == (pytest.approx(0.0751587, abs=1e-6), pytest.approx(0.1248413, abs=1e-6))
    assert d.verdict == "separates" and d.favours_first("max") and not d.favours_first("min")
    flipped = paired_difference(make_trials(), LAYOUT, "m", "C", "A")
    assert flipped.mean == pytest.approx(-0.10) and flipped.favours_first("min")


def test_only_seeds_present_in_both_rows_and_finite_count():
    missing = paired_difference(make_trials(), LAYOUT, "m", "A", "D")
    # seeds 0, 1: differences 0.20, -0.10: mean 0.05, std 0.212132, half = t(1) * 0.212132 / sqrt(2) = 1.905931
    assert missing.seeds == 2 and missing.mean == pytest.approx(0.05)
    assert missing.high == pytest.approx(0.05 + T_DF1 * 0.15)
    nan = paired_difference(make_trials(), LAYOUT, "m", "A", "E")  # seed 2 of E is NaN: left out
    assert nan.seeds == 2 and nan.mean == pytest.approx((0.10 + 0.10) / 2)
    assert nan.low == pytest.approx(0.10) and nan.verdict == "separates"  # two equal differences: zero width


def test_one_common_seed_gives_no_interval():
    trials = make_trials().filter((pl.col("seed") == 0) | (pl.col("ratio") != "B"))
    d = paired_difference(trials, LAYOUT, "m", "A", "B")
    assert d.seeds == 1 and d.mean == pytest.approx(0.20) and d.low is None and d.verdict == "does not separate"


def test_baseline_row_reads_the_baseline_columns():
    d = paired_difference(make_trials(), LAYOUT, "m", "B", BASELINE)
    # 0.10 - 0.05, 0.15 - 0.06, 0.05 - 0.07 = 0.05, 0.09, -0.02
    assert d.mean == pytest.approx(0.04) and d.seeds == 3 and d.verdict == "does not separate"


def test_best_row_against_each_other_row_and_all_pairs():
    trials = make_trials()
    assert best_row(trials, LAYOUT) == "A"  # means A 0.25, B 0.10, C 0.15, D 0.20, E 0.15
    against = against_best(trials, LAYOUT)
    assert [(d.first, d.second) for d in against] == [("A", "B"), ("A", "C"), ("A", "D"), ("A", "E")]
    assert [d.verdict for d in against] == ["does not separate", "separates", "does not separate", "separates"]
    pairs = all_pairs(trials, LAYOUT)
    assert len(pairs) == 10 and (pairs[-1].first, pairs[-1].second) == ("D", "E")
    lowest = ReportLayout(rows=("ratio",), metrics=("m",), best="m", mode="min")
    assert best_row(trials, lowest) == "B"


def test_unknown_row_and_missing_seed_column_are_named():
    with pytest.raises(ValueError, match="no table row 'Z'; rows are: A, B, C, D, E"):
        paired_difference(make_trials(), LAYOUT, "m", "A", "Z")
    with pytest.raises(ValueError, match="'seed' column"):
        paired_difference(make_trials().drop("seed"), LAYOUT, "m", "A", "B")
