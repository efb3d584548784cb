"""The summary figure, checked through its matplotlib objects on committed results: panels, labels, caption,
clipped whiskers, trial points, numeric axes, the star only when a paired interval separates, no overlapping text."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import ErrorbarContainer
from scipy import stats

from raysid.reporting.plots import BEST_GID, CAPTION_GID, summary_figure
from raysid.reporting.report import write_report
from raysid.reporting.summary import ReportLayout

RESULTS = Path(__file__).resolve().parents[1] / "results"
LATENT = ReportLayout(rows=("tokenizer.latent_dim",), best="retrieval/hit@10", baseline=None, title="d_z",
                      metrics=("recon/mse", "recon/cosine", "retrieval/precision@10", "retrieval/hit@10",
                               "sid/conflict_rate", "sid/cur"))
ABLATION = ReportLayout(rows=("variant",), best="test/ndcg@10", title="ablation",
                        metrics=("test/hr@5", "test/hr@10", "test/ndcg@5", "test/ndcg@10", "sid/conflict_rate"))


def committed(name: str) -> pl.DataFrame:
    return pl.read_parquet(RESULTS / name / "trials.parquet")


def panels(fig) -> dict[str, object]:
    """{metric: axes} of the drawn panels (the first line of each y label)."""
    return {ax.get_ylabel().split("\n")[0]: ax for ax in fig.axes if ax.axison}


def caption_of(fig) -> str:
    found = [t for t in fig.findobj(lambda a: a.get_gid() == CAPTION_GID)]
    assert len(found) == 1
    return found[0].get_text().replace("\n", " ")


def whiskers(ax) -> list[tuple[float, float, float]]:
    """(x, low end, high end) of every whisker drawn in a panel."""
    out = []
    for container in ax.containers:
        if isinstance(container, ErrorbarContainer):
            for segment in container.lines[2][0].get_segments():
                out.append((segment[0][0], min(segment[:, 1]), max(segment[:, 1])))
    return sorted(out)


def t_interval(values: np.ndarray) -> tuple[float, float]:
    """95% Student-t interval of the mean, by hand with scipy's t quantile."""
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return values.mean() - half, values.mean() + half


def test_panels_labels_caption_and_numeric_log_axis_on_the_latent_dim_sweep():
    fig = summary_figure(committed("3mtoken-latent-dim"), LATENT)
    drawn = panels(fig)
    assert list(drawn) == ["recon/mse", "recon/cosine", "retrieval/precision@10", "retrieval/hit@10", "sid/cur"]
    assert drawn["recon/mse"].get_ylabel() == "recon/mse\n(lower is better)"
    assert drawn["retrieval/hit@10"].get_ylabel() == "retrieval/hit@10\n(higher is better)"
    assert drawn["sid/cur"].get_ylabel() == "sid/cur\n(lower is better)"
    ax = drawn["recon/mse"]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "tokenizer.latent_dim (log scale)"
    assert list(ax.get_xticks()) == [8, 16, 32, 64, 128, 256]  # positions are the values, not categories
    text = caption_of(fig)
    assert "95% Student-t interval of that mean" in text and "N = 2 seeds" in text
    assert "Not drawn: sid/conflict_rate = 0 in every trial" in text  # no flat panel of zeros


def test_whiskers_are_the_t_interval_clipped_to_the_metric_range_and_points_are_the_trials():
    trials = committed("3mtoken-latent-dim")
    ax = panels(summary_figure(trials, LATENT))["retrieval/hit@10"]
    ends = whiskers(ax)
    assert len(ends) == 6
    clipped = 0
    for (x, low, high), latent in zip(ends, [8, 16, 32, 64, 128, 256]):
        values = trials.filter(pl.col("tokenizer.latent_dim") == latent)["retrieval/hit@10"].to_numpy()
        expected_low, expected_high = t_interval(values)
        assert x == pytest.approx(latent)
        assert low == pytest.approx(max(0.0, expected_low)) and high == pytest.approx(min(1.0, expected_high))
        clipped += expected_high > 1.0
    assert clipped >= 1 and all(0.0 <= low and high <= 1.0 for _, low, high in ends)  # a rate never leaves [0, 1]
    points = sorted(y for c in ax.collections if isinstance(c, PathCollection) for _, y in c.get_offsets())
    assert points == pytest.approx(sorted(trials["retrieval/hit@10"].to_list()))  # every trial, one point each
    assert ax.get_ylim()[1] <= 1.0 + 0.05 * (ax.get_ylim()[1] - ax.get_ylim()[0])


def not_separated(trials: pl.DataFrame, best: str, metric: str) -> list[str]:
    """The independent verdict: the variants whose scipy paired t-test interval of best − variant includes 0."""
    def values(variant):
        return trials.filter(pl.col("variant") == variant).sort("seed")[metric].to_numpy()
    others = sorted(v for v in trials["variant"].unique().to_list() if v != best)
    return [o for o in others if not stats.ttest_rel(values(best), values(o)).confidence_interval(0.95).low > 0]


