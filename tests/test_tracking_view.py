"""The study's MLflow experiment as a dashboard, on a real SQLite store (no Ray): experiment kind, saved view,
no empty Default experiment, the seeds a smoke run used, system metrics, and the report on the sweep run."""

import dataclasses
import json
import time

import polars as pl
import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from raysid.reporting.report import write_report
from raysid.reporting.summary import ReportLayout
from raysid.sweep.space import load_study
from raysid.sweep.tracking import VIEW_TAG, MLflowTracking, log_report, view_url


@pytest.fixture
def sweep_run(tmp_path, monkeypatch):
    """The sweep run of a smoke sweep of musicrec-ratio, set up in a fresh store raysid owns."""
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking = MLflowTracking(uri, load_study("musicrec-ratio"), smoke=True, artifact_root=tmp_path / "artifacts",
                              sweep_id="s1", owns_store=True)
    tracking.setup()
    yield tracking, MlflowClient(uri)
    tracking.on_experiment_end(trials=[])


def test_the_experiment_opens_as_model_training_with_the_studys_columns(sweep_run):
    tracking, client = sweep_run
    experiment = client.get_experiment(tracking.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.tags["mlflow.experiment.primaryMetric.name"] == "test/ndcg_at_10"
    view = json.loads(experiment.tags[VIEW_TAG])  # the envelope MLflow's UI reads: name, createdAt, state
    assert isinstance(view["name"], str) and isinstance(view["createdAt"], int)
    columns = json.loads(view["state"])["selectedColumns"]
    assert columns[:2] == ["params.`ratio`", "params.`seed`"]
    assert {"metrics.`valid/ndcg_at_10`", "metrics.`test/ndcg_at_10`", "metrics.`sid/cur`"} <= set(columns)
    assert view_url("http://127.0.0.1:5000/", tracking.experiment_id).endswith(
        f"/#/experiments/{tracking.experiment_id}/runs?viewStateShareKey=raysid&workflowType=machine_learning")
    active = [e.name for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    assert active == ["musicrec-ratio"]  # MLflow's empty Default experiment is gone


def test_the_sweep_run_records_the_seeds_it_used_and_system_metrics(sweep_run):
    tracking, client = sweep_run
    run = client.get_run(tracking.parent_run_id)
    assert run.data.params["study.seeds"] == "[0]"  # the smoke seeds, not the study's [0, 1, 2]
    deadline = time.monotonic() + 120  # sampled every 0.2 s here: the first sample lands well within this
    while not any(key.startswith("system/") for key in client.get_run(tracking.parent_run_id).data.metrics):
        assert time.monotonic() < deadline, "no system metrics were logged on the sweep run"
        time.sleep(0.2)
    metrics = client.get_run(tracking.parent_run_id).data.metrics
    assert 0 <= metrics["system/cpu_utilization_percentage"] <= 100


def test_the_report_goes_onto_the_sweep_run(sweep_run, tmp_path):
    tracking, client = sweep_run
    trials = pl.DataFrame({"ratio": ["1:3", "1:3", "3:1", "3:1"], "seed": [0, 1, 0, 1],
                           "valid/ndcg@10": [0.2, 0.3, 0.1, 0.1], "test/ndcg@10": [0.25, 0.35, 0.05, 0.15]})
    layout = ReportLayout(rows=("ratio",), metrics=("test/ndcg@10",), best="test/ndcg@10", baseline=None)
    study = dataclasses.replace(tracking.study, report=layout)
    paths = write_report(trials, layout, tmp_path / "report")
    run_id = log_report(tracking.tracking_uri, study, {"sweep_id": "s1", "smoke": True}, paths, trials)
    assert run_id == tracking.parent_run_id
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"summary.md", "summary.parquet", "trials.parquet", "summary.png", "study.json"} <= artifacts
    run = client.get_run(run_id)
    assert run.data.metrics["best_mean/test/ndcg_at_10"] == pytest.approx((0.25 + 0.35) / 2)
    assert run.data.tags["raysid.best_group"] == "1:3" and run.data.metrics["trials"] == 4
    resolved = json.loads(open(client.download_artifacts(run_id, "study.json", str(tmp_path))).read())
    assert resolved["seeds_used"] == [0] and resolved["first_point"]["tokenizer"]["total_levels"] == 4
