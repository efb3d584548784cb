"""``raysid verify``: re-run the trials behind a results folder and diff every metric against the committed one.

Each committed trial (its axis values and seed, read from ``trials.parquet``) is resolved from the study as
the sweep resolved it and run again with ``run_trial`` in a fresh stage cache, in worker processes (no
Ray, no MLflow: the numbers come from the pure pipeline, as in a sweep). Every metric column of the
committed table (not stage times, cache flags or keys) is compared: a trial agrees when every
|new − committed| ≤ tolerance and no metric is missing on either side. On the same locked install and
hardware the tolerance is zero; floating-point results may differ in their last digits on another CPU or
BLAS build, so there pass ``tolerance`` explicitly.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from raysid import provenance
from raysid.config import ConfigError
from raysid.sweep.space import Study

NOT_METRICS = ("time/", "cached/", "stage_keys/")
COMPARED_PROVENANCE = ("commit", "dirty", "lock", "torch", "numpy", "polars", "transformers", "faiss", "cpu", "gpu", "kernels")


@dataclass(frozen=True)
class Difference:
    """One metric of one trial: the committed value, the new one, and whether they agree."""

    trial: str
    metric: str
    committed: float | None
    new: float | None
    agrees: bool

    @property
    def delta(self) -> float | None:
        return None if self.committed is None or self.new is None else self.new - self.committed


@dataclass
class Verification:
    folder: Path
    tolerance: float
    trials: int
    differences: list[Difference] = field(default_factory=list)
    provenance: dict[str, tuple[str, str]] = field(default_factory=dict)  # field -> (committed, now), where they differ

    @property
    def disagreements(self) -> list[Difference]:
        return [d for d in self.differences if not d.agrees]

    @property
    def agrees(self) -> bool:
        return self.trials > 0 and not self.disagreements


def committed_trials(folder: Path) -> pl.DataFrame:
    path = folder / "trials.parquet"
    if not path.is_file():
        raise ConfigError(f"{path}: no trials table to verify (run the sweep first, or pass --results-dir)")
    return pl.read_parquet(path)


def committed_points(trials: pl.DataFrame, study: Study, one_seed: bool) -> list[dict[str, Any]]:
    """The (axis values, seed) of every committed trial, as the study's own values; one seed per cell if asked."""
    missing = [name for name in [a.name for a in study.axes] + ["seed"] if name not in trials.columns]
    if missing:
        raise ConfigError(f"trials.parquet has no column {missing[0]!r}: it was not written by study {study.name}")
    points, cells = [], set()
    for row in trials.iter_rows(named=True):
        point = _row_point(row, study)
        cell = json.dumps({k: v for k, v in point.items() if k != "seed"}, sort_keys=True, default=str)
        if one_seed and cell in cells:
            continue
        cells.add(cell)
        points.append(point)
    return points


def _axis_value(axis: Any, stored: Any) -> Any:
    """The axis's own value whose text matches the stored one (older tables kept axis values as strings)."""
    if axis.kind in ("grid", "choice"):
        for value in axis.values:
            if value == stored or str(value) == str(stored):
                return value
        raise ConfigError(f"trials.parquet: {axis.name}={stored!r} is not a value of the study's axis "
                          f"{axis.name} ({', '.join(map(str, axis.values))}); the study changed since")
    return int(stored) if axis.kind == "int" else float(stored)


def label(point: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in point.items())


def metric_columns(trials: pl.DataFrame) -> list[str]:
    """The numeric metric columns of a trial table (``a/b`` names; not times, cache flags or keys)."""
    return [c for c, dtype in trials.schema.items()
            if "/" in c and dtype.is_numeric() and not c.startswith(NOT_METRICS) and not c.startswith("config.")]


