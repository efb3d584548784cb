"""Semantic-ID quality (FusID, Table 1): codebook underutilisation rate, cardinality, conflict rate.

``codes`` is an (items, positions) integer matrix: one semantic ID per row, one codebook per column
(RQ levels, PQ sub-embeddings, ...). ``codebook_sizes`` gives K per position (an int means the same K
everywhere). All rates are fractions in [0, 1]; FusID prints them as percentages.

Also here: per-position code usage counts and entropy, and train-vs-test usage histograms in the
style of 3MToken's Figure 3 (token usage frequency per quantization level for train and test sets).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl


def _validate(codes: np.ndarray, codebook_sizes: int | Sequence[int] | None = None) -> np.ndarray | None:
    """Check that codes is 2-D and each column lies in [0, K); return K per position as an array."""
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D (items, positions), got shape {codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {codes.dtype}")
    if codebook_sizes is None:
        return None
    positions = codes.shape[1]
    sizes = np.asarray(codebook_sizes, dtype=np.int64)
    if sizes.ndim == 0:  # one K for every position
        sizes = np.full(positions, int(sizes), dtype=np.int64)
    if sizes.shape != (positions,):
        raise ValueError(f"codebook_sizes has {sizes.size} entries but codes has {positions} positions")
    if codes.shape[0] == 0:
        return sizes
    for position in range(positions):
        column = codes[:, position]
        low, high = int(column.min()), int(column.max())
        if low < 0 or high >= sizes[position]:
            raise ValueError(
                f"codes at position {position} must lie in [0, {sizes[position]}), found values in [{low}, {high}]"
            )
    return sizes


def codebook_underutilisation(codes: np.ndarray, codebook_sizes: int | Sequence[int]) -> float:
    """CUR: fraction of all codebook entries (summed over positions) that no item's code uses."""
    codes = np.asarray(codes)
    sizes = _validate(codes, codebook_sizes)
    used = sum(np.unique(codes[:, p]).size for p in range(codes.shape[1]))
    total = int(sizes.sum())
    return 1.0 - used / total if total else 0.0


def cardinality(codes: np.ndarray) -> int:
    """Number of distinct code rows, i.e. how many items the semantic IDs can tell apart."""
    codes = np.asarray(codes)
    _validate(codes)
    if codes.shape[0] == 0:
        return 0
    return int(np.unique(codes, axis=0).shape[0])


def conflict_rate(codes: np.ndarray) -> float:
    """Fraction of items whose code row equals that of at least one other item (NaN for no items)."""
    codes = np.asarray(codes)
    _validate(codes)
    if codes.shape[0] == 0:
        return float("nan")
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    shared = counts[inverse.reshape(-1)] > 1  # (items,)
    return float(shared.mean())


def sid_quality(
    codes: np.ndarray, codebook_sizes: int | Sequence[int], items: np.ndarray | None = None
) -> dict[str, float | int]:
    """CUR, cardinality, conflict rate and item count over ``items`` (row indices; all rows if None).

    As in FusID's "Test" columns, every metric is computed within the subset: an entry used only by
    items outside it counts as unused, and a collision with an item outside it is not a conflict.
    """
    codes = np.asarray(codes)
    _validate(codes, codebook_sizes)
    subset = codes if items is None else codes[np.asarray(items, dtype=np.int64)]
    return {
        "cur": codebook_underutilisation(subset, codebook_sizes),
        "cardinality": cardinality(subset),
        "conflict_rate": conflict_rate(subset),
        "num_items": int(subset.shape[0]),
    }


def sid_quality_names() -> set[str]:
    """The keys ``sid_quality`` returns."""
    return {"cur", "cardinality", "conflict_rate", "num_items"}


def level_usage(codes: np.ndarray, codebook_sizes: int | Sequence[int]) -> list[np.ndarray]:
    """Per position, how many items use each code: one int64 array of length K per position."""
    codes = np.asarray(codes)
    sizes = _validate(codes, codebook_sizes)
    return [np.bincount(codes[:, p], minlength=int(sizes[p])).astype(np.int64) for p in range(codes.shape[1])]


def level_entropy(
    codes: np.ndarray, codebook_sizes: int | Sequence[int], normalised: bool = False
) -> np.ndarray:
    """Per position, Shannon entropy in bits of the items' code distribution; shape (positions,).

    Uniform use of all K codes gives log2(K) bits, every item on one code gives 0. With
    ``normalised=True`` each entropy is divided by log2(K), so 1 means uniform use; a codebook of
    size 1 has no spread to measure and scores 0. With no items every entry is NaN.
    """
    codes = np.asarray(codes)
    sizes = _validate(codes, codebook_sizes)
    if codes.shape[0] == 0:
        return np.full(codes.shape[1], np.nan)
    entropies = np.array([_entropy_bits(counts) for counts in level_usage(codes, sizes)])
    if not normalised:
        return entropies
    maximum = np.log2(sizes.astype(np.float64))  # (positions,)
    return np.divide(entropies, maximum, out=np.zeros_like(entropies), where=maximum > 0)


def normalised_level_entropy(codes: np.ndarray, codebook_sizes: int | Sequence[int]) -> np.ndarray:
    """Per position, entropy / log2(K) in [0, 1]: ``level_entropy(..., normalised=True)``."""
    return level_entropy(codes, codebook_sizes, normalised=True)


def _entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy in bits of the distribution given by non-negative counts (0 log 0 = 0)."""
    probabilities = counts[counts > 0] / counts.sum()
    return float(-(probabilities * np.log2(probabilities)).sum() + 0.0)  # + 0.0 turns -0.0 into 0.0


def usage_histograms(
    codes: np.ndarray,
    codebook_sizes: int | Sequence[int],
    train_items: np.ndarray,
    test_items: np.ndarray,
) -> pl.DataFrame:
    """Code usage of train items and of test items, long format for plotting one panel per position.

    ``train_items`` / ``test_items`` are row indices into ``codes``. One row per (position, code)
    for every code of every codebook, unused ones included: columns ``position``, ``code``,
    ``train_count``, ``test_count`` (all Int64).
    """
    codes = np.asarray(codes)
    sizes = _validate(codes, codebook_sizes)
    train = level_usage(codes[np.asarray(train_items, dtype=np.int64)], sizes)
    test = level_usage(codes[np.asarray(test_items, dtype=np.int64)], sizes)
    return pl.DataFrame(
        {
            "position": np.repeat(np.arange(sizes.size, dtype=np.int64), sizes),
            "code": np.concatenate([np.arange(k, dtype=np.int64) for k in sizes]) if sizes.size else [],
            "train_count": np.concatenate(train) if train else [],
            "test_count": np.concatenate(test) if test else [],
        },
        schema={"position": pl.Int64, "code": pl.Int64, "train_count": pl.Int64, "test_count": pl.Int64},
    )
