"""Imports that cannot lose data: one import per dataset name at a time, and non-finite numbers reported as bad rows.

The concurrency test runs two real `raysid data import` processes. The first reads its source from a FIFO, so it
holds the name's lock and blocks until the test writes the playlists; the test knows it holds the lock because
opening the FIFO for writing succeeds only once the importer has opened it (after taking the lock): the test
waits for that event, never for a guessed time.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from raysid.data.dataset import Dataset
from raysid.data.importers import import_dataset
from raysid.data.importers.store import DatasetBusy, dataset_lock, save_import

ROOT = Path(__file__).resolve().parents[1]


def _playlists(prefix: str, count: int) -> list[dict]:
    return [{"pid": p, "name": f"{prefix} {p}", "tracks": [
        {"track_uri": f"spotify:track:{prefix}{p}-{t}", "track_name": f"song {t}", "artist_name": f"artist {t}",
         "duration_ms": 1000 * (t + 1)} for t in range(3)]} for p in range(count)]


def _jsonl(playlists: list[dict]) -> str:
    return "".join(json.dumps(p) + "\n" for p in playlists)


def _import(source: Path, root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", "data", "import", "mpd", str(source), "--name", "same",
            "--root", str(root), *extra]


def test_two_processes_importing_one_name_end_with_one_dataset_and_one_refusal(tmp_path):
    root = tmp_path / "datasets"
    fifo = tmp_path / "first.jsonl"
    os.mkfifo(fifo)
    other = tmp_path / "second.jsonl"
    other.write_text(_jsonl(_playlists("b", 5)))
    first = subprocess.Popen(_import(fifo, root), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with _writer_once_read(fifo, first) as feed:  # the first import opened its source: it holds the lock
            second = subprocess.run(_import(other, root, "--force"), cwd=ROOT, capture_output=True, text=True, timeout=300)
            feed.write(_jsonl(_playlists("a", 4)))
        output, _ = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, output
    assert second.returncode == 2, second.stdout + second.stderr
    refusal = " ".join(second.stdout.split())
    assert f"error: dataset 'same' is being imported by another process (pid {first.pid} on " in refusal
    assert "one import per name at a time" in refusal and "Traceback" not in second.stdout + second.stderr
    saved = Dataset.load(root / "same")
    assert saved.meta["counts"]["sequences"] == 4  # the first import's playlists, whole
    assert saved.items["track_uri"].to_list()[0] == "spotify:track:a0-0"
    assert sorted(p.name for p in root.iterdir()) == [".same.lock", "same"]  # no .partial left


def _writer_once_read(fifo: Path, reader: subprocess.Popen, deadline_s: float = 300):
    """The FIFO opened for writing as soon as ``reader`` has opened it for reading (the event waited for)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            handle = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until a reader has it open
        except OSError as error:
            if error.errno != errno.ENXIO:
                raise
        else:
            os.set_blocking(handle, True)
            return os.fdopen(handle, "w")
        assert reader.poll() is None, f"the first import ended before reading its source:\n{reader.stdout.read()}"
        assert time.monotonic() < deadline, "the first import never opened its source"
        time.sleep(0.05)


