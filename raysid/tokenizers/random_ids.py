"""Random identifiers ('v0' of Semantic IDs for Music Recommendation): codes of the trained IDs' shape, no content.

Every item gets uniformly random codes, one per position, drawn from a generator seeded with ``seed`` that
fills the (items, positions) table row by row: item i's codes depend only on the seed and on i, never on the
features, and encoding the first n items gives the first n rows of encoding them all. The tokenizer needs no
features (the pipeline builds none for it): fit records the catalogue size, and decode reconstructs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from raysid.config import require
from raysid.tokenizers.base import TokenizerCapabilities, TokenizerInputs, check_fit_inputs, read_meta, write_meta
from raysid.tokenizers.kmeans import check_codes, check_modality_names, feature_rows


@dataclass(frozen=True)
class RandomConfig:
    """Shape and seed of the random identifiers; the default matches n=4 codes of k=256."""

    codebook_sizes: tuple[int, ...] = (256, 256, 256, 256)  # k per position; n = len(codebook_sizes)
    modalities: tuple[str, ...] = ()  # unused: random identifiers read no features (kept so studies parse)
    seed: int = 0  # the codes' generator

    tiny: ClassVar[dict[str, Any]] = {"codebook_sizes": [8, 8, 8]}  # a fit of seconds on a tiny catalog (contract tests)

    def __post_init__(self) -> None:
        object.__setattr__(self, "codebook_sizes", tuple(self.codebook_sizes))
        object.__setattr__(self, "modalities", tuple(self.modalities))
        where = "tokenizer"
        sizes = self.codebook_sizes
        require(len(sizes) >= 1, f"{where}.codebook_sizes", "need at least one position")
        require(all(size >= 1 for size in sizes), f"{where}.codebook_sizes", f"sizes must be >= 1, got {sizes}")
        check_modality_names(self.modalities, f"{where}.modalities")

    def capabilities(self) -> TokenizerCapabilities:
        """No features, no content: codes of the seed and the item id only, nothing to reconstruct or quantize."""
        return TokenizerCapabilities(needs_features=False, reconstructs_inputs=False, quantizer=False)


class RandomTokenizer:
    """Seeded uniformly random identifiers; positions ("r1", …, "rn")."""

    def __init__(self, config: RandomConfig):
        self.config = config
        self.num_items = 0  # set at fit

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return self.config.codebook_sizes

    @property
    def position_names(self) -> tuple[str, ...]:
        return tuple(f"r{position}" for position in range(1, len(self.codebook_sizes) + 1))

    def fit(self, inputs: TokenizerInputs) -> RandomTokenizer:
        """Record the catalogue size; nothing is learned."""
        self.num_items = check_fit_inputs(inputs, needs_features=False)
        return self

    def encode(self, features: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Codes of every item: (items, positions) int64, a function of the seed and the item id only.

        Without features, the catalogue of fit; with them, one row per feature row."""
        self._check_fitted()
        num_items = self.num_items if features is None else feature_rows(features)
        rng = np.random.default_rng(self.config.seed)
        sizes = np.asarray(self.codebook_sizes, dtype=np.int64)
        return rng.integers(0, sizes, size=(num_items, len(sizes)), dtype=np.int64)

    def decode(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        """``{}``: random codes carry no content to reconstruct."""
        self._check_fitted()
        check_codes(codes, self.codebook_sizes)
        return {}

    def _check_fitted(self) -> None:
        if not self.num_items:
            raise RuntimeError("RandomTokenizer: call fit or load first")

    def save(self, folder: Path) -> None:
        """Write ``tokenizer.json`` (config, catalogue size)."""
        self._check_fitted()
        write_meta(folder, self.config, num_items=self.num_items)

    @classmethod
    def load(cls, folder: Path) -> RandomTokenizer:
        """Rebuild a tokenizer written by ``save``."""
        config, meta = read_meta(folder, RandomConfig)
        tokenizer = cls(config)
        tokenizer.num_items = int(meta["num_items"])
        return tokenizer
