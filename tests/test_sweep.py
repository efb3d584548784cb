"""The real sweep: local Ray Tune, a real MLflow SQLite store, Polars report; then a cached re-run."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import polars as pl
import pytest
import ray
import torch
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

import yaml
from cli.main import app
from raysid import provenance
from raysid.config import ConfigError
from raysid.sweep.runner import SweepSettings, run_sweep
from raysid.sweep.space import find_study, parse_study

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_study(tmp_path, tiny_overrides):
    """The shipped musicrec-ratio study with two ratios, two seeds and the tiny sizes as smoke overrides."""
    data = yaml.safe_load(find_study("musicrec-ratio").read_text())
    data["name"] = "tiny-ratio"
    data["axes"]["ratio"]["grid"].pop("2:2")
    data["seeds"] = [0, 1]
    data["smoke"] = tiny_overrides
    path = tmp_path / "tiny-ratio.yaml"
    path.write_text(yaml.safe_dump(data))
    return parse_study(data, str(path))


def test_sweep_runs_on_ray_tracks_mlflow_and_writes_the_report(ray_local, tiny_study, tmp_path, capfd):
    settings = SweepSettings(results_dir=tmp_path / "results", smoke=True, progress=False)
    outcome = run_sweep(tiny_study, settings)
    assert not outcome.failed
    lines = [line for line in capfd.readouterr().out.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in lines] == ["[1/4", "[2/4", "[3/4", "[4/4"]  # without the bar: a line a trial
    assert all(re.fullmatch(r"\[\d/4\] ratio=(1:3|3:1) seed=[01]: done, valid/ndcg@10 \d\.\d{4}, \d+ s into the sweep", line)
               for line in lines), lines
    trials = pl.read_parquet(outcome.report["trials"])
    assert trials.height == 4
    assert sorted(zip(trials["ratio"], trials["seed"])) == [("1:3", 0), ("1:3", 1), ("3:1", 0), ("3:1", 1)]
    assert {"test/hr@10", "test/ndcg@10", "valid/ndcg@10", "popularity/test/ndcg@10", "sid/conflict_rate",
            "config.tokenizer.shared_levels"} <= set(trials.columns)
    assert dict(zip(trials["ratio"], trials["config.tokenizer.shared_levels"])) == {"1:3": 1, "3:1": 3}  # typed
    assert trials["seed"].dtype == pl.Int64 and trials["config.evaluation.ks"].to_list() == ["[5, 10]"] * 4
    head = provenance.collect()
    assert trials["provenance.commit"].to_list() == [head["commit"]] * 4 and head["commit"] != "unknown"
    assert trials["provenance.torch"].to_list() == [torch.__version__] * 4
    record = json.loads(outcome.report["provenance"].read_text())
    assert record["report_made_by"]["commit"] == head["commit"] and record["trials_made_by"][0]["trials"] == 4
    assert record["trials_made_by"][0]["numpy"] == np.__version__ and record["trials_made_by"][0]["threads"] == "1"
    summary = outcome.report["markdown"].read_text()
    assert "1:3" in summary and "3:1" in summary and "popularity" in summary and "| **0." in summary  # the best mean
    assert outcome.report["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"at commit {head['commit'][:10]}" in summary and "provenance.json" in summary
    check_mlflow(outcome.tracking_uri, "tiny-ratio", trials)

    again = run_sweep(tiny_study, settings)  # a finished sweep runs again from the stage cache, without Tune
    assert again.from_cache and again.trials["cached/result"].to_list() == [1.0] * 4
    assert again.trials.select("ratio", "seed").rows() == trials.select("ratio", "seed").rows()  # Tune's order
    merged = trials.join(again.trials, on=["ratio", "seed"], suffix="_again")
    assert (merged["test/ndcg@10"] == merged["test/ndcg@10_again"]).all()
    assert (merged["provenance.platform"] == merged["provenance.platform_again"]).all()  # who made the cached metrics
    check_cached_runs(outcome.tracking_uri, "tiny-ratio", again.trials)
    assert "[4/4] ratio=3:1 seed=1: done (cached), valid/ndcg@10 " in capfd.readouterr().out
    command = [sys.executable, "-m", "cli.main", "sweep", tiny_study.source, "--smoke", "--results-dir",
               str(settings.results_dir), "--no-progress"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "4 trials finished" in done.stdout and "answered from it without starting Ray" in done.stdout
    assert "Ray instance" not in done.stdout + done.stderr  # no "Started a local Ray instance"


def check_cached_runs(uri, name, trials):
    """The sweep answered from the cache has its own sweep run, report attached, and a FINISHED run a trial."""
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id], order_by=["attributes.start_time DESC"])
    parent = next(r for r in runs if r.data.tags.get("raysid.kind") == "sweep")
    assert parent.info.status == "FINISHED"
    assert "summary.md" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["mlflow.runName"] for r in children) == sorted(
        f"ratio={r} seed={s}" for r, s in trials.select("ratio", "seed").rows())
    for child in children:
        point = json.loads(child.data.tags["raysid.point"])
        row = trials.filter((pl.col("ratio") == point["ratio"]) & (pl.col("seed") == point["seed"]))
        assert child.info.status == "FINISHED" and child.data.tags["raysid.cached.result"] == "true"
        assert child.data.metrics["test/ndcg_at_10"] == row["test/ndcg@10"][0]


def check_mlflow(uri, name, trials):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("raysid.kind") == "sweep"]
    assert len(parents) == 1
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert parents[0].data.params["study.seeds"] == "[0, 1]"
    report = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"summary.md", "summary.parquet", "summary.png", "trials.parquet", "provenance.json", "study.json"} <= report
    commit = provenance.collect()["commit"]
    assert parents[0].data.tags["provenance.commit"] == commit and parents[0].data.tags["provenance.ray"] == ray.__version__
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == trials.height
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["provenance.commit"] == commit and child.data.tags["provenance.cpu"] == provenance.cpu_model()
        point = json.loads(child.data.tags["raysid.point"])
        row = trials.filter((pl.col("ratio") == point["ratio"]) & (pl.col("seed") == point["seed"]))
        assert child.data.metrics["test/ndcg_at_10"] == pytest.approx(row["test/ndcg@10"][0])
        assert child.data.params["tokenizer.shared_levels"] == point["ratio"].split(":")[0]
        assert child.data.params["ratio"] == point["ratio"] and child.data.params["seed"] == str(point["seed"])
        assert child.data.tags["mlflow.runName"] == f"ratio={point['ratio']} seed={point['seed']}"
        assert child.data.tags["raysid.cached.result"] == ("true" if row["cached/result"][0] else "false")
        assert not any(key.startswith("cached/") for key in child.data.metrics)  # cache hits are tags
        assert child.data.metrics["time/result_cpu_s"] == row["time/result_cpu_s"][0]  # unrounded
        history = client.get_metric_history(child.info.run_id, "recommender_epoch/train/loss")
        assert len(history) >= 1
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"config.json", "semantic_ids.parquet", "usage.parquet"} <= artifacts
        assert "sid/entropy/s1" in child.data.metrics and "retrieval/hit_at_10" in child.data.metrics


def test_cli_sweep_help_and_bad_study(ray_local):
    runner = CliRunner()
    assert "--smoke" in runner.invoke(app, ["sweep", "--help"]).output
    result = runner.invoke(app, ["sweep", "no-such-study"])
    assert result.exit_code == 2 and "no study named 'no-such-study'" in result.output


def test_optuna_search_with_asha_runs_and_reports(ray_local, tmp_path, tiny_overrides):
    """An Optuna study over a range and a choice, with ASHA on the per-epoch validation metric."""
    data = yaml.safe_load(find_study("musicrec-ratio").read_text())
    data.update(name="tiny-search", seeds=[3], smoke=tiny_overrides,
                axes={"tokenizer.alpha": {"loguniform": [1.0e-3, 1.0e-1]}, "tokenizer.codebook_size": {"choice": [4, 8]}},
                search={"algorithm": "optuna", "num_samples": 3, "scheduler": "asha", "grace_period": 1},
                report={"rows": ["tokenizer.codebook_size"], "metrics": ["test/ndcg@10"], "best": "test/ndcg@10", "top": 3,
                        "importance": ["tokenizer.alpha", "tokenizer.codebook_size"]})
    data["base"]["evaluation"] = {"epoch_users": 20}
    data["base"]["recommender"]["epochs"] = 2
    study = parse_study(data, str(tmp_path / "tiny-search.yaml"))
    outcome = run_sweep(study, SweepSettings(results_dir=tmp_path / "results", smoke=True, progress=False))
    assert not outcome.failed and outcome.trials.height >= 1
    assert outcome.trials.height + len(outcome.stopped) == 3  # ASHA may stop weak trials after grace_period
    assert set(outcome.trials["tokenizer.codebook_size"].to_list()) <= {4, 8}  # numeric axes stay numbers
    alphas = [float(a) for a in outcome.trials["tokenizer.alpha"]]
    assert all(1e-3 <= a <= 1e-1 for a in alphas) and len(set(alphas)) == outcome.trials.height
    assert set(outcome.trials["seed"].to_list()) == {3}
    summary = outcome.report["markdown"].read_text()
    assert f"## Best {outcome.trials.height} trials by valid/ndcg@10" in summary  # chosen on validation, test shown
    assert "| tokenizer.alpha | tokenizer.codebook_size | valid/ndcg@10 | test/ndcg@10 |" in summary
    stored = optuna.load_study(study_name=outcome.optuna_study, storage=outcome.optuna_storage)  # what the dashboard opens
    assert outcome.optuna_storage == f"sqlite:///{tmp_path / 'results' / 'optuna.db'}" and len(stored.trials) == 3
    finished = [t for t in stored.trials if t.user_attrs["outcome"] == "finished"]
    assert sorted(t.params["tokenizer.alpha"] for t in finished) == sorted(outcome.trials["tokenizer.alpha"].to_list())
    by_alpha = dict(zip(outcome.trials["tokenizer.alpha"], outcome.trials["valid/ndcg@10"]))
    assert all(t.value == by_alpha[t.params["tokenizer.alpha"]] for t in finished)
    stopped = [t for t in stored.trials if t.user_attrs["outcome"].startswith("stopped early at epoch")]
    assert len(stopped) == len(outcome.stopped) and all(t.state.name == "COMPLETE" for t in stopped)
    assert f"Counted 3 trials ({len(finished)} finished" in summary  # importance: ASHA-stopped trials too


def test_asha_without_epoch_metric_is_rejected_at_load(tmp_path):
    data = yaml.safe_load(find_study("musicrec-ratio").read_text())
    data.update(axes={"tokenizer.alpha": {"loguniform": [1.0e-3, 1.0e-1]}}, report={"rows": ["tokenizer.alpha"]},
                search={"algorithm": "optuna", "scheduler": "asha"})
    with pytest.raises(ConfigError, match=r"search.scheduler: asha needs valid/ndcg@10 every epoch; set base.evaluation.epoch_users"):
        parse_study(data, "s.yaml")


def test_cli_tokenize_writes_the_quality_report(tmp_path, tiny_overrides):
    data = yaml.safe_load(find_study("musicrec-ratio").read_text())
    data.update(name="tiny-tok", smoke=tiny_overrides)
    path = tmp_path / "tiny-tok.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["tokenize", str(path), "--smoke", "--point", "ratio=3:1", "--seed", "2",
                                      "--results-dir", str(tmp_path / "results")])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "results" / "tokenize" / "tiny-tok" / "ratio=3-1_seed=2"
    report = (folder / "quality.md").read_text()
    for metric in ("sid/cur", "sid/test_conflict_rate", "sid/entropy/s3", "recon/text/cosine", "retrieval/hit@10"):
        assert f"`{metric}`" in report
    assert (folder / "usage.png").read_bytes()[:4] == b"\x89PNG"
    ids = pl.read_parquet(folder / "semantic_ids.parquet")
    assert ids.height == 120 and ids["sid"].n_unique() == 120
    bad = CliRunner().invoke(app, ["tokenize", str(path), "--point", "ratios=1:3"])
    assert bad.exit_code == 2 and "not axes of tiny-tok" in bad.output


def test_a_rerun_after_an_interruption_keeps_the_finished_trials(ray_local, tiny_study, tmp_path):
    """A trial that finished before the sweep died is answered from the stage cache, not trained again."""
    from raysid.cache import ArtifactStore
    from raysid.pipeline.trial import run_trial

    settings = SweepSettings(results_dir=tmp_path / "results", smoke=True, progress=False)
    finished = {"ratio": "3:1", "seed": 1}
    before = run_trial(tiny_study.resolve(finished, smoke=True), ArtifactStore(settings.cache_root))
    outcome = run_sweep(tiny_study, settings)
    cached = {(r["ratio"], r["seed"]): r["cached/result"] for r in outcome.trials.iter_rows(named=True)}
    assert cached == {("1:3", 0): 0.0, ("1:3", 1): 0.0, ("3:1", 0): 0.0, ("3:1", 1): 1.0}
    row = outcome.trials.filter((pl.col("ratio") == "3:1") & (pl.col("seed") == 1))
    assert row["test/ndcg@10"][0] == before["test/ndcg@10"]


def test_a_failing_trial_is_retried_then_reported_and_the_study_goes_on(ray_local, tmp_path, tiny_overrides):
    """A point whose identifier table is missing raises inside its trial: 1 + max_failures attempts, then FAILED."""
    missing = tmp_path / "no-such-table.json"
    data = {
        "name": "tiny-failing", "base": {"recommender": {"kind": "none"}},
        "axes": {"ids": {"grid": {"kmeans": {"tokenizer": {"kind": "kmeans", "codebook_size": 8}},
                                  "missing-table": {"tokenizer": {"kind": "external", "path": str(missing)}}}}},
        "seeds": [0], "metric": "sid/conflict_rate", "mode": "min", "search": {"max_failures": 2},
        "report": {"rows": ["ids"], "metrics": ["sid/conflict_rate"], "best": "sid/conflict_rate"},
        "smoke": {k: v for k, v in tiny_overrides.items() if k.startswith("dataset.")},
    }
    path = tmp_path / "tiny-failing.yaml"
    path.write_text(yaml.safe_dump(data))
    results = tmp_path / "results"
    result = CliRunner().invoke(app, ["sweep", str(path), "--smoke", "--results-dir", str(results), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "1 trials failed" in result.output and "missing-table" in result.output
    assert f"identifiertable{missing}:cannotreadthefile" in "".join(result.output.split())  # rich wraps lines

    trials = pl.read_parquet(results / "tiny-failing-smoke" / "trials.parquet")  # the study went on
    assert trials["ids"].to_list() == ["kmeans"] and trials["sid/conflict_rate"][0] >= 0.0
    errors = list((results / "tune" / "tiny-failing-smoke").glob("*/error.txt"))
    assert len(errors) == 1
    attempts = [line for line in errors[0].read_text().splitlines() if line.startswith("Failure # ")]
    assert [a.split(" (")[0] for a in attempts] == ["Failure # 1", "Failure # 2", "Failure # 3"]  # 1 try + 2 retries

    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny-failing").experiment_id])
    children = {json.loads(r.data.tags["raysid.point"])["ids"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert set(children) == {"kmeans", "missing-table"}  # the retries stayed in one run
    failed = children["missing-table"]
    assert failed.info.status == "FAILED" and failed.data.tags["raysid.failures"] == "3"
    assert "cannot read the file" in failed.data.tags["raysid.error"]
    assert children["kmeans"].info.status == "FINISHED"
    parent = next(r for r in runs if r.data.tags.get("raysid.kind") == "sweep")
    assert parent.info.status == "FAILED"
