"""Ray Tune adapter: a study becomes a Tune experiment whose trials call the pure ``run_trial``.

Where things live is configurable so that a study runs unchanged on a cluster: the stage cache, Tune's
experiment storage and the MLflow store each take a local folder (the default, under ``results/``), a
shared filesystem path or a URI that every node sees (``s3://…``, ``gs://…``). An interrupted sweep
(Ctrl-C or SIGTERM to the driver or its process group, a killed driver) resumes with
``SweepSettings(resume=True)``: Tune restores its experiment state, finished trials are kept and not run
again, unfinished ones start over, and the MLflow adapter reuses the sweep's parent run and each trial's run
(found by the sweep id that ``raysid-sweep.json`` keeps and the trial's study point). An interrupted sweep
writes no report: its outcome says ``interrupted`` and lists the trials that did not finish. One sweep runs
per results folder at a time (``raysid.sweep.lock``), the lock taken before Ray or MLflow start. A grid
sweep whose every trial's result is already in the stage cache is answered from it without starting Ray
(``raysid.sweep.cached``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import polars as pl
import ray
from pyarrow import fs as pafs
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from raysid import environment
from raysid.cache import is_uri, open_store
from raysid.config import ConfigError, flatten, stable_hash
from raysid.distributed import run_scope
from raysid.pipeline.trial import run_trial
from raysid.trial_config import TrialConfig, trial_config_dict
from raysid import provenance
from raysid.provenance import PREFIX as PROVENANCE
from raysid.reporting.report import write_report
from raysid.sweep.progress import ReportingStore, StageEvents, SweepProgress
from raysid.sweep.cached import cached_points, replay
from raysid.sweep.search import StoredOptunaSearch, load_search, open_storage, study_name
from raysid.sweep.space import Axis, Study, count_trials
from raysid.sweep.table import trial_table
from raysid.sweep.submit import use_local_token
from raysid.sweep import exposure, interrupt
from raysid.sweep.diskwatch import DiskWatch, Reserve, end_runs_failed, fullest, local_disks
from raysid.sweep.lock import ResultsLock
from raysid.sweep.tracking import MLflowTracking, default_tracking_uri, final_metrics, log_report, point_of, trial_label


TRAIN_DRIVER_CPUS = 0.5  # a trial that drives a TorchTrainer (Ray rejects 0)
SWEEP_RECORD = "raysid-sweep.json"  # beside Tune's experiment state: the sweep id and what it ran
TRAIN_RUNS = "train"  # inside Tune's experiment folder: the trials' Ray Train runs and their checkpoints
EXPERIMENT_SNAPSHOT_S = "1"  # Tune saves its experiment state at most this often (its default: every 10 s)


@dataclass(frozen=True)
class SweepSettings:
    """Where a sweep runs and writes; every default is local and needs no server."""

    results_dir: Path = Path("results")  # report in <results_dir>/<study>/, stores beside it
    cache_dir: Path | str | None = None  # stage artifact store: folder or URI; default <results_dir>/cache
    tracking_uri: str | None = None  # MLflow store; default sqlite:///<results_dir>/mlflow.db
    address: str | None = None  # Ray cluster address; None: $RAY_ADDRESS, else start (or reuse) a local Ray
    smoke: bool = False  # apply the study's smoke overrides
    max_concurrent: int | None = None  # overrides search.max_concurrent
    progress: bool = True  # show the progress bar
    resume: bool = False  # continue the interrupted sweep stored under storage/<study> instead of starting over
    storage: str | None = None  # Tune's experiment storage: folder or URI; default <results_dir>/tune
    mlflow_artifacts: str | None = None  # MLflow artifact root for new experiments; default below
    niceness: int = 0  # trial workers' niceness on a local Ray (Ray's own default is 15); a cluster keeps its own
    optuna_storage: str | None = None  # where a sampled search stores its Optuna study; default below

    def __post_init__(self) -> None:
        options = {"--cache-dir": self.cache_dir, "--storage": self.storage, "--tracking-uri": self.tracking_uri,
                   "--mlflow-artifacts": self.mlflow_artifacts, "--address": self.address}
        for option, location in options.items():
            exposure.check_no_credentials(option, None if location is None else str(location))

    @property
    def cache_location(self) -> str:
        """The stage cache: an absolute local path or a URI."""
        return _location(self.cache_dir, Path(self.results_dir) / "cache")

    @property
    def cache_root(self) -> Path:
        """The stage cache as a local folder (only when it is one)."""
        if is_uri(self.cache_location):
            raise ValueError(f"the stage cache is a URI ({self.cache_location}), not a local folder")
        return Path(self.cache_location)

    @property
    def storage_location(self) -> str:
        """Tune's experiment storage: an absolute local path or a URI."""
        return _location(self.storage, Path(self.results_dir) / "tune")

    @property
    def tracking(self) -> str:
        return self.tracking_uri or default_tracking_uri(self.results_dir)

    @property
    def optuna_url(self) -> str:
        """The Optuna storage of a sampled search: given, else ``sqlite:///<results_dir>/optuna.db``."""
        return self.optuna_storage or f"sqlite:///{Path(self.results_dir).expanduser().resolve() / 'optuna.db'}"

    @property
    def artifact_root(self) -> str | None:
        """Where new MLflow experiments keep artifacts: given, else <results_dir>/mlartifacts for a local
        store, else None (an MLflow server's own artifact root)."""
        if self.mlflow_artifacts:
            return _location(self.mlflow_artifacts, Path(self.results_dir) / "mlartifacts")
        if self.tracking.startswith(("http://", "https://", "databricks")):
            return None
        return (Path(self.results_dir).expanduser().resolve() / "mlartifacts").as_uri()


