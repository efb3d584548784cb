"""A rich progress display of a running sweep, fed by Tune callbacks in the driver."""

from __future__ import annotations

from typing import Any

from ray import tune
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class SweepProgress(tune.Callback):
    """One bar over all trials, with the latest stage/epoch of the trial that last reported."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.enabled = total, enabled
        self.progress: Progress | None = None  # built in setup: Tune pickles callbacks, a live display can't be
        self.task = None
        self.failed = 0

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
        self.progress.update(self.task, status=status)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.progress.advance(self.task)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.failed += 1
        self.progress.advance(self.task)
        self.progress.update(self.task, status=f"[red]{self.failed} failed")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.enabled:
            self.progress.stop()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "progress": None}