@pytest.mark.parametrize("starred", [False, True])
def test_the_best_cell_is_starred_only_when_its_paired_interval_separates_it(starred):
    """On the committed ablation w/o MMA has the best mean but does not separate from every variant; without the
    variants it does not separate from (found by scipy), it is starred."""
    trials = committed("musicrec-ablation")
    unseparated = not_separated(trials, "w/o MMA", "test/ndcg@10")
    assert unseparated  # the case the test needs: the best mean is not separated from some variant
    if starred:
        trials = trials.filter(~pl.col("variant").is_in(unseparated))
    assert (not_separated(trials, "w/o MMA", "test/ndcg@10") == []) == starred  # the oracle agrees with the case
    fig = summary_figure(trials, ABLATION)
    stars = fig.findobj(lambda a: a.get_gid() == BEST_GID)
    assert len(stars) == (1 if starred else 0)
    text = caption_of(fig)
    if starred:
        ax = panels(fig)["test/ndcg@10"]
        assert stars[0].axes is ax
        mean = trials.filter(pl.col("variant") == "w/o MMA")["test/ndcg@10"].mean()
        assert stars[0].get_ydata()[0] == pytest.approx(mean)
        assert "★ w/o MMA: the paired 95% interval" in text
    else:
        assert "No star: the best mean of test/ndcg@10 (w/o MMA) is not separated from " in text
        assert any(f"not separated from {variant}" in text for variant in unseparated), text
    assert "Dashed: the popularity baseline" in text


def drawn_tick_labels(axis) -> list:
    """The tick labels matplotlib draws: those of ticks within the view limits."""
    low, high = sorted(axis.get_view_interval())
    return [tick.label1 for tick in axis.get_major_ticks() if low <= tick.get_loc() <= high]


def text_boxes(fig) -> list[tuple[str, object]]:
    """(name, window extent) of every visible piece of text: tick labels, axis labels, titles, legend, caption."""
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    boxes = []
    for index, ax in enumerate(a for a in fig.axes if a.axison):
        for label in [*drawn_tick_labels(ax.xaxis), *drawn_tick_labels(ax.yaxis), ax.xaxis.label, ax.yaxis.label]:
            if label.get_visible() and label.get_text():
                boxes.append((f"panel {index}: {label.get_text()}", label.get_window_extent(renderer)))
    boxes += [(f"legend {i}", legend.get_window_extent(renderer)) for i, legend in enumerate(fig.legends)]
    boxes += [(t.get_text()[:20], t.get_window_extent(renderer)) for t in (fig._suptitle, fig._supxlabel) if t]
    return boxes


def assert_no_overlap(fig) -> None:
    boxes = text_boxes(fig)
    overlapping = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
                   if box_a.overlaps(box_b) and box_a.width > 0 and box_b.width > 0]
    assert not overlapping, overlapping[:5]


def alpha_beta_trials() -> pl.DataFrame:
    """MusicRec Fig. 3's 4 × 4 grid of α and β, two seeds; values from a fixed generator."""
    rng = np.random.default_rng(0)
    rows = [{"tokenizer.alpha": a, "tokenizer.beta": b, "seed": s, "test/ndcg@10": rng.uniform(0.02, 0.1),
             "test/hr@10": rng.uniform(0.05, 0.2), "popularity/test/ndcg@10": 0.03}
            for a, b, s in itertools.product([1e-1, 1e-2, 2e-2, 1e-3], [1e-2, 1e-3, 1e-4, 1e-5], [0, 1])]
    return pl.DataFrame(rows)


def test_a_two_axis_study_draws_one_line_per_value_of_the_second_axis_without_overlapping_text():
    layout = ReportLayout(rows=("tokenizer.alpha", "tokenizer.beta"), metrics=("test/hr@10", "test/ndcg@10"),
                          best="test/ndcg@10", title="MusicRec alpha x beta")
    fig = summary_figure(alpha_beta_trials(), layout)
    ax = panels(fig)["test/ndcg@10"]
    assert ax.get_xscale() == "log" and list(ax.get_xticks()) == [1e-3, 1e-2, 2e-2, 1e-1]
    series = [line for line in ax.get_lines() if line.get_label().startswith("tokenizer.beta=")]
    assert sorted(line.get_label() for line in series) == [f"tokenizer.beta={b}" for b in (0.0001, 0.001, 0.01, 1e-05)]
    assert all(len(line.get_xdata()) == 4 and line.get_linestyle() == "-" for line in series)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "tokenizer.beta=0.01" in legend and "popularity (baseline)" in legend and len(fig.legends) == 1
    assert_no_overlap(fig)


def test_many_categories_and_a_three_axis_grid_keep_their_text_apart():
    assert_no_overlap(summary_figure(committed("musicrec-ablation"), ABLATION))
    rng = np.random.default_rng(1)
    rows = [{"items": i, "k": k, "recommender.hidden_size": h, "seed": 0, "test/auc": rng.uniform(0.5, 0.7)}
            for i, k, h in itertools.product(["id", "v0", "v1"], ["16", "64", "256"], [16, 32, 64])]
    layout = ReportLayout(rows=("items", "k", "recommender.hidden_size"), metrics=("test/auc",), best="test/auc")
    fig = summary_figure(pl.DataFrame(rows), layout)
    ax = panels(fig)["test/auc"]
    assert ax.get_xlabel() == "k (log scale)" and list(ax.get_xticks()) == [16, 64, 256]  # "16" is a number
    assert "no two cells share two seeds" in caption_of(fig)
    assert_no_overlap(fig)


def test_write_report_writes_png_and_svg_of_the_figure(tmp_path):
    paths = write_report(committed("musicrec-ratio"), ABLATION.__class__(
        rows=("ratio",), metrics=("test/ndcg@10", "sid/conflict_rate", "sid/cur"), best="test/ndcg@10"), tmp_path)
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = paths["plot_svg"].read_text()
    assert paths["plot_svg"].name == "summary.svg" and svg.lstrip().startswith("<?xml") and "<svg" in svg