def _location(given: Path | str | None, default: Path) -> str:
    if given is not None and is_uri(str(given)):
        return str(given)
    return str(Path(given if given is not None else default).expanduser().resolve())


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
    interrupted: bool = False  # a stop signal (or a lost trial) ended the sweep before every trial ended
    experiment_path: str = ""  # Tune's experiment folder (what resume restores)
    total: int = 0  # trials the study has
    unfinished: list[str] = field(default_factory=list)  # trials an interruption left unfinished (none when it ran)
    resumable: bool = False  # Tune saved an experiment state that --resume can continue
    signal: str = ""  # the stop signal that interrupted it ("SIGINT", "SIGTERM"), if any
    optuna_storage: str = ""  # a sampled search: where its Optuna study is stored (an RDB URL) ...
    optuna_study: str = ""  # ... under this name (optuna.load_study(study_name=..., storage=...))
    disk_full: str = ""  # the line naming the full disk that stopped it, if one did (its runs end FAILED)
    from_cache: bool = False  # every trial was in the stage cache: answered from it, Ray not started


def trainable(point: dict[str, Any], study: Study, smoke: bool, cache_root: str, report_epochs: bool,
              board: str = "", train_storage: str | None = None) -> None:
    """Tune function trainable: resolve the point, run the trial, report epochs and final metrics; stages and
    epochs also go to the sweep's progress board.

    Its Ray Train runs are named after the trial (``run_scope``) and kept in ``train_storage``, so the trial
    retried after its node was lost, or resumed, continues them from their last checkpoints. The final report
    says where it ran: ``ray/node_id`` (the trial's node) and ``ray/train_runs`` (JSON: each Ray Train run's
    worker groups, their nodes by rank and the epoch of the checkpoint each resumed after)."""
    config = study.resolve(point_of(point), smoke)
    events = StageEvents(board, trial_label(point_of(point)), {"tokenizer": getattr(config.tokenizer, "epochs", None),
                                                               "recommender": getattr(config.recommender, "epochs", None)})

    def on_epoch(stage: str, epoch: int, values: dict[str, float]) -> None:
        events.epoch(stage, epoch, values)
        if report_epochs or study.metric in values:
            tune.report({**values, "stage": stage, "epoch": epoch})

    store = ReportingStore(open_store(cache_root), events, {"result": "checking the result cache"})
    with run_scope(tune.get_context().get_trial_id() or "", storage=train_storage) as scope:
        metrics = run_trial(config, store, on_epoch)
    where = {"ray/node_id": ray.get_runtime_context().get_node_id(), "ray/train_runs": json.dumps(scope.runs)}
    tune.report({**metrics, **where})


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


