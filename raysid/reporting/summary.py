"""Ablation tables: Polars aggregation of sweep trials into a summary table and its markdown.

``raysid.reporting.report.write_report`` writes a results folder from them (with the plots, the search section,
the cost table and the tokenizer health).

Input is one row per trial (``trial_id``, ``seed``, one column per study axis, config columns, metric
columns such as ``test/ndcg@10`` and baseline metrics behind a prefix, ``popularity/test/ndcg@10``).
``summarize`` groups trials by the layout's axis columns and gives, per metric, the mean, the sample
standard deviation, the number of finite values n, and the half-width of the 95% confidence interval
of the mean, t(0.975, n-1) * std / sqrt(n). NaN and null values are left out of every statistic; a
group with n = 1 has a null std and a null half-width (no interval can be estimated from one value).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl


SUMMARY_COLUMNS = ("group", "is_baseline", "trials", "seeds")  # added to the axis columns
BEST_MARKER = "★"


@dataclass(frozen=True)
class ReportLayout:
    """How to lay out an ablation table.

    rows: axis columns whose values form the table rows (empty: one row over all trials).
    metrics: metric columns shown, in order; ``best`` is appended when not among them.
    best / mode: the metric whose largest ("max") or smallest ("min") mean is marked.
    baseline: prefix of baseline columns (``popularity/test/hr@10``); None for no baseline row.
    """

    rows: tuple[str, ...]
    metrics: tuple[str, ...]
    best: str
    mode: Literal["max", "min"] = "max"
    baseline: str | None = "popularity"
    title: str = ""
    top: int = 0  # > 0: also list the best ``top`` trials, chosen on ``select``, with their ``metrics``
    importance: tuple[str, ...] = ()  # parameters whose fANOVA importance for ``select`` is listed
    select: str = ""  # the metric trials are chosen on (the study's, a validation metric); "" means ``best``
    select_mode: str = ""  # "max" or "min" for ``select``; "" means ``mode``
    cost: bool = False  # also a table of each group's cost: wall, CPU and GPU seconds, items/s, ms per user

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"ReportLayout.mode must be 'max' or 'min', got {self.mode!r}")
        if not self.metrics and not self.best:
            raise ValueError("ReportLayout needs at least one metric")
        if self.select_mode not in ("", "max", "min"):
            raise ValueError(f"ReportLayout.select_mode must be 'max' or 'min', got {self.select_mode!r}")
        clash = sorted(set(self.rows) & set(SUMMARY_COLUMNS))
        if clash:
            raise ValueError(f"ReportLayout.rows may not use the reserved names {clash}")

    @property
    def selection(self) -> str:
        """The metric the best trials are chosen on and parameter importance explains."""
        return self.select or self.best

    @property
    def selection_mode(self) -> str:
        return self.select_mode or self.mode

    @property
    def columns(self) -> tuple[str, ...]:
        """Metric columns of the report: ``metrics`` plus ``best`` if it is not listed."""
        return self.metrics if self.best in self.metrics else (*self.metrics, self.best)


def t_quantile_975(df: int) -> float:
    """t(0.975, df), the two-sided 95% quantile of Student's t (scipy.stats.t)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    from scipy.stats import t  # here, not at the top: `raysid show` imports this module and should stay light

    return float(t.ppf(0.975, df))


def check_columns(trials: pl.DataFrame, layout: ReportLayout) -> None:
    """Raise ValueError naming the layout's columns missing from trials, listing those available."""
    missing = [c for c in (*layout.rows, *layout.columns) if c not in trials.columns]
    if missing:
        raise ValueError(
            f"report layout refers to columns not in the trials: {', '.join(missing)}; "
            f"available columns are: {', '.join(trials.columns)}"
        )


def baseline_columns(trials: pl.DataFrame, layout: ReportLayout) -> dict[str, str]:
    """{metric: baseline column} for the layout's metrics that have a baseline column in trials."""
    if layout.baseline is None:
        return {}
    names = {m: f"{layout.baseline}/{m}" for m in layout.columns}
    return {m: c for m, c in names.items() if c in trials.columns}


# --------------------------------------------------------------------------------------------------
# summary


def _metric_frame(frame: pl.DataFrame, sources: dict[str, str], keys: list[str]) -> pl.DataFrame:
    """Keys plus one Float64 column per metric (NaN turned into null, absent sources all null)."""
    values = [
        pl.col(src).cast(pl.Float64, strict=False).fill_nan(None).alias(m)
        if src is not None else pl.lit(None, dtype=pl.Float64).alias(m)
        for m, src in sources.items()
    ]
    return frame.select([pl.col(k) for k in keys] + values)


