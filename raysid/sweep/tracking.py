"""MLflow adapter: one parent run per sweep, one child run per trial, written from the Tune driver.

All writes happen in the driver process (a Tune callback), so a local SQLite store has a single writer and
trials stay free of MLflow code.

The study's experiment is the study's dashboard: it is tagged as model training
(``mlflow.experimentKind=custom_model_development``), its primary metric is the report's headline metric (the
first chart), and it carries a saved view ``raysid`` (experiment tag ``mlflow.sharedViewState.raysid``, listed
under "Views") whose runs table shows the axes, the seed and the study's metric columns: MLflow 3.17's UI
otherwise opens every experiment with its fixed default columns (Source, Models, Dataset) and keeps later
choices in the browser's local storage only. ``view_url`` gives the address that opens it in the UI's
model-training mode (the UI takes its "GenAI | Model training" mode from the URL or the browser, where it
defaults to GenAI and calls runs "Evaluations"). A trial run is named by its grid point (``ratio=2:2 seed=1``) and has the axis values
and seed as params beside its config, its metrics unrounded, and its stage cache hits as tags
(``raysid.cached.<stage>``). The sweep run gets the report once it is written (``log_report``) and, where
psutil is installed, MLflow's system metrics (CPU, memory, disk, network; GPUs through pynvml).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import polars as pl
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from ray import tune

from raysid import provenance
from raysid.cache import CacheWarning, open_store
from raysid.config import flatten
from raysid.reporting.report import COST_COLUMNS
from raysid.reporting.summary import best_rows
from raysid.trial_config import trial_config_dict
from raysid.sweep import interrupt
from raysid.sweep.space import Study

PARAM_LIMIT = 6000  # MLflow's maximum param value length
SEARCH_LIMIT = 50_000  # runs one search returns (MLflow's maximum page)
EXPERIMENT_KIND = "custom_model_development"  # MLflow 3.17's kind for model training (vs genai_development)
VIEW = "raysid"  # id of the saved view raysid keeps on each study's experiment
VIEW_TAG = f"mlflow.sharedViewState.{VIEW}"  # where MLflow's UI keeps saved views
PRIMARY_METRIC_TAG = "mlflow.experiment.primaryMetric.name"  # the UI's first chart
CACHED = "cached/"  # a trial's stage cache hits (1.0/0.0 in its result): tags, not metrics


def default_tracking_uri(results_dir: Path) -> str:
    """The local store that needs no server: ``sqlite:///<results_dir>/mlflow.db``."""
    return f"sqlite:///{Path(results_dir).resolve() / 'mlflow.db'}"


def experiment_id(client: MlflowClient, name: str, artifact_root: str | Path | None) -> str:
    """The id of experiment ``name``, created with its artifacts under artifact_root (a path or URI) if new."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_location(artifact_root, name))


def describe_experiment(client: MlflowClient, experiment: str, study: Study) -> None:
    """Tag the study's experiment as model training, with its primary metric, its saved view and (once) a note."""
    tags = {"mlflow.experimentKind": EXPERIMENT_KIND, PRIMARY_METRIC_TAG: _metric_key(study.report.best),
            VIEW_TAG: json.dumps(study_view(study))}
    if "mlflow.note.content" not in client.get_experiment(experiment).tags:  # a note a person edited stays
        tags["mlflow.note.content"] = (f"{study.description.strip()}\n\nOne run per `raysid sweep {study.name}` with "
                                       "a nested run per trial, named by its grid point. Open the view "
                                       f"'{VIEW}' (Views) for the study's metric columns.")
    for key, value in tags.items():
        client.set_experiment_tag(experiment, key, value)


def study_view(study: Study) -> dict[str, Any]:
    """A saved view of MLflow's runs table (envelope and state as its UI writes them): axes, seed, metrics."""
    metrics = dict.fromkeys((study.metric, *study.report.columns, *(COST_COLUMNS if study.report.cost else ())))
    columns = [f"params.`{name}`" for name in (*(axis.name for axis in study.axes), "seed")]
    columns += [f"metrics.`{_metric_key(metric)}`" for metric in metrics]
    now = int(time.time() * 1000)
    return {"name": f"{study.name}: metrics by trial", "createdAt": now, "updatedAt": now,
            "state": json.dumps({"selectedColumns": columns})}


