"""Ray Tune adapter: a study becomes a Tune experiment whose trials call the pure ``run_trial``."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import polars as pl
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from raysid.cache import ArtifactStore
from raysid.config import flatten
from raysid.pipeline import TrialConfig, run_trial, trial_config_dict
from raysid.results import write_report
from raysid.sweep.progress import SweepProgress
from raysid.sweep.space import Axis, Study
from raysid.sweep.tracking import MLflowTracking, default_tracking_uri, final_metrics, point_of


TRAIN_DRIVER_CPUS = 0.5  # a trial that drives a TorchTrainer (Ray rejects 0)


@dataclass(frozen=True)
class SweepSettings:
    """Where a sweep runs and writes; every default is local and needs no server."""

    results_dir: Path = Path("results")  # report in <results_dir>/<study>/, stores beside it
    cache_dir: Path | None = None  # stage artifact store; default <results_dir>/cache
    tracking_uri: str | None = None  # MLflow store; default sqlite:///<results_dir>/mlflow.db
    address: str | None = None  # Ray cluster address; None starts (or reuses) a local Ray
    smoke: bool = False  # apply the study's smoke overrides
    max_concurrent: int | None = None  # overrides search.max_concurrent
    progress: bool = True  # show the progress bar

    @property
    def cache_root(self) -> Path:
        return (self.cache_dir or Path(self.results_dir) / "cache").resolve()

    @property
    def tracking(self) -> str:
        return self.tracking_uri or default_tracking_uri(self.results_dir)


@dataclass
class SweepOutcome:
    study: Study
    trials: pl.DataFrame
    report: dict[str, Path]
    tracking_uri: str
    wall_seconds: float
    concurrency: int
    failed: list[str] = field(default_factory=list)  # trials that raised (after their retries)
    stopped: list[str] = field(default_factory=list)  # trials a scheduler (ASHA) stopped early


def trainable(point: dict[str, Any], study: Study, smoke: bool, cache_root: str, report_epochs: bool) -> None:
    """Tune function trainable: resolve the point, run the trial, report epochs and final metrics."""
    config = study.resolve(point_of(point), smoke)

    def on_epoch(stage: str, epoch: int, values: dict[str, float]) -> None:
        if report_epochs or study.metric in values:
            tune.report({**values, "stage": stage, "epoch": epoch})

    metrics = run_trial(config, ArtifactStore(cache_root), on_epoch)
    tune.report(metrics)


def param_space(study: Study, smoke: bool) -> dict[str, Any]:
    """Tune's param space: grid axes and seeds as grid_search, or Optuna-samplable domains."""
    seeds = study.seeds_for(smoke)
    if study.search.algorithm == "grid":
        space = {axis.name: tune.grid_search(list(axis.values)) for axis in study.axes}
        return space | {"seed": tune.grid_search(list(seeds))}
    return {axis.name: _domain(axis) for axis in study.axes} | {"seed": seeds[0]}


def _domain(axis: Axis) -> Any:
    low, high = (axis.values + (None, None))[:2]
    return {
        "grid": lambda: tune.choice(list(axis.values)),
        "choice": lambda: tune.choice(list(axis.values)),
        "uniform": lambda: tune.uniform(low, high),
        "loguniform": lambda: tune.loguniform(low, high),
        "int": lambda: tune.randint(int(low), int(high) + 1),
    }[axis.kind]()


def tune_config(study: Study, max_concurrent: int) -> tune.TuneConfig:
    """Search algorithm and scheduler from the study (both optimise the study's metric)."""
    search_alg, scheduler = None, None
    if study.search.algorithm == "optuna":
        sampler = optuna.samplers.TPESampler(seed=study.seeds[0])
        search_alg = OptunaSearch(metric=study.metric, mode=study.mode, sampler=sampler)
    if study.search.scheduler == "asha":
        scheduler = ASHAScheduler(metric=study.metric, mode=study.mode, grace_period=study.search.grace_period)
    return tune.TuneConfig(
        search_alg=search_alg, scheduler=scheduler, num_samples=study.search.num_samples,
        max_concurrent_trials=max_concurrent, reuse_actors=True,
    )