def tune_config(study: Study, max_concurrent: int, storage: str | None = None, name: str | None = None) -> tune.TuneConfig:
    """Search algorithm and scheduler from the study (both optimise the study's metric); a sampled search's
    Optuna study is stored as ``name`` at ``storage`` (an RDB URL) when given."""
    search_alg, scheduler = None, None
    if study.search.algorithm == "optuna":
        sampler = optuna.samplers.TPESampler(seed=study.seeds[0])
        search_alg = StoredOptunaSearch(metric=study.metric, mode=study.mode, sampler=sampler, study_name=name,
                                        storage=open_storage(storage) if storage else None)
    if study.search.scheduler == "asha":
        scheduler = ASHAScheduler(metric=study.metric, mode=study.mode, grace_period=study.search.grace_period)
    return tune.TuneConfig(
        search_alg=search_alg, scheduler=scheduler, num_samples=study.search.num_samples,
        max_concurrent_trials=max_concurrent, reuse_actors=True,
    )


def ensure_ray(address: str | None, niceness: int = 0) -> None:
    """Connect to ``address`` (or $RAY_ADDRESS) or start a local Ray bound to loopback, once per process.

    A local Ray's workers run at ``niceness`` (Ray's own default, 15, lets every other process outrank them)."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ["RAY_worker_niceness"] = str(niceness)  # read by the raylet this process starts
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        check_reachable(address)
        use_local_token(address)
    try:
        if address and address.startswith("ray://"):  # Ray Client: the cluster gets this checkout's raysid
            ray.init(address=address, log_to_driver=False, runtime_env={"py_modules": [str(Path(__file__).parents[1])]})
        elif address:
            ray.init(address=address, log_to_driver=False)
        else:  # every service on 127.0.0.1, no metrics endpoint, an owner-only token (raysid.sweep.exposure)
            exposure.local_ray_environment()
            exposure.private_token(create=True)
            ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    except Exception as error:  # a missing token, a local Ray too slow to start: one line with the next step
        line = environment.auth_line(error, address) if address else environment.ray_start_line(error)
        if line is None:
            raise
        raise ConfigError(line) from None


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail with one line unless something listens at a ``host:port`` or ``ray://host:port`` address (Ray
    itself retries a dead address for minutes); ``auto`` and other forms are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise ConfigError(f"--address {address}: no Ray cluster answers there ({error.strerror or error}); "
                          "start one (ray start --head) or leave --address out to run on a local Ray") from None


def trial_resources(config: TrialConfig) -> dict[str, float]:
    """A trial's own CPUs: its torch threads, or 0.5 when Ray Train workers (own resources) do the training."""
    return {"cpu": TRAIN_DRIVER_CPUS if config.training.ray else config.threads}


