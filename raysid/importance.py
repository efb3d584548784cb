"""The search section of a report: the best trials of a sampled search and each parameter's importance.

Importance is Optuna's fANOVA (``optuna.importance.get_param_importances`` with its default evaluator) over
the finished trials, rebuilt as an Optuna study: a parameter whose every value parses as a number gets a
float distribution over its observed range (log scale when the range spans more than two decades), any
other parameter a categorical one. Trials with a missing objective are left out.
"""

from __future__ import annotations

import math

import optuna
import polars as pl

optuna.logging.set_verbosity(optuna.logging.WARNING)


def best_trials(trials: pl.DataFrame, params: tuple[str, ...], metric: str, mode: str, top: int) -> pl.DataFrame:
    """The ``top`` trials by ``metric`` (best first) with their parameters."""
    finished = trials.filter(pl.col(metric).is_not_null())
    return finished.sort(metric, descending=mode == "max").head(top).select(*params, metric)


def parameter_importance(trials: pl.DataFrame, params: tuple[str, ...], metric: str) -> dict[str, float]:
    """fANOVA importance of each parameter for ``metric`` (they sum to 1); {} with fewer than 2 trials."""
    finished = trials.filter(pl.col(metric).is_not_null())
    if finished.height < 2:
        return {}
    distributions = {name: _distribution(finished[name].cast(pl.Utf8).to_list()) for name in params}
    study = optuna.create_study()
    for row in finished.iter_rows(named=True):
        values = {name: _value(row[name], distributions[name]) for name in params}
        study.add_trial(optuna.trial.create_trial(params=values, distributions=distributions, value=row[metric]))
    return optuna.importance.get_param_importances(study)


def _distribution(values: list[str]) -> optuna.distributions.BaseDistribution:
    numbers = [_number(value) for value in values]
    if any(number is None for number in numbers):
        return optuna.distributions.CategoricalDistribution(sorted(set(values)))
    low, high = min(numbers), max(numbers)
    if low == high:
        return optuna.distributions.CategoricalDistribution([values[0]])
    log = low > 0 and high / low > 100
    return optuna.distributions.FloatDistribution(low, high, log=log)


def _value(raw: object, distribution: optuna.distributions.BaseDistribution) -> object:
    text = str(raw)
    return text if isinstance(distribution, optuna.distributions.CategoricalDistribution) else float(text)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def render_search(trials: pl.DataFrame, params: tuple[str, ...], metric: str, mode: str, top: int) -> list[str]:
    """Markdown lines: the best trials table and the importance table."""
    best = best_trials(trials, params, metric, mode, top)
    lines = ["", f"## Best {best.height} trials by {metric}", "", "| " + " | ".join((*params, metric)) + " |",
             "|" + "---|" * (len(params) + 1)]
    for row in best.iter_rows():
        cells = [str(v) for v in row[:-1]] + [f"{row[-1]:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    importance = parameter_importance(trials, params, metric)
    if importance:
        lines += ["", f"## Parameter importance for {metric} (Optuna fANOVA)", "", "| parameter | importance |", "|---|---|"]
        lines += [f"| {name} | {value:.3f} |" for name, value in importance.items()]
    return lines
