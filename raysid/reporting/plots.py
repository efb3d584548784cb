"""The summary figure of an ablation: every trial as a point over the mean and its 95% Student-t interval.

One panel per metric of the layout that varies across the trials: a metric equal in every trial, or with no
finite value, is named in the caption instead of drawn on a flat axis. The x axis is the layout's first
numeric axis (d_z, codebook size K, α, β: a real numeric axis, logarithmic when its values span 8× or
more), else its first axis as categories; the other axes make one series each (a coloured line, or a
dodged column of points on a categorical axis), with one legend for the figure. In a panel each trial (one
seed) is a small point, the mean over seeds a diamond (joined by a line on a numeric axis), the whisker the
95% Student-t interval of that mean, mean ± t(0.975, n−1)·s/√n as the table's ±, clipped to the metric's
range (``raysid.reporting.scales``: [0, 1] for rates). y labels say which way is better; the caption says
what the whiskers are and over how many seeds. The best cell of the layout's ``best`` metric gets a star
only when its paired 95% interval over seeds (``raysid.reporting.paired``) separates it from every other cell.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from raysid.reporting import paired
from raysid.reporting.scales import scale_of
from raysid.reporting.summary import ReportLayout, summarize

LOG_SPAN = 8.0  # a positive numeric axis whose largest / smallest value reaches this is drawn on a log scale
CAPTION_LINE_INCHES = 0.17  # height of one caption line at 8 pt
CHAR_INCHES = 0.075  # width of an average character at 8 pt (tick labels turn upright when they would touch)
BEST_GID, INTERVAL_GID, POINTS_GID, CAPTION_GID = "best", "interval", "trials", "caption"


@dataclass(frozen=True)
class XAxis:
    name: str  # the axis column; "" when the layout has no rows
    numeric: bool
    log: bool
    ticks: tuple  # numeric: the sorted distinct values (floats); categorical: the labels in table order


@dataclass(frozen=True)
class Cell:
    """One table row (a group of the layout's axes) on the figure."""

    group: str  # the summary's row label
    series: str  # the values of the axes other than x ("" when there are none)
    x: float  # a value on a numeric axis, a category index on a categorical one (series dodge included)


def as_number(value: Any) -> float | None:
    """A finite float for numbers and numeric strings ("64"), else None (booleans too)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def choose_x(groups: pl.DataFrame, rows: tuple[str, ...]) -> tuple[XAxis, tuple[str, ...]]:
    """The x axis (first numeric axis, else the first axis) and the axes that make the series."""
    for name in rows:
        numbers = [as_number(v) for v in groups[name].to_list()]
        if numbers and all(n is not None for n in numbers):
            ticks = tuple(sorted(set(numbers)))
            log = ticks[0] > 0 and ticks[-1] / ticks[0] >= LOG_SPAN
            return XAxis(name, True, log, ticks), tuple(r for r in rows if r != name)
    if not rows:
        return XAxis("", False, False, ("all",)), ()
    return XAxis(rows[0], False, False, tuple(dict.fromkeys(str(v) for v in groups[rows[0]].to_list()))), rows[1:]


def cells(groups: pl.DataFrame, x_axis: XAxis, series_axes: tuple[str, ...]) -> list[Cell]:
    """Every non-baseline row's place: its x, dodged by series so that series do not hide one another."""
    records = list(groups.iter_rows(named=True))
    labels = [", ".join(f"{a}={r[a]}" for a in series_axes) for r in records]
    names = list(dict.fromkeys(labels))
    out = []
    for record, series in zip(records, labels):
        offset = names.index(series) - (len(names) - 1) / 2
        if not x_axis.name:
            x = 0.0
        elif x_axis.numeric:
            x = _dodge(as_number(record[x_axis.name]), offset, x_axis)
        else:
            x = x_axis.ticks.index(str(record[x_axis.name])) + offset * 0.7 / len(names)
        out.append(Cell(record["group"], series, x))
    return out


def _dodge(value: float, offset: float, x_axis: XAxis) -> float:
    """Shift a numeric position by ``offset`` × 1.5% of the axis span (in log space on a log axis)."""
    low, high = x_axis.ticks[0], x_axis.ticks[-1]
    if x_axis.log:
        return value * 10 ** (offset * 0.015 * math.log10(high / low))
    return value + offset * 0.015 * ((high - low) or 1.0)


def varying(trials: pl.DataFrame, metrics: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(metrics worth a panel, notes on the others: no finite value, or the same value in every trial)."""
    drawn, notes = [], []
    for metric in metrics:
        values = trials[metric].cast(pl.Float64, strict=False).to_numpy() if metric in trials.columns else np.array([])
        values = values[np.isfinite(values)]
        if values.size == 0:
            notes.append(f"{metric}: no finite value")
        elif values.max() - values.min() <= 1e-12 * max(1.0, abs(values.max())):
            notes.append(f"{metric} = {values[0]:.4g} in every trial")
        else:
            drawn.append(metric)
    return drawn, notes


def caption(summary: pl.DataFrame, layout: ReportLayout, notes: list[str], best_note: str) -> str:
    """What the marks are, the whiskers' interval and its seed count, the baseline, the star, what is left out."""
    groups = summary.filter(~pl.col("is_baseline"))
    seeds = sorted(set(groups["seeds"].to_list())) if groups.height else [0]
    count = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
    parts = [f"Points: one trial each (one seed). Diamonds: the mean over N = {count} seeds per cell. Whiskers: the "
             "95% Student-t interval of that mean, mean ± t(0.975, N−1)·s/√N, clipped to the metric's range "
             "([0, 1] for rates); none where N = 1."]
    if summary["is_baseline"].any():
        parts.append(f"Dashed: the {layout.baseline} baseline's mean over seeds.")
    if best_note:
        parts.append(best_note)
    if notes:
        parts.append("Not drawn: " + "; ".join(notes) + ".")
    return " ".join(parts)


def summary_figure(trials: pl.DataFrame, layout: ReportLayout) -> Any:
    """The matplotlib Figure of the study (see the module docstring)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    summary = summarize(trials, layout)
    groups = summary.filter(~pl.col("is_baseline"))
    drawn, notes = varying(trials, layout.columns)
    x_axis, series_axes = choose_x(groups, layout.rows)
    placed = cells(groups, x_axis, series_axes)
    best, best_note = paired.separated_best(trials, layout) if layout.best in drawn else (None, "")
    columns = 2 if len(drawn) == 4 else min(3, max(1, len(drawn)))  # 2 × 2 rather than 3 + 1
    rows = math.ceil(max(1, len(drawn)) / columns)
    width = 4.8 * columns  # the panels'; the legend's is added on the right
    starred = [f"★ best ({best}): paired interval separates it"] if best else []
    entries = [c.series for c in placed] + ["one trial (one seed)", f"{layout.baseline} (baseline)", *starred]
    legend = max(len(label) for label in entries)  # characters of its widest entry
    text = "\n".join(textwrap.wrap(caption(summary, layout, notes, best_note), int(width * 15)))
    caption_height = (text.count("\n") + 1) * CAPTION_LINE_INCHES
    fig = Figure(figsize=(width + 0.6 + legend * CHAR_INCHES * 0.85, 3.8 * rows + caption_height + 0.9),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    labels = paired.row_labels(trials, layout.rows).to_list()
    for ax, metric in zip(axes, drawn):
        panel(ax, trials[metric] if metric in trials.columns else None, labels, summary, metric, x_axis, placed,
              best if metric == layout.best else None)
    if not drawn:
        axes[0].text(0.5, 0.5, "no metric varies across the trials", ha="center", va="center", transform=axes[0].transAxes)
    for ax in axes[len(drawn):]:
        ax.set_axis_off()
    _legend(fig, axes[: len(drawn)])
    title = layout.title or f"Ablation over {', '.join(layout.rows) or 'all trials'}"
    fig.suptitle("\n".join(textwrap.wrap(title, int(width / 0.11))), x=0.01, ha="left")  # over the panels, clear of the legend
    fig.supxlabel(text, fontsize=8, x=0.01, ha="left", multialignment="left", gid=CAPTION_GID)  # laid out below the panels
    return fig


def panel(ax: Any, column: pl.Series | None, labels: list[str], summary: pl.DataFrame, metric: str, x_axis: XAxis,
          placed: list[Cell], best: str | None) -> None:
    """One metric: each series' trials, means and clipped intervals; the baseline; the star; labelled axes."""
    scale = scale_of(metric)
    values = column.cast(pl.Float64, strict=False).to_list() if column is not None else [None] * len(labels)
    stats = {r["group"]: r for r in summary.iter_rows(named=True)}
    names = list(dict.fromkeys(c.series for c in placed))
    for index, series in enumerate(names):
        members = sorted((c for c in placed if c.series == series), key=lambda c: c.x)
        _series(ax, members, values, labels, stats, metric, x_axis, f"C{index % 10}", series or "mean over seeds",
                0.18 / len(names))
    baseline = summary.filter(pl.col("is_baseline"))
    if baseline.height and baseline[f"{metric}/mean"][0] is not None:
        ax.axhline(baseline[f"{metric}/mean"][0], color="0.35", linestyle="--", linewidth=1, label=baseline["group"][0])
    if best is not None:
        cell = next(c for c in placed if c.group == best)
        ax.plot([cell.x], [stats[best][f"{metric}/mean"]], marker="*", markersize=17, color="gold",
                markeredgecolor="black", linestyle="none", zorder=6, gid=BEST_GID,
                label=f"★ best ({best}): paired interval separates it")
    _axes(ax, metric, x_axis, scale)


def _series(ax: Any, members: list[Cell], values: list, labels: list[str], stats: dict, metric: str, x_axis: XAxis,
            color: str, label: str, spread: float) -> None:
    """Trial points (spread a little around the cell), the means, and the whiskers where n ≥ 2."""
    scale = scale_of(metric)
    xs, means, whiskers = [], [], []
    for cell in members:
        own = [v for v, g in zip(values, labels) if g == cell.group and v is not None and math.isfinite(v)]
        offsets = np.linspace(-1, 1, len(own)) * (0 if len(own) < 2 else _spread(cell.x, x_axis, spread))
        ax.scatter(np.asarray(cell.x) + offsets, own, s=12, color=color, alpha=0.5, edgecolors="none", zorder=3,
                   gid=POINTS_GID, label="one trial (one seed)")
        mean, half = stats[cell.group][f"{metric}/mean"], stats[cell.group][f"{metric}/ci95"]
        if mean is None:
            continue
        xs.append(cell.x)
        means.append(mean)
        if half is not None:
            whiskers.append((cell.x, mean, min(mean, scale.clip(mean - half)), max(mean, scale.clip(mean + half))))
    ax.plot(xs, means, marker="D", markersize=5, color=color, linestyle="-" if x_axis.numeric else "none", zorder=4,
            label=label)
    if whiskers:
        x, mean, low, high = (np.array(v) for v in zip(*whiskers))
        ax.errorbar(x, mean, yerr=[mean - low, high - mean], fmt="none", ecolor=color, capsize=3, linewidth=1.2,
                    zorder=4, gid=INTERVAL_GID)


def _spread(x: float, x_axis: XAxis, share: float) -> float:
    """Half-width of a cell's cloud of trial points: ``share`` of a category, or of 1% of a numeric span."""
    if not x_axis.numeric:
        return share
    if x_axis.log:
        return x * (10 ** (0.006 * math.log10(x_axis.ticks[-1] / x_axis.ticks[0])) - 1)
    return 0.006 * ((x_axis.ticks[-1] - x_axis.ticks[0]) or 1.0)


def _axes(ax: Any, metric: str, x_axis: XAxis, scale: Any) -> None:
    """y label with its direction and limits within the metric's range; x ticks at the axis values."""
    from matplotlib.ticker import NullLocator

    ax.set_ylabel(metric + (f"\n({scale.better})" if scale.better else ""), fontsize=9)
    low, high = ax.get_ylim()
    margin = 0.04 * (high - low)
    data = ax.dataLim  # a value outside the range the name implies stays in view
    ax.set_ylim(max(low, min(scale.low - margin, data.y0)), min(high, max(scale.high + margin, data.y1)))
    ax.grid(axis="y", alpha=0.3)
    if x_axis.numeric:
        if x_axis.log:
            ax.set_xscale("log")
        ax.set_xticks(list(x_axis.ticks), [f"{v:g}" for v in x_axis.ticks], fontsize=8)
        ax.xaxis.set_minor_locator(NullLocator())
    else:
        spacing = ax.get_position().width * ax.figure.get_figwidth() / len(x_axis.ticks)  # inches per category
        crowded = max(len(t) for t in x_axis.ticks) * CHAR_INCHES > 0.9 * spacing
        ax.set_xticks(range(len(x_axis.ticks)), x_axis.ticks, fontsize=8, rotation=90 if crowded else 0)
        ax.set_xlim(-0.6, len(x_axis.ticks) - 0.4)
    ax.set_xlabel(x_axis.name + (" (log scale)" if x_axis.log else ""), fontsize=9)


def _legend(fig: Any, axes: Any) -> None:
    """One legend for the figure above the panels: each label once."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside right upper",
                   fontsize=8, frameon=False)


def save_figure(fig: Any, png: str | Path) -> dict[str, Path]:
    """Write the figure as PNG (``png``) and SVG beside it; {"plot": png, "plot_svg": svg}. The SVG has no date
    and a fixed id salt, so the same figure gives the same bytes (a re-rendered report changes only what changed)."""
    import matplotlib

    png = Path(png)
    svg = png.with_suffix(".svg")
    fig.savefig(png, dpi=110)
    with matplotlib.rc_context({"svg.hashsalt": "raysid"}):
        fig.savefig(svg, metadata={"Date": None})
    return {"plot": png, "plot_svg": svg}
