"""MLflow adapter: one parent run per sweep, one child run per trial, written from the Tune driver.

All writes happen in the driver process (a Tune callback), so a local SQLite store has a single writer and
trials stay free of MLflow code.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray import tune

from raysid.config import flatten
from raysid.pipeline import trial_config_dict
from raysid.sweep.space import Study

PARAM_LIMIT = 6000  # MLflow's maximum param value length


def default_tracking_uri(results_dir: Path) -> str:
    """The local store that needs no server: ``sqlite:///<results_dir>/mlflow.db``."""
    return f"sqlite:///{Path(results_dir).resolve() / 'mlflow.db'}"


def experiment_id(client: MlflowClient, name: str, artifact_root: Path) -> str:
    """The id of experiment ``name``, created with its artifacts under artifact_root if new."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=(Path(artifact_root) / name).resolve().as_uri())


class MLflowTracking(tune.Callback):
    """Tune callback logging the sweep as a parent run and every trial as a nested child run."""

    def __init__(self, tracking_uri: str, study: Study, smoke: bool, artifact_root: Path):
        self.tracking_uri, self.study, self.smoke, self.artifact_root = tracking_uri, study, smoke, artifact_root
        self.client: MlflowClient | None = None
        self.parent_run_id = ""
        self.trial_runs: dict[str, str] = {}
        self.steps: dict[tuple[str, str], int] = {}

    def setup(self, **info: Any) -> None:
        self.client = MlflowClient(self.tracking_uri)
        self.experiment_id = experiment_id(self.client, self.study.name, self.artifact_root)
        run = self.client.create_run(
            self.experiment_id, run_name=f"{self.study.name}{' (smoke)' if self.smoke else ''} {time.strftime('%Y-%m-%d %H:%M:%S')}",
            tags={"raysid.study": self.study.name, "raysid.kind": "sweep", "raysid.smoke": str(self.smoke)},
        )
        self.parent_run_id = run.info.run_id
        params = {"study.source": self.study.source, "study.metric": self.study.metric, "study.mode": self.study.mode,
                  "study.seeds": list(self.study.seeds), "study.axes": [a.name for a in self.study.axes]}
        self._log_params(self.parent_run_id, params)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.trial_runs:  # a retried trial keeps its run
            return
        point = point_of(trial.config)
        run = self.client.create_run(
            self.experiment_id, run_name=trial_label(point),
            tags={"mlflow.parentRunId": self.parent_run_id, "raysid.study": self.study.name,
                  "raysid.trial_id": trial.trial_id, "raysid.point": json.dumps(point, sort_keys=True)},
        )
        self.trial_runs[trial.trial_id] = run.info.run_id
        config = trial_config_dict(self.study.resolve(point, self.smoke))
        self._log_params(run.info.run_id, flatten(config))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_id = self.trial_runs[trial.trial_id]
        if "stage" in result:  # a per-epoch report of one stage
            metrics = {k: v for k, v in result.items() if k.startswith(f"{result['stage']}/") or k.startswith(("train/", "valid/"))}
            self._log_metrics(run_id, metrics, step=int(result["epoch"]), prefix=f"{result['stage']}_epoch/")
            return
        self._log_metrics(run_id, final_metrics(result), step=0)
        folder = Path(result.get("artifact_dir", ""))
        for name in ("config.json", "semantic_ids.parquet", "usage.parquet"):
            if (folder / name).exists():
                self.client.log_artifact(run_id, str(folder / name))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.client.set_terminated(self.trial_runs[trial.trial_id], "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.trial_runs:
            self.client.set_tag(self.trial_runs[trial.trial_id], "raysid.error", str(trial.error_file or "failed"))
            self.client.set_terminated(self.trial_runs[trial.trial_id], "FAILED")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        failed = any(t.status == "ERROR" for t in trials)
        self.client.set_terminated(self.parent_run_id, "FAILED" if failed else "FINISHED")

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "client": None}

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        entries = [Param(key, str(value)[:PARAM_LIMIT]) for key, value in params.items()]
        for start in range(0, len(entries), 100):
            self.client.log_batch(run_id, params=entries[start:start + 100])

    def _log_metrics(self, run_id: str, metrics: dict[str, Any], step: int, prefix: str = "") -> None:
        now = int(time.time() * 1000)
        entries = [Metric(_metric_key(prefix + k), float(v), now, step) for k, v in metrics.items() if _is_number(v)]
        for start in range(0, len(entries), 500):
            self.client.log_batch(run_id, metrics=entries[start:start + 500], tags=[RunTag("raysid.logged", "1")])


def point_of(config: dict[str, Any]) -> dict[str, Any]:
    """The study point (axis values and seed) of a Tune trial config."""
    return {key: value for key, value in config.items() if not key.startswith("_")}


def trial_label(point: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in point.items())


def final_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The numeric metrics of a trial's final report (Tune's own bookkeeping keys dropped)."""
    skip = {"training_iteration", "timestamp", "time_this_iter_s", "time_total_s", "pid", "time_since_restore",
            "iterations_since_restore", "done", "epoch"}
    return {k: float(v) for k, v in result.items() if k not in skip and "/" in k and _is_number(v)}


def _metric_key(key: str) -> str:
    return key.replace("@", "_at_")  # MLflow metric names allow letters, digits, _ - . space / only


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
