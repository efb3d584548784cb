"""The split is decided once: no interaction of a validation or test period reaches a trained stage.

A trial is prepared for real (dataset, split, features, collaborative embeddings, tokenizer) on the TINY
catalog with and without played/skipped feedback and on an imported Spotify skip log (whose co-occurrence
features are learned from the training sequences), and what every trained stage was given (``Prepared.trained_on``) is
mapped back to (sequence, position) interactions of the dataset and compared with the evaluation periods,
which are computed here by hand from the sequence lengths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import TINY

from raysid.cache import ArtifactStore
from raysid.config import override
from raysid.data.importers import import_dataset
from raysid.data.importers.store import save_import
from raysid.pipeline.trial import prepare
from raysid.trial_config import parse_trial_config

PERIOD = 3  # split.feedback_period: TINY sessions hold at most 12 tracks; 3 makes the two periods overlap leave-one-out's last two
TRAINED_STAGES = ("features", "collaborative", "tokenizer", "recommender")
SKIP_LOG = Path(__file__).resolve().parents[2] / "shared" / "data" / "spotify-skip"
TRIALS = ("catalog-with-skips", "catalog", "spotify-skip-import")


def _config(trial: str, folder: Path):
    sections = {"tokenizer": {"kind": "musicrec", "shared_levels": 1, "specific_levels": 1},  # α > 0: CF embeddings
                "recommender": {"kind": "sasrec", "hidden_size": 16, "num_layers": 1, "epochs": 1}}
    if trial != "catalog":
        sections |= {"dataset": {"skips": {"enabled": True}}, "split": {"feedback_period": PERIOD}}
    if trial == "spotify-skip-import":
        if not SKIP_LOG.exists():
            pytest.skip("the shared Spotify skip sample is not on this machine")
        log = import_dataset("spotify-skip", SKIP_LOG / "log_sample.csv", "skips", features=SKIP_LOG / "track_features_sample.csv")
        save_import(log, "skips", folder)
        sections["dataset"] = {"source": "imported", "name": "skips", "root": str(folder), "cooccurrence": {"dim": 8, "epochs": 1}}
    drop = ("recommender.", "dataset.") if trial == "spotify-skip-import" else ("recommender.",)
    tiny = {k: v for k, v in TINY.items() if not k.startswith(drop)}
    return parse_trial_config(override(sections, tiny))


def _held_out_by_hand(sequences: list[np.ndarray], feedback: bool) -> tuple[set, set]:
    """(valid, test) interactions: leave-one-out's last two positions, or the two last periods of PERIOD tracks."""
    valid, test = set(), set()
    for index, sequence in enumerate(sequences):
        n = len(sequence)
        if feedback and n > 2 * PERIOD:
            valid |= {(index, p) for p in range(n - 2 * PERIOD, n - PERIOD)}
            test |= {(index, p) for p in range(n - PERIOD, n)}
        elif not feedback and n >= 3:
            valid, test = valid | {(index, n - 2)}, test | {(index, n - 1)}
    return valid, test


def _trained_by_hand(sequences: list[np.ndarray], feedback: bool) -> set:
    """Every interaction before the held-out ones (feedback: short sessions train whole; else length >= 3 only)."""
    valid, test = _held_out_by_hand(sequences, feedback)
    kept = [i for i, s in enumerate(sequences) if feedback or len(s) >= 3]
    return {(i, p) for i in kept for p in range(len(sequences[i]))} - valid - test


def _interactions(trained: list[np.ndarray], sequences: list[np.ndarray]) -> set:
    """(sequence, position) of each item of ``trained``, whose arrays are prefixes of ``sequences`` in their order."""
    found, origin = set(), 0
    for part in trained:
        while not (len(part) <= len(sequences[origin]) and np.array_equal(sequences[origin][:len(part)], part)):
            origin += 1  # IndexError: ``part`` is no prefix of a later dataset sequence
        found |= {(origin, p) for p in range(len(part))}
        origin += 1
    return found


@pytest.mark.parametrize("trial", TRIALS)
def test_no_interaction_of_a_held_out_period_reaches_a_trained_stage(trial, tmp_path):
    prepared = prepare(_config(trial, tmp_path / "datasets"), ArtifactStore(tmp_path / "cache"))
    sequences, feedback = prepared.dataset.sequences, trial != "catalog"
    assert (prepared.dataset.feedback is not None) == feedback
    if trial == "spotify-skip-import":
        assert "cooccurrence" in prepared.dataset.modalities  # learned from trained_on["features"]
    valid, test = _held_out_by_hand(sequences, feedback)
    expected = _trained_by_hand(sequences, feedback)
    assert valid and test and expected
    assert set(prepared.trained_on) == set(TRAINED_STAGES)
    for stage in TRAINED_STAGES:
        seen = _interactions(prepared.trained_on[stage].sequences, sequences)
        assert not seen & test, f"{stage} trains on {len(seen & test)} test-period interactions"
        assert not seen & valid, f"{stage} trains on {len(seen & valid)} validation-period interactions"
        assert seen == expected, stage
        items = np.unique([sequences[i][p] for i, p in expected])
        np.testing.assert_array_equal(prepared.trained_on[stage].items, items)


def test_the_evaluation_periods_are_the_held_out_interactions(tmp_path):
    """What evaluate scores on a feedback dataset: the periods above, their input all tracks before them."""
    prepared = prepare(_config("catalog-with-skips", tmp_path), ArtifactStore(tmp_path))
    sequences, periods = prepared.dataset.sequences, prepared.split.feedback
    long = [s for s in sequences if len(s) > 2 * PERIOD]
    assert [p.tolist() for p in periods.test.items] == [s[-PERIOD:].tolist() for s in long]
    assert [h.tolist() for h in periods.test.histories] == [s[:-PERIOD].tolist() for s in long]
    assert [p.tolist() for p in periods.valid.items] == [s[-2 * PERIOD:-PERIOD].tolist() for s in long]
    assert prepared.splits.train is periods.train  # the Splits view every stage reads is the feedback split's
    played = periods.test.next_played()
    np.testing.assert_array_equal(prepared.splits.test.targets, played.targets)