def _fitting_trials(config: TrialConfig) -> int:
    """Concurrent trials that fit the cluster's CPUs, counting each trial's Ray Train worker group."""
    cpus = ray.cluster_resources().get("CPU", 1)
    per_trial = trial_resources(config)["cpu"] + (config.training.cpus if config.training.ray else 0.0)
    return max(1, int(cpus // per_trial))


def experiment_name(study: Study, smoke: bool) -> str:
    return f"{study.name}{'-smoke' if smoke else ''}"


def run_sweep(study: Study, settings: SweepSettings = SweepSettings()) -> SweepOutcome:
    """Run (or resume) every trial of ``study`` on Ray Tune, track it in MLflow and write the ablation report.

    Holds the results folder's lock throughout (SweepBusy when another sweep holds it). SIGINT and SIGTERM
    stop the sweep as Tune stops on Ctrl-C; the outcome is then ``interrupted`` and no report is written.
    """
    environment.check_writable(settings.results_dir, "--results-dir")
    with ResultsLock(settings.results_dir, study.name), interrupt.stop_signals():
        start = time.perf_counter()
        try:
            return _run_sweep(study, settings, start)
        except KeyboardInterrupt:  # a stop signal before Tune ran (Ray starting, the state being read)
            return _interrupted_before_tune(study, settings, start)


def _interrupted_before_tune(study: Study, settings: SweepSettings, start: float) -> SweepOutcome:
    experiment = _experiment_path(study, settings)
    total = count_trials(study, settings.smoke)
    return SweepOutcome(study, pl.DataFrame(), {}, settings.tracking, time.perf_counter() - start, 0,
                        interrupted=True, experiment_path=experiment, total=total,
                        unfinished=["every trial not finished before (Tune had not started)"],
                        resumable=bool(tune.Tuner.can_restore(experiment)), signal=interrupt.received() or "SIGINT")


def _experiment_path(study: Study, settings: SweepSettings) -> str:
    return f"{settings.storage_location.rstrip('/')}/{experiment_name(study, settings.smoke)}"


def _run_sweep(study: Study, settings: SweepSettings, start: float) -> SweepOutcome:
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our progress bar replaces Tune's console tables
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", EXPERIMENT_SNAPSHOT_S)  # what a killed driver can lose
    experiment = _experiment_path(study, settings)
    record = _resume_record(experiment, study, settings) if settings.resume else _new_record(study, settings)
    stores = {"--results-dir": settings.results_dir, "--cache-dir": settings.cache_location,
              "--storage": settings.storage_location, "--mlflow-artifacts": settings.mlflow_artifacts}
    environment.preflight(stores, settings.tracking)
    points = None if settings.resume else cached_points(study, settings.smoke, open_store(settings.cache_location))
    if points:
        return _answer_from_cache(study, settings, record, points, start)
    ensure_ray(settings.address, settings.niceness)
    exposure.keep_credentials_out_of_ray()
    interrupt.claim()  # ray.init set its own SIGTERM handler
    first = study.resolve(study.first_point(), settings.smoke)
    concurrency = settings.max_concurrent or study.search.max_concurrent or _fitting_trials(first)
    fn = tune.with_resources(tune.with_parameters(
        trainable, study=study, smoke=settings.smoke, cache_root=settings.cache_location,
        report_epochs=study.search.algorithm == "grid" and study.search.scheduler == "none",
        board=board_name(record["sweep_id"]), train_storage=f"{experiment}/{TRAIN_RUNS}",
    ), trial_resources(first))
    disks = local_disks([*stores.values(), environment.sqlite_folder(settings.tracking)])
    reserve = Reserve(disks)
    if settings.resume:  # Tune restores the callbacks (the MLflow adapter, the DiskWatch) from its state
        tuner = tune.Tuner.restore(experiment, trainable=fn, resume_unfinished=True, resume_errored=False,
                                   param_space=param_space(study, settings.smoke))
    else:
        tuner = _new_tuner(study, settings, fn, concurrency, record, DiskWatch(disks, reserve))
        _write_record(experiment, record)
    grid, disk_full = _fit(tuner, reserve, lambda line: end_runs_failed(settings.tracking, study.name,
                                                                       record["sweep_id"], line),
                           lambda: _saved_grid(experiment, fn))
    signal_name = interrupt.received()
    trials, failed, stopped = trials_frame(grid, study, settings.smoke, interrupted=bool(signal_name or disk_full))
    total = max(len(grid), count_trials(study, settings.smoke))
    unfinished = unfinished_trials(grid, study, settings.smoke)
    interrupted = bool(signal_name or disk_full) or trials.height + len(failed) + len(stopped) < total
    report = _write_results(trials, study, settings, record) if trials.height and not interrupted else {}
    return SweepOutcome(study, trials, report, settings.tracking, time.perf_counter() - start, concurrency,
                        failed, stopped, interrupted, experiment, total, unfinished if interrupted else [],
                        bool(tune.Tuner.can_restore(experiment)), signal_name,
                        record.get("optuna_storage", ""), record.get("optuna_study", ""), disk_full)


def _answer_from_cache(study: Study, settings: SweepSettings, record: dict[str, Any], points: list[dict[str, Any]],
                       start: float) -> SweepOutcome:
    """Every trial's result is in the stage cache: the trials, their MLflow runs and the report from it, and
    Ray is not started (``raysid.sweep.cached``)."""
    progress = SweepProgress(len(points), enabled=settings.progress, metric=study.metric)
    results = replay(points, study, settings.smoke, open_store(settings.cache_location),
                     [_tracking(study, settings, record), progress])
    trials = trial_table([trial_row(point, result, study, settings.smoke) for point, result in results])
    return SweepOutcome(study, trials, _write_results(trials, study, settings, record), settings.tracking,
                        time.perf_counter() - start, 0, total=len(points), from_cache=True)


def _write_results(trials: pl.DataFrame, study: Study, settings: SweepSettings, record: dict[str, Any]) -> dict[str, Path]:
    """The report of a sweep every trial of which finished, written and attached to its MLflow sweep run."""
    out_dir = Path(settings.results_dir) / experiment_name(study, settings.smoke)
    made = provenance.results_record(trials, study.name, settings.smoke)
    search = load_search(record["optuna_storage"], record["optuna_study"]) if record.get("optuna_study") else None
    report = write_report(trials, study.report, out_dir, made, search)
    log_report(settings.tracking, study, record, report, trials)
    return report


def _fit(tuner: tune.Tuner, reserve: Reserve, end_failed: Callable[[str], Any], saved: Callable[[], Any]) -> tuple[Any, str]:
    """``tuner.fit()`` with the disk reserve held: its result grid, and the line of the full disk that stopped it
    ("" when none did), whose runs ``end_failed(line)`` ends FAILED. When the full disk broke Tune itself before
    DiskWatch could stop it, the grid is the one Tune last saved (``saved()``), so the sweep still says which
    trials finished and how to resume."""
    reserve.hold()
    try:
        with interrupt.tuning():
            grid = tuner.fit()
    except Exception as error:
        if not environment.disk_full(error):
            raise
        reserve.release()
        line = environment.disk_full_line(fullest(reserve))
        end_failed(line)
        return saved(), line
    finally:
        reserve.release()
    if interrupt.requested():  # DiskWatch stopped it: the runs the stop left RUNNING or KILLED end FAILED
        end_failed(interrupt.requested())
    return grid, interrupt.requested()


def _saved_grid(experiment: str, fn: Any) -> Any:
    """The trials as Tune last saved them in ``experiment``; none when its state cannot be read (Tune broke
    while writing it): the sweep then counts no trial finished, and ``--resume`` still finds what was."""
    try:
        return tune.Tuner.restore(experiment, trainable=fn).get_results()
    except Exception:  # any failure to read a half-written state means the same: nothing to count
        return []


def _new_tuner(study: Study, settings: SweepSettings, fn: Any, concurrency: int, record: dict[str, Any],
               watch: DiskWatch) -> tune.Tuner:
    tracking = _tracking(study, settings, record)
    progress = SweepProgress(count_trials(study, settings.smoke), enabled=settings.progress, metric=study.metric,
                             board=board_name(record["sweep_id"]))
    return tune.Tuner(
        fn,
        param_space=param_space(study, settings.smoke),
        tune_config=tune_config(study, concurrency, record.get("optuna_storage"), record.get("optuna_study")),
        run_config=tune.RunConfig(
            name=experiment_name(study, settings.smoke), storage_path=settings.storage_location,
            callbacks=[watch, tracking, progress, interrupt.ForwardStop()], verbose=0,
            failure_config=tune.FailureConfig(max_failures=study.search.max_failures),
        ),
    )


def _tracking(study: Study, settings: SweepSettings, record: dict[str, Any]) -> MLflowTracking:
    return MLflowTracking(settings.tracking, study, settings.smoke, settings.artifact_root, sweep_id=record["sweep_id"],
                          cache=settings.cache_location, owns_store=settings.tracking_uri is None,
                          search=(record.get("optuna_storage", ""), record.get("optuna_study", "")))


def board_name(sweep_id: str) -> str:
    """The progress board's actor name: one per sweep, the same when it resumes."""
    return f"raysid-progress-{sweep_id}"


def study_fingerprint(study: Study) -> str:
    """A hash of everything that decides a study's trials (not where its file lies)."""
    return stable_hash(dataclasses.replace(study, source=""))


def _new_record(study: Study, settings: SweepSettings) -> dict[str, Any]:
    sweep_id = uuid.uuid4().hex
    record = {"sweep_id": sweep_id, "study": study.name, "fingerprint": study_fingerprint(study),
              "smoke": settings.smoke, "tracking_uri": settings.tracking, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    if study.search.algorithm == "optuna":  # the search's Optuna study, stored for optuna-dashboard and the report
        record |= {"optuna_storage": settings.optuna_url,
                   "optuna_study": study_name(experiment_name(study, settings.smoke), sweep_id)}
    return record


def _resume_record(experiment: str, study: Study, settings: SweepSettings) -> dict[str, Any]:
    """The record of the sweep to resume; fails when there is none or the study or store changed since."""
    where = f"--resume {experiment}"
    if not tune.Tuner.can_restore(experiment):
        raise ConfigError(f"{where}: no interrupted sweep of {study.name} to resume there; run without --resume")
    record = _read_record(experiment)
    if record.get("fingerprint") != study_fingerprint(study):
        raise ConfigError(f"{where}: the study {study.source} changed since the sweep started; resuming would mix "
                          "trials of two studies (run without --resume to start over)")
    if record.get("tracking_uri") != settings.tracking:
        raise ConfigError(f"{where}: the sweep tracks to {record.get('tracking_uri')}, not {settings.tracking}; "
                          "pass the same --tracking-uri/--results-dir as the interrupted run")
    return record


def _filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(location) if is_uri(location) else (pafs.LocalFileSystem(), location)


def _write_record(experiment: str, record: dict[str, Any]) -> None:
    filesystem, path = _filesystem(experiment)
    filesystem.create_dir(path, recursive=True)
    with filesystem.open_output_stream(f"{path}/{SWEEP_RECORD}") as out:
        out.write(json.dumps(record, indent=2).encode())


def _read_record(experiment: str) -> dict[str, Any]:
    filesystem, path = _filesystem(experiment)
    try:
        with filesystem.open_input_stream(f"{path}/{SWEEP_RECORD}") as handle:
            return json.loads(handle.read())
    except (FileNotFoundError, OSError) as error:
        raise ConfigError(f"--resume {experiment}: {SWEEP_RECORD} is missing ({error}); not a raysid sweep") from None


def trials_frame(grid: Any, study: Study, smoke: bool, interrupted: bool = False) -> tuple[pl.DataFrame, list[str], list[str]]:
    """One row per finished trial (axis values, seed, ``config.*``, final metrics, ``provenance.*``);
    failed and stopped ones.

    A trial without a final report was stopped early by the scheduler only when the study has one and the
    sweep was not interrupted (Tune marks the trials an interruption stopped TERMINATED too); otherwise it is
    left out of all three (see ``unfinished_trials``).
    """
    rows, failed, stopped = [], [], []
    for result in grid:
        if result.error is not None:
            failed.append(f"{point_of(result.config)}: {_last_line(result.error)}")
        elif "stage_keys/result" in (result.metrics or {}):
            rows.append(trial_row(result.config, result.metrics, study, smoke))
        elif not interrupted and study.search.scheduler != "none":
            stopped.append(f"{point_of(result.config)}: stopped after {(result.metrics or {}).get('training_iteration', 0)} reports")
    return trial_table(rows), failed, stopped


def trial_row(tune_config: dict[str, Any], metrics: dict[str, Any], study: Study, smoke: bool) -> dict[str, Any]:
    """A trial's row with native values (numbers stay numbers): its point, config, metrics and provenance."""
    point = point_of(tune_config)
    config = flatten(trial_config_dict(study.resolve(point, smoke)))
    row = {"trial_id": metrics.get("trial_id", ""), **{k: v for k, v in point.items() if k != "seed"}}
    row["seed"] = int(point["seed"])
    row.update({f"config.{k}": v for k, v in config.items()})
    row.update(final_metrics(metrics))
    row.update({k: str(v) for k, v in metrics.items() if k.startswith(PROVENANCE)})
    return row


def unfinished_trials(grid: Any, study: Study, smoke: bool) -> list[str]:
    """Trials without a final report or an error (an interruption's), and the grid points Tune never started."""
    unfinished = [trial_label(point_of(r.config)) for r in grid
                  if r.error is None and "stage_keys/result" not in (r.metrics or {})]
    if study.search.algorithm == "grid" and study.search.num_samples == 1:
        started = {json.dumps(point_of(r.config), sort_keys=True) for r in grid}
        unfinished += [trial_label(p) for p in study.grid_points(smoke) if json.dumps(p, sort_keys=True) not in started]
    return unfinished


def _last_line(error: BaseException) -> str:
    """The exception's last non-empty line (Ray wraps the trial's traceback around it)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
