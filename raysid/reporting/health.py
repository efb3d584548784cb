"""Tokenizer health against accuracy: which semantic-ID quality measure predicts the study metric.

Across a study's trials (every grid point and seed: one pair of values per trial) each quality measure the
trials emit is rank-correlated with the study metric (the layout's ``best``): FusID's CUR, cardinality and
conflict rate, the normalised usage entropy of each code position, 3MToken's reconstruction MSE and cosine
and its retrieval precision/recall/hit@10. The statistic is Spearman's ρ (``scipy.stats.spearmanr``, ties
given their average rank); its 95% interval comes from Fisher's z transform, tanh(atanh ρ ± 1.96·σ) with
σ = √(1.06 / (n − 3)), the standard error Fieller, Hartley & Pearson (1957) give for Spearman's ρ: no
resampling, so no seed. A measure found in fewer than 4 trials (n − 3 > 0), or constant over the trials (or
a constant metric), has no ρ and is named instead. Rows go strongest |ρ| first; a scatter plot shows each measure
against the metric, a colour per table row.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from raysid.reporting.scales import scale_of

MEASURES = (  # full-match patterns, in the order the report lists ties
    r"sid/cur", r"sid/conflict_rate", r"sid/cardinality", r"sid/entropy_norm/.+",
    r"recon/mse", r"recon/cosine", r"retrieval/(precision|recall|hit)@10",
)
Z975 = 1.959963984540054  # the standard normal's 0.975 quantile
FIELLER_VARIANCE = 1.06  # n·Var(atanh ρ_Spearman) ≈ 1.06 / (1 − 3/n) (Fieller, Hartley & Pearson 1957)
MIN_TRIALS = 4  # n − 3 > 0


@dataclass(frozen=True)
class Correlation:
    """Spearman's ρ of one quality measure against the metric over ``trials`` trials, with its 95% interval."""

    measure: str
    rho: float | None  # None: the measure or the metric is constant over the trials, or too few trials
    low: float | None  # None when rho is None
    high: float | None
    trials: int  # trials where both values are finite
    note: str = ""  # why there is no ρ

    @property
    def separates(self) -> bool:
        """The interval excludes 0."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def quality_measures(columns: list[str], target: str) -> list[str]:
    """The quality measures among the trial columns, in ``MEASURES`` order, the target left out."""
    return [c for pattern in MEASURES for c in columns if re.fullmatch(pattern, c) and c != target]


def spearman(measure: str, x: np.ndarray, y: np.ndarray) -> Correlation:
    """ρ of x against y over their common finite values, with the Fisher-z interval."""
    from scipy.stats import spearmanr

    keep = np.isfinite(x) & np.isfinite(y)
    x, y, n = x[keep], y[keep], int(keep.sum())
    if n < MIN_TRIALS:  # a ρ of 3 pairs is ±1 or ±0.5 by construction: not shown
        return Correlation(measure, None, None, None, n, f"in only {n} trial{'s' if n != 1 else ''}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        note = f"{x[0]:.4g} in every trial" if np.ptp(x) == 0 else f"the metric is {y[0]:.4g} in every trial"
        return Correlation(measure, None, None, None, n, note)
    rho = float(spearmanr(x, y).statistic)
    z, sigma = math.atanh(max(-1.0, min(1.0, rho)) * (1 - 1e-12)), math.sqrt(FIELLER_VARIANCE / (n - 3))
    return Correlation(measure, rho, math.tanh(z - Z975 * sigma), math.tanh(z + Z975 * sigma), n)


def correlations(trials: pl.DataFrame, target: str) -> list[Correlation]:
    """One Correlation per quality measure in the trials: those with ρ by |ρ| (strongest first), then the rest."""
    if target not in trials.columns:
        return []
    y = trials[target].cast(pl.Float64, strict=False).fill_null(float("nan")).to_numpy()
    found = [spearman(m, trials[m].cast(pl.Float64, strict=False).fill_null(float("nan")).to_numpy(), y)
             for m in quality_measures(trials.columns, target)]
    ranked = sorted((c for c in found if c.rho is not None), key=lambda c: -abs(c.rho))
    return ranked + [c for c in found if c.rho is None]


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}".replace("-", "−")


def interval_text(c: Correlation) -> str:
    return "—" if c.low is None else f"[{_number(c.low)}, {_number(c.high)}]"


def render_health(found: list[Correlation], target: str, plot_name: str | None) -> list[str]:
    """The markdown section: what is computed and how, one row per measure with ρ, the measures without."""
    if not found:
        return []
    n = max(c.trials for c in found)
    if n < MIN_TRIALS:
        return [f"## Tokenizer health against `{target}`", "",
                f"Not computed: a rank correlation with an interval needs at least {MIN_TRIALS} trials; this study has {n}.", ""]
    lines = [f"## Tokenizer health against `{target}`", "",
             f"Spearman's rank correlation ρ over the {n} trials (every grid point and seed) between each semantic-ID "
             f"quality measure and `{target}`; the 95% interval is Fisher's z, tanh(atanh ρ ± 1.96·√(1.06/(n−3))) "
             "(Fieller, Hartley & Pearson 1957). An interval that excludes 0 (✓) says the measure's rank predicts "
             f"the metric's across these trials; seeds and grid points are pooled, so read it as association, not cause."
             + (f" Scatter plots: `{plot_name}`." if plot_name else ""), ""]
    rows = [c for c in found if c.rho is not None]
    if rows:
        lines += ["| quality measure | better | Spearman ρ | 95% interval | trials | excludes 0 |",
                  "|---|---|---:|---|---:|---|"]
        for c in rows:
            better = (scale_of(c.measure).better or "").split(" ")[0] or "—"
            lines.append(f"| `{c.measure}` | {better} | {_number(c.rho)} | {interval_text(c)} | {c.trials} | "
                         f"{'✓' if c.separates else ''} |")
        lines.append("")
    rest = [c for c in found if c.rho is None]
    if rest:
        lines += ["No correlation for: " + "; ".join(f"`{c.measure}` ({c.note})" for c in rest) + ".", ""]
    return lines


def health_figure(trials: pl.DataFrame, found: list[Correlation], target: str, labels: list[str]) -> Any:
    """One scatter panel per measure with ρ: the measure against the metric, a colour per table row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    shown = [c for c in found if c.rho is not None]
    columns = min(4, len(shown))
    rows = math.ceil(len(shown) / columns)
    fig = Figure(figsize=(3.6 * columns + 1.6, 3.2 * rows + 0.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    y = trials[target].cast(pl.Float64, strict=False).to_numpy()
    groups = list(dict.fromkeys(labels))
    for ax, c in zip(axes, shown):
        x = trials[c.measure].cast(pl.Float64, strict=False).to_numpy()
        for index, group in enumerate(groups):
            own = np.array([label == group for label in labels])
            ax.scatter(x[own], y[own], s=16, color=f"C{index % 10}", alpha=0.8, label=group)
        ax.set_title(f"ρ = {_number(c.rho)} {interval_text(c)}, n = {c.trials}", fontsize=9)
        ax.set_xlabel(c.measure + (f" ({scale_of(c.measure).better})" if scale_of(c.measure).better else ""), fontsize=8)
        ax.set_ylabel(target, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(4))  # long tick labels (0.00025) stay apart
    for ax in axes[len(shown):]:
        ax.set_axis_off()
    if len(groups) > 1:
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside right upper", fontsize=7, frameon=False)
    fig.suptitle(f"Tokenizer health against {target}: Spearman ρ with its 95% Fisher-z interval", fontsize=10)
    return fig


def write_health(trials: pl.DataFrame, target: str, labels: list[str], out_dir: Path) -> tuple[list[str], dict[str, Path]]:
    """The markdown section and, when some measure has ρ, ``health.png``/``health.svg`` in out_dir."""
    from raysid.reporting.plots import save_figure

    found = correlations(trials, target)
    paths = {}
    if any(c.rho is not None for c in found):
        saved = save_figure(health_figure(trials, found, target, labels), Path(out_dir) / "health.png")
        paths = {"health_plot": saved["plot"], "health_plot_svg": saved["plot_svg"]}
    return render_health(found, target, "health.png" if paths else None), paths
