"""raysid verify: a sweep's committed trials re-run from scratch agree exactly; a changed number is caught."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from raysid.sweep.runner import SweepSettings, run_sweep
from raysid.sweep.space import find_study, load_study
from raysid.verify import verify

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def committed(ray_local, tmp_path, tiny_overrides):
    """A tiny musicrec-ratio (one ratio, two seeds) swept into tmp_path/results/tiny-verify-smoke."""
    data = yaml.safe_load(find_study("musicrec-ratio").read_text())
    data["name"] = "tiny-verify"
    data["axes"]["ratio"]["grid"] = {"1:3": data["axes"]["ratio"]["grid"]["1:3"]}
    data["seeds"], data["smoke"] = [0, 1], tiny_overrides
    path = tmp_path / "tiny-verify.yaml"
    path.write_text(yaml.safe_dump(data))
    outcome = run_sweep(load_study(str(path)), SweepSettings(results_dir=tmp_path / "results", smoke=True, progress=False))
    assert outcome.trials.height == 2 and not outcome.failed
    return path, tmp_path / "results"


def test_a_fresh_rerun_agrees_to_the_last_digit_and_a_changed_value_is_caught(committed, tmp_path):
    path, results = committed
    result = verify(load_study(str(path)), results / "tiny-verify-smoke", smoke=True, jobs=2)
    assert result.trials == 2 and result.agrees, result.disagreements
    metrics = {d.metric for d in result.differences}
    assert {"test/ndcg@10", "popularity/test/ndcg@10", "sid/conflict_rate"} <= metrics
    assert not any(m.startswith(("time/", "cached/")) for m in metrics)
    assert "commit" not in result.provenance  # made by this very checkout

    table = results / "tiny-verify-smoke" / "trials.parquet"
    trials = pl.read_parquet(table)
    changed = trials.with_columns(pl.when(pl.col("seed") == 1).then(pl.col("test/ndcg@10") + 1e-9)
                                  .otherwise(pl.col("test/ndcg@10")).alias("test/ndcg@10"))
    changed.write_parquet(table)
    run = CliRunner().invoke(app, ["verify", str(path), "--results-dir", str(results), "--smoke", "--one-seed",
                                   "--only-differences"])
    assert run.exit_code == 0, run.output  # one seed per cell: seed 0 only, which still agrees
    assert "1 trials agree" in run.output
    run = CliRunner().invoke(app, ["verify", str(path), "--results-dir", str(results), "--smoke", "--only-differences"])
    assert run.exit_code == 1, run.output
    assert "ratio=1:3 seed=1: " in run.output and "✗ test/ndcg@10" in run.output and "-1e-09" in run.output  # new − committed
    assert "1 of " in run.output and "metrics disagree" in run.output
    run = CliRunner().invoke(app, ["verify", str(path), "--results-dir", str(results), "--smoke", "--tolerance", "1e-8"])
    assert run.exit_code == 0, run.output


def test_verify_without_a_results_folder_is_one_line(tmp_path):
    run = CliRunner().invoke(app, ["verify", "musicrec-ratio", "--results-dir", str(tmp_path)])
    assert run.exit_code == 2 and "no trials table to verify" in run.output and "Traceback" not in run.output


def _start_verify(path, results, log):
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "cli.main", "verify", str(path), "--results-dir", str(results),
                                 "--smoke", "--jobs", "2"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def _children(pid: int) -> list[int]:
    """Pids of the spawned pool workers of pid (not its resource tracker), read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {seconds} s")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_a_stopped_or_killed_verify_takes_its_workers_along(committed, tmp_path):
    path, results = committed
    for signum in (signal.SIGTERM, signal.SIGKILL):
        log = tmp_path / f"verify-{signum.name}.log"
        driver = _start_verify(path, results, log)

        def both_workers():
            found = _children(driver.pid)
            return found if len(found) == 2 else None

        workers = _wait(both_workers, 120, "2 verify workers")
        driver.send_signal(signum)
        code = driver.wait(timeout=120)
        _wait(lambda: not any(_alive(w) for w in workers), 60, f"end of the workers after {signum.name}")
        if signum == signal.SIGTERM:
            output = log.read_text()
            assert code == 130 and "interrupted" in output and "Traceback" not in output, output
