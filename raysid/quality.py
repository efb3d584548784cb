"""The semantic-ID quality report: what every trial logs and ``raysid tokenize`` writes.

FusID's codebook measures (CUR, cardinality, conflict rate on all and on test items), per-position usage
entropy, 3MToken's reconstruction MSE/cosine and its content retrieval by hierarchical token matching, with
relevance = test items that share a playlist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import polars as pl

from raysid.metrics.codebook import level_entropy, sid_quality, sid_quality_names, usage_histograms
from raysid.metrics.reconstruction import reconstruction_metric_names, reconstruction_metrics
from raysid.metrics.retrieval import cooccurrence_relevance, retrieval_metric_names, retrieval_metrics
from raysid.tokenizers.base import TokenizerCapabilities


def codebook_report(codes: np.ndarray, sizes: tuple[int, ...], names: tuple[str, ...], test_items: np.ndarray) -> dict[str, float]:
    """CUR, cardinality and conflict rate on all and on test items, plus each position's usage entropy."""
    metrics = {f"sid/{k}": float(v) for k, v in sid_quality(codes, sizes).items()}
    metrics.update({f"sid/test_{k}": float(v) for k, v in sid_quality(codes, sizes, test_items).items()})
    for name, bits, share in zip(names, level_entropy(codes, sizes), level_entropy(codes, sizes, normalised=True)):
        metrics[f"sid/entropy/{name}"] = float(bits)
        metrics[f"sid/entropy_norm/{name}"] = float(share)
    return metrics


def tokenizer_report(
    tokenizer, features: Mapping[str, np.ndarray] | None, codes: np.ndarray, test_items: np.ndarray,
    sequences: list[np.ndarray],
) -> dict[str, float]:
    """Codebook, reconstruction (all items; when the tokenizer reconstructs its input features) and retrieval
    (among test items) metrics of fitted codes."""
    metrics = codebook_report(codes, tuple(tokenizer.codebook_sizes), tuple(tokenizer.position_names), test_items)
    if features and tokenizer.config.capabilities().reconstructs_inputs:
        metrics.update(reconstruction_metrics(dict(features), tokenizer.decode(codes)))
    relevant = cooccurrence_relevance(sequences, test_items)
    blocks = position_blocks(tuple(tokenizer.position_names))
    metrics.update({k: float(v) for k, v in retrieval_metrics(codes, test_items, relevant, blocks=blocks).items()})
    return metrics


def metric_names(capabilities: TokenizerCapabilities, modalities: tuple[str, ...] = ("*",)) -> set[str]:
    """The names ``tokenizer_report`` reports for a tokenizer of these capabilities fitted on ``modalities``
    ("*" stands for a name known only after fitting: a modality, or a code position in the entropies)."""
    names = {f"sid/{prefix}{name}" for prefix in ("", "test_") for name in sid_quality_names()}
    names |= {"sid/entropy/*", "sid/entropy_norm/*"} | retrieval_metric_names()
    return names | (reconstruction_metric_names(modalities) if capabilities.reconstructs_inputs else set())


def position_blocks(names: tuple[str, ...]) -> list[int]:
    """Block of each position: names that differ only in their level digits ("text1", "text2") share one.

    Retrieval sums the hierarchical match of every block (3MToken sums its per-modality matches), so a
    per-modality identifier is not ranked by its first modality alone.
    """
    prefixes = [re.sub(r"\d+$", "", name) for name in names]
    return [sorted(set(prefixes), key=prefixes.index).index(prefix) for prefix in prefixes]


def usage_frame(codes: np.ndarray, sizes: tuple[int, ...], names: tuple[str, ...], train_items, test_items) -> pl.DataFrame:
    """Per position and code: how many train and test items use it (position named, not numbered)."""
    frame = usage_histograms(codes, sizes, train_items, test_items)
    return frame.with_columns(pl.col("position").map_elements(lambda p: names[p], return_dtype=pl.String))


def plot_usage(usage: pl.DataFrame, path: Path) -> Path:
    """One panel per position: share of train vs test items per code, codes sorted by train usage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    positions = usage["position"].unique(maintain_order=True).to_list()
    figure, axes = plt.subplots(len(positions), 1, figsize=(9, 2.2 * len(positions)), squeeze=False)
    for axis, name in zip(axes[:, 0], positions):
        rows = usage.filter(pl.col("position") == name).sort("train_count", descending=True)
        for column, label in (("train_count", "train"), ("test_count", "test")):
            counts = rows[column].to_numpy().astype(float)
            axis.plot(counts / max(counts.sum(), 1.0), label=label, drawstyle="steps-mid")
        axis.set_title(f"position {name}: share of items per code (sorted by train usage)", fontsize=9)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def render_report(metrics: dict[str, float], title: str) -> str:
    """The quality report as a markdown table, grouped by family."""
    lines = [f"# {title}", "", "| metric | value |", "|---|---:|"]
    for key in sorted(metrics):
        value = metrics[key]
        lines.append(f"| `{key}` | {value:.4f} |" if not float(value).is_integer() else f"| `{key}` | {int(value)} |")
    lines += ["", "CUR, conflict rate and entropy shares are fractions (FusID prints percentages); `test_` rows",
              "use only test items; retrieval ranks test items by common code prefix (3MToken's hierarchical",
              "matching), relevant = test items sharing a playlist."]
    return "\n".join(lines) + "\n"