def compare(committed: dict[str, Any], new: dict[str, Any], metrics: list[str], trial: str,
            tolerance: float) -> list[Difference]:
    """One Difference per metric of the committed row; a metric missing on one side disagrees."""
    rows = []
    for metric in metrics:
        old, now = _finite(committed.get(metric)), _finite(new.get(metric))
        same = (old is None and now is None) or (old is not None and now is not None and abs(now - old) <= tolerance)
        rows.append(Difference(trial, metric, old, now, same))
    return rows


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, str):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def verify(study: Study, folder: Path, smoke: bool = False, one_seed: bool = False, tolerance: float = 0.0,
           jobs: int | None = None, work_dir: Path | None = None,
           on_trial: Callable[[str, list[Difference]], None] | None = None) -> Verification:
    """Re-run the trials behind ``folder``/trials.parquet and compare their metrics with the committed ones."""
    if tolerance < 0 or not math.isfinite(tolerance):
        raise ConfigError(f"--tolerance: expected a finite number >= 0, got {tolerance}")
    trials = committed_trials(folder)
    points = committed_points(trials, study, one_seed)
    metrics = metric_columns(trials)
    result = Verification(folder, tolerance, len(points), provenance=provenance_changes(folder))
    rows = {_point_key(_row_point(row, study)): row for row in trials.iter_rows(named=True)}
    for point, new in _rerun(study, points, smoke, jobs, work_dir):
        differences = compare(rows[_point_key(point)], new, metrics, label(point), tolerance)
        result.differences += differences
        if on_trial:
            on_trial(label(point), differences)
    return result


def _row_point(row: dict[str, Any], study: Study) -> dict[str, Any]:
    """A committed row's point: its axis values as the study's own, and its seed."""
    return {axis.name: _axis_value(axis, row[axis.name]) for axis in study.axes} | {"seed": int(row["seed"])}


def _point_key(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True, default=str)


def _rerun(study: Study, points: list[dict[str, Any]], smoke: bool, jobs: int | None,
           work_dir: Path | None) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(point, metrics) of every point, run in ``jobs`` spawned processes over one fresh stage cache."""
    configs = [study.resolve(point, smoke) for point in points]  # bad points fail here, before any work
    threads = max(config.threads for config in configs)
    jobs = jobs or max(1, min(len(points), (os.cpu_count() or 1) // threads))
    folder = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix=f"raysid-verify-{study.name}-"))
    cache = folder / "cache"
    try:
        context = multiprocessing.get_context("spawn")
        # Pool, not ProcessPoolExecutor: leaving the block (an error, Ctrl-C, SIGTERM) terminates the workers
        # instead of waiting for their trials; a killed verify takes them along by the parent-death signal.
        with _worker_threads(threads), context.Pool(jobs, _die_with_parent, (os.getpid(),)) as pool:
            pending = [pool.apply_async(_run_one, (config, str(cache))) for config in configs]
            for point, result in zip(points, pending):
                yield point, result.get()
    finally:
        if work_dir is None:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _worker_threads(threads: int) -> Iterator[None]:
    """OpenMP threads of the workers as a sweep's trials get them: Ray sets OMP_NUM_THREADS to a worker's CPUs
    unless it is set already, and faiss's k-means (codebook init) follows it, so the codes depend on it."""
    given = os.environ.get("OMP_NUM_THREADS")
    if given is None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        if given is None:
            os.environ.pop("OMP_NUM_THREADS", None)


def _die_with_parent(parent: int) -> None:
    """A worker leaves Ctrl-C to its parent (which terminates it) and, on Linux, gets SIGTERM when the parent
    dies, even by kill -9."""
    import ctypes
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _run_one(config: Any, cache: str) -> dict[str, Any]:
    from raysid.cache import open_store
    from raysid.pipeline.trial import run_trial

    return run_trial(config, open_store(cache))


def provenance_changes(folder: Path) -> dict[str, tuple[str, str]]:
    """Fields of the committed trials' provenance (provenance.json) that differ from this install's."""
    path = folder / "provenance.json"
    if not path.is_file():
        return {"provenance.json": ("missing", "present")}
    record = json.loads(path.read_text())
    made = (record.get("trials_made_by") or [record.get("report_made_by", {})])[0]
    now = provenance.collect()
    return {key: (str(made.get(key)), now.get(key, "")) for key in COMPARED_PROVENANCE
            if key in made and str(made.get(key)) != now.get(key)}
