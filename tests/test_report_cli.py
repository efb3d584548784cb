"""`raysid report` and `raysid compare` on real results folders (copies of the committed ones, and folders
the tests make from them): the summary rendered again without re-running, paired differences by hand."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
from scipy import stats
from typer.testing import CliRunner

from cli.main import app

RESULTS = Path(__file__).resolve().parents[1] / "results"
WIDE = {"COLUMNS": "220"}  # rich lays tables out to the terminal's width


def table_lines(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def copy_results(tmp_path: Path, *names: str) -> Path:
    for name in names:
        shutil.copytree(RESULTS / name, tmp_path / name)
    return tmp_path


def test_report_renders_the_committed_summary_again_without_running(tmp_path):
    results = copy_results(tmp_path, "musicrec-ratio")
    committed = (RESULTS / "musicrec-ratio" / "summary.md").read_text()
    result = CliRunner().invoke(app, ["report", "musicrec-ratio", "--results-dir", str(results)], env=WIDE)
    assert result.exit_code == 0, result.output
    written = (results / "musicrec-ratio" / "summary.md").read_text()
    summary_table = table_lines(committed.split("## ")[0])
    assert summary_table and table_lines(written)[: len(summary_table)] == summary_table  # the same table from trials.parquet
    assert committed.splitlines()[-1] == written.splitlines()[-1]  # the provenance line of the sweep that ran
    assert "## Tokenizer health against `test/ndcg@10`" in written
    for name in ("summary.png", "summary.svg", "health.png", "health.svg"):
        assert (results / "musicrec-ratio" / name).stat().st_size > 0
    terminal = result.output
    assert "| 3:1 |" not in terminal and "---:" not in terminal  # rendered, not raw markdown
    best = next(line for line in committed.splitlines() if line.startswith("|") and "**" in line)
    label, (cell, star) = best.split("|")[1].strip(), re.search(r"\*\*(.+?)\*\*( ★)?", best).groups()
    row = next(line for line in terminal.splitlines() if line.strip().startswith(label))
    assert f"{cell}{star or ''}" in row and "**" not in row  # the committed best cell (starred if separated), rendered
    assert "Spearman ρ" in terminal and "summary.svg" in terminal


def test_report_accepts_a_folder_and_writes_elsewhere_with_out(tmp_path):
    folder = copy_results(tmp_path / "in", "3mtoken-latent-dim") / "3mtoken-latent-dim"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    result = CliRunner().invoke(app, ["report", str(folder), "--out", str(tmp_path / "out")], env=WIDE)
    assert result.exit_code == 0, result.output
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # the folder is left as it was
    assert table_lines((tmp_path / "out" / "summary.md").read_text())[2].startswith("| 8 | 2 | 2 |")


def test_report_names_what_is_missing(tmp_path):
    result = CliRunner().invoke(app, ["report", "musicrec-ratio", "--results-dir", str(tmp_path)], env=WIDE)
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert f"{tmp_path}/musicrec-ratio: no trials.parquet; run `raysid sweep musicrec-ratio` first" in message
    result = CliRunner().invoke(app, ["report", "musicrec-rato"], env=WIDE)
    assert result.exit_code == 2 and "did you mean 'musicrec-ratio'?" in result.output


def by_hand(a: pl.DataFrame, b: pl.DataFrame, metric: str, ratio: str) -> tuple[float, float, float, int]:
    """B − A at one ratio over the seeds both have, and scipy's paired-t interval."""
    joined = (a.filter(pl.col("ratio") == ratio).select("seed", pl.col(metric).alias("a"))
              .join(b.filter(pl.col("ratio") == ratio).select("seed", pl.col(metric).alias("b")), on="seed"))
    test = stats.ttest_rel(joined["b"].to_numpy(), joined["a"].to_numpy())
    interval = test.confidence_interval(0.95)
    return float((joined["b"] - joined["a"]).mean()), float(interval.low), float(interval.high), joined.height


def compare_rows(output: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip()[1:-1].split("│")] if line.strip().startswith("│") else []
        if len(cells) == 8 and "/" in cells[0]:
            rows[(cells[0], cells[1])] = cells
    return rows


def test_compare_two_studies_gives_paired_differences_over_matching_seeds(tmp_path):
    results = copy_results(tmp_path, "musicrec-ratio", "musicrec-ratio-mpd")
    a = pl.read_parquet(results / "musicrec-ratio" / "trials.parquet")
    b = pl.read_parquet(results / "musicrec-ratio-mpd" / "trials.parquet").filter(pl.col("seed") != 2)  # 2 seeds in B
    b.write_parquet(results / "musicrec-ratio-mpd" / "trials.parquet")
    result = CliRunner().invoke(app, ["compare", "musicrec-ratio", str(results / "musicrec-ratio-mpd"),
                                      "--results-dir", str(results)], env=WIDE)
    assert result.exit_code == 0, result.output
    rows = compare_rows(result.output)
    metrics = ["test/hr@5", "test/hr@10", "test/ndcg@5", "test/ndcg@10", "sid/conflict_rate", "sid/cur"]
    assert list(rows) == [(m, r) for m in metrics for r in ("1:3", "2:2", "3:1")]  # one line per metric and point
    for ratio in ("1:3", "2:2", "3:1"):
        mean, low, high, seeds = by_hand(a, b, "test/ndcg@10", ratio)
        cells = rows[("test/ndcg@10", ratio)]
        assert seeds == 2 and cells[6] == "2"
        shared = a.filter((pl.col("ratio") == ratio) & (pl.col("seed") < 2))
        assert float(cells[2]) == pytest.approx(shared["test/ndcg@10"].mean(), abs=5e-5)
        assert float(cells[4]) == pytest.approx(mean, abs=5e-5)
        assert cells[5] == f"[{low:+.4f}, {high:+.4f}]"
        assert cells[7] == ("✓" if low > 0 or high < 0 else "")


def test_compare_says_why_nothing_matches(tmp_path):
    results = copy_results(tmp_path, "musicrec-ratio", "musicrec-ablation")
    other_axes = CliRunner().invoke(app, ["compare", "musicrec-ratio", "musicrec-ablation", "--results-dir", str(results)],
                                    env=WIDE)
    assert other_axes.exit_code == 2
    assert "varies ratio but" in other_axes.output and "varies variant" in other_axes.output
    shifted = tmp_path / "shifted"
    shutil.copytree(results / "musicrec-ratio", shifted)
    trials = pl.read_parquet(shifted / "trials.parquet").with_columns(pl.col("seed") + 10)
    trials.write_parquet(shifted / "trials.parquet")
    no_seed = CliRunner().invoke(app, ["compare", str(results / "musicrec-ratio"), str(shifted)], env=WIDE)
    assert no_seed.exit_code == 2
    text = " ".join(no_seed.output.split())
    assert "share the points 1:3, 2:2, 3:1 but no seed" in text and "seeds [0, 1, 2]" in text and "seeds [10, 11, 12]" in text
    assert json.loads((shifted / "provenance.json").read_text())["study"] == "musicrec-ratio"  # found its layout by it
