"""Interrupted sweeps are never reported as finished, resume gives every trial exactly once, one sweep per folder.

Every sweep here is a real `raysid sweep` subprocess (its own local Ray, a real SQLite MLflow store) in its own
session, on one tiny 3-point study run one trial at a time. Signals are sent when an event shows the moment
(a FINISHED trial run in the MLflow store, a result artifact in the stage cache, Tune's experiment state
file), never after a guessed sleep.
"""

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from mlflow.tracking import MlflowClient

from raysid.sweep.lock import LOCK_FILE, ResultsLock, SweepBusy
from raysid.sweep.space import find_study

ROOT = Path(__file__).resolve().parents[1]
NAME = "tiny-interrupt"
POINTS = [("1:3", 0), ("2:2", 0), ("3:1", 0)]
DEADLINE_S = 600


@pytest.fixture
def study(tmp_path, tiny_overrides) -> Path:
    """musicrec-ratio with its three ratios, one seed and the TINY sizes as its smoke overrides."""
    data = yaml.safe_load(find_study("musicrec-ratio").read_text())
    data.update(name=NAME, seeds=[0], smoke=tiny_overrides)
    path = tmp_path / f"{NAME}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _env() -> dict[str, str]:
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, paths)), PYTHONUNBUFFERED="1",
                RAY_USAGE_STATS_ENABLED="0", COLUMNS="200")


def _arguments(study: Path, results: Path) -> list[str]:
    return ["sweep", str(study), "--smoke", "--results-dir", str(results), "--max-concurrent", "1", "--no-progress"]


def _start(arguments: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "cli.main", *arguments], env=_env(), cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _run(arguments: list[str], timeout: float = DEADLINE_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *arguments], env=_env(), cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def _wait_for(event, driver: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not event():
        assert driver.poll() is None, f"the sweep ended before {what}:\n{log.read_text()[-5000:]}"
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE_S} s"
        time.sleep(0.2)


def _trial_run_states(results: Path) -> list[str]:
    """Statuses of the trial (child) runs in the MLflow SQLite store, read without MLflow."""
    database = results / "mlflow.db"
    if not database.exists():
        return []
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            rows = connection.execute("SELECT r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                                      "WHERE t.key = 'mlflow.parentRunId'").fetchall()
    except sqlite3.Error:  # the store is being created or migrated
        return []
    return [status for (status,) in rows]


def _cached_results(results: Path) -> int:
    return len(list((results / "cache" / "result").glob("*/.complete")))


def _experiment_saved(results: Path) -> bool:
    return bool(list((results / "tune" / f"{NAME}-smoke").glob("experiment_state-*.json")))


def _runs(results: Path) -> tuple[list, list]:
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(NAME).experiment_id])
    parents = [r for r in runs if r.data.tags.get("raysid.kind") == "sweep"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def _check_finished_once(results: Path, resumed: subprocess.CompletedProcess) -> None:
    """The resumed sweep's table and MLflow store hold every trial once, each metric step once."""
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr[-5000:]
    assert "3 trials finished" in resumed.stdout
    trials = pl.read_parquet(results / f"{NAME}-smoke" / "trials.parquet")
    assert sorted(zip(trials["ratio"], trials["seed"])) == POINTS
    parents, children = _runs(results)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert "raysid.status" not in parents[0].data.tags  # the interruption tag went when it resumed
    points = sorted((json.loads(r.data.tags["raysid.point"])["ratio"], 0) for r in children)
    assert points == POINTS, [r.data.tags for r in children]  # exactly one run per trial
    assert {r.info.status for r in children} == {"FINISHED"}
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    for child in children:
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "recommender_epoch/train/loss")]
        assert steps == [1], steps  # TINY: one recommender epoch, logged once even when the trial ran twice
        assert len(client.get_metric_history(child.info.run_id, "test/ndcg_at_10")) == 1
        row = trials.filter(pl.col("ratio") == json.loads(child.data.tags["raysid.point"])["ratio"])
        assert child.data.metrics["test/ndcg_at_10"] == pytest.approx(row["test/ndcg@10"][0])