def view_url(server: str, experiment: str) -> str:
    """The address of the study's runs table in raysid's saved view, on the MLflow UI at ``server``, in the UI's
    model-training mode (MLflow 3.17 takes it from this URL or the browser, not from the experiment's kind)."""
    return f"{server.rstrip('/')}/#/experiments/{experiment}/runs?viewStateShareKey={VIEW}&workflowType=machine_learning"


def study_views(tracking_uri: str) -> list[tuple[str, str]]:
    """(name, experiment id) of every study experiment in the store that has raysid's saved view; none when
    the store is a local SQLite file that does not exist yet (it is not created)."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).exists():
        return []
    experiments = MlflowClient(tracking_uri).search_experiments(view_type=ViewType.ACTIVE_ONLY)
    return [(e.name, e.experiment_id) for e in experiments if VIEW_TAG in e.tags]


def retire_empty_default(client: MlflowClient) -> None:
    """Delete MLflow's "Default" experiment when it has no run (raysid never logs there): the UI then lists
    only the studies."""
    try:
        default = client.get_experiment("0")
    except MlflowException:
        return
    if default.name == "Default" and default.lifecycle_stage == "active" and \
            not client.search_runs(["0"], max_results=1, run_view_type=ViewType.ALL):
        client.delete_experiment("0")


def _artifact_location(root: str | Path | None, name: str) -> str | None:
    if root is None:
        return None  # the tracking server's own artifact root
    if "://" in str(root):
        return f"{str(root).rstrip('/')}/{name}"
    return (Path(root) / name).resolve().as_uri()


class MLflowTracking(tune.Callback):
    """Tune callback logging the sweep as a parent run and every trial as a nested child run.

    Runs carry the sweep's id (tag ``raysid.sweep_id``) and each trial's key (``raysid.trial_key``): the study
    point as stable JSON for a grid study, else Tune's trial id (a restored experiment may not have saved the
    id of a trial that had started, but its point is the same). A resumed sweep finds its parent run and the
    run of every trial it had started by these, so no trial gets a second run, and it skips the steps a run
    already logged (tag ``raysid.logged_steps``: "stage:epoch" and "final"), so no metric step is logged
    twice. A trial that fails is retried by Tune in the same run (tag ``raysid.failures``) and ends FAILED
    with its error (tag ``raysid.error``) once its retries are spent. An interrupted sweep (Ctrl-C, SIGTERM)
    ends its unfinished trial runs and the sweep run KILLED with tag ``raysid.status=interrupted``. A sweep
    whose driver died (kill -9) and that is never resumed has its RUNNING runs ended the same way, tagged
    ``raysid.superseded_by``, by the next sweep of the study into the same results folder's own store.
    """

    def __init__(self, tracking_uri: str, study: Study, smoke: bool, artifact_root: str | Path | None,
                 sweep_id: str = "", cache: str | None = None, owns_store: bool = False, search: tuple[str, str] = ("", "")):
        self.tracking_uri, self.study, self.smoke, self.artifact_root = tracking_uri, study, smoke, artifact_root
        self.search = search  # a sampled search's stored Optuna study: (storage URL, study name)
        self.monitor: Any = None  # MLflow's system metrics monitor of the sweep run (with psutil)
        # the store is the locked results folder's own: a RUNNING run of another sweep there lost its driver
        self.owns_store = owns_store
        self.sweep_id = sweep_id or uuid.uuid4().hex
        self.cache = cache  # the stage cache, where trials' result artifacts are read from (None: artifact_dir)
        self.client: MlflowClient | None = None
        self.parent_run_id = ""
        self.trial_runs: dict[str, str] = {}  # trial key -> run id
        self.logged: dict[str, set[str]] = {}  # run id -> steps already logged
        self.interrupted_runs: set[str] = set()  # runs an interrupted sweep ended KILLED

    def trial_key(self, trial: Any) -> str:
        """The study point (stable JSON) of a grid trial run once per point, else Tune's trial id."""
        if self.study.search.algorithm == "grid" and self.study.search.num_samples == 1:
            return json.dumps(point_of(trial.config), sort_keys=True)
        return trial.trial_id

    def setup(self, **info: Any) -> None:
        self.client = MlflowClient(self.tracking_uri)
        self.experiment_id = experiment_id(self.client, self.study.name, self.artifact_root)
        describe_experiment(self.client, self.experiment_id, self.study)
        if self.owns_store:
            retire_empty_default(self.client)
        runs = self.client.search_runs([self.experiment_id], f"tags.`raysid.sweep_id` = '{self.sweep_id}'",
                                       max_results=SEARCH_LIMIT)
        parents = [r.info.run_id for r in runs if r.data.tags.get("raysid.kind") == "sweep"]
        trial_runs = [r for r in runs if "raysid.trial_id" in r.data.tags]
        self.trial_runs = {r.data.tags.get("raysid.trial_key", r.data.tags["raysid.trial_id"]): r.info.run_id for r in trial_runs}
        self.logged = {r.info.run_id: set(json.loads(r.data.tags.get("raysid.logged_steps", "[]"))) for r in trial_runs}
        self.interrupted_runs = {r.info.run_id for r in runs if r.data.tags.get("raysid.status") == "interrupted"}
        if parents:  # a resumed sweep
            self.parent_run_id = parents[0]
            self._restart(self.parent_run_id)
            self.client.set_tag(self.parent_run_id, "raysid.resumed", time.strftime("%Y-%m-%d %H:%M:%S"))
            self._start_system_metrics(resume=True)
            return
        if self.owns_store:
            self._end_abandoned()
        run = self.client.create_run(
            self.experiment_id, run_name=f"{self.study.name}{' (smoke)' if self.smoke else ''} {time.strftime('%Y-%m-%d %H:%M:%S')}",
            tags={"raysid.study": self.study.name, "raysid.kind": "sweep", "raysid.smoke": str(self.smoke),
                  "raysid.sweep_id": self.sweep_id, **provenance.tagged(provenance.collect())},
        )
        self.parent_run_id = run.info.run_id
        params = {"study.source": self.study.source, "study.metric": self.study.metric, "study.mode": self.study.mode,
                  "study.seeds": list(self.study.seeds_for(self.smoke)), "study.axes": [a.name for a in self.study.axes]}
        if self.search[1]:
            params |= {"optuna.storage": self.search[0], "optuna.study": self.search[1]}
        self._log_params(self.parent_run_id, params)
        self._start_system_metrics(resume=False)

    def _start_system_metrics(self, resume: bool) -> None:
        """MLflow's system metrics on the sweep run, sampled in this process, when psutil is installed."""
        if importlib.util.find_spec("psutil") is None:
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self.monitor = SystemMetricsMonitor(self.parent_run_id, resume_logging=resume, tracking_uri=self.tracking_uri)
        self.monitor.start()

    def _stop_system_metrics(self) -> None:
        if self.monitor is not None:
            self.monitor.finish()
            self.monitor = None

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        key = self.trial_key(trial)
        if key in self.trial_runs:  # a retried trial, or one a resumed sweep starts again
            self._restart(self.trial_runs[key])
            self.client.set_tag(self.trial_runs[key], "raysid.trial_id", trial.trial_id)
            return
        point = point_of(trial.config)
        run = self.client.create_run(
            self.experiment_id, run_name=trial_label(point),
            tags={"mlflow.parentRunId": self.parent_run_id, "raysid.study": self.study.name,
                  "raysid.sweep_id": self.sweep_id, "raysid.trial_id": trial.trial_id, "raysid.trial_key": key,
                  "raysid.point": json.dumps(point, sort_keys=True)},
        )
        self.trial_runs[key] = run.info.run_id
        self.logged[run.info.run_id] = set()
        config = trial_config_dict(self.study.resolve(point, self.smoke))
        self._log_params(run.info.run_id, flatten(config) | point)  # the axis values and seed as params too

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_id = self.trial_runs[self.trial_key(trial)]
        if "stage" in result:  # a per-epoch report of one stage
            metrics = {k: v for k, v in result.items() if k.startswith(f"{result['stage']}/") or k.startswith(("train/", "valid/"))}
            self._log_metrics(run_id, metrics, step=int(result["epoch"]), prefix=f"{result['stage']}_epoch/",
                              step_key=f"{result['stage']}:{int(result['epoch'])}")
            return
        if result.get("cache/repairs"):  # the trial's own CacheWarning went to its worker's log only
            warnings.warn(str(result["cache/repairs"]), CacheWarning, stacklevel=2)
        metrics = {k: v for k, v in final_metrics(result).items() if not k.startswith(CACHED)}
        if not self._log_metrics(run_id, metrics, step=0, step_key="final"):
            return  # a resumed trial's final metrics and artifacts are in its run already
        tags = [RunTag(k, str(v)) for k, v in result.items() if k.startswith(provenance.PREFIX)]  # who made the metrics
        tags += [RunTag(f"raysid.cached.{k[len(CACHED):]}", str(bool(v)).lower()) for k, v in result.items() if k.startswith(CACHED)]
        if tags:
            self.client.log_batch(run_id, tags=tags)
        folder = self._result_folder(result)
        for name in ("config.json", "semantic_ids.parquet", "usage.parquet"):
            if folder is not None and (folder / name).exists():
                self.client.log_artifact(run_id, str(folder / name))

    def _result_folder(self, result: dict) -> Path | None:
        """The trial's result artifact, from the stage cache by key (any node's trial, any store)."""
        if self.cache and "stage_keys/result" in result:
            return open_store(self.cache).local("result", str(result["stage_keys/result"]))
        return Path(result["artifact_dir"]) if "artifact_dir" in result else None

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.client.set_terminated(self.trial_runs[self.trial_key(trial)], "FINISHED")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.trial_key(trial) in self.trial_runs:
            self._tag_failure(self.trial_runs[self.trial_key(trial)], trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.trial_key(trial) in self.trial_runs:
            self._tag_failure(self.trial_runs[self.trial_key(trial)], trial)
            self.client.set_terminated(self.trial_runs[self.trial_key(trial)], "FAILED")

    def _tag_failure(self, run_id: str, trial: Any) -> None:
        self.client.set_tag(run_id, "raysid.failures", str(trial.num_failures))
        self.client.set_tag(run_id, "raysid.error", error_summary(trial.error_file))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._stop_system_metrics()
        if interrupt.received():  # Tune marked the trials it stopped TERMINATED: ask MLflow what is still running
            for run_id in self.trial_runs.values():
                if self.client.get_run(run_id).info.status == "RUNNING":  # the resumed sweep sets it RUNNING again
                    self._end_interrupted(run_id)
            self._end_interrupted(self.parent_run_id)
            return
        unfinished = [t for t in trials if t.status not in ("TERMINATED", "ERROR")]
        for trial in unfinished:
            if self.trial_key(trial) in self.trial_runs:
                self.client.set_terminated(self.trial_runs[self.trial_key(trial)], "KILLED")
        failed = any(t.status == "ERROR" for t in trials)
        self.client.set_terminated(self.parent_run_id, "KILLED" if unfinished else "FAILED" if failed else "FINISHED")

    def _restart(self, run_id: str) -> None:
        """A run an earlier driver started runs again (its interruption tags go)."""
        self.client.update_run(run_id, status="RUNNING")
        if run_id in self.interrupted_runs:
            self.interrupted_runs.discard(run_id)
            for tag in ("raysid.status", "raysid.signal"):
                self.client.delete_tag(run_id, tag)

    def _end_abandoned(self) -> None:
        """End KILLED, tagged interrupted, the runs an earlier sweep of this study left RUNNING: its driver died
        (kill -9, a crash) and this new sweep, started without --resume, replaces its Tune state."""
        runs = self.client.search_runs([self.experiment_id], "attributes.status = 'RUNNING'", max_results=SEARCH_LIMIT)
        for run in runs:
            if run.data.tags.get("raysid.sweep_id") != self.sweep_id:
                self.client.log_batch(run.info.run_id, tags=[
                    RunTag("raysid.status", "interrupted"), RunTag("raysid.signal", "none: the driver died"),
                    RunTag("raysid.superseded_by", self.sweep_id)])
                self.client.set_terminated(run.info.run_id, "KILLED")

    def _end_interrupted(self, run_id: str) -> None:
        self.client.log_batch(run_id, tags=[RunTag("raysid.status", "interrupted"), RunTag("raysid.signal", interrupt.received())])
        self.client.set_terminated(run_id, "KILLED")

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "client": None, "monitor": None}

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        entries = [Param(key, str(value)[:PARAM_LIMIT]) for key, value in params.items()]
        for start in range(0, len(entries), 100):
            self.client.log_batch(run_id, params=entries[start:start + 100])

    def _log_metrics(self, run_id: str, metrics: dict[str, Any], step: int, step_key: str, prefix: str = "") -> bool:
        """Log one step of a run unless the run has it already (a resumed trial); False when skipped."""
        logged = self.logged.setdefault(run_id, set())
        if step_key in logged:
            return False
        logged.add(step_key)
        now = int(time.time() * 1000)
        entries = [Metric(_metric_key(prefix + k), float(v), now, step) for k, v in metrics.items() if _is_number(v)]
        steps = RunTag("raysid.logged_steps", json.dumps(sorted(logged)))
        for start in range(0, max(len(entries), 1), 500):
            self.client.log_batch(run_id, metrics=entries[start:start + 500], tags=[RunTag("raysid.logged", "1"), steps])
        return True


