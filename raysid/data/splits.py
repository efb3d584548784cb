"""Train / validation / test splits of a dataset's sequences.

``leave_one_out``: every sequence trains on all but its last two items; validation predicts the
second-to-last item from the items before it, test predicts the last item from all the items before it
(SASRec / MusicRec protocol). ``playlist``: whole playlists are held out (FusID playlist continuation);
a held-out playlist's history is all but its last item and its target is the last item.

Feedback (Dataset.feedback: 1 played / 0 skipped per track) is evaluated as Semantic IDs for Music
Recommendation does: on a later evaluation period whose tracks are all scored from the same model input, the
tracks before it (``make_feedback_splits``). ``leave_one_out``: the last ``feedback_period`` tracks of each
session are its test period, the ``feedback_period`` tracks before them its validation period, and the rest
trains; sessions too short for both periods and a non-empty input train whole. ``playlist``: the same
playlists as ``playlist_split`` are held out; a held-out playlist's last ``feedback_period`` tracks are its
period and the tracks before them its input.

A trial's split is decided once, by ``decide_split``, and every stage reads that one decision: the
tokenizer, the features and collaborative embeddings learned from sequences, the recommender and the
evaluation. On a dataset with feedback it is the feedback split, and its ``Splits`` view (training
sequences, next-item evaluation sets) is derived from it, so no track of a validation or test period
trains any stage.
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
    feedback_period: int = 4  # tracks per session in each feedback evaluation period (make_feedback_splits)

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
        require(self.feedback_period >= 1, "split.feedback_period", f"expected an integer >= 1, got {self.feedback_period}")


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
    train_ids, valid_ids, test_ids = _assign_playlists(len(kept), valid_fraction, test_fraction, seed)
    train = [kept[i] for i in train_ids]  # dataset order inside each split
    valid, test = _held_out([kept[i] for i in valid_ids]), _held_out([kept[i] for i in test_ids])
    return Splits(train=train, valid=valid, test=test, kind="playlist")


def _assign_playlists(count: int, valid_fraction: float, test_fraction: float, seed: int):
    """Sorted (train, valid, test) indices of ``count`` playlists under a seeded permutation."""
    num_valid = max(1, round(valid_fraction * count))
    num_test = max(1, round(test_fraction * count))
    if num_valid + num_test >= count:
        raise ValueError(
            f"playlist split: the train split is empty: {count} playlists of length >= 2 leave none "
            f"for training after {num_valid} valid and {num_test} test playlists"
        )
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[num_valid + num_test:]), np.sort(order[:num_valid]), np.sort(order[num_valid:num_valid + num_test])


def _held_out(playlists: list[np.ndarray]) -> EvalSet:
    """Held-out playlists -> histories (all but last) and targets (last item)."""
    return EvalSet(histories=[p[:-1] for p in playlists], targets=np.array([p[-1] for p in playlists], dtype=np.int64))


# --- feedback (played / skipped) ------------------------------------------------------------------


@dataclass(frozen=True)
class FeedbackSet:
    """One evaluation period per session: the model's input and the period's tracks with their feedback.

    histories[i], history_feedback[i]: the tracks before the period and their feedback (the model input);
    items[i], feedback[i]: the period's tracks, 1 = played, 0 = skipped, all scored from that same input.
    """

    histories: list[np.ndarray]
    history_feedback: list[np.ndarray]
    items: list[np.ndarray]
    feedback: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.histories)

    def next_played(self) -> EvalSet:
        """HR/NDCG view: each session whose period has a played track, that first played track as target."""
        rows = [i for i, labels in enumerate(self.feedback) if (labels == 1).any()]
        targets = np.array([self.items[i][np.argmax(self.feedback[i] == 1)] for i in rows], dtype=np.int64)
        return EvalSet(histories=[self.histories[i] for i in rows], targets=targets)


@dataclass(frozen=True)
class FeedbackSplits:
    """Training sequences with their feedback, plus validation and test feedback periods."""

    train: list[np.ndarray]
    train_feedback: list[np.ndarray]
    valid: FeedbackSet
    test: FeedbackSet
    kind: str = "leave_one_out"

    def train_items(self) -> np.ndarray:
        """Sorted ids of the items that occur in training sequences (played or skipped)."""
        return np.unique(np.concatenate(self.train)) if self.train else np.zeros(0, dtype=np.int64)


def validate_feedback(sequences: list[np.ndarray], feedback: list[np.ndarray], where: str = "feedback") -> None:
    """Raise ValueError naming the sequence unless ``feedback`` holds one 0/1 array aligned with each sequence."""
    if len(feedback) != len(sequences):
        raise ValueError(f"{where}: {len(feedback)} feedback arrays for {len(sequences)} sequences; need one per sequence")
    for index, (sequence, values) in enumerate(zip(sequences, feedback)):
        values = np.asarray(values)
        if values.shape != (len(sequence),):
            raise ValueError(
                f"{where}: sequence {index} has {len(sequence)} items but feedback of shape {values.shape}; "
                "need one value per item"
            )
        if values.dtype != np.bool_ and not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"{where}: sequence {index} has feedback dtype {values.dtype}; expected integers 0/1")
        bad = ~np.isin(values, (0, 1))
        if bad.any():
            raise ValueError(
                f"{where}: sequence {index} has feedback value {values[bad][0]} at position {int(np.argmax(bad))}; "
                "expected 1 (played) or 0 (skipped)"
            )


def make_feedback_splits(dataset: Dataset, cfg: SplitConfig) -> FeedbackSplits:
    """Split ``dataset`` into training sequences and feedback evaluation periods as ``cfg.kind`` says."""
    if dataset.feedback is None:
        raise ValueError(
            f"dataset {dataset.name!r} has no feedback (played/skipped); for the built-in catalog set "
            "dataset.skips.enabled: true"
        )
    validate_feedback(dataset.sequences, dataset.feedback, f"dataset {dataset.name!r} feedback")
    sequences = [np.asarray(s, dtype=np.int64) for s in dataset.sequences]
    feedback = [np.asarray(f, dtype=np.int8) for f in dataset.feedback]
    if cfg.kind == "leave_one_out":
        splits = _feedback_leave_one_out(sequences, feedback, cfg.feedback_period)
    else:
        splits = _feedback_playlists(sequences, feedback, cfg)
    for name in ("valid", "test"):
        if not len(getattr(splits, name)):
            raise ValueError(
                f"feedback splits ({cfg.kind}): the {name} split is empty: no session has more than "
                f"{_needed(cfg)} tracks (split.feedback_period = {cfg.feedback_period})"
            )
    return splits


def _needed(cfg: SplitConfig) -> int:
    """Tracks a session needs beyond which it gives an evaluation period with a non-empty input, minus one."""
    return 2 * cfg.feedback_period if cfg.kind == "leave_one_out" else cfg.feedback_period


def _feedback_leave_one_out(sequences: list[np.ndarray], feedback: list[np.ndarray], period: int) -> FeedbackSplits:
    """Per session longer than 2 * period: train head, valid period, test period (input = all before it)."""
    train, train_feedback = [], []
    valid, test = _PeriodBuilder(), _PeriodBuilder()
    for items, labels in zip(sequences, feedback):
        if len(items) <= 2 * period:
            train.append(items)
            train_feedback.append(labels)
            continue
        head = len(items) - 2 * period
        train.append(items[:head])
        train_feedback.append(labels[:head])
        valid.add(items, labels, head, head + period)
        test.add(items, labels, head + period, len(items))
    return FeedbackSplits(train, train_feedback, valid.build(), test.build(), kind="leave_one_out")


def _feedback_playlists(sequences: list[np.ndarray], feedback: list[np.ndarray], cfg: SplitConfig) -> FeedbackSplits:
    """The playlists ``playlist_split`` holds out; each held-out one longer than the period gives one period."""
    kept = [i for i, s in enumerate(sequences) if len(s) >= 2]
    if not kept:
        raise ValueError(
            f"feedback splits (playlist): all {len(sequences)} sequences are shorter than 2 items"
        )
    train_ids, valid_ids, test_ids = _assign_playlists(len(kept), cfg.valid_fraction, cfg.test_fraction, cfg.seed)
    sets = []
    for ids in (valid_ids, test_ids):
        builder = _PeriodBuilder()
        for i in ids:
            items, labels = sequences[kept[i]], feedback[kept[i]]
            if len(items) > cfg.feedback_period:
                builder.add(items, labels, len(items) - cfg.feedback_period, len(items))
        sets.append(builder.build())
    train = [sequences[kept[i]] for i in train_ids]
    train_feedback = [feedback[kept[i]] for i in train_ids]
    return FeedbackSplits(train, train_feedback, sets[0], sets[1], kind="playlist")


class _PeriodBuilder:
    """Collects (input, period) slices of sessions into a FeedbackSet."""

    def __init__(self) -> None:
        self.parts: tuple[list, list, list, list] = ([], [], [], [])

    def add(self, items: np.ndarray, labels: np.ndarray, start: int, stop: int) -> None:
        """Input = items[:start], period = items[start:stop]."""
        for part, value in zip(self.parts, (items[:start], labels[:start], items[start:stop], labels[start:stop])):
            part.append(value)

    def build(self) -> FeedbackSet:
        return FeedbackSet(*self.parts)


# --- the trial's one split ------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialSplit:
    """The one split a trial uses, decided by ``decide_split``.

    splits:   training sequences and the next-item evaluation sets every stage reads;
    feedback: on a dataset with played/skipped feedback, the feedback split this view comes from
              (``splits.train`` is ``feedback.train``; ``splits.valid``/``splits.test`` are the first played
              track of each valid/test period); None on a dataset without feedback.
    """

    splits: Splits
    feedback: FeedbackSplits | None = None


def decide_split(dataset: Dataset, cfg: SplitConfig) -> TrialSplit:
    """The split of ``dataset`` under ``cfg``: ``make_feedback_splits`` when it has feedback, else ``make_splits``."""
    if dataset.feedback is None:
        return TrialSplit(make_splits(dataset, cfg))
    feedback = make_feedback_splits(dataset, cfg)
    return TrialSplit(feedback_view(feedback, cfg), feedback)


def feedback_view(feedback: FeedbackSplits, cfg: SplitConfig) -> Splits:
    """The ``Splits`` of a feedback split: its training sequences, and each period's first played track as target."""
    valid, test = feedback.valid.next_played(), feedback.test.next_played()
    for name, evalset in (("valid", valid), ("test", test)):
        if not len(evalset):
            raise ValueError(
                f"feedback splits ({cfg.kind}): the {name} split has no played track: every track of every {name} "
                f"period is skipped (split.feedback_period = {cfg.feedback_period})"
            )
    return Splits(train=feedback.train, valid=valid, test=test, kind=feedback.kind)
