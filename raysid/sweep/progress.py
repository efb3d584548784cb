"""A sweep's progress, fed by Tune callbacks in the driver: a rich bar on a terminal, else one line per trial."""

from __future__ import annotations

import time
from typing import Any

from ray import tune
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from raysid.sweep.tracking import point_of, trial_label


class SweepProgress(tune.Callback):
    """One bar over all trials, with the latest stage/epoch of the trial that last reported; without the bar
    (``--no-progress``, job logs) one line per ended trial: its point, outcome, the study metric, the time."""

    def __init__(self, total: int, enabled: bool = True, metric: str = ""):
        self.total, self.enabled, self.metric = total, enabled, metric
        self.progress: Progress | None = None  # built in setup: Tune pickles callbacks, a live display can't be
        self.task = None
        self.failed = self.ended = 0
        self.finals: dict[str, dict] = {}  # trial id -> its final report, until the trial ends
        self.started = time.monotonic()

    def setup(self, **info: Any) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"), console=Console(stderr=True), transient=False,
        )
        if self.enabled:
            self.progress.start()
        self.task = self.progress.add_task("trials", total=self.total, status="starting Ray trials")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if "stage" in result:
            status = f"{trial.trial_id}: {result['stage']} epoch {result['epoch']}"
        else:
            cached = " (cached)" if result.get("cached/result") else ""
            status = f"{trial.trial_id}: done{cached}"
            self.finals[trial.trial_id] = result
        self.progress.update(self.task, status=status)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.progress.advance(self.task)
        self._line(trial, "done")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.failed += 1
        self.progress.advance(self.task)
        self.progress.update(self.task, status=f"[red]{self.failed} failed")
        self._line(trial, "failed")

    def _line(self, trial: Any, outcome: str) -> None:
        """Without the bar: ``[3/9] ratio=1:3 seed=0: done (cached), valid/ndcg@10 0.1234, 95 s into the sweep``."""
        self.ended += 1
        result = self.finals.pop(trial.trial_id, {})
        if self.enabled:
            return
        outcome = "stopped early" if outcome == "done" and not result else outcome  # by the scheduler, or a stop signal
        value = result.get(self.metric)
        shown = f", {self.metric} {value:.4f}" if isinstance(value, (int, float)) and outcome == "done" else ""
        cached = " (cached)" if result.get("cached/result") else ""
        print(f"[{self.ended}/{self.total}] {trial_label(point_of(trial.config))}: {outcome}{cached}{shown}, "
              f"{time.monotonic() - self.started:.0f} s into the sweep", flush=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.enabled:
            self.progress.stop()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "progress": None}
