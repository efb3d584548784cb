"""The semantic-ID table: one row of codes per item, one named position per column.

A position is one token of an item's identifier. Positions are named by their token prefix, following
MusicRec's prefixed identifiers (``<s1.1><s2.2><a.3><b.4>``: "s1", "s2" shared levels, "a", "b" text
levels), e.g. "s1", "s2", "text1", "audio1". Items whose codes collide can be told apart by a tie-break
position "t" (the 'n+1' digit of Semantic IDs for Music Recommendation): 0, 1, 2, … within each group of
items sharing the same codes, assigned in item-id order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

TIE_BREAK = "t"  # name of the tie-break position appended by ``from_codes(tie_break=True)``


@dataclass(frozen=True, eq=False)
class SemanticIds:
    """Codes (items, positions) int64 with one token prefix and one codebook size per position."""

    codes: np.ndarray  # (items, positions) int64, codes[i, p] in [0, codebook_sizes[p])
    position_names: tuple[str, ...]  # token prefix per position, e.g. ("s1", "s2", "text1", "t")
    codebook_sizes: tuple[int, ...]  # number of distinct codes per position

    def __post_init__(self) -> None:
        codes = np.asarray(self.codes)
        if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(f"codes must be a 2-D integer array (items, positions), got {codes.dtype} {codes.shape}")
        object.__setattr__(self, "codes", codes.astype(np.int64, copy=False))
        object.__setattr__(self, "position_names", tuple(self.position_names))
        object.__setattr__(self, "codebook_sizes", tuple(int(s) for s in self.codebook_sizes))
        positions = codes.shape[1]
        if len(self.position_names) != positions or len(self.codebook_sizes) != positions:
            raise ValueError(
                f"{positions} code positions need as many position_names and codebook_sizes, got "
                f"{len(self.position_names)} names and {len(self.codebook_sizes)} sizes"
            )
        reserved = {"item_id", "sid"}  # column names of to_frame()
        names = set(self.position_names)
        if len(names) != positions or not all(self.position_names) or reserved & names:
            raise ValueError(
                f"position_names must be distinct, non-empty and not 'item_id' or 'sid', got {self.position_names}"
            )
        for p, (name, size) in enumerate(zip(self.position_names, self.codebook_sizes)):
            if size < 1:
                raise ValueError(f"codebook size of position {name!r} must be positive, got {size}")
            bad = (codes[:, p] < 0) | (codes[:, p] >= size)
            if bad.any():
                item = int(np.argmax(bad))
                raise ValueError(f"item {item} has code {codes[item, p]} at position {name!r}, outside [0, {size})")

    @classmethod
    def from_codes(
        cls,
        codes: np.ndarray,
        position_names: tuple[str, ...] | list[str],
        codebook_sizes: tuple[int, ...] | list[int],
        tie_break: bool = True,
    ) -> SemanticIds:
        """Build the table; with ``tie_break`` append position "t" so that every identifier is unique."""
        codes = np.asarray(codes, dtype=np.int64)
        if not tie_break or codes.ndim != 2:  # __post_init__ reports a malformed table
            return cls(codes, tuple(position_names), tuple(codebook_sizes))
        if TIE_BREAK in position_names:
            raise ValueError(f"position name {TIE_BREAK!r} is reserved for the tie-break position")
        digit = tie_break_digit(codes)  # (items,)
        size = int(digit.max()) + 1 if len(digit) else 1
        return cls(
            np.column_stack([codes, digit]),
            (*position_names, TIE_BREAK),
            (*codebook_sizes, size),
        )

    @property
    def num_items(self) -> int:
        return self.codes.shape[0]

    @property
    def num_positions(self) -> int:
        return self.codes.shape[1]

    def tokens(self, item: int) -> list[str]:
        """The identifier of ``item`` as token strings, e.g. ["<s1.12>", "<text1.3>", "<t.0>"]."""
        return [token_string(name, int(code)) for name, code in zip(self.position_names, self.codes[item])]

    def is_unique(self) -> bool:
        """Whether no two items share the same identifier."""
        return self._unique

    @cached_property
    def _unique(self) -> bool:
        return bool(_sorted_groups(self.codes)[1].all())

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """(rows,) int64 item id of each row of ``codes`` (rows, positions); -1 where no item has that row."""
        if not self.is_unique():
            raise ValueError("lookup needs unique identifiers; build the table with tie_break=True")
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, self.num_positions)
        sizes = np.array(self.codebook_sizes, dtype=np.int64)
        in_range = ((codes >= 0) & (codes < sizes)).all(axis=1)  # (rows,)
        if np.log2(sizes.astype(np.float64)).sum() < 62:
            return _lookup_by_key(self.codes, codes, sizes, in_range)
        return _lookup_by_unique(self.codes, codes, in_range)

    def to_frame(self) -> pl.DataFrame:
        """Columns ``item_id``, ``sid`` (the joined token strings) and one int64 column per position."""
        sid = pl.lit("")
        for p, name in enumerate(self.position_names):
            sid = sid + f"<{name}." + pl.col(f"__{p}").cast(pl.String) + ">"
        frame = pl.DataFrame({f"__{p}": self.codes[:, p] for p in range(self.num_positions)})
        frame = frame.with_columns(sid.alias("sid"))
        columns = {f"__{p}": name for p, name in enumerate(self.position_names)}
        return (
            frame.rename(columns)
            .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("item_id"))
            .select("item_id", "sid", *self.position_names)
        )

    def save(self, folder: str | Path) -> None:
        """Write ``semantic_ids.npz`` (codes) and ``semantic_ids.json`` (names, sizes) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "semantic_ids.npz", codes=self.codes)
        meta = {"position_names": list(self.position_names), "codebook_sizes": list(self.codebook_sizes)}
        (folder / "semantic_ids.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> SemanticIds:
        """Read a table written by ``save``."""
        folder = Path(folder)
        meta = json.loads((folder / "semantic_ids.json").read_text())
        with np.load(folder / "semantic_ids.npz") as archive:
            codes = archive["codes"]
        return cls(codes, tuple(meta["position_names"]), tuple(meta["codebook_sizes"]))


def token_string(position_name: str, code: int) -> str:
    """``<name.code>``, MusicRec's prefixed identifier token."""
    return f"<{position_name}.{code}>"


def tie_break_digit(codes: np.ndarray) -> np.ndarray:
    """(items,) int64 rank of each item among the items with the same codes, in item-id order."""
    order, starts_group = _sorted_groups(codes)  # lexsort is stable: item-id order inside each group
    group_start = np.maximum.accumulate(np.where(starts_group, np.arange(len(order)), 0))  # (items,)
    digit = np.empty(len(order), dtype=np.int64)
    digit[order] = np.arange(len(order)) - group_start
    return digit


def _sorted_groups(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable lexicographic order of the rows and, along it, whether each row starts a new group of equal rows."""
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    order = np.lexsort(codes.T[::-1])  # (items,)
    rows = codes[order]
    return order, np.r_[True, (rows[1:] != rows[:-1]).any(axis=1)]


def _lookup_by_key(table: np.ndarray, rows: np.ndarray, sizes: np.ndarray, in_range: np.ndarray) -> np.ndarray:
    """Lookup through one mixed-radix int64 key per row (when the key space fits in 62 bits)."""
    radix = np.cumprod(np.r_[sizes[1:], 1][::-1])[::-1]  # (positions,) place value of each position
    table_keys = table @ radix  # (items,)
    order = np.argsort(table_keys)
    sorted_keys = table_keys[order]
    query = np.where(in_range[:, None], rows, 0) @ radix  # (rows,)
    slot = np.minimum(np.searchsorted(sorted_keys, query), max(len(sorted_keys) - 1, 0))
    if len(sorted_keys) == 0:
        return np.full(len(rows), -1, dtype=np.int64)
    found = in_range & (sorted_keys[slot] == query)
    return np.where(found, order[slot], -1).astype(np.int64)


def _lookup_by_unique(table: np.ndarray, rows: np.ndarray, in_range: np.ndarray) -> np.ndarray:
    """Lookup for very large key spaces: shared row ids from one np.unique over table and queries."""
    _, group = np.unique(np.concatenate([table, rows]), axis=0, return_inverse=True)
    group = group.reshape(-1)
    item_of_group = np.full(group.max() + 1 if len(group) else 0, -1, dtype=np.int64)
    item_of_group[group[: len(table)]] = np.arange(len(table))
    found = item_of_group[group[len(table) :]]
    return np.where(in_range, found, -1).astype(np.int64)
