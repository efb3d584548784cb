"""The canonical dataset every stage reads: items, per-modality feature matrices and ordered sequences."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Dataset:
    """Items with ids 0..num_items-1, their modality matrices and the interaction sequences.

    items:      one row per item; column ``item_id`` equals the row index. Catalog datasets add
                ``genre``, ``subgenre``, ``artist`` (int ids), ``release_year``, ``release_month``,
                ``release_day``, ``tempo`` (bpm), ``key`` (0..23, -1 unknown), ``popularity``.
    modalities: modality name -> float32 matrix (num_items, dim).
    sequences:  one int64 array of item ids per playlist/session, in order.
    feedback:   optional, one int8 array per sequence aligned with it: 1 = played, 0 = skipped
                (Spotify skip data, the catalog's simulated skips); None when the source has none.
    """

    name: str
    items: pl.DataFrame
    modalities: dict[str, np.ndarray]
    sequences: list[np.ndarray]
    meta: dict = field(default_factory=dict)
    feedback: list[np.ndarray] | None = None

    @property
    def num_items(self) -> int:
        return self.items.height

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.items.write_parquet(folder / "items.parquet")
        np.savez(folder / "modalities.npz", **self.modalities)
        save_sequences(folder / "sequences.npz", self.sequences)
        if self.feedback is not None:
            save_sequences(folder / "feedback.npz", self.feedback)
        (folder / "dataset.json").write_text(json.dumps({"name": self.name, "meta": self.meta}, indent=2))

    @classmethod
    def load(cls, folder: Path) -> Dataset:
        folder = Path(folder)
        info = json.loads((folder / "dataset.json").read_text())
        with np.load(folder / "modalities.npz") as archive:
            modalities = {name: archive[name] for name in archive.files}
        return cls(
            name=info["name"],
            items=pl.read_parquet(folder / "items.parquet"),
            modalities=modalities,
            sequences=load_sequences(folder / "sequences.npz"),
            meta=info.get("meta", {}),
            feedback=_load_feedback(folder / "feedback.npz"),
        )


@dataclass(frozen=True)
class EvalSet:
    """Histories and the one held-out next item of each (leave-one-out or held-out playlists)."""

    histories: list[np.ndarray]
    targets: np.ndarray  # (users,) int64

    def __len__(self) -> int:
        return len(self.targets)


@dataclass(frozen=True)
class Splits:
    """Training sequences plus validation and test evaluation sets."""

    train: list[np.ndarray]
    valid: EvalSet
    test: EvalSet
    kind: str = "leave_one_out"

    def train_items(self) -> np.ndarray:
        """Sorted ids of the items that occur in training sequences."""
        return np.unique(np.concatenate(self.train)) if self.train else np.zeros(0, dtype=np.int64)

    def test_items(self) -> np.ndarray:
        """Sorted ids of the items that are test targets."""
        return np.unique(self.test.targets)


def _load_feedback(path: Path) -> list[np.ndarray] | None:
    return [f.astype(np.int8) for f in load_sequences(path)] if path.exists() else None


def save_sequences(path: Path, sequences: list[np.ndarray]) -> None:
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    flat = np.concatenate(sequences).astype(np.int64) if sequences else np.zeros(0, dtype=np.int64)
    np.savez(path, lengths=lengths, flat=flat)


def load_sequences(path: Path) -> list[np.ndarray]:
    with np.load(path) as archive:
        lengths, flat = archive["lengths"], archive["flat"]
    return np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []
