"""Two results folders side by side: paired differences over matching seeds, one line per metric and point.

A trial of B matches a trial of A when both have the same axis point (the values of A's layout axes) and
the same seed. For every metric of either layout that both folders have and every point both have, the
line gives A's and B's means over the seeds they share and ``B − A`` over those seeds with its 95%
Student-t interval (``raysid.reporting.paired``: mean ± t(0.975, n−1)·s/√n over the n shared seeds), and whether the
interval excludes 0. Nothing matching is an error that says why (other axes, no common point, no common seed).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from raysid.config import ConfigError
from raysid.reporting.paired import PairedDifference, row_labels, paired_values
from raysid.reporting.folders import ResultsFolder


@dataclass(frozen=True)
class Line:
    metric: str
    point: str  # the axis point, as the summary table labels its row
    first: float  # A's mean over the shared seeds
    second: float  # B's mean over the shared seeds
    difference: PairedDifference  # B − A


def per_seed(trials: pl.DataFrame, rows: tuple[str, ...], metric: str) -> dict[str, dict[int, float]]:
    """{point: {seed: mean of the point's finite metric values for that seed}}."""
    frame = trials.select(row_labels(trials, rows).alias("point"), pl.col("seed"),
                          pl.col(metric).cast(pl.Float64, strict=False).fill_nan(None).alias("v")).drop_nulls()
    means = frame.group_by("point", "seed").agg(pl.col("v").mean())
    out: dict[str, dict[int, float]] = {}
    for point, seed, value in means.iter_rows():
        out.setdefault(point, {})[seed] = value
    return out


def compare(a: ResultsFolder, b: ResultsFolder) -> list[Line]:
    """Every (metric, point) that A and B share, with B − A over their shared seeds; ConfigError when none."""
    rows = a.layout.rows
    _check_matchable(a, b, rows)
    metrics = [m for m in dict.fromkeys((*a.layout.columns, *b.layout.columns))
               if m in a.trials.columns and m in b.trials.columns]
    order = list(dict.fromkeys(row_labels(a.trials, rows).to_list()))
    lines = []
    for metric in metrics:
        first, second = per_seed(a.trials, rows, metric), per_seed(b.trials, rows, metric)
        for point in (p for p in order if p in first and p in second):
            shared = sorted(set(first[point]) & set(second[point]))
            if not shared:
                continue
            difference = paired_values("B", "A", metric, {s: second[point][s] for s in shared}, {s: first[point][s] for s in shared})
            lines.append(Line(metric, point, _mean(first[point], shared), _mean(second[point], shared), difference))
    if not lines:
        raise ConfigError(_nothing_matches(a, b, rows))
    return lines


def _mean(values: dict[int, float], seeds: list[int]) -> float:
    return sum(values[s] for s in seeds) / len(seeds)


def _check_matchable(a: ResultsFolder, b: ResultsFolder, rows: tuple[str, ...]) -> None:
    for folder in (a, b):
        if "seed" not in folder.trials.columns:
            raise ConfigError(f"{folder.path}: its trials have no seed column, so no trial can be paired by seed")
    missing = [r for r in rows if r not in b.trials.columns]
    if missing or set(b.layout.rows) != set(rows):
        raise ConfigError(f"nothing to compare: {a.path} varies {', '.join(rows) or 'nothing'} but {b.path} varies "
                          f"{', '.join(b.layout.rows) or 'nothing'}; compare folders of studies with the same axes")


def _nothing_matches(a: ResultsFolder, b: ResultsFolder, rows: tuple[str, ...]) -> str:
    """Why no trial matched: no common point, or no common seed at the common points (or no common metric)."""
    points_a = set(row_labels(a.trials, rows).to_list())
    points_b = set(row_labels(b.trials, rows).to_list())
    common = sorted(points_a & points_b)
    if not common:
        return (f"nothing to compare: no axis point is in both folders ({a.path}: {', '.join(sorted(points_a))}; "
                f"{b.path}: {', '.join(sorted(points_b))})")
    seeds_a, seeds_b = sorted(set(a.trials["seed"].to_list())), sorted(set(b.trials["seed"].to_list()))
    if not set(seeds_a) & set(seeds_b):
        return (f"nothing to compare: the folders share the points {', '.join(common)} but no seed "
                f"({a.path}: seeds {seeds_a}; {b.path}: seeds {seeds_b}); a paired difference needs the same seeds")
    return (f"nothing to compare: {a.path} and {b.path} have no metric of their layouts with a finite value in both "
            "at a shared point and seed")
