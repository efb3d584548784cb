"""A sweep on a Ray cluster of several nodes, one of which is lost mid-sweep.

The cluster (``ray_processes.LocalCluster``) is a head with 1 CPU, where the trials (Tune function trainables of
0.5 CPU) can run, and two worker nodes with no CPU and one ``trainer`` each, where only Ray Train workers can run:
each trial trains its RQ-VAE tokenizer on a 2-worker TorchTrainer (DDP over the two nodes). When the first
Ray Train checkpoint names the nodes a trial's workers run on, one of them is killed (SIGKILL to its raylet,
workers and agents) and a replacement node joins. The trial fails, Tune retries it, and its Ray Train run, named
after the trial and the artifact it builds, resumes from its last checkpoint on the surviving and the new node.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from mlflow.tracking import MlflowClient

from ray_processes import ROOT, LocalCluster

EPOCHS = 12  # the RQ-VAE's epochs 0 … 11


@pytest.fixture
def cluster():
    started = LocalCluster(head_cpus=1)
    try:
        yield started
    finally:
        started.stop()


def _study(folder: Path, dataset: dict) -> Path:
    study = {
        "name": "multinode",
        "description": "two tokenizer trials on Ray Train workers of other nodes",
        "base": {
            "recommender": {"kind": "none"},
            "tokenizer": {"kind": "rqvae", "codebook_sizes": [8, 8], "hidden_dims": [32], "latent_dim": 8,
                          "epochs": EPOCHS},
            "training": {"ray": True, "num_workers": 2, "resources_per_worker": {"CPU": 0, "trainer": 1}},
        },
        "axes": {"tokenizer.latent_dim": {"grid": [8, 16]}},
        "seeds": [0], "metric": "sid/conflict_rate", "mode": "min",
        "search": {"max_failures": 1},
        "report": {"rows": ["tokenizer.latent_dim"], "metrics": ["sid/conflict_rate"], "baseline": None},
        "smoke": dataset,
    }
    path = folder / "multinode.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _latest_checkpoint(train_runs: Path) -> dict | None:
    """The metrics of the latest checkpoint of the first Ray Train run under ``train_runs`` (Ray Train's snapshot)."""
    for snapshot in sorted(train_runs.glob("*/checkpoint_manager_snapshot.json")):
        try:
            state = json.loads(snapshot.read_text())
        except ValueError:  # being written
            continue
        results = state.get("checkpoint_results") or []
        if results:
            return {"run": snapshot.parent.name, **results[-1]["metrics"]}
    return None


def _trial_reports(experiment: Path) -> dict[int, list[dict]]:
    """latent_dim -> every report in the trial's result.json (Tune's record of what the trial reported)."""
    reports = {}
    for folder in (p for p in experiment.iterdir() if (p / "params.json").exists()):
        point = json.loads((folder / "params.json").read_text())
        lines = (folder / "result.json").read_text().splitlines() if (folder / "result.json").exists() else []
        reports.setdefault(point["tokenizer.latent_dim"], []).extend(json.loads(line) for line in lines)
    return reports


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_worker_node_lost_mid_sweep_resumes_training_and_every_trial_finishes_once(cluster, tmp_path, tiny_overrides):
    cluster.add_node("a", {"trainer": 1})
    cluster.add_node("b", {"trainer": 1})
    study = _study(tmp_path, {k: v for k, v in tiny_overrides.items() if k.startswith("dataset.")})
    results = tmp_path / "results"
    experiment = results / "tune" / "multinode-smoke"
    command = [sys.executable, "-m", "cli.main", "sweep", str(study), "--smoke", "--address", cluster.address,
               "--results-dir", str(results), "--max-concurrent", "1", "--no-progress"]
    env = {k: v for k, v in cluster.env.items() if k != "RAY_AUTH_MODE"}  # raysid sends the token to loopback itself
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline, checkpoint = time.monotonic() + 600, None
        while checkpoint is None or checkpoint["epoch"] < 2:  # the event: a trial's workers checkpointed epoch 2
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-5000:]
            assert time.monotonic() < deadline, "no Ray Train checkpoint"
            checkpoint = _latest_checkpoint(experiment / "train")
            time.sleep(0.2)
        victim = next(name for name, address in cluster.nodes.items() if address == checkpoint["node_ips"][0])
        cluster.kill_node(victim)  # the node of rank 0 is lost
        replacement = cluster.add_node("c", {"trainer": 1})
        assert driver.wait(timeout=600) == 0, (tmp_path / "driver.log").read_text()[-5000:]
    output = (tmp_path / "driver.log").read_text()
    assert "2 trials finished" in output, output[-3000:]
    assert 2 <= checkpoint["epoch"] < EPOCHS - 1, checkpoint  # killed mid-training
    killed_address = checkpoint["node_ips"][0]

    trials = pl.read_parquet(results / "multinode-smoke" / "trials.parquet")
    assert sorted(trials["tokenizer.latent_dim"].to_list()) == [8, 16]
    reports = _trial_reports(experiment)
    finals = {dim: [r for r in rows if "stage_keys/result" in r] for dim, rows in reports.items()}
    assert {dim: len(rows) for dim, rows in finals.items()} == {8: 1, 16: 1}  # each trial finished exactly once
    head = {r["ray/node_id"] for rows in finals.values() for r in rows}
    assert len(head) == 1  # both trials (Tune's trainables) ran on the head, the only node with CPUs

    runs = {dim: json.loads(rows[0]["ray/train_runs"]) for dim, rows in finals.items()}
    resumed = [run for dim_runs in runs.values() for run in dim_runs if run["name"] == checkpoint["run"]]
    assert len(resumed) == 1, runs  # the killed run finished in the retried trial, under the same name
    first, second = resumed[0]["groups"]
    assert first["resumed_after"] is None and killed_address in first["node_ips"]
    assert second["resumed_after"] >= checkpoint["epoch"] >= 2  # resumed from its checkpoint, not from scratch
    assert first["epochs"][:3] == [0, 1, 2] and second["epochs"][0] == second["resumed_after"] + 1 > 1
    assert sorted(set(first["epochs"]) | set(second["epochs"])) == list(range(EPOCHS))
    assert second["epochs"][-1] == EPOCHS - 1
    assert killed_address not in second["node_ips"] and replacement in second["node_ips"]
    for group in (g for dim_runs in runs.values() for run in dim_runs for g in run["groups"]):
        assert len(set(group["nodes"])) == 2 and not set(group["nodes"]) & head  # DDP over two other nodes
        assert set(group["node_ips"]) <= {"127.0.0.11", "127.0.0.12", "127.0.0.13"}

    epochs = {dim: [r["epoch"] for r in rows if r.get("stage") == "tokenizer"] for dim, rows in reports.items()}
    assert epochs == {8: list(range(EPOCHS)), 16: list(range(EPOCHS))}  # each epoch reported once

    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    mlflow_runs = client.search_runs([client.get_experiment_by_name("multinode").experiment_id])
    children = [r for r in mlflow_runs if "mlflow.parentRunId" in r.data.tags]
    assert len(mlflow_runs) == 3 and len(children) == 2  # one sweep run, one run per trial
    assert {r.info.status for r in mlflow_runs} == {"FINISHED"}
    assert sorted(r.data.tags.get("raysid.failures", "0") for r in children) == ["0", "1"]  # the retried trial
    for child in children:
        keys = [k for k in child.data.metrics if k.startswith("tokenizer_epoch/")]
        assert keys, child.data.metrics
        for key in keys:
            assert sorted(m.step for m in client.get_metric_history(child.info.run_id, key)) == list(range(EPOCHS))
