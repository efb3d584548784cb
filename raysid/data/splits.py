"""Train / validation / test splits of a dataset's sequences.

``leave_one_out``: every sequence trains on all but its last two items; validation predicts the
second-to-last item from the items before it, test predicts the last item from all the items before it
(SASRec / MusicRec protocol). ``playlist``: whole playlists are held out (FusID playlist continuation);
a held-out playlist's history is all but its last item and its target is the last item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from raysid.config import require
from raysid.data.dataset import Dataset, EvalSet, Splits


@dataclass(frozen=True)
class SplitConfig:
    """How sequences become training sequences and evaluation sets."""

    kind: Literal["leave_one_out", "playlist"] = "leave_one_out"  # hold out last items, or whole playlists
    valid_fraction: float = 0.1  # share of playlists held out for validation (kind "playlist")
    test_fraction: float = 0.1  # share of playlists held out for test (kind "playlist")
    seed: int = 0  # permutation of playlists (kind "playlist")

    def __post_init__(self) -> None:
        kinds = ("leave_one_out", "playlist")
        choices = ", ".join(map(repr, kinds))
        require(self.kind in kinds, "split.kind", f"got {self.kind!r}; valid choices are: {choices}")
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            require(0.0 < value < 1.0, f"split.{name}", f"expected a number in (0, 1), got {value}")
        total = self.valid_fraction + self.test_fraction
        require(total < 1.0, "split.test_fraction",
                f"expected valid_fraction + test_fraction < 1 to leave playlists for training, got {total:g}")
        require(self.seed >= 0, "split.seed", f"expected an integer >= 0, got {self.seed}")


def make_splits(dataset: Dataset, cfg: SplitConfig) -> Splits:
    """Split ``dataset.sequences`` as ``cfg.kind`` says."""
    if cfg.kind == "leave_one_out":
        return leave_one_out(dataset.sequences)
    return playlist_split(dataset.sequences, cfg.valid_fraction, cfg.test_fraction, cfg.seed)


def leave_one_out(sequences: list[np.ndarray]) -> Splits:
    """Per sequence of length >= 3: train seq[:-2], valid (seq[:-2] -> seq[-2]), test (seq[:-1] -> seq[-1])."""
    kept = [np.asarray(s, dtype=np.int64) for s in sequences if len(s) >= 3]
    if not kept:
        raise ValueError(
            f"leave_one_out: the train, valid and test splits are empty: "
            f"all {len(sequences)} sequences are shorter than 3 items"
        )
    valid = EvalSet(histories=[s[:-2] for s in kept], targets=np.array([s[-2] for s in kept], dtype=np.int64))
    test = EvalSet(histories=[s[:-1] for s in kept], targets=np.array([s[-1] for s in kept], dtype=np.int64))
    return Splits(train=[s[:-2] for s in kept], valid=valid, test=test, kind="leave_one_out")


def playlist_split(sequences: list[np.ndarray], valid_fraction: float, test_fraction: float, seed: int) -> Splits:
    """Assign whole playlists (length >= 2) to train / valid / test by a seeded permutation.

    Each held-out fraction gets round(fraction * playlists) playlists, at least one.
    """
    kept = [np.asarray(s, dtype=np.int64) for s in sequences if len(s) >= 2]
    if not kept:
        raise ValueError(
            f"playlist split: the train, valid and test splits are empty: "
            f"all {len(sequences)} sequences are shorter than 2 items"
        )
    num_valid = max(1, round(valid_fraction * len(kept)))
    num_test = max(1, round(test_fraction * len(kept)))
    if num_valid + num_test >= len(kept):
        raise ValueError(
            f"playlist split: the train split is empty: {len(kept)} playlists of length >= 2 leave none "
            f"for training after {num_valid} valid and {num_test} test playlists"
        )
    order = np.random.default_rng(seed).permutation(len(kept))
    valid_ids, test_ids = np.sort(order[:num_valid]), np.sort(order[num_valid:num_valid + num_test])
    train = [kept[i] for i in np.sort(order[num_valid + num_test:])]  # dataset order inside each split
    valid, test = _held_out([kept[i] for i in valid_ids]), _held_out([kept[i] for i in test_ids])
    return Splits(train=train, valid=valid, test=test, kind="playlist")


def _held_out(playlists: list[np.ndarray]) -> EvalSet:
    """Held-out playlists -> histories (all but last) and targets (last item)."""
    return EvalSet(histories=[p[:-1] for p in playlists], targets=np.array([p[-1] for p in playlists], dtype=np.int64))