def ensure_ray(address: str | None) -> None:
    """Connect to ``address`` or start a local Ray bound to loopback, once per process."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")


def trial_resources(config: TrialConfig) -> dict[str, float]:
    """A trial's own CPUs: its torch threads, or 0.5 when Ray Train workers (own resources) do the training."""
    return {"cpu": TRAIN_DRIVER_CPUS if config.training.ray else config.threads}


def _fitting_trials(config: TrialConfig) -> int:
    """Concurrent trials that fit the cluster's CPUs, counting each trial's Ray Train worker group."""
    cpus = ray.cluster_resources().get("CPU", 1)
    per_trial = trial_resources(config)["cpu"] + (config.training.cpus if config.training.ray else 0.0)
    return max(1, int(cpus // per_trial))


def count_trials(study: Study, smoke: bool = False) -> int:
    if study.search.algorithm == "grid":
        return len(study.grid_points(smoke)) * study.search.num_samples
    return study.search.num_samples


def run_sweep(study: Study, settings: SweepSettings = SweepSettings()) -> SweepOutcome:
    """Run every trial of ``study`` on Ray Tune, track it in MLflow and write the ablation report."""
    start = time.perf_counter()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our progress bar replaces Tune's console tables
    ensure_ray(settings.address)
    results_dir = Path(settings.results_dir).resolve()
    first = study.resolve(study.first_point(), settings.smoke)
    resources = trial_resources(first)
    concurrency = settings.max_concurrent or study.search.max_concurrent or _fitting_trials(first)
    tracking = MLflowTracking(settings.tracking, study, settings.smoke, results_dir / "mlartifacts")
    progress = SweepProgress(count_trials(study, settings.smoke), enabled=settings.progress)
    fn = tune.with_parameters(
        trainable, study=study, smoke=settings.smoke, cache_root=str(settings.cache_root),
        report_epochs=study.search.algorithm == "grid" and study.search.scheduler == "none",
    )
    tuner = tune.Tuner(
        tune.with_resources(fn, resources),
        param_space=param_space(study, settings.smoke),
        tune_config=tune_config(study, concurrency),
        run_config=tune.RunConfig(
            name=f"{study.name}{'-smoke' if settings.smoke else ''}", storage_path=str(results_dir / "tune"),
            callbacks=[tracking, progress], verbose=0,
            failure_config=tune.FailureConfig(max_failures=study.search.max_failures),
        ),
    )
    grid = tuner.fit()
    trials, failed, stopped = trials_frame(grid, study, settings.smoke)
    out_dir = results_dir / (f"{study.name}-smoke" if settings.smoke else study.name)
    report = write_report(trials, study.report, out_dir) if trials.height else {}
    return SweepOutcome(study, trials, report, settings.tracking, time.perf_counter() - start, concurrency, failed, stopped)


def trials_frame(grid: Any, study: Study, smoke: bool) -> tuple[pl.DataFrame, list[str], list[str]]:
    """One row per finished trial (axis values, seed, ``config.*``, final metrics); failed and stopped ones."""
    rows, failed, stopped = [], [], []
    for result in grid:
        if result.error is not None:
            failed.append(f"{point_of(result.config)}: {result.error}")
            continue
        if "stage_keys/result" not in (result.metrics or {}):
            stopped.append(f"{point_of(result.config)}: stopped after {result.metrics.get('training_iteration', 0)} reports")
            continue
        point = point_of(result.config)
        config = flatten(trial_config_dict(study.resolve(point, smoke)))
        row = {"trial_id": result.metrics.get("trial_id", ""), **{k: str(v) for k, v in point.items() if k != "seed"}}
        row["seed"] = int(point["seed"])
        row.update({f"config.{k}": str(v) for k, v in config.items()})
        row.update({k: (v if math.isfinite(v) else None) for k, v in final_metrics(result.metrics).items()})
        rows.append(row)
    return (pl.DataFrame(rows) if rows else pl.DataFrame()), failed, stopped