def test_the_lock_refuses_in_process_and_is_free_again_after(tmp_path):
    imported = import_dataset("mpd", _write(tmp_path / "x.jsonl", _jsonl(_playlists("a", 2))), "same")
    with dataset_lock("same", tmp_path):  # nested use by the holder itself is allowed
        assert save_import(imported, "same", tmp_path) == tmp_path / "same"
    child = subprocess.run([sys.executable, "-c", (
        "import sys; from raysid.data.importers.store import dataset_lock\n"
        "with dataset_lock('same', sys.argv[1]): print('held')"), str(tmp_path)], cwd=ROOT, capture_output=True,
        text=True, timeout=120)
    assert child.stdout == "held\n", child.stderr
    with dataset_lock("same", tmp_path):
        held = subprocess.run([sys.executable, "-c", (
            "import sys; from raysid.data.importers.store import DatasetBusy, dataset_lock\n"
            "try:\n    dataset_lock('same', sys.argv[1]).__enter__()\nexcept DatasetBusy as e:\n    print(e)"),
            str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert f"dataset 'same' is being imported by another process (pid {os.getpid()} on" in held.stdout, held.stderr
    assert issubclass(DatasetBusy, ValueError)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- non-finite numbers ---------------------------------------------------------------------------------------

FEATURES_HEADER = "track_id,track_name,artist,acousticness,energy,tempo,acoustic_vector_0"
LOG_HEADER = "session_id,session_position,session_length,track_id_clean,skip_1,skip_2,skip_3,not_skipped"


@pytest.mark.parametrize("bad", ["inf", "-inf", "1e999", "nan", "Infinity", "-NaN"])
def test_spotify_non_finite_features_are_reported_with_file_line_and_column(tmp_path, bad):
    log = _write(tmp_path / "log.csv", LOG_HEADER + "\n" + "".join(
        f"s1,{i + 1},3,t{i},False,False,False,True\n" for i in range(3)))
    features = _write(tmp_path / "features.csv", "\n".join([
        FEATURES_HEADER, "t0,a,x,0.5,0.25,120,0.1", f"t1,b,y,0.7,{bad},100,0.3", "t2,c,z,0.1,0.75,90,0.2"]) + "\n")
    imported = import_dataset("spotify-skip", log, "s", features=features)
    assert [str(p) for p in imported.log.problems] == [
        f"{features}:3: energy {bad!r} is not a finite number (row kept, value missing)"]
    audio = imported.dataset.modalities["audio"]  # (items, dim); the missing value is the column's mean
    assert np.isfinite(audio).all()
    assert audio[1, 2] == pytest.approx((0.25 + 0.75) / 2)  # columns: acoustic_vector_0, acousticness, energy, tempo


def test_recbole_non_finite_timestamps_are_skipped_rows(tmp_path):
    inter = _write(tmp_path / "toy.inter", "user_id:token\titem_id:token\ttimestamp:float\n"
                   "u1\ti1\t10\nu1\ti2\tinf\nu1\ti3\tnan\nu1\ti4\t-1e999\nu1\ti5\t20\n")
    imported = import_dataset("recbole", inter, "toy")
    assert [str(p) for p in imported.log.problems] == [
        f"{inter}:3: timestamp 'inf' is not a finite number", f"{inter}:4: timestamp 'nan' is not a finite number",
        f"{inter}:5: timestamp '-1e999' is not a finite number"]
    assert imported.dataset.items["source_id"].to_list() == ["i1", "i5"]


def test_mpd_non_finite_json_numbers_are_reported_with_file_line_and_field(tmp_path):
    playlists = _playlists("a", 3)
    lines = [json.dumps(p) for p in playlists]
    lines[1] = lines[1].replace('"duration_ms": 2000', '"duration_ms": Infinity', 1)
    lines[2] = lines[2].replace('"pid": 2', '"pid": 2, "num_followers": 1e999', 1).replace(
        '"duration_ms": 3000', '"duration_ms": NaN', 1)
    source = _write(tmp_path / "p.jsonl", "\n".join(lines) + "\n")
    imported = import_dataset("mpd", source, "p")
    assert [str(p) for p in imported.log.problems] == [
        f"{source}:2: playlist 1: track 1: duration_ms inf is not a finite number (row kept, value missing)",
        f"{source}:3: playlist 2: track 2: duration_ms nan is not a finite number (row kept, value missing)",
        f"{source}:3: playlist 2: num_followers inf is not a finite number (row kept, value missing)"]
    durations = imported.dataset.items["duration_ms"].to_list()
    assert durations[4] is None and durations[8] is None and durations[0] == 1000
    assert "num_followers" not in imported.sequence_info.columns  # its one value was left missing
