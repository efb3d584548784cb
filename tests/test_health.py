"""Tokenizer health against accuracy: Spearman's ρ checked against scipy.stats.spearmanr and against ranks
computed by Polars, the Fisher-z interval by hand, constant measures named, the report's section and scatter plot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from raysid.reporting.paired import row_labels
from raysid.reporting.health import correlations, health_figure, quality_measures
from raysid.reporting.report import write_report
from raysid.reporting.summary import ReportLayout

RESULTS = Path(__file__).resolve().parents[1] / "results"
TARGET = "test/ndcg@10"


@pytest.fixture(scope="module")
def ablation() -> pl.DataFrame:
    return pl.read_parquet(RESULTS / "musicrec-ablation" / "trials.parquet")  # 8 variants x 3 seeds, real trials


def rank_pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ as the Pearson correlation of average ranks, ranked by Polars (an independent path)."""
    keep = np.isfinite(x) & np.isfinite(y)
    ranks = pl.DataFrame({"x": x[keep], "y": y[keep]}).select(pl.all().rank("average"))
    return float(np.corrcoef(ranks["x"].to_numpy(), ranks["y"].to_numpy())[0, 1])


def test_rho_matches_scipy_spearmanr_and_polars_ranks_with_the_fisher_interval_by_hand(ablation):
    found = {c.measure: c for c in correlations(ablation, TARGET)}
    y = ablation[TARGET].to_numpy()
    checked = 0
    for measure, c in found.items():
        if c.rho is None:
            continue
        x = ablation[measure].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        keep = np.isfinite(x) & np.isfinite(y)
        assert c.trials == keep.sum()
        assert c.rho == pytest.approx(stats.spearmanr(x[keep], y[keep]).statistic, abs=1e-12)
        assert c.rho == pytest.approx(rank_pearson(x, y), abs=1e-12)
        sigma = math.sqrt(1.06 / (c.trials - 3))  # Fieller, Hartley & Pearson (1957)
        assert c.low == pytest.approx(math.tanh(math.atanh(c.rho) - 1.959964 * sigma), abs=1e-6)
        assert c.high == pytest.approx(math.tanh(math.atanh(c.rho) + 1.959964 * sigma), abs=1e-6)
        checked += 1
    assert checked >= 10
    assert found["sid/entropy_norm/tags1"].trials == 21  # "w/o tags ids" has no tags levels: its 3 trials left out


def test_measures_found_ordered_by_strength_and_constant_ones_named(ablation):
    found = correlations(ablation, TARGET)
    names = [c.measure for c in found]
    assert set(names) == set(quality_measures(ablation.columns, TARGET))
    assert {"sid/cur", "sid/conflict_rate", "sid/cardinality", "recon/mse", "recon/cosine", "retrieval/hit@10",
            "sid/entropy_norm/s1", "sid/entropy_norm/audio2"} <= set(names)
    strengths = [abs(c.rho) for c in found if c.rho is not None]
    assert strengths == sorted(strengths, reverse=True)
    constant = {c.measure: c.note for c in found if c.rho is None}
    assert set(constant) == {m for m in names if ablation[m].drop_nulls().n_unique() == 1}  # from the committed trials
    assert constant["sid/conflict_rate"] == "0 in every trial" and constant["sid/cardinality"] == "2000 in every trial"
    assert "retrieval/hit@10" not in quality_measures(ablation.columns, "retrieval/hit@10")  # the target itself


def test_report_section_and_scatter_plot(ablation, tmp_path):
    layout = ReportLayout(rows=("variant",), metrics=(TARGET,), best=TARGET)
    paths = write_report(ablation, layout, tmp_path)
    markdown = paths["markdown"].read_text()
    section = markdown[markdown.index(f"## Tokenizer health against `{TARGET}`"):]
    assert "over the 24 trials" in section and "Fisher's z" in section and "`health.png`" in section
    top = correlations(ablation, TARGET)[0]
    sign = "+" if top.rho > 0 else "−"
    assert f"| `{top.measure}` | higher | {sign}{abs(top.rho):.2f} |" in section
    assert "`sid/conflict_rate` (0 in every trial)" in section
    assert paths["health_plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths["health_plot_svg"].exists()
    found = correlations(ablation, TARGET)
    fig = health_figure(ablation, found, TARGET, row_labels(ablation, layout.rows).to_list())
    drawn = [ax for ax in fig.axes if ax.axison]
    assert len(drawn) == sum(c.rho is not None for c in found)
    assert drawn[0].get_title().startswith(f"ρ = {sign}{abs(top.rho):.2f} [")
    assert drawn[0].get_xlabel().startswith(top.measure) and drawn[0].get_ylabel() == TARGET
    points = np.concatenate([c.get_offsets() for c in drawn[0].collections])
    assert len(points) == top.trials


def test_too_few_trials_or_no_measure_gives_no_interval_or_no_section(tmp_path):
    trials = pl.DataFrame({"seed": [0, 1, 2], "r": ["a", "b", "c"], "sid/cur": [0.1, 0.2, 0.3], TARGET: [0.3, 0.1, 0.2]})
    (c,) = correlations(trials, TARGET)
    assert c.rho is None and c.note == "in only 3 trials"  # ρ of 3 pairs is ±1 or ±0.5 by construction
    layout = ReportLayout(rows=("r",), metrics=(TARGET,), best=TARGET, baseline=None)
    assert "needs at least 4 trials; this study has 3" in write_report(trials, layout, tmp_path)["markdown"].read_text()
    assert "Tokenizer health" not in write_report(trials.drop("sid/cur"), layout, tmp_path)["markdown"].read_text()