def log_report(tracking_uri: str, study: Study, record: dict[str, Any], paths: dict[str, Path],
               trials: pl.DataFrame) -> str:
    """Give the sweep run of ``record`` (its sweep id and smoke flag) the report: every file of ``paths``
    (summary.md, summary.parquet, trials.parquet, the plots, provenance.json), the resolved study
    (``study.json``) and, as metrics, the best group's means (``best_mean/<metric>``, tag
    ``raysid.best_group``); the run's id."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(study.name)
    runs = client.search_runs([experiment.experiment_id], f"tags.`raysid.sweep_id` = '{record['sweep_id']}' and "
                              "tags.`raysid.kind` = 'sweep'", max_results=1)
    run_id = runs[0].info.run_id
    for path in paths.values():
        client.log_artifact(run_id, str(path))
    client.log_dict(run_id, resolved_study(study, bool(record.get("smoke"))), "study.json")
    summary = pl.read_parquet(paths["summary"])
    best = best_rows(summary, study.report)
    if best:
        row = summary.row(best[0], named=True)
        now = int(time.time() * 1000)
        metrics = [Metric(f"best_mean/{_metric_key(m)}", float(row[f"{m}/mean"]), now, 0)
                   for m in study.report.columns if _is_number(row[f"{m}/mean"])]
        client.log_batch(run_id, metrics=metrics, tags=[RunTag("raysid.best_group", str(row["group"]))])
    client.log_metric(run_id, "trials", float(trials.height))
    return run_id


def resolved_study(study: Study, smoke: bool) -> dict[str, Any]:
    """The study as the sweep ran it: every field (``extends:`` and ``--set`` applied), the seeds used and the
    resolved config of its first point."""
    return {**dataclasses.asdict(study), "smoke_run": smoke, "seeds_used": list(study.seeds_for(smoke)),
            "first_point": trial_config_dict(study.resolve(study.first_point(), smoke))}


def error_summary(error_file: str | None, limit: int = 2000) -> str:
    """The last lines of a trial's Tune error file (the exception, after Ray's traceback)."""
    if not error_file or not Path(error_file).exists():
        return "failed (no error file)"
    lines = [line for line in Path(error_file).read_text(errors="replace").splitlines() if line.strip()]
    return "\n".join(lines[-3:])[-limit:]


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
