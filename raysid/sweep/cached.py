"""A grid sweep whose every trial is already in the stage cache, answered from it without starting Ray.

``cached_points`` finds every grid point's result artifact in the store, verified as a trial verifies it, or
answers None (a missing or damaged one, a sampled search, a resumed sweep: the sweep then runs on Ray as
usual). ``replay`` runs each point's ``run_trial`` in the driver — every stage a cache hit, so nothing trains
— and hands its result to the same Tune callbacks a Tune run calls (the MLflow adapter, the progress lines),
so the MLflow runs, the progress output, ``trials.parquet`` and the report are those of a run through Ray
whose trials all came from the cache.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from raysid.cache import ArtifactStore
from raysid.pipeline.keys import StageKeys
from raysid.pipeline.trial import run_trial
from raysid.sweep.space import Study


@dataclass
class CachedTrial:
    """What the Tune callbacks read of a trial: its id, config (the study point), status and failures."""

    trial_id: str
    config: dict[str, Any]
    status: str = "RUNNING"
    num_failures: int = 0
    error_file: str | None = None


def cached_points(study: Study, smoke: bool, store: ArtifactStore) -> list[dict[str, Any]] | None:
    """The study's grid points when every one's result is stored and verifies; None otherwise."""
    if study.search.algorithm != "grid" or study.search.num_samples != 1:
        return None  # a sampled search's trials are not known before it runs
    points = tune_order(study, smoke)
    for point in points:
        if store.local("result", StageKeys.of(study.resolve(point, smoke)).result) is None:
            return None
    return points


def tune_order(study: Study, smoke: bool) -> list[dict[str, Any]]:
    """The grid points in the order Tune runs them (it sorts grid variables by name, the first varying fastest),
    so the trial table's rows come in the same order as a run through Ray; keys in the param space's order."""
    options = {axis.name: list(axis.values) for axis in study.axes} | {"seed": list(study.seeds_for(smoke))}
    slowest_first = sorted(options, reverse=True)
    combos = itertools.product(*(options[name] for name in slowest_first))
    return [{name: dict(zip(slowest_first, combo))[name] for name in options} for combo in combos]


def replay(points: Sequence[dict[str, Any]], study: Study, smoke: bool, store: ArtifactStore,
           callbacks: Sequence[Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each point's (point, result) from the cache, in grid order, told to ``callbacks`` as Tune tells them."""
    for callback in callbacks:
        callback.setup()
    trials: list[CachedTrial] = []
    results = []
    for index, point in enumerate(points):
        trial = CachedTrial(f"cached_{index:05d}", dict(point))
        trials.append(trial)
        _tell(callbacks, "on_trial_start", index, trials, trial)
        result = {**run_trial(study.resolve(point, smoke), store), "trial_id": trial.trial_id}
        _tell(callbacks, "on_trial_result", index, trials, trial, result=result)
        trial.status = "TERMINATED"
        _tell(callbacks, "on_trial_complete", index, trials, trial)
        results.append((dict(point), result))
    for callback in callbacks:
        callback.on_experiment_end(trials)
    return results


def _tell(callbacks: Sequence[Any], event: str, index: int, trials: list[CachedTrial], trial: CachedTrial,
          **extra: Any) -> None:
    for callback in callbacks:
        getattr(callback, event)(index, trials, trial, **extra)
