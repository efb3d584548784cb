"""Most-popular baseline: every user gets the items that occur most often in the training sequences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from raysid.config import require
from raysid.recommenders.base import ItemCatalog, RecommenderCapabilities, RecommenderInputs, validate_histories


@dataclass(frozen=True)
class PopularityConfig:
    """The popularity baseline has no hyperparameters; config section ``recommender`` with ``kind: popularity``."""

    tiny: ClassVar[dict[str, Any]] = {}  # nothing to shrink

    def capabilities(self) -> RecommenderCapabilities:
        """Counts item ids: no identifiers, no training loop, no seed, no parameters."""
        return RecommenderCapabilities(reads_semantic_ids=False, epoch_ranking=False, reports_epochs=False,
                                       seeded=False, trains_on_ray=False, parameter_parts=())


class PopularityRecommender:
    """Ranks the catalogue by training occurrence count, ties broken by the lower item id."""

    name = "popularity"

    def __init__(self, num_items: int | None = None) -> None:
        """``num_items`` fixes the catalogue size; by default it is the largest training item id + 1."""
        require(num_items is None or num_items > 0, "num_items", f"must be positive, got {num_items}")
        self.num_items = num_items
        self.counts: np.ndarray | None = None  # (num_items,) int64 occurrences in training

    @classmethod
    def from_catalog(cls, config: PopularityConfig, catalog: ItemCatalog) -> PopularityRecommender:
        """Ranks the catalogue's ``num_items`` items."""
        return cls(catalog.num_items)

    def fit(self, inputs: RecommenderInputs) -> PopularityRecommender:
        """Count item occurrences in ``inputs.sequences``; nothing else of the inputs is used."""
        sequences = [np.asarray(s, dtype=np.int64) for s in inputs.sequences if len(s)]
        if not sequences:
            raise ValueError("PopularityRecommender needs at least one non-empty training sequence")
        flat = np.concatenate(sequences)
        if flat.min() < 0:
            raise ValueError(f"training sequences hold the negative item id {int(flat.min())}")
        if self.num_items is None:
            self.num_items = int(flat.max()) + 1
        validate_histories(sequences, self.num_items)
        self.counts = np.bincount(flat, minlength=self.num_items).astype(np.int64)
        self.ranking = np.argsort(-self.counts, kind="stable").astype(np.int64)  # (num_items,) best first
        return self

    def parameter_counts(self) -> dict[str, int]:
        """{}: counts are statistics, not trained parameters."""
        return {}

    def recommend(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        """(users, k) int64: the same top-k for every user; -1 beyond the catalogue."""
        if self.counts is None:
            raise RuntimeError("PopularityRecommender.recommend called before fit")
        require(k > 0, "k", f"must be positive, got {k}")
        validate_histories(histories, self.num_items)
        top = np.full(k, -1, dtype=np.int64)
        top[: min(k, self.num_items)] = self.ranking[:k]
        return np.tile(top, (len(histories), 1))
