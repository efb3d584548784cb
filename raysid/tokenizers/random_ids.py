"""Random identifiers ('v0' of Semantic IDs for Music Recommendation): codes of the trained IDs' shape, no content.

Every item gets uniformly random codes, one per position, drawn from a generator seeded with ``seed`` that
fills the (items, positions) table row by row: item i's codes depend only on the seed and on i, never on the
features, and encoding the first n items gives the first n rows of encoding them all. fit only records the
modalities' shapes; decode carries no information and returns zeros of each modality's shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raysid.config import require
from raysid.tokenizers.base import OnEpoch, check_fit_inputs, read_meta, saved_inputs, write_meta
from raysid.tokenizers.kmeans import (
    check_codes,
    check_modality_names,
    encode_rows,
    select_modalities,
)


@dataclass(frozen=True)
class RandomConfig:
    """Shape and seed of the random identifiers; the default matches n=4 codes of k=256."""

    codebook_sizes: tuple[int, ...] = (256, 256, 256, 256)  # k per position; n = len(codebook_sizes)
    modalities: tuple[str, ...] = ()  # only the shapes of decode's zeros; () = all, in the features' order
    seed: int = 0  # the codes' generator

    def __post_init__(self) -> None:
        object.__setattr__(self, "codebook_sizes", tuple(self.codebook_sizes))
        object.__setattr__(self, "modalities", tuple(self.modalities))
        where = "tokenizer"
        sizes = self.codebook_sizes
        require(len(sizes) >= 1, f"{where}.codebook_sizes", "need at least one position")
        require(all(size >= 1 for size in sizes), f"{where}.codebook_sizes", f"sizes must be >= 1, got {sizes}")
        check_modality_names(self.modalities, f"{where}.modalities")


class RandomTokenizer:
    """Seeded uniformly random identifiers; positions ("r1", …, "rn")."""

    def __init__(self, config: RandomConfig):
        self.config = config
        self.modalities: tuple[str, ...] = ()  # set at fit
        self.input_dims: dict[str, int] = {}

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return self.config.codebook_sizes

    @property
    def position_names(self) -> tuple[str, ...]:
        return tuple(f"r{position}" for position in range(1, len(self.codebook_sizes) + 1))

    def fit(
        self,
        features: dict[str, np.ndarray],
        train_items: np.ndarray,
        collaborative: np.ndarray | None = None,
        on_epoch: OnEpoch | None = None,
    ) -> RandomTokenizer:
        """Record the modalities and their dims; nothing is learned."""
        check_fit_inputs(features, train_items, collaborative)
        self.modalities = select_modalities(features, self.config.modalities)
        self.input_dims = {name: int(features[name].shape[1]) for name in self.modalities}
        return self

    def encode(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Codes of every row: (items, positions) int64, a function of the seed and the row index only."""
        self._check_fitted()
        num_items = encode_rows(features, self.input_dims)
        rng = np.random.default_rng(self.config.seed)
        sizes = np.asarray(self.codebook_sizes, dtype=np.int64)
        return rng.integers(0, sizes, size=(num_items, len(sizes)), dtype=np.int64)

    def decode(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        """Zeros (items, dim_m) float32 for every modality: random codes carry no content to reconstruct."""
        self._check_fitted()
        codes = check_codes(codes, self.codebook_sizes)
        return {name: np.zeros((len(codes), dim), np.float32) for name, dim in self.input_dims.items()}

    def _check_fitted(self) -> None:
        if not self.modalities:
            raise RuntimeError("RandomTokenizer: call fit or load first")

    def save(self, folder: Path) -> None:
        """Write ``tokenizer.json`` (config, modalities, input dims)."""
        self._check_fitted()
        write_meta(folder, self.config, modalities=list(self.modalities), input_dims=self.input_dims)

    @classmethod
    def load(cls, folder: Path) -> RandomTokenizer:
        """Rebuild a tokenizer written by ``save``."""
        config, meta = read_meta(folder, RandomConfig)
        tokenizer = cls(config)
        tokenizer.modalities, tokenizer.input_dims = saved_inputs(meta)
        return tokenizer
