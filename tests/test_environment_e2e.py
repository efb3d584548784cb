"""A failing environment, end to end with real processes: a disk that fills up mid-sweep, a cluster that wants a token.

The full disk is a real 96 MiB tmpfs holding the results folder (stage cache, Tune state, the SQLite MLflow
store); the test fills it with a file once the first trial's MLflow run is FINISHED (an event read from the
store, never a guessed sleep), then frees it and resumes. The token test starts a real `ray start --head` with
token authentication on loopback (tests/test_cluster.py's LocalHead) and calls it from a home without the token.
Both skip where a tmpfs cannot be mounted or Ray cannot start a head.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml

from raysid.sweep.space import find_study

ROOT = Path(__file__).resolve().parents[1]
NAME = "tiny-disk"
DEADLINE_S = 600


def _env(**extra: str) -> dict[str, str]:
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, paths)), PYTHONUNBUFFERED="1",
                RAY_USAGE_STATS_ENABLED="0", COLUMNS="200", **extra)


def _runs(database: Path) -> list[tuple[str, str, dict[str, str]]]:
    """(name, status, tags) of every run in the SQLite MLflow store, read without MLflow (works on a full disk)."""
    if not database.exists():
        return []
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            runs = connection.execute("SELECT run_uuid, name, status FROM runs").fetchall()
            tags = connection.execute("SELECT run_uuid, key, value FROM tags").fetchall()
    except sqlite3.Error:  # being created or migrated
        return []
    by_run: dict[str, dict[str, str]] = {}
    for run, key, value in tags:
        by_run.setdefault(run, {})[key] = value
    return [(name, status, by_run.get(run, {})) for run, name, status in runs]


def _fill(folder: Path) -> Path:
    """Write a file until the disk refuses (ENOSPC)."""
    filler = folder / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 2**20)
                out.flush()
        except OSError:
            pass
    return filler


@pytest.mark.slow
def test_a_disk_that_fills_up_stops_the_sweep_cleanly_and_it_resumes(tmp_path, tiny_overrides):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()})")
    try:
        _fill_mid_sweep_then_resume(disk, tmp_path, tiny_overrides)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill_mid_sweep_then_resume(disk: Path, tmp_path: Path, tiny_overrides: dict) -> None:
    data = yaml.safe_load(find_study("musicrec-ratio").read_text())
    data.update(name=NAME, seeds=[0], smoke=tiny_overrides)
    study = tmp_path / f"{NAME}.yaml"
    study.write_text(yaml.safe_dump(data))
    results = disk / "results"
    arguments = [sys.executable, "-m", "cli.main", "sweep", str(study), "--smoke", "--results-dir", str(results),
                 "--max-concurrent", "1", "--no-progress"]
    log = tmp_path / "sweep.log"
    with open(log, "w") as out:
        driver = subprocess.Popen(arguments, env=_env(), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    deadline = time.monotonic() + DEADLINE_S
    while not any(status == "FINISHED" and "mlflow.parentRunId" in tags for _, status, tags in _runs(results / "mlflow.db")):
        assert driver.poll() is None, f"the sweep ended before its first trial:\n{log.read_text()[-5000:]}"
        assert time.monotonic() < deadline, "no finished trial"
        time.sleep(0.2)
    filler = _fill(disk)
    assert driver.wait(timeout=DEADLINE_S) == 2, log.read_text()[-5000:]
    output = log.read_text()
    stdout = " ".join(line for line in output.splitlines() if not line.startswith(("20", "[20", "(", " ")))
    assert f"error: the disk holding {results} ({disk}) is full: " in output and " free of 96.0 MiB; free space" in output
    assert "of 3 trials finished; no report was written" in output and "--resume" in output
    assert "Traceback" not in stdout and "unexpected pos" not in output
    runs = _runs(results / "mlflow.db")
    assert "RUNNING" not in {status for _, status, _ in runs}, runs
    sweep = [(status, tags) for _, status, tags in runs if tags.get("raysid.kind") == "sweep"]
    assert [status for status, _ in sweep] == ["FAILED"] and "is full" in sweep[0][1]["raysid.error"]
    failed = [tags for _, status, tags in runs if status == "FAILED" and "mlflow.parentRunId" in tags]
    assert failed and all("is full" in tags["raysid.error"] for tags in failed)
    filler.unlink()
    resumed = subprocess.run([*arguments, "--resume"], env=_env(), cwd=ROOT, capture_output=True, text=True,
                             timeout=DEADLINE_S)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr[-5000:]
    trials = pl.read_parquet(results / f"{NAME}-smoke" / "trials.parquet")
    assert sorted(trials["ratio"]) == ["1:3", "2:2", "3:1"]
    children = [(name, status) for name, status, tags in _runs(results / "mlflow.db") if "mlflow.parentRunId" in tags]
    assert sorted(children) == [(f"ratio={r} seed=0", "FINISHED") for r in ("1:3", "2:2", "3:1")]  # one run each
    assert not (results / ".raysid-reserve").exists()


@pytest.mark.slow
def test_a_cluster_that_needs_a_token_is_one_line_from_a_machine_without_it(tmp_path):
    from test_cluster import LocalHead

    head = LocalHead()
    try:
        head.start(tmp_path / "head-results")
    except AssertionError as error:
        head.stop()
        pytest.skip(f"no Ray head could start here: {error}")
    home = tmp_path / "home"  # no ~/.ray/auth_token, no RAY_AUTH_TOKEN(_PATH), RAY_AUTH_MODE unset
    home.mkdir()
    env = {k: v for k, v in _env(HOME=str(home)).items() if k not in ("RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE", "RAY_ADDRESS")}
    try:
        for command, address in ((["status", "some-job", "--address", head.jobs], head.jobs),
                                 (["sweep", "musicrec-ratio", "--smoke", "--results-dir", str(tmp_path / "r"),
                                   "--address", head.gcs], head.gcs)):
            done = subprocess.run([sys.executable, "-m", "cli.main", *command], env=env, cwd=ROOT, capture_output=True,
                                  text=True, timeout=DEADLINE_S)
            assert done.returncode == 2, done.stdout + done.stderr[-3000:]
            assert done.stdout.splitlines()[-1:] == [
                f"error: the Ray cluster at {address} needs its auth token, which this machine does not have, or has "
                "another one: copy the head's ~/.ray/auth_token here (or export RAY_AUTH_TOKEN_PATH=FILE or "
                "RAY_AUTH_TOKEN=…) and export RAY_AUTH_MODE=token"], done.stdout
            assert not [line for line in done.stdout.splitlines() if line.startswith("error")][:-1]
            assert "Traceback" not in done.stdout + done.stderr
    finally:
        head.stop()
        _stop_client_proxy(head)


def _stop_client_proxy(head) -> None:
    """The Ray Client proxy the head started (LocalHead.stop does not find it: its command line lacks the head's
    temp folder, its environment does not): ended by process id, found by the head's token path."""
    import signal

    from test_cluster import _processes

    token = f"RAY_AUTH_TOKEN_PATH={head.temp / 'auth_token'}"
    for pid in _processes(lambda cmdline, environ: token in environ and "ray.util.client.server" in cmdline):
        os.kill(pid, signal.SIGKILL)


def test_when_a_full_disk_breaks_tune_itself_the_sweep_counts_the_trials_tune_last_saved(ray_local, tmp_path):
    """DiskWatch usually stops the sweep first; when Tune's own write fails first, ``_fit`` takes the grid from
    the experiment state Tune saved, and from a half-written state none (nothing counted as finished)."""
    from ray import tune

    from raysid.sweep.runner import _saved_grid

    def report(config):
        tune.report({"x": config["i"]})

    tune.Tuner(report, param_space={"i": tune.grid_search([1, 2])},
               run_config=tune.RunConfig(name="saved", storage_path=str(tmp_path), verbose=0)).fit()
    experiment = tmp_path / "saved"
    assert sorted(result.metrics["x"] for result in _saved_grid(str(experiment), report)) == [1, 2]
    states = list(experiment.glob("experiment_state-*.json"))
    assert states
    for state in states:
        state.write_text('{"trial_data": [')  # cut off mid-write
    assert list(_saved_grid(str(experiment), report)) == []
