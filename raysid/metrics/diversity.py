"""Catalogue coverage and per-list diversity, after the online table of Semantic IDs for Music Recommendation.

The paper's A/B test (Table 2) reports, per radio station ("seed"), the distinct songs and distinct
artists played and the track repetition. Offline, one user's top-k list plays the part of a station's
next k tracks, and the user's history the tracks the station already played:

- ``coverage@k``: distinct items recommended over all users' top-k lists / catalogue size.
- ``distinct_items@k``: distinct real items per top-k list, averaged over users (distinct songs per seed).
- ``distinct_artists@k``: distinct artists of those items per list, averaged over users (distinct artists
  per seed); needs the items frame's ``artist`` column.
- ``repetition@k``: share of all recommended slots (pooled over users) whose item the listener hears
  again: an item already in the user's history, or one already recommended earlier in the same list
  (track repetition). Rankers never repeat within a list, so for them it is the share of history items;
  unconstrained generation can repeat.

``ranked`` is (users, n) int item ids best first with -1 for an empty slot (as ``ranking_metrics``);
empty slots count for nothing: not an item, an artist or a slot.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from raysid.metrics.ranking import EMPTY_SLOT


def _top(ranked: np.ndarray, k: int, num_items: int) -> np.ndarray:
    """(users, k) int64 top-k slots of ``ranked`` after checking its shape and ids."""
    ranked = np.asarray(ranked)
    if ranked.ndim != 2 or ranked.shape[0] == 0:
        raise ValueError(f"ranked must be a non-empty 2-D (users, n) array, got shape {ranked.shape}")
    if not np.issubdtype(ranked.dtype, np.integer):
        raise ValueError(f"ranked must hold integer item ids, got dtype {ranked.dtype}")
    if not 1 <= k <= ranked.shape[1]:
        raise ValueError(f"k={k} must be in [1, {ranked.shape[1]}] (columns of ranked)")
    top = ranked[:, :k].astype(np.int64)
    bad = (top != EMPTY_SLOT) & ((top < 0) | (top >= num_items))
    if bad.any():
        user, slot = np.argwhere(bad)[0]
        raise ValueError(f"ranked[{user}, {slot}] = {top[user, slot]} is not an item id in [0, {num_items}) or -1")
    return top


def coverage(ranked: np.ndarray, k: int, num_items: int) -> float:
    """Distinct real items in all top-k lists / ``num_items``."""
    top = _top(ranked, k, num_items)
    return float(len(np.unique(top[top != EMPTY_SLOT])) / num_items)


def _distinct_per_list(labels: np.ndarray, real: np.ndarray) -> np.ndarray:
    """(users,) number of distinct labels among the real slots of each row of (users, k) ``labels``."""
    ordered = np.sort(np.where(real, labels, EMPTY_SLOT), axis=1)  # empty slots sort first (labels are >= 0)
    new = np.ones_like(ordered, dtype=bool)
    new[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    return (new & (ordered != EMPTY_SLOT)).sum(axis=1)


def distinct_items(ranked: np.ndarray, k: int, num_items: int) -> float:
    """Mean over users of the number of distinct real items in the top-k list."""
    top = _top(ranked, k, num_items)
    return float(_distinct_per_list(top, top != EMPTY_SLOT).mean())


def item_artists(items_frame: pl.DataFrame) -> np.ndarray:
    """(items,) int64 artist id per item id, from an items frame with ``item_id`` = row index and ``artist`` (ids,
    or names as imported data has them)."""
    missing = {"item_id", "artist"} - set(items_frame.columns)
    if missing:
        raise ValueError(f"items frame lacks column(s) {sorted(missing)}; has {items_frame.columns}")
    if not (items_frame["item_id"].to_numpy() == np.arange(items_frame.height)).all():
        raise ValueError("items frame column 'item_id' must equal the row index 0..items-1")
    artist = items_frame["artist"]
    if artist.null_count():
        raise ValueError("items frame column 'artist' must name an artist for every item")
    if not artist.dtype.is_integer():  # names (imported data): dense ids in sorted order of the names
        return np.unique(artist.cast(pl.String).to_numpy(), return_inverse=True)[1].astype(np.int64)
    if (artist.to_numpy() < 0).any():
        raise ValueError("items frame column 'artist' must hold an artist id >= 0 for every item")
    return artist.to_numpy().astype(np.int64)


def distinct_artists(ranked: np.ndarray, k: int, artists: np.ndarray) -> float:
    """Mean over users of the number of distinct artists among the real items of the top-k list.

    ``artists`` is (items,) int artist id per item id (``item_artists``).
    """
    artists = np.asarray(artists, dtype=np.int64)
    top = _top(ranked, k, len(artists))
    real = top != EMPTY_SLOT
    return float(_distinct_per_list(artists[np.where(real, top, 0)], real).mean())


def repetition(ranked: np.ndarray, histories: list[np.ndarray], k: int, num_items: int) -> float:
    """Share of real top-k slots whose item is in the user's history or earlier in the same list.

    NaN when no list has a real slot.
    """
    top = _top(ranked, k, num_items)
    if len(histories) != len(top):
        raise ValueError(f"ranked has {len(top)} users but histories has {len(histories)}")
    real = top != EMPTY_SLOT
    repeated = 0
    for user, row in enumerate(top):
        seen = set(np.asarray(histories[user]).tolist())
        for item in row[real[user]].tolist():
            repeated += item in seen
            seen.add(item)
    slots = int(real.sum())
    return repeated / slots if slots else float("nan")
