"""Ablation report: summary numbers checked by hand, best-row marking, baseline row, files written."""

from __future__ import annotations

import math

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from raysid.reporting.report import write_report
from raysid.reporting.summary import ReportLayout, render_markdown, summarize, t_quantile_975

T_DF2 = 4.303  # t(0.975, 2) from a printed table, three decimals


def make_trials() -> pl.DataFrame:
    """Three ratios x three seeds, given out of order; the baseline repeats per seed in every group."""
    ratio = ["3:1", "3:1", "3:1", "1:3", "1:3", "1:3", "1:1", "1:1", "1:1"]
    return pl.DataFrame(
        {
            "trial_id": [f"t{i}" for i in range(9)],
            "seed": [0, 1, 2] * 3,
            "ratio": ratio,
            "codebook_size": [256] * 9,
            "test/ndcg@10": [0.25, 0.25, 0.25, 0.10, 0.20, 0.30, 0.30, 0.40, 0.50],
            "sid/conflict_rate": [0.01, 0.02, 0.03, 0.05, 0.05, 0.05, 0.10, 0.20, 0.30],
            "popularity/test/ndcg@10": [0.05, 0.06, 0.07] * 3,
        }
    )


NDCG_MAX = ReportLayout(rows=("ratio",), metrics=("test/ndcg@10", "sid/conflict_rate"), best="test/ndcg@10",
                        mode="max", title="Shared:specific ratio")
CONFLICT_MIN = ReportLayout(rows=("ratio",), metrics=("test/ndcg@10", "sid/conflict_rate"),
                            best="sid/conflict_rate", mode="min")


def row_of(summary: pl.DataFrame, group: str) -> dict:
    return summary.filter(pl.col("group") == group).row(0, named=True)


def table_line(markdown: str, label: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(f"| {label} |"))


def test_t_quantile_matches_printed_tables():
    assert t_quantile_975(2) == pytest.approx(T_DF2, abs=5e-4)
    assert t_quantile_975(1) == pytest.approx(12.706, abs=5e-4)
    assert t_quantile_975(31) == pytest.approx(2.0395, abs=1e-4)
    assert t_quantile_975(10_000) == pytest.approx(1.960, abs=1e-3)


def test_mean_std_and_half_width_by_hand():
    summary = summarize(make_trials(), NDCG_MAX)
    assert summary["group"].to_list() == ["1:1", "1:3", "3:1", "popularity (baseline)"]  # natural order
    row = row_of(summary, "1:3")  # values 0.1, 0.2, 0.3
    std = math.sqrt(((0.1 - 0.2) ** 2 + 0 + (0.3 - 0.2) ** 2) / (3 - 1))  # = 0.1
    assert row["test/ndcg@10/mean"] == pytest.approx(0.2)
    assert row["test/ndcg@10/std"] == pytest.approx(std)
    assert row["test/ndcg@10/n"] == 3 and row["trials"] == 3 and row["seeds"] == 3
    assert row["test/ndcg@10/ci95"] == pytest.approx(T_DF2 * 0.1 / math.sqrt(3), abs=1e-4)
    assert row_of(summary, "3:1")["test/ndcg@10/ci95"] == pytest.approx(0.0)


def test_baseline_counts_one_value_per_seed():
    row = row_of(summarize(make_trials(), NDCG_MAX), "popularity (baseline)")
    assert row["is_baseline"] and row["ratio"] is None
    assert row["test/ndcg@10/mean"] == pytest.approx(0.06)
    assert row["test/ndcg@10/n"] == 3  # not 9: each seed's baseline counted once
    assert row["test/ndcg@10/ci95"] == pytest.approx(T_DF2 * 0.01 / math.sqrt(3), abs=1e-5)
    assert row["sid/conflict_rate/mean"] is None  # no popularity/sid/conflict_rate column


def test_nan_and_null_are_left_out_and_single_values_have_no_interval():
    trials = make_trials().with_columns(
        pl.when(pl.col("trial_id") == "t3").then(float("nan")).otherwise(pl.col("test/ndcg@10")).alias("test/ndcg@10")
    )
    row = row_of(summarize(trials, NDCG_MAX), "1:3")  # 0.2, 0.3 remain
    assert row["test/ndcg@10/n"] == 2 and row["test/ndcg@10/mean"] == pytest.approx(0.25)
    single = summarize(make_trials().head(1), NDCG_MAX)
    assert single["test/ndcg@10/ci95"][0] is None and single["test/ndcg@10/std"][0] is None


def test_markdown_bolds_the_best_mean_for_max_and_min_and_stars_only_the_row_given():
    trials = make_trials()
    high = render_markdown(summarize(trials, NDCG_MAX), NDCG_MAX, starred="1:1")
    assert high.startswith("# Shared:specific ratio")
    assert "**0.4000 ± 0.2484** ★" in table_line(high, "1:1")  # 4.303 * 0.1 / sqrt(3) = 0.2484
    assert "**" not in table_line(high, "1:3") + table_line(high, "3:1")
    low = render_markdown(summarize(trials, CONFLICT_MIN), CONFLICT_MIN)  # no row separated: bold, no star
    assert "| **0.0200 ± 0.0248** |" in table_line(low, "3:1")  # mean 0.02, std 0.01
    assert low.count("**0.") == 1 and "★ |" not in low  # exactly one bold cell
    assert "lowest" in low and "highest" in high


