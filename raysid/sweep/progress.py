"""A sweep's live progress: what every trial is doing, by grid point, in the driver.

Trials tell a small Ray actor (``ProgressBoard``, no CPU, on the driver's node) which stage they entered —
dataset, features, collaborative, tokenizer, recommender — and each training epoch with its metrics
(``StageEvents``, fed by the trainable through ``ReportingStore`` and ``on_epoch``); Tune's results are left
alone, so schedulers and MLflow see what they saw before. The driver's Tune callback (``SweepProgress``) reads
the board twice a second and keeps one row per trial: its point (``ratio=1:3 seed=0``, not Tune's id), state,
stage, epoch i of N, the latest metric (the study's, else the stage's loss), elapsed time and the stage's ETA
from its epoch rate. On a terminal the rows are a live rich table; otherwise (``--no-progress``, job logs, a
pipe) one line per ended trial: its point, outcome, the study metric, the time into the sweep.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import ray
from ray import tune
from ray.exceptions import GetTimeoutError, RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from rich.console import Console
from rich.table import Table

from raysid.sweep import interrupt
from raysid.sweep.tracking import point_of, trial_label

POLL_SECONDS = 0.5  # how often the driver reads the board


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Events from trials, taken by the driver."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def add(self, event: dict) -> None:
        self.events.append(event)

    def take(self) -> list[dict]:
        events, self.events = self.events, []
        return events


class StageEvents:
    """A trial's side: send stage and epoch events to the sweep's board (nothing when there is none)."""

    def __init__(self, board: str, trial: str, epochs: dict[str, int | None]):
        self.trial, self.epochs = trial, epochs  # epochs: stage -> epochs it trains for
        self.done: dict[str, int] = {}  # stage -> epochs reported (models count from 0 or from 1: counted here)
        self.board = None
        if board:
            try:
                self.board = ray.get_actor(board)
            except ValueError:  # no board (a sweep run without one): no events
                self.board = None

    def stage(self, stage: str) -> None:
        self._send({"stage": stage})

    def epoch(self, stage: str, epoch: int, values: dict[str, float]) -> None:
        self.done[stage] = self.done.get(stage, 0) + 1
        numbers = {k: float(v) for k, v in values.items() if isinstance(v, (int, float))}
        self._send({"stage": stage, "epoch": self.done[stage], "epochs": self.epochs.get(stage), "values": numbers})

    def _send(self, event: dict) -> None:
        if self.board is not None:
            self.board.add.remote({**event, "trial": self.trial, "time": time.time()})


class ReportingStore:
    """The trial's artifact store, sending a stage event each time a stage is fetched (built or loaded)."""

    def __init__(self, store: Any, events: StageEvents, labels: dict[str, str]):
        self._store, self._events, self._labels = store, events, labels

    def fetch(self, stage: str, key: str, produce: Any, load: Any) -> Any:
        self._events.stage(self._labels.get(stage, stage))
        return self._store.fetch(stage, key, produce, load)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@dataclass
class TrialRow:
    """What the table shows of one trial."""

    label: str
    state: str = "pending"
    stage: str = ""
    epoch: int | None = None
    epochs: int | None = None
    metric: tuple[str, float] | None = None
    started: float | None = None  # driver's monotonic clock
    ended: float | None = None
    stage_started: float | None = None  # trial's wall clock (event times)
    last_epoch: float | None = None
    last_event: float | None = None
    stages: list[str] = field(default_factory=list)  # every stage seen, in order

    def elapsed(self, now: float) -> float | None:
        return None if self.started is None else (self.ended or now) - self.started

    def eta(self) -> float | None:
        """Seconds left in the current stage at its epoch rate so far."""
        if self.state != "running" or not self.epoch or not self.epochs or self.stage_started is None:
            return None
        per_epoch = (self.last_epoch - self.stage_started) / self.epoch
        return per_epoch * (self.epochs - self.epoch)


