"""The Optuna study of a sampled search, stored so that it can be inspected after the sweep.

Ray Tune's ``OptunaSearch`` asks and tells an Optuna study; raysid gives it an ``RDBStorage`` (SQLite
``optuna.db`` beside the MLflow store by default) and a study name of its own per sweep (``<experiment>
<sweep id>``), so that ``optuna-dashboard sqlite:///…/optuna.db``, ``optuna.load_study`` and
``optuna.visualization`` open it, and a later sweep of the same study starts a fresh one (the sampler never
sees another sweep's trials). Each stored trial says how it ended in its user attributes: ``outcome``
("finished", "stopped early at epoch N" for one ASHA stopped, which Tune tells at its last reported value,
"failed", or "interrupted") and ``tune_trial_id``.
"""

from __future__ import annotations

from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from raysid.reporting.importance import OUTCOME
from raysid.sweep import interrupt

FINAL_KEY = "stage_keys/result"  # in a trial's final report only


def study_name(experiment: str, sweep_id: str) -> str:
    return f"{experiment} {sweep_id}"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """The RDB storage at ``url`` (``sqlite:///path``, or any SQLAlchemy URL Optuna takes)."""
    return optuna.storages.RDBStorage(url)


def load_search(url: str, name: str) -> optuna.Study | None:
    """The stored study ``name`` at ``url``, or None when there is none."""
    try:
        return optuna.load_study(study_name=name, storage=url)
    except KeyError:
        return None


class StoredOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that records on each stored trial how it ended (``outcome``) and its Tune trial id."""

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        trial = self._ot_trials.get(trial_id)
        if trial is not None and trial_id not in self._completed_trials:
            trial.set_user_attr("tune_trial_id", trial_id)
            trial.set_user_attr(OUTCOME, _outcome(result, error))
        super().on_trial_complete(trial_id, result=result, error=error)


def _outcome(result: dict[str, Any] | None, error: bool) -> str:
    if error:
        return "failed"
    if result and FINAL_KEY in result:
        return "finished"
    if interrupt.received():
        return "interrupted"
    epoch = (result or {}).get("epoch")
    return "stopped early" + (f" at epoch {int(epoch)}" if epoch is not None else "")