def _resume_command(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    command = shlex.split(lines[lines.index(next(l for l in lines if l.endswith("resume with:"))) + 1])
    assert command[:2] == ["raysid", "sweep"] and command[-1] == "--resume", command
    return command[1:]


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("how", ["SIGINT to the process group", "SIGTERM to the driver"])
def test_a_stopped_sweep_exits_130_writes_no_report_and_resumes(study, tmp_path, how):
    results = tmp_path / "results"
    log = tmp_path / "driver.log"
    driver = _start(_arguments(study, results), log)
    _wait_for(lambda: "FINISHED" in _trial_run_states(results), driver, log, "finished trial run")
    if how.startswith("SIGINT"):
        began = time.monotonic()
        busy = _run(_arguments(study, results), timeout=60)  # a second sweep into the folder in use
        assert time.monotonic() - began < 10 and busy.returncode == 2, busy.stdout + busy.stderr
        assert f"is in use by the sweep of {NAME} (pid {driver.pid} on " in busy.stdout
        assert len(busy.stdout.strip().splitlines()) == 1
        os.killpg(driver.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        os.kill(driver.pid, signal.SIGTERM)  # what a job manager does
    assert driver.wait(timeout=300) == 130, log.read_text()[-5000:]
    output = log.read_text()
    assert "interrupted by SIG" in output and "of 3 trials finished; no report was written" in output
    assert "not run (interrupted): ratio=" in output and "stopped early" not in output
    assert not (results / f"{NAME}-smoke").exists()  # no summary, table or plot that looks finished
    parents, children = _runs(results)
    assert "RUNNING" not in {r.info.status for r in parents + children}
    assert parents[0].info.status == "KILLED" and parents[0].data.tags["raysid.status"] == "interrupted"
    killed = [r for r in children if r.info.status == "KILLED"]  # none when the signal came between two trials
    assert all(r.data.tags["raysid.status"] == "interrupted" for r in killed)
    assert {r.info.status for r in children} <= {"FINISHED", "KILLED"} and "FINISHED" in {r.info.status for r in children}

    _check_finished_once(results, _run(_resume_command(output)))


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("moment", ["a trial running", "a trial's result cached"])
def test_a_killed_driver_resumes_with_one_run_per_trial(study, tmp_path, moment):
    results = tmp_path / "results"
    log = tmp_path / "driver.log"
    driver = _start(_arguments(study, results), log)
    if moment == "a trial running":
        _wait_for(lambda: _experiment_saved(results) and "RUNNING" in _trial_run_states(results), driver, log, "running trial")
    else:  # the trial is done but Tune and MLflow may not know it yet: the duplicate-run moment
        _wait_for(lambda: _cached_results(results) >= 1, driver, log, "cached result")
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    try:
        os.killpg(driver.pid, signal.SIGKILL)  # whatever of its session outlived it
    except ProcessLookupError:
        pass
    assert json.loads((results / LOCK_FILE).read_text())["pid"] == driver.pid  # the lock file it left: stale

    _check_finished_once(results, _run([*_arguments(study, results), "--resume"]))


def test_one_sweep_per_results_folder_and_a_dead_holders_lock_is_taken_over(study, tmp_path):
    busy, free = tmp_path / "busy", tmp_path / "free"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from raysid.sweep.lock import ResultsLock\n"
                               f"with ResultsLock({str(busy)!r}, 'other-study'):\n print('held', flush=True); sys.stdin.read()"],
        env=_env(), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        began = time.monotonic()
        refused = _run(_arguments(study, busy), timeout=60)
        assert time.monotonic() - began < 10 and refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stdout.startswith(f"error: {busy} is in use by the sweep of other-study (pid {holder.pid} on ")
        assert len(refused.stdout.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
        with pytest.raises(SweepBusy, match=f"pid {holder.pid}"):
            ResultsLock(busy, NAME).__enter__()
        with ResultsLock(free, NAME):  # another folder: side by side
            assert json.loads((free / LOCK_FILE).read_text())["pid"] == os.getpid()
    finally:
        holder.kill()
        holder.wait()
    with ResultsLock(busy, NAME):  # the holder died: its lock went with it
        held = json.loads((busy / LOCK_FILE).read_text())
        assert (held["pid"], held["study"]) == (os.getpid(), NAME) and held["host"] and held["started"]