class SweepProgress(tune.Callback):
    """Tune callback: one TrialRow per trial from the board's events and Tune's results; a live table on a
    terminal, else one line per ended trial (see the module docstring)."""

    def __init__(self, total: int, enabled: bool = True, metric: str = "", board: str = "",
                 console: Console | None = None):
        self.total, self.enabled, self.metric, self.board_name = total, enabled, metric, board
        self.console = console
        self.rows: dict[str, TrialRow] = {}
        self.failed = self.ended = 0
        self.finals: dict[str, dict] = {}  # trial id -> its final report, until the trial ends
        self.started = time.monotonic()
        self.board = self.live = None
        self.polled = 0.0

    def setup(self, **info: Any) -> None:
        self.console = self.console or Console(stderr=True)
        if self.board_name:  # on the driver's node: a worker node lost mid-sweep does not take the board along
            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
            self.board = ProgressBoard.options(name=self.board_name, get_if_exists=True, scheduling_strategy=here).remote()
        if self.enabled and self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self.table(), console=self.console, auto_refresh=False, transient=False)
            self.live.start()

    def row(self, trial: Any) -> TrialRow:
        label = trial_label(point_of(trial.config))
        return self.rows.setdefault(label, TrialRow(label))

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self.row(trial)
        row.state, row.started, row.ended = "running", time.monotonic(), None
        self._refresh()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self.polled >= POLL_SECONDS:
            self.poll()
            self._refresh()

    def poll(self) -> None:
        """Apply the board's events to the rows (events of an ended trial are late: left out)."""
        self.polled = time.monotonic()
        if self.board is None:
            return
        try:
            events = ray.get(self.board.take.remote(), timeout=30)
        except (RayActorError, GetTimeoutError) as error:  # the board is lost: the sweep goes on without its events
            print(f"warning: the live progress board was lost ({type(error).__name__}); trials go on, shown as they end",
                  file=sys.stderr, flush=True)
            self.board = None
            return
        for event in events:
            row = self.rows.setdefault(event["trial"], TrialRow(event["trial"]))
            if row.ended is not None:  # a late event of an ended trial
                continue
            apply_event(row, event, self.metric)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if "stage" not in result:
            self.finals[trial.trial_id] = result

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, "done")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.failed += 1
        self._end(trial, "failed")

    def _end(self, trial: Any, outcome: str) -> None:
        self.poll()
        result = self.finals.get(trial.trial_id, {})
        if outcome == "done" and not result:  # ended without its final report: stopped by a stop signal or the scheduler
            outcome = "interrupted" if interrupt.received() or interrupt.requested() else "stopped early"
        row = self.row(trial)
        row.state, row.ended = (f"{outcome} (cached)" if result.get("cached/result") else outcome), time.monotonic()
        if isinstance(result.get(self.metric), (int, float)):  # the final value, after any late epoch event
            row.metric = (self.metric, float(result[self.metric]))
        self._line(trial, outcome)
        self._refresh()

    def _line(self, trial: Any, outcome: str) -> None:
        """Without the table: ``[3/9] ratio=1:3 seed=0: done (cached), valid/ndcg@10 0.1234, 95 s into the sweep``."""
        self.ended += 1
        result = self.finals.pop(trial.trial_id, {})
        if self.live is not None:
            return
        value = result.get(self.metric)
        shown = f", {self.metric} {value:.4f}" if isinstance(value, (int, float)) and outcome == "done" else ""
        cached = " (cached)" if result.get("cached/result") else ""
        print(f"[{self.ended}/{self.total}] {trial_label(point_of(trial.config))}: {outcome}{cached}{shown}, "
              f"{time.monotonic() - self.started:.0f} s into the sweep", flush=True)

    def table(self) -> Table:
        return progress_table(list(self.rows.values()), self.total, self.ended, self.failed, time.monotonic() - self.started)

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.table(), refresh=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.poll()
        if self.live is not None:
            self.live.update(self.table(), refresh=True)
            self.live.stop()
        if self.board is not None:
            with contextlib.suppress(RayActorError):
                ray.kill(self.board)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "live": None, "board": None, "console": None}


def apply_event(row: TrialRow, event: dict, metric: str) -> None:
    """A stage or epoch event onto its trial's row."""
    stage, at = event["stage"], event["time"]
    if "epoch" not in event or stage != row.stage:  # a stage entered (its first epoch: it began at the last event)
        row.stage, row.epoch, row.epochs = stage, None, None
        row.stage_started = at if "epoch" not in event else (row.last_event or at)
        row.stages.append(stage)
    row.state, row.last_event = "running", at
    if "epoch" in event:
        row.epoch, row.epochs, row.last_epoch = event["epoch"], event.get("epochs"), event["time"]
        values = event.get("values") or {}
        shown = metric if metric in values else next((k for k in values if k.endswith("loss")), None)
        if shown is not None:
            row.metric = (shown, values[shown])


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    minutes, seconds = divmod(int(round(value)), 60)
    return f"{minutes}:{seconds:02d}" if minutes else f"{seconds} s"


def progress_table(rows: list[TrialRow], total: int, ended: int, failed: int, elapsed: float) -> Table:
    """The live table: one row per trial by grid point; the title counts ended trials and the sweep's ETA."""
    eta = f", about {_seconds(elapsed / ended * (total - ended))} left" if 0 < ended < total else ""
    title = f"trials: {ended}/{total} ended{f', {failed} failed' if failed else ''}, {_seconds(elapsed)}{eta}"
    table = Table("trial", "state", "stage", "epoch", "latest metric", "elapsed", "stage ETA", title=title, title_justify="left")
    now = time.monotonic()
    for row in sorted(rows, key=lambda r: r.label):
        epoch = "" if row.epoch is None else f"{row.epoch}/{row.epochs}" if row.epochs else str(row.epoch)
        metric = f"{row.metric[0]} {row.metric[1]:.4f}" if row.metric else ""
        table.add_row(row.label, row.state, row.stage, epoch, metric, _seconds(row.elapsed(now)), _seconds(row.eta()))
    return table
