"""A results folder written from a sweep's trials: ``trials.parquet``, ``summary.md`` (the table of
``raysid.reporting.summary``, the search section, the cost table, the tokenizer health), ``summary.parquet``, the figures
and ``provenance.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from raysid.reporting import paired
from raysid.reporting.importance import render_search
from raysid.provenance import summary_line
from raysid.reporting.summary import ReportLayout, cell_text, check_columns, render_markdown, summarize

def plot(trials: pl.DataFrame, layout: ReportLayout, path: str | Path) -> dict[str, Path]:
    """Write the summary figure (``raysid.reporting.plots``) as a PNG at ``path`` and an SVG beside it."""
    from raysid.reporting.plots import save_figure, summary_figure

    return save_figure(summary_figure(trials, layout), path)


def _health(trials: pl.DataFrame, layout: ReportLayout, out: Path) -> tuple[str, dict[str, Path]]:
    """The tokenizer-health section (``raysid.reporting.health``) against ``layout.best`` and its plots."""
    from raysid.reporting.paired import row_labels
    from raysid.reporting.health import write_health

    lines, paths = write_health(trials, layout.best, row_labels(trials, layout.rows).to_list(), out)
    return ("\n" + "\n".join(lines) if lines else ""), paths


# --------------------------------------------------------------------------------------------------
# cost


COST_COLUMNS = {  # what a trial's result cost when it was produced (stored with it: a cached re-run keeps them)
    "time/result_wall_s": "wall s", "time/result_cpu_s": "CPU s", "time/result_gpu_s": "GPU s",
    "time/train_items_per_s": "training items/s", "time/recommend_ms_per_user": "ms per test user",
}


def cost_table(trials: pl.DataFrame, layout: ReportLayout) -> list[str]:
    """Markdown lines: per group of the layout's rows, the mean ± 95% half-width of each cost column present."""
    present = tuple(c for c in COST_COLUMNS if c in trials.columns and trials[c].drop_nulls().len())
    if not present:
        return ["", "## Cost", "", "> **Note:** these trials report no cost columns."]
    summary = summarize(trials, ReportLayout(rows=layout.rows, metrics=present, best=present[0], baseline=None))
    head = " / ".join(layout.rows) or "group"
    lines = ["", "## Cost", "", "What producing each result cost (process CPU time of the trial; GPU seconds are wall "
             "seconds times the GPUs it used; items/s counts training positions per epoch; ms per test user times "
             "`recommend`, the beam search of T5/GPT-2).", "",
             f"| {head} | trials | " + " | ".join(COST_COLUMNS[c] for c in present) + " |",
             "|---|---|" + "---:|" * len(present)]
    for row in summary.iter_rows(named=True):
        lines.append(f"| {row['group']} | {row['trials']} | " + " | ".join(cell_text(row, c) for c in present) + " |")
    return lines


def write_report(trials: pl.DataFrame, layout: ReportLayout, out_dir: str | Path,
                 provenance: dict[str, Any] | None = None, search: Any = None) -> dict[str, Path]:
    """Write ``trials.parquet``, ``summary.md`` (with the tokenizer-health section), ``summary.parquet`` (the
    table's numbers), ``summary.png``/``.svg``, ``health.png``/``.svg`` when some quality measure varies and, when
    given, ``provenance.json`` (see ``raysid.provenance.results_record``) into out_dir; return their paths.
    ``search``: the Optuna study a sampled search stored, for the importance section (else rebuilt)."""
    check_columns(trials, layout)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"trials": out / "trials.parquet", "markdown": out / "summary.md", "plot": out / "summary.png",
             "summary": out / "summary.parquet"}
    trials.write_parquet(paths["trials"])
    summary = summarize(trials, layout)
    summary.write_parquet(paths["summary"])
    markdown = render_markdown(summary, layout, *paired.separated_best(trials, layout))
    if layout.top or layout.importance:
        markdown += "\n".join(render_search(trials, layout, search)) + "\n"
    if layout.cost:
        markdown += "\n".join(cost_table(trials, layout)) + "\n"
    health, health_paths = _health(trials, layout, out)
    markdown += health
    paths.update(health_paths)
    if provenance is not None:
        paths["provenance"] = out / "provenance.json"
        paths["provenance"].write_text(json.dumps(provenance, indent=2) + "\n")
        markdown += "\n" + summary_line(provenance) + "\n"
    paths["markdown"].write_text(markdown)
    paths.update(plot(trials, layout, paths["plot"]))
    return paths
