"""Leave-one-out and held-out-playlist splits."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import polars as pl
import pytest

from raysid.config import ConfigError, build
from raysid.data.dataset import Dataset
from raysid.data.splits import (
    SplitConfig,
    decide_split,
    leave_one_out,
    make_feedback_splits,
    make_splits,
    playlist_split,
)


def _sequences(lengths: list[int]) -> list[np.ndarray]:
    """Distinct consecutive ids: lengths [3, 2] -> [0 1 2], [3 4]."""
    ends = np.cumsum(lengths)
    return [np.arange(end - n, end, dtype=np.int64) for n, end in zip(lengths, ends)]


def _dataset(sequences: list[np.ndarray]) -> Dataset:
    num_items = int(max(s.max() for s in sequences)) + 1
    return Dataset("tiny", pl.DataFrame({"item_id": np.arange(num_items)}), {}, sequences)


def test_leave_one_out_by_hand() -> None:
    splits = leave_one_out([np.array([0, 1, 2, 3, 4]), np.array([5, 6, 7]), np.array([8, 9])])
    assert splits.kind == "leave_one_out"
    assert [s.tolist() for s in splits.train] == [[0, 1, 2], [5]]
    assert [h.tolist() for h in splits.valid.histories] == [[0, 1, 2], [5]]
    assert splits.valid.targets.tolist() == [3, 6]
    assert [h.tolist() for h in splits.test.histories] == [[0, 1, 2, 3], [5, 6]]
    assert splits.test.targets.tolist() == [4, 7]
    assert splits.test.targets.dtype == np.int64
    assert splits.train_items().tolist() == [0, 1, 2, 5]


def test_leave_one_out_all_short_names_the_reason() -> None:
    with pytest.raises(ValueError, match="splits are empty: all 2 sequences are shorter than 3 items"):
        leave_one_out([np.array([0, 1]), np.array([2])])


def test_playlist_split_partitions_playlists() -> None:
    sequences = _sequences([2, 3, 4, 5, 6] * 8)  # 40 playlists
    splits = playlist_split(sequences, 0.1, 0.2, seed=1)
    assert splits.kind == "playlist"
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (28, 4, 8)
    rebuilt = [s.tolist() for s in splits.train]
    for evalset in (splits.valid, splits.test):
        rebuilt += [h.tolist() + [t] for h, t in zip(evalset.histories, evalset.targets.tolist())]
    assert sorted(rebuilt) == sorted(s.tolist() for s in sequences)  # each playlist exactly once
    again, other = playlist_split(sequences, 0.1, 0.2, seed=1), playlist_split(sequences, 0.1, 0.2, seed=2)
    assert again.test.targets.tolist() == splits.test.targets.tolist()
    assert other.test.targets.tolist() != splits.test.targets.tolist()


def test_playlist_split_drops_single_item_playlists_and_errors_when_train_empty() -> None:
    splits = playlist_split(_sequences([1, 2, 3, 4, 5]), 0.25, 0.25, seed=0)
    assert len(splits.train) + len(splits.valid) + len(splits.test) == 4
    with pytest.raises(ValueError, match="train split is empty: 2 playlists of length >= 2 leave none"):
        playlist_split(_sequences([3, 4]), 0.1, 0.1, seed=0)
    with pytest.raises(ValueError, match="all 2 sequences are shorter than 2 items"):
        playlist_split(_sequences([1, 1]), 0.1, 0.1, seed=0)


def test_make_splits_dispatches_on_kind() -> None:
    dataset = _dataset(_sequences([4] * 20))
    loo = make_splits(dataset, SplitConfig())
    assert loo.kind == "leave_one_out" and len(loo.test) == 20
    held_out = make_splits(dataset, SplitConfig(kind="playlist", valid_fraction=0.1, test_fraction=0.1))
    assert held_out.kind == "playlist" and (len(held_out.train), len(held_out.test)) == (16, 2)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "random"}, "split.kind: got 'random'; valid choices are: 'leave_one_out', 'playlist'"),
        ({"valid_fraction": 1.5}, "split.valid_fraction: expected a number in (0, 1)"),
        ({"test_fraction": 0.0}, "split.test_fraction: expected a number in (0, 1)"),
        ({"valid_fraction": 0.5, "test_fraction": 0.5},
         "split.test_fraction: expected valid_fraction + test_fraction < 1"),
    ],
)
def test_invalid_split_config_names_the_field(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        build(SplitConfig, changes, "split")


# --- feedback periods (played / skipped) -----------------------------------------------------------


def _feedback_dataset(sequences: list[np.ndarray], feedback: list[np.ndarray] | None) -> Dataset:
    return dataclasses.replace(_dataset(sequences), feedback=feedback)


def test_feedback_leave_one_out_by_hand() -> None:
    sequences = [np.arange(10), np.arange(10, 14)]
    feedback = [np.array([1, 0, 1, 1, 0, 1, 1, 0, 0, 1], np.int8), np.array([1, 1, 0, 1], np.int8)]
    splits = make_feedback_splits(_feedback_dataset(sequences, feedback), SplitConfig(feedback_period=2))
    assert [s.tolist() for s in splits.train] == [[0, 1, 2, 3, 4, 5], [10, 11, 12, 13]]  # too short: trains whole
    assert [f.tolist() for f in splits.train_feedback] == [[1, 0, 1, 1, 0, 1], [1, 1, 0, 1]]
    valid, test = splits.valid, splits.test
    assert len(valid) == len(test) == 1 and splits.kind == "leave_one_out"
    assert valid.histories[0].tolist() == [0, 1, 2, 3, 4, 5] and valid.history_feedback[0].tolist() == [1, 0, 1, 1, 0, 1]
    assert valid.items[0].tolist() == [6, 7] and valid.feedback[0].tolist() == [1, 0]
    assert test.histories[0].tolist() == list(range(8)) and test.items[0].tolist() == [8, 9]
    assert test.feedback[0].tolist() == [0, 1]
    next_played = test.next_played()  # HR/NDCG view: the first played track of the period
    assert next_played.targets.tolist() == [9] and next_played.histories[0].tolist() == list(range(8))


def test_feedback_playlist_split_holds_out_the_playlist_splits_playlists() -> None:
    sequences = _sequences([6, 7, 8, 9, 10] * 8)
    rng = np.random.default_rng(0)
    feedback = [rng.integers(0, 2, len(s)).astype(np.int8) for s in sequences]
    config = SplitConfig(kind="playlist", valid_fraction=0.1, test_fraction=0.2, seed=1, feedback_period=3)
    splits = make_feedback_splits(_feedback_dataset(sequences, feedback), config)
    plain = playlist_split(sequences, 0.1, 0.2, seed=1)
    assert [s.tolist() for s in splits.train] == [s.tolist() for s in plain.train]
    for held, evalset in ((splits.test, plain.test), (splits.valid, plain.valid)):
        whole = [h.tolist() + i.tolist() for h, i in zip(held.histories, held.items)]
        assert whole == [h.tolist() + [t] for h, t in zip(evalset.histories, evalset.targets.tolist())]
        assert all(len(items) == 3 for items in held.items)
    by_first = {int(s[0]): f for s, f in zip(sequences, feedback)}
    assert all(np.array_equal(np.r_[hf, f], by_first[int(h[0])])
               for h, hf, f in zip(splits.test.histories, splits.test.history_feedback, splits.test.feedback))


def test_decide_split_is_the_feedback_split_and_its_view_on_feedback_data() -> None:
    sequences = [np.arange(10), np.arange(10, 14), np.arange(14, 22)]
    feedback = [np.array([1, 0, 1, 1, 0, 1, 0, 1, 0, 1], np.int8), np.ones(4, np.int8),
                np.array([1, 1, 1, 1, 0, 0, 0, 1], np.int8)]
    split = decide_split(_feedback_dataset(sequences, feedback), SplitConfig(feedback_period=2))
    assert [s.tolist() for s in split.feedback.train] == [[0, 1, 2, 3, 4, 5], [10, 11, 12, 13], [14, 15, 16, 17]]
    assert split.splits.train is split.feedback.train and split.splits.kind == "leave_one_out"
    # targets: the first played track of each period (valid [6, 7] and [18, 19]; test [8, 9] and [20, 21])
    assert split.splits.valid.targets.tolist() == [7] and split.splits.test.targets.tolist() == [9, 21]
    assert split.splits.valid.histories[0].tolist() == list(range(6))
    assert [h.tolist() for h in split.splits.test.histories] == [list(range(8)), list(range(14, 20))]
    plain = decide_split(_dataset(sequences), SplitConfig())  # no feedback: exactly make_splits
    assert plain.feedback is None
    assert [s.tolist() for s in plain.splits.train] == [s.tolist() for s in make_splits(_dataset(sequences), SplitConfig()).train]
    skipped = [np.r_[np.ones(7), np.zeros(3)].astype(np.int8), np.ones(4, np.int8), np.zeros(8, np.int8)]
    with pytest.raises(ValueError, match="the test split has no played track: every track of every test period is skipped"):
        decide_split(_feedback_dataset(sequences, skipped), SplitConfig(feedback_period=2))


def test_feedback_splits_fail_clearly() -> None:
    sequences = _sequences([5, 9])
    with pytest.raises(ValueError, match="dataset 'tiny' has no feedback"):
        make_feedback_splits(_feedback_dataset(sequences, None), SplitConfig())
    misaligned = [np.ones(5, np.int8), np.ones(8, np.int8)]
    with pytest.raises(ValueError, match="sequence 1 has 9 items but feedback of shape \\(8,\\)"):
        make_feedback_splits(_feedback_dataset(sequences, misaligned), SplitConfig())
    bad_value = [np.ones(5, np.int8), np.r_[np.ones(8), 3].astype(np.int8)]
    with pytest.raises(ValueError, match="sequence 1 has feedback value 3 at position 8"):
        make_feedback_splits(_feedback_dataset(sequences, bad_value), SplitConfig())
    short = [np.ones(5, np.int8), np.ones(9, np.int8)]
    with pytest.raises(ValueError, match="the valid split is empty: no session has more than 10 tracks"):
        make_feedback_splits(_feedback_dataset(sequences, short), SplitConfig(feedback_period=5))
    with pytest.raises(ConfigError, match="split.feedback_period"):
        SplitConfig(feedback_period=0)