def test_the_report_stars_the_best_mean_only_where_a_paired_interval_separates_it(tmp_path):
    # test/ndcg@10: 1:1 − 3:1 per seed = 0.05, 0.15, 0.25: 0.15 ± 4.303 · 0.1 / √3 = ± 0.2484 holds 0
    unseparated = write_report(make_trials(), NDCG_MAX, tmp_path / "ndcg")["markdown"].read_text()
    assert "| **0.4000 ± 0.2484** |" in table_line(unseparated, "1:1")
    assert "No star: the best mean of test/ndcg@10 (1:1) is not separated from 3:1 by a paired" in unseparated
    # sid/conflict_rate with 1:1 at 0.10, 0.11, 0.12: 3:1 − 1:1 = −0.09 on every seed, and 3:1 − 1:3 =
    # −0.04, −0.03, −0.02: −0.03 ± 4.303 · 0.01 / √3 = ± 0.0248, below 0
    trials = make_trials().with_columns(pl.when(pl.col("ratio") == "1:1").then(0.10 + 0.01 * pl.col("seed"))
                                        .otherwise(pl.col("sid/conflict_rate")).alias("sid/conflict_rate"))
    separated = write_report(trials, CONFLICT_MIN, tmp_path / "conflict")["markdown"].read_text()
    assert "| **0.0200 ± 0.0248** ★ |" in table_line(separated, "3:1") and separated.count("** ★") == 1
    assert "★ 3:1: the paired 95% interval over seeds of its sid/conflict_rate minus every other row's excludes 0." in separated


def test_markdown_has_baseline_row_and_explains_cells():
    markdown = render_markdown(summarize(make_trials(), NDCG_MAX), NDCG_MAX)
    baseline = table_line(markdown, "*popularity (baseline)*")
    assert "0.0600 ± 0.0248" in baseline and "—" in baseline
    assert "Each row averages 3 trials over 3 seeds" in markdown
    assert "95% confidence interval" in markdown


def test_write_report_files(tmp_path):
    trials = make_trials()
    paths = write_report(trials, NDCG_MAX, tmp_path / "study")
    assert {p.name for p in paths.values()} == {"trials.parquet", "summary.md", "summary.png", "summary.svg",
                                               "summary.parquet", "health.png", "health.svg"}  # health: sid/conflict_rate
    assert_frame_equal(pl.read_parquet(paths["trials"]), trials)
    assert_frame_equal(pl.read_parquet(paths["summary"]), summarize(trials, NDCG_MAX))  # the table's numbers
    png = paths["plot"].read_bytes()
    assert len(png) > 0 and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "popularity (baseline)" in paths["markdown"].read_text()


def test_write_report_survives_all_nan_metric_and_no_trials(tmp_path):
    trials = make_trials().with_columns(pl.lit(float("nan")).alias("sid/conflict_rate"))
    paths = write_report(trials, NDCG_MAX, tmp_path / "nan")
    assert "`sid/conflict_rate` has no finite value" in paths["markdown"].read_text()
    assert paths["plot"].stat().st_size > 0
    empty = write_report(make_trials().clear(), NDCG_MAX, tmp_path / "empty")
    assert "no trials to summarise" in empty["markdown"].read_text()


def test_missing_columns_are_named_with_the_available_ones(tmp_path):
    layout = ReportLayout(rows=("dropout",), metrics=("test/hr@20",), best="test/hr@20")
    with pytest.raises(ValueError, match="dropout, test/hr@20") as error:
        write_report(make_trials(), layout, tmp_path)
    assert "available columns are: trial_id, seed, ratio" in str(error.value)
    assert not (tmp_path / "summary.md").exists()


def test_groups_sort_naturally_over_several_axes():
    trials = pl.DataFrame(
        {
            "seed": [0, 0, 0, 0],
            "codebook": ["k=512", "k=64", "k=128", "k=64"],
            "levels": [3, 10, 3, 2],
            "test/ndcg@10": [0.1, 0.2, 0.3, 0.4],
        }
    )
    layout = ReportLayout(rows=("codebook", "levels"), metrics=("test/ndcg@10",), best="test/ndcg@10")
    summary = summarize(trials, layout)
    assert summary["group"].to_list() == [
        "codebook=k=64, levels=2", "codebook=k=64, levels=10", "codebook=k=128, levels=3", "codebook=k=512, levels=3",
    ]
    overall = summarize(trials, ReportLayout(rows=(), metrics=("test/ndcg@10",), best="test/ndcg@10"))
    assert overall["group"].to_list() == ["all"] and overall["test/ndcg@10/mean"][0] == pytest.approx(0.25)
