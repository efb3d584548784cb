"""Paired differences over seeds between rows of an ablation table.

Two rows of a report (groups of the layout's axis columns) are compared on one metric seed by seed: each
row's value for a seed is the mean of its finite values for that seed (one trial per seed in a grid
study), the difference is taken on the seeds both rows have, and its mean gets the 95% Student-t
interval mean ± t(0.975, n−1)·std/√n (sample std, ddof 1). The rows *separate* when that interval
excludes 0; with a single common seed there is no interval and they do not separate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from raysid.reporting.summary import ReportLayout, best_rows, summarize, t_quantile_975

SEPARATES = "separates"
DOES_NOT_SEPARATE = "does not separate"
BASELINE = "baseline"  # the row name that stands for the layout's baseline columns


@dataclass(frozen=True)
class PairedDifference:
    """Mean over common seeds of ``metric(first) − metric(second)`` with its 95% t-interval."""

    first: str
    second: str
    metric: str
    mean: float | None  # None when the rows share no seed with finite values
    low: float | None  # None when n < 2
    high: float | None
    seeds: int  # n: seeds with a finite value in both rows

    @property
    def separates(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)

    @property
    def verdict(self) -> str:
        return SEPARATES if self.separates else DOES_NOT_SEPARATE

    def favours_first(self, mode: str) -> bool:
        """The interval lies wholly on the side where ``first`` is better (higher for max, lower for min)."""
        if not self.separates:
            return False
        return self.low > 0 if mode == "max" else self.high < 0


def row_labels(trials: pl.DataFrame, rows: tuple[str, ...]) -> pl.Series:
    """Each trial's table row label, as ``summarize`` writes it ("1:3"; "a=1, b=2" for several axes)."""
    if not rows:
        return pl.Series("group", ["all"] * trials.height, dtype=pl.String)
    if len(rows) == 1:
        return trials[rows[0]].cast(pl.String).alias("group")
    parts = [pl.lit(f"{r}=") + pl.col(r).cast(pl.String) for r in rows]
    return trials.select(pl.concat_str(parts, separator=", ").alias("group"))["group"]


def per_seed_values(trials: pl.DataFrame, layout: ReportLayout, metric: str, row: str) -> dict[int, float]:
    """{seed: mean of the row's finite ``metric`` values for that seed}; ``BASELINE`` reads the baseline column."""
    if "seed" not in trials.columns:
        raise ValueError("paired differences need a 'seed' column in the trials")
    if row == BASELINE:
        if layout.baseline is None:
            raise ValueError("the layout has no baseline row")
        column, selected = f"{layout.baseline}/{metric}", trials
    else:
        column, selected = metric, trials.filter(row_labels(trials, layout.rows) == row)
        if selected.height == 0:
            raise ValueError(f"no table row {row!r}; rows are: {', '.join(table_rows(trials, layout))}")
    if column not in trials.columns:
        raise ValueError(f"no column {column!r} in the trials")
    values = selected.select(pl.col("seed"), pl.col(column).cast(pl.Float64, strict=False).fill_nan(None).alias("v"))
    means = values.drop_nulls().group_by("seed").agg(pl.col("v").mean())
    return dict(zip(means["seed"].to_list(), means["v"].to_list()))


def paired_difference(trials: pl.DataFrame, layout: ReportLayout, metric: str, first: str, second: str) -> PairedDifference:
    """``metric(first) − metric(second)`` over the seeds both rows have (either may be ``BASELINE``)."""
    a = per_seed_values(trials, layout, metric, first)
    b = per_seed_values(trials, layout, metric, second)
    return paired_values(first, second, metric, a, b)


def paired_values(first: str, second: str, metric: str, a: dict[int, float], b: dict[int, float]) -> PairedDifference:
    """``a[seed] − b[seed]`` over the seeds both hold ({seed: value} of rows ``first`` and ``second``), with its
    95% t-interval."""
    common = sorted(set(a) & set(b))
    differences = np.array([a[s] - b[s] for s in common], dtype=np.float64)
    if len(differences) == 0:
        return PairedDifference(first, second, metric, None, None, None, 0)
    mean = float(differences.mean())
    if len(differences) < 2:
        return PairedDifference(first, second, metric, mean, None, None, 1)
    half = t_quantile_975(len(differences) - 1) * float(differences.std(ddof=1)) / math.sqrt(len(differences))
    return PairedDifference(first, second, metric, mean, mean - half, mean + half, len(differences))


def table_rows(trials: pl.DataFrame, layout: ReportLayout) -> list[str]:
    """The non-baseline row labels in the report's order."""
    summary = summarize(trials, layout)
    return summary.filter(~pl.col("is_baseline"))["group"].to_list()


def best_row(trials: pl.DataFrame, layout: ReportLayout) -> str:
    """The row whose ``best`` mean the report marks (the first one on a tie)."""
    summary = summarize(trials, layout)
    marked = best_rows(summary, layout)
    if not marked:
        raise ValueError(f"no row has a finite {layout.best!r}")
    return summary["group"][marked[0]]


def against_row(trials: pl.DataFrame, layout: ReportLayout, first: str) -> list[PairedDifference]:
    """Row ``first`` minus each other row on ``layout.best``, in table order."""
    rows = table_rows(trials, layout)
    if first not in rows:
        raise ValueError(f"no table row {first!r}; rows are: {', '.join(rows)}")
    return [paired_difference(trials, layout, layout.best, first, row) for row in rows if row != first]


def against_best(trials: pl.DataFrame, layout: ReportLayout) -> list[PairedDifference]:
    """The best row minus each other row on ``layout.best``, in table order."""
    return against_row(trials, layout, best_row(trials, layout))


def separated_best(trials: pl.DataFrame, layout: ReportLayout) -> tuple[str | None, str]:
    """The row to star on ``layout.best`` (None unless its paired interval separates it from every other row)
    and the caption's sentence about it."""
    try:
        differences = against_best(trials, layout)
    except ValueError:  # no seed column, or no finite value
        return None, ""
    if not differences:
        return None, ""
    best = differences[0].first
    if all(d.seeds < 2 for d in differences):
        return None, f"No star: no two cells share two seeds, so no paired interval can separate the best {layout.best}."
    close = [d.second for d in differences if not d.favours_first(layout.mode)]
    if not close:
        return best, (f"★ {best}: the paired 95% interval over seeds of its {layout.best} minus every other "
                      "row's excludes 0.")
    shown = ", ".join(close[:3]) + (f" and {len(close) - 3} more" if len(close) > 3 else "")
    return None, (f"No star: the best mean of {layout.best} ({best}) is not separated from {shown} by a paired "
                  "95% interval over seeds.")


def all_pairs(trials: pl.DataFrame, layout: ReportLayout) -> list[PairedDifference]:
    """Every pair of table rows (earlier minus later in table order) on ``layout.best``."""
    rows = table_rows(trials, layout)
    return [paired_difference(trials, layout, layout.best, rows[i], rows[j])
            for i in range(len(rows)) for j in range(i + 1, len(rows))]