def _aggregate(values: pl.DataFrame, keys: list[str], metrics: tuple[str, ...], seeds: pl.Expr) -> pl.DataFrame:
    """Per group of ``keys``: trial count, seed count, and mean/std/n of each metric."""
    exprs = [pl.len().cast(pl.Int64).alias("trials"), seeds.cast(pl.Int64).alias("seeds")]
    for m in metrics:
        exprs += [
            pl.col(m).mean().alias(f"{m}/mean"),
            pl.col(m).std(ddof=1).alias(f"{m}/std"),
            pl.col(m).count().cast(pl.Int64).alias(f"{m}/n"),
        ]
    if not keys:
        return values.select(exprs)
    return values.group_by(keys, maintain_order=True).agg(exprs)


def _with_half_widths(summary: pl.DataFrame, metrics: tuple[str, ...]) -> pl.DataFrame:
    """Add ``{metric}/ci95``: t(0.975, n-1) * std / sqrt(n), null where n < 2."""
    columns = []
    for m in metrics:
        n = summary[f"{m}/n"].to_numpy().astype(np.int64)
        std = summary[f"{m}/std"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        t = np.array([t_quantile_975(k - 1) if k > 1 else np.nan for k in n], dtype=np.float64)
        half = t * std / np.sqrt(np.maximum(n, 1))
        columns.append(pl.Series(f"{m}/ci95", half, dtype=pl.Float64).fill_nan(None))
    summary = summary.with_columns(columns)
    stats = [f"{m}/{s}" for m in metrics for s in ("mean", "std", "n", "ci95")]
    return summary.select([c for c in summary.columns if c not in stats] + stats)


def _natural_key(value: Any) -> tuple:
    """Sort key: numbers numerically, strings with digit runs compared as numbers ("1:3" < "3:1")."""
    if value is None:
        return (2,)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value))
    parts = re.split(r"(\d+(?:\.\d+)?)", str(value))
    return (1, tuple((i % 2, float(p) if i % 2 else p) for i, p in enumerate(parts)))


def _sorted_groups(summary: pl.DataFrame, rows: tuple[str, ...]) -> pl.DataFrame:
    """Sort groups naturally by the axis columns, first axis first; add the ``group`` label."""
    if not rows:
        return summary.with_columns(pl.lit("all").alias("group"))
    records = summary.select(rows).rows()
    order = sorted(range(len(records)), key=lambda i: tuple(_natural_key(v) for v in records[i]))
    labels = [_group_label(rows, records[i]) for i in order]
    ordered = summary[order] if order else summary
    return ordered.with_columns(pl.Series("group", labels, dtype=pl.String))


def _group_label(rows: tuple[str, ...], values: tuple) -> str:
    """"1:3" for one axis, "codebook_size=64, ratio=1:3" for several."""
    if len(rows) == 1:
        return str(values[0])
    return ", ".join(f"{r}={v}" for r, v in zip(rows, values))


def _baseline_summary(trials: pl.DataFrame, layout: ReportLayout) -> pl.DataFrame | None:
    """One summary row for the baseline, one value per seed (its trials' mean), or None if absent."""
    present = baseline_columns(trials, layout)
    if not present:
        return None
    sources = {m: present.get(m) for m in layout.columns}
    values = _metric_frame(trials, sources, ["seed"] if "seed" in trials.columns else [])
    if "seed" in values.columns:  # every trial of a seed evaluates the same baseline: count it once
        values = values.group_by("seed", maintain_order=True).agg(pl.col(m).mean() for m in layout.columns)
    seeds = pl.col("seed").n_unique() if "seed" in values.columns else pl.len()
    row = _aggregate(values, [], layout.columns, seeds)
    return row.with_columns(pl.lit(f"{layout.baseline} (baseline)").alias("group"), pl.lit(True).alias("is_baseline"))


def summarize(trials: pl.DataFrame, layout: ReportLayout) -> pl.DataFrame:
    """Per group of the layout's axis columns: trials, seeds, and ``{metric}/mean|std|n|ci95``.

    Groups are sorted naturally; the baseline (if its columns exist) is a last row with
    ``is_baseline`` true, null axis values and the group label ``"<prefix> (baseline)"``.
    """
    check_columns(trials, layout)
    keys = list(layout.rows)
    values = _metric_frame(trials, {m: m for m in layout.columns}, keys)
    seeds = pl.len()
    if "seed" in trials.columns:
        values = values.with_columns(trials["seed"].alias("__seed"))
        seeds = pl.col("__seed").n_unique()
    groups = _aggregate(values, keys, layout.columns, seeds)
    groups = _sorted_groups(groups, layout.rows).with_columns(pl.lit(False).alias("is_baseline"))
    baseline = _baseline_summary(trials, layout)
    if baseline is not None:
        groups = pl.concat([groups, baseline], how="diagonal_relaxed")
    front = [*layout.rows, *SUMMARY_COLUMNS]
    groups = groups.select(front + [c for c in groups.columns if c not in front])
    return _with_half_widths(groups, layout.columns)


# --------------------------------------------------------------------------------------------------
# markdown


