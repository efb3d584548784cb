"""Semantic-ID quality (FusID, Table 1): codebook underutilisation rate, cardinality, conflict rate.

``codes`` is an (items, positions) integer matrix: one semantic ID per row, one codebook per column
(RQ levels, PQ sub-embeddings, ...). ``codebook_sizes`` gives K per position (an int means the same K
everywhere). All rates are fractions in [0, 1]; FusID prints them as percentages.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
