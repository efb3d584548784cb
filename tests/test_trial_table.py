"""The trial table keeps every column of every trial, each typed from all of its values."""

import polars as pl

from raysid.sweep.table import trial_table


def _rows(count: int) -> list[dict]:
    rows = []
    for i in range(count):
        row = {"trial_id": f"t{i}", "ratio": ["1:3", "3:1"][i % 2], "codebook_size": 64 * (1 + i % 3), "seed": i,
               "config.evaluation.ks": (5, 10), "config.training.ray": False, "config.tokenizer.alpha": 1 if i < 5 else 0.5,
               "test/ndcg@10": i / 100, "provenance.commit": "abc"}
        if i >= count - 3:  # a metric only the last trials report
            row["test/auc"] = 0.5 + i / 1000
        rows.append(row)
    return rows


def test_a_metric_only_the_last_of_121_trials_report_is_kept():
    table = trial_table(_rows(121))
    assert table.height == 121
    assert table["test/auc"].null_count() == 118
    assert table["test/auc"].drop_nulls().to_list() == [0.5 + i / 1000 for i in (118, 119, 120)]


def test_numbers_stay_numbers_and_structures_become_json():
    table = trial_table(_rows(8))
    assert table.schema["codebook_size"] == pl.Int64 and table.schema["seed"] == pl.Int64
    assert table.schema["ratio"] == pl.String and table.schema["provenance.commit"] == pl.String
    assert table.schema["config.training.ray"] == pl.Boolean
    assert table.schema["config.tokenizer.alpha"] == pl.Float64  # ints and floats mixed
    assert table["config.tokenizer.alpha"].to_list() == [1.0] * 5 + [0.5] * 3
    assert table["config.evaluation.ks"].to_list() == ["[5, 10]"] * 8
    assert table.schema["test/ndcg@10"] == pl.Float64 and table.schema["trial_id"] == pl.String


def test_mixed_kinds_fall_back_to_strings_and_non_finite_metrics_to_null():
    table = trial_table([{"a": 1, "m/x": float("nan")}, {"a": "two", "m/x": 3}, {"a": True, "m/x": float("inf")}])
    assert table["a"].to_list() == ["1", "two", "true"]
    assert table["m/x"].to_list() == [None, 3.0, None]
    assert trial_table([]).height == 0
