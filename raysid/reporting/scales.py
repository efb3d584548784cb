"""The range and direction of every metric a trial emits, by name.

A metric's kind is the first part of its name (split on ``/``, ``@k`` dropped) that is a known measure:
``test/ndcg@10`` → ``ndcg``, ``recon/audio/mse`` → ``mse``, ``test/hr@5/len_3-5`` → ``hr``,
``sid/entropy_norm/s1`` → ``entropy_norm``. Rates (HR, NDCG, recall, MRR, precision, hit rate, coverage,
AUC, CUR, conflict rate, repetition, normalised entropy) lie in [0, 1]; cosine similarity in [−1, 1];
errors, counts, entropy in bits and seconds are ≥ 0 with no upper bound. An unknown metric has neither a
range nor a direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HIGHER, LOWER = "higher is better", "lower is better"


@dataclass(frozen=True)
class Scale:
    low: float  # -inf when unbounded below
    high: float  # inf when unbounded above
    better: str | None  # HIGHER, LOWER, or None where neither way is better (a parameter count)

    def clip(self, value: float) -> float:
        return min(max(value, self.low), self.high)

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.low) or math.isfinite(self.high)


RATE_UP = Scale(0.0, 1.0, HIGHER)
RATE_DOWN = Scale(0.0, 1.0, LOWER)
POSITIVE_UP = Scale(0.0, math.inf, HIGHER)
POSITIVE_DOWN = Scale(0.0, math.inf, LOWER)
COUNT = Scale(0.0, math.inf, None)
UNKNOWN = Scale(-math.inf, math.inf, None)

KINDS: dict[str, Scale] = {
    **dict.fromkeys(("hr", "ndcg", "recall", "mrr", "precision", "hit", "coverage", "auc", "entropy_norm"), RATE_UP),
    **dict.fromkeys(("cur", "test_cur", "conflict_rate", "test_conflict_rate", "repetition", "invalid_rate"), RATE_DOWN),
    "cosine": Scale(-1.0, 1.0, HIGHER),
    **dict.fromkeys(("mse", "loss", "time"), POSITIVE_DOWN),
    **dict.fromkeys(("cardinality", "test_cardinality", "entropy", "distinct_items", "distinct_artists"), POSITIVE_UP),
    **dict.fromkeys(("parameters", "parameters_item", "num_items", "test_num_items", "queries", "users"), COUNT),
    "cached": Scale(0.0, 1.0, None),
}


def kind_of(metric: str) -> str | None:
    """The known measure a metric name is an instance of, or None."""
    for part in metric.split("/"):
        base = part.split("@")[0]
        if base in KINDS:
            return base
    return None


def scale_of(metric: str) -> Scale:
    """The metric's range and direction (``UNKNOWN`` for a name no rule covers)."""
    kind = kind_of(metric)
    return KINDS[kind] if kind is not None else UNKNOWN


def axis_label(metric: str) -> str:
    """``test/ndcg@10 (higher is better)``; the bare name where neither way is better."""
    better = scale_of(metric).better
    return f"{metric} ({better})" if better else metric
