"""A full disk stops a sweep cleanly: Tune's state saved, every run ended FAILED, the sweep resumable.

Before Tune starts, ``Reserve`` puts a ballast file (``RESERVE_BYTES``) on every local disk the sweep writes
(results, stage cache, Tune storage, the SQLite MLflow store). ``DiskWatch`` (a Tune callback in the driver)
stops the sweep when a disk's free space falls under ``FLOOR_BYTES`` or a trial fails because a disk is full:
it deletes the ballast first, so that Tune's last save of its state and MLflow's last writes have room, then
asks Tune to stop as Ctrl-C would (``interrupt.request_stop``). After ``tuner.fit()`` returns,
``end_runs_failed`` ends the sweep's MLflow runs that did not finish FAILED, tagged with the disk's line.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient
from ray import tune

from raysid.environment import disk_full_line, free_bytes, mount_point, says_disk_full
from raysid.sweep import interrupt
from raysid.sweep.tracking import error_summary

RESERVE_FILE = ".raysid-reserve"
RESERVE_BYTES = 16 * 2**20  # freed for the last bookkeeping once a disk is full
FLOOR_BYTES = 4 * 2**20  # less free than this on a watched disk stops the sweep
CHECK_EVERY_S = 1.0


def local_disks(folders: list[str | Path | None]) -> dict[Path, Path]:
    """Mount point -> the first of ``folders`` on it (URIs and None left out)."""
    disks: dict[Path, Path] = {}
    for folder in folders:
        if folder is not None and "://" not in str(folder):
            disks.setdefault(mount_point(folder), Path(folder).expanduser().absolute())
    return disks


class Reserve:
    """One ballast file per watched disk, held while the sweep runs and deleted when a disk fills up."""

    def __init__(self, disks: dict[Path, Path], size: int = RESERVE_BYTES):
        self.files = [folder / RESERVE_FILE for folder in disks.values()]
        self.size = size

    def hold(self) -> None:
        for path in self.files:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as handle:
                try:
                    os.posix_fallocate(handle.fileno(), 0, self.size)  # real blocks, even where zeros compress
                except OSError:
                    pass  # no room for it (the pre-flight asked for more), or no fallocate: go on without

    def release(self) -> None:
        for path in self.files:
            path.unlink(missing_ok=True)


def fullest(reserve: Reserve) -> Path:
    """The watched folder whose disk has the least free space (the working folder when none is watched)."""
    folders = [path.parent for path in reserve.files] or [Path.cwd()]
    return min(folders, key=lambda folder: free_bytes(folder)[0])


class DiskWatch(tune.Callback):
    """Stops the sweep when a watched disk is (nearly) full, releasing the reserve first (module docstring)."""

    def __init__(self, disks: dict[Path, Path], reserve: Reserve):
        self.folders = list(disks.values())
        self.reserve = reserve
        self.checked = 0.0

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self.checked >= CHECK_EVERY_S:
            self._check_space()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._check_space()  # before the MLflow callback, next in line, writes the result

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._check_space()

    def _check_space(self) -> None:
        self.checked = time.monotonic()
        if interrupt.requested():
            return
        for folder in self.folders:
            if free_bytes(folder)[0] < FLOOR_BYTES:
                self.stop(disk_full_line(folder))
                return

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._check_error(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._check_error(trial)

    def _check_error(self, trial: Any) -> None:
        summary = error_summary(getattr(trial, "error_file", None))
        if says_disk_full(summary) and not interrupt.requested():
            self.stop(disk_full_line(min(self.folders, key=lambda folder: free_bytes(folder)[0])))

    def stop(self, reason: str) -> None:
        self.reserve.release()
        interrupt.request_stop(reason)


def end_runs_failed(tracking_uri: str, experiment: str, sweep_id: str, reason: str) -> int:
    """End the sweep run of ``sweep_id`` and every trial run of it that did not finish FAILED with ``reason``; how
    many were ended. The tags are those of an interruption (``raysid.status=interrupted``), which a resumed sweep
    clears."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return 0
    runs = client.search_runs([found.experiment_id], f"tags.`raysid.sweep_id` = '{sweep_id}'", max_results=50_000)
    ended = 0
    for run in runs:
        if run.info.status != "FINISHED" or run.data.tags.get("raysid.kind") == "sweep":
            client.log_batch(run.info.run_id, tags=[RunTag("raysid.status", "interrupted"),
                                                    RunTag("raysid.signal", "none: a disk is full"),
                                                    RunTag("raysid.error", reason)])
            client.set_terminated(run.info.run_id, "FAILED")
            ended += 1
    return ended
