"""Ranking metrics split by history length, after Semantic IDs for Music Recommendation's lift by user input length.

Buckets are given by their lower bounds, ascending: ``(1, 3, 6, 11)`` means lengths 1-2, 3-5, 6-10 and
11 or more, labelled ``1-2``, ``3-5``, ``6-10``, ``11-inf`` (MLflow metric names allow no ``+``). A history
shorter than the first bound belongs to no bucket. The length is the whole history's, not the part a model
reads. Each bucket gets HR@k and NDCG@k from ``ranking_metrics`` over its users, and its user count.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from raysid.metrics.ranking import ranking_metrics

DEFAULT_BUCKETS = (1, 3, 6, 11)  # history lengths 1-2, 3-5, 6-10, 11+


def validate_buckets(bounds: Sequence[int]) -> tuple[int, ...]:
    """The bounds as a tuple of ints; ValueError unless they are >= 1 and strictly increasing."""
    bounds = tuple(bounds)
    if not bounds or not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) for b in bounds):
        raise ValueError(f"buckets must be a non-empty list of integer lower bounds such as [1, 3, 6, 11], got {bounds}")
    bounds = tuple(int(b) for b in bounds)
    if bounds[0] < 1 or any(b <= a for a, b in itertools.pairwise(bounds)):
        raise ValueError(f"buckets must be lower bounds >= 1 in strictly increasing order, got {list(bounds)}")
    return bounds


def bucket_labels(bounds: Sequence[int]) -> list[str]:
    """``["1-2", "3-5", "6-10", "11-inf"]`` for bounds (1, 3, 6, 11)."""
    bounds = validate_buckets(bounds)
    ends = [f"{b - 1}" for b in bounds[1:]] + ["inf"]
    return [f"{low}-{end}" for low, end in zip(bounds, ends)]


def bucket_of(lengths: np.ndarray, bounds: Sequence[int]) -> np.ndarray:
    """(users,) bucket index of each history length, -1 below the first bound."""
    bounds = validate_buckets(bounds)
    return np.searchsorted(np.asarray(bounds), np.asarray(lengths), side="right") - 1


def bucket_metric_names(ks: Sequence[int] = (5, 10), bounds: Sequence[int] = DEFAULT_BUCKETS) -> set[str]:
    """The keys ``metrics_by_history_length`` returns."""
    labels = bucket_labels(bounds)
    return {f"users/len_{label}" for label in labels} | {
        f"{name}@{k}/len_{label}" for label in labels for k in ks for name in ("hr", "ndcg")}


def metrics_by_history_length(
    ranked: np.ndarray,
    histories: list[np.ndarray],
    targets: np.ndarray,
    ks: Sequence[int] = (5, 10),
    bounds: Sequence[int] = DEFAULT_BUCKETS,
) -> dict[str, float]:
    """``hr@k/len_A-B``, ``ndcg@k/len_A-B`` and ``users/len_A-B`` per bucket; NaN metrics for an empty bucket."""
    ranked, targets = np.asarray(ranked), np.asarray(targets)
    if len(histories) != len(ranked) or len(targets) != len(ranked):
        raise ValueError(
            f"ranked ({len(ranked)} users), histories ({len(histories)}) and targets ({len(targets)}) must align"
        )
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    buckets = bucket_of(lengths, bounds)
    out: dict[str, float] = {}
    for index, label in enumerate(bucket_labels(bounds)):
        members = buckets == index
        out[f"users/len_{label}"] = float(members.sum())
        values = ranking_metrics(ranked[members], targets[members], tuple(ks)) if members.any() else {}
        for k in ks:
            for name in ("hr", "ndcg"):
                out[f"{name}@{k}/len_{label}"] = values.get(f"{name}@{k}", float("nan"))
    return out
