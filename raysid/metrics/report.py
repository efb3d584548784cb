"""One flat report of the beyond-accuracy metrics of any recommender's ranked lists.

``recommendation_report`` takes ranked item ids and the data they were ranked for, never the model, so
every recommender is measured the same way. Keys (k in ``ks``, buckets labelled as in ``metrics.buckets``):

- ``coverage@k``, ``distinct_items@k``, ``repetition@k`` and, when the items frame has an ``artist``
  column, ``distinct_artists@k`` (``metrics.diversity``);
- ``hr@k/len_A-B``, ``ndcg@k/len_A-B``, ``users/len_A-B`` per history-length bucket (``metrics.buckets``);
- ``invalid_rate`` when ``generated`` is given: the share of -1 among the item ids of an unconstrained
  generation (``recommenders.exact.generated_items`` maps identifiers to items, -1 where none matches).

``@`` appears in keys; the MLflow adapter writes it as ``_at_``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from raysid.metrics import diversity
from raysid.metrics.buckets import DEFAULT_BUCKETS, bucket_metric_names, metrics_by_history_length


def recommendation_report(
    ranked: np.ndarray,
    histories: list[np.ndarray],
    targets: np.ndarray,
    items_frame: pl.DataFrame,
    ks: Sequence[int] = (5, 10),
    buckets: Sequence[int] = DEFAULT_BUCKETS,
    generated: np.ndarray | None = None,
) -> dict[str, float]:
    """Coverage, diversity, repetition and history-length-bucket HR/NDCG of (users, n) ``ranked`` as floats."""
    num_items = items_frame.height
    artists = diversity.item_artists(items_frame) if "artist" in items_frame.columns else None
    report: dict[str, float] = {}
    for k in ks:
        report[f"coverage@{k}"] = diversity.coverage(ranked, k, num_items)
        report[f"distinct_items@{k}"] = diversity.distinct_items(ranked, k, num_items)
        if artists is not None:
            report[f"distinct_artists@{k}"] = diversity.distinct_artists(ranked, k, artists)
        report[f"repetition@{k}"] = diversity.repetition(ranked, histories, k, num_items)
    report.update(metrics_by_history_length(ranked, histories, targets, ks, buckets))
    if generated is not None:
        report["invalid_rate"] = invalid_rate(generated)
    return report


def report_metric_names(ks: Sequence[int] = (5, 10), buckets: Sequence[int] = DEFAULT_BUCKETS) -> set[str]:
    """The keys ``recommendation_report`` may return (``distinct_artists`` with an ``artist`` column, no
    ``invalid_rate``: a trial's report has no generation)."""
    names = {f"{name}@{k}" for k in ks for name in ("coverage", "distinct_items", "distinct_artists", "repetition")}
    return names | bucket_metric_names(ks, buckets)


def invalid_rate(items: np.ndarray) -> float:
    """Share of generated identifiers that are not a real item (item id -1) among all of them."""
    items = np.asarray(items)
    if items.size == 0:
        raise ValueError("invalid_rate needs at least one generated item id (-1 = not a real item), got none")
    return float((items < 0).mean())