def _number(value: float) -> str:
    """Four decimals for rates and scores, one for large counts such as cardinality."""
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.4f}"


def cell_text(row: dict[str, Any], metric: str) -> str:
    """"mean ± half-width", "mean (n=1)" for a single value, "—" for no finite value.

    "(n=…)" is appended whenever fewer values than the row's trials were finite.
    """
    mean, half = row[f"{metric}/mean"], row[f"{metric}/ci95"]
    if mean is None:
        return "—"
    n = row[f"{metric}/n"]
    if half is None:
        return f"{_number(mean)} (n={n})"
    partial = f" (n={n})" if n != row["trials"] else ""  # some trials had no finite value
    return f"{_number(mean)} ± {_number(half)}{partial}"


def best_rows(summary: pl.DataFrame, layout: ReportLayout) -> list[int]:
    """Indices of the non-baseline rows whose ``best`` mean is the max/min (all of them on a tie)."""
    means = summary[f"{layout.best}/mean"].to_list()
    candidates = [(i, v) for i, (v, b) in enumerate(zip(means, summary["is_baseline"])) if v is not None and not b]
    if not candidates:
        return []
    pick = max if layout.mode == "max" else min
    target = pick(v for _, v in candidates)
    return [i for i, v in candidates if v == target]


def markdown_table(summary: pl.DataFrame, layout: ReportLayout, starred: str | None = None) -> list[str]:
    """Markdown table lines: group, trials, seeds, one column per metric; the best mean of ``layout.best``
    bolded, and starred only in row ``starred`` (the row a paired interval separates: ``paired.separated_best``)."""
    metrics = layout.columns
    head = " / ".join(layout.rows) or "group"
    lines = [f"| {head} | trials | seeds | " + " | ".join(f"`{m}`" for m in metrics) + " |"]
    lines.append("|" + "---|" * 3 + "---:|" * len(metrics))
    best = set(best_rows(summary, layout))
    for i, row in enumerate(summary.iter_rows(named=True)):
        cells = []
        for m in metrics:
            cell = cell_text(row, m)
            if i in best and m == layout.best:
                cell = f"**{cell}**" + (f" {BEST_MARKER}" if row["group"] == starred else "")
            cells.append(cell)
        label = f"*{row['group']}*" if row["is_baseline"] else str(row["group"])
        lines.append(f"| {label} | {row['trials']} | {row['seeds']} | " + " | ".join(cells) + " |")
    return lines


def _footer(summary: pl.DataFrame, layout: ReportLayout, best_note: str = "") -> list[str]:
    """What each cell averages, what ± means, which cell is marked (``best_note``: whether the best is
    separated, ``paired.separated_best``'s sentence), and notes on empty metrics."""
    groups = summary.filter(~pl.col("is_baseline"))
    counts = sorted(set(groups["trials"].to_list()))
    seeds = sorted(set(groups["seeds"].to_list()))
    if groups.height == 0:
        averages = ""
    elif len(counts) == 1 and len(seeds) == 1:
        averages = f"Each row averages {counts[0]} trials over {seeds[0]} seeds. "
    else:
        averages = "Rows average different numbers of trials (see the trials and seeds columns). "
    lines = [
        averages + "Each cell is the mean over its trials' finite values (NaN and missing left out) ± the "
        "half-width of the 95% confidence interval of that mean, t(0.975, n−1)·std/√n with Student's t; "
        "a cell from a single value shows (n=1) and no interval.",
        f"**Bold** marks the best mean of `{layout.best}` ({'highest' if layout.mode == 'max' else 'lowest'} "
        f"is best) among the non-baseline rows; {BEST_MARKER} marks it only where the paired 95% interval over "
        "seeds of its difference from every other row excludes 0." + (f" {best_note}" if best_note else ""),
    ]
    if summary.filter(pl.col("is_baseline")).height:
        lines.append(f"The *{layout.baseline} (baseline)* row counts one value per seed; — means no baseline "
                     "value for that metric.")
    if groups.height == 0 or int(groups["trials"].sum()) == 0:
        lines.append("> **Note:** there are no trials to summarise.")
    for m in layout.columns:
        if summary[f"{m}/mean"].null_count() == summary.height:
            lines.append(f"> **Note:** `{m}` has no finite value in any trial (all NaN or missing).")
    return lines


def render_markdown(summary: pl.DataFrame, layout: ReportLayout, starred: str | None = None, best_note: str = "") -> str:
    """A markdown report: title, one table row per group (plus baseline), and an explanation; ``starred`` and
    ``best_note`` are ``paired.separated_best``'s answer (no star without it)."""
    title = layout.title or f"Ablation over {', '.join(layout.rows) or 'all trials'}"
    parts = [f"# {title}", "", *markdown_table(summary, layout, starred), "", *_footer(summary, layout, best_note)]
    return "\n".join(parts) + "\n"
