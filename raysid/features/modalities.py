"""Per-modality item matrices for the tokenizers: the chosen modalities, z-scored on training items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raysid.config import ConfigError, require
from raysid.data.dataset import Dataset

STD_FLOOR = 1e-6  # a constant column is divided by this instead of 0


@dataclass(frozen=True)
class FeatureConfig:
    """Which modality matrices the tokenizer sees, and whether they are standardised."""

    modalities: tuple[str, ...] = ()  # names in the wanted order; empty = all of the dataset's, in its order
    standardize: bool = True  # z-score each column with mean/std of the training items

    def __post_init__(self) -> None:
        for name in self.modalities:
            require(isinstance(name, str), "features.modalities", f"expected modality names, got {name!r}")
            require(self.modalities.count(name) == 1, "features.modalities", f"{name!r} is listed more than once")


def build_features(dataset: Dataset, cfg: FeatureConfig, train_items: np.ndarray) -> dict[str, np.ndarray]:
    """Modality name -> float32 (num_items, dim) matrix, z-scored with statistics of ``train_items`` only."""
    names = select_modalities(dataset, cfg)
    train_items = np.asarray(train_items, dtype=np.int64)
    if cfg.standardize and not len(train_items):
        raise ValueError("build_features: train_items is empty, no statistics to standardise with")
    return {name: _prepare(dataset.modalities[name], train_items, cfg.standardize) for name in names}


def select_modalities(dataset: Dataset, cfg: FeatureConfig) -> tuple[str, ...]:
    """The configured modality names, checked against the dataset's (all of them when none are configured)."""
    available = tuple(dataset.modalities)
    for name in cfg.modalities:
        if name not in dataset.modalities:
            raise ConfigError(
                f"features.modalities: unknown modality {name!r} for dataset {dataset.name!r}; "
                f"available modalities are: {', '.join(map(repr, available))}"
            )
    return cfg.modalities or available


def _prepare(matrix: np.ndarray, train_items: np.ndarray, standardize: bool) -> np.ndarray:
    """(items, dim) -> float32 (items, dim), optionally z-scored on the rows ``train_items``."""
    if not standardize:
        return np.array(matrix, dtype=np.float32)
    train = matrix[train_items].astype(np.float64)  # (train_items, dim)
    mean = train.mean(axis=0)  # (dim,)
    std = np.maximum(train.std(axis=0), STD_FLOOR)  # (dim,)
    out = np.array(matrix, dtype=np.float32)  # a float32 copy, normalised in place
    out -= mean.astype(np.float32)
    out /= std.astype(np.float32)
    return out
