"""The search section of a report: the best trials of a sampled search and each parameter's importance.

Trials are chosen on the report's selection metric (``ReportLayout.selection``: the metric the search
optimised, a validation metric) and then shown with their test metrics, so nothing is selected on test.

Importance is Optuna's fANOVA (``optuna.importance.get_param_importances`` with its default evaluator) for
the selection metric over the COMPLETE trials of an Optuna study: the study the sweep stored (``optuna.db``,
see ``raysid.sweep.search``), where a trial that ASHA stopped early is COMPLETE at its last reported value
and says so in its ``outcome`` user attribute, or else one rebuilt from the finished trials: a parameter whose
every value parses as a number gets a float distribution over its observed range (log scale when the range
spans more than two decades), any other parameter a categorical one. The section says which trials it counted.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:  # optuna is imported where it is used, so that a study loads (raysid show) without it
    import optuna

    from raysid.reporting.summary import ReportLayout

OUTCOME = "outcome"  # user attribute of a stored trial: "finished", "stopped early at epoch N", "failed", ...


def best_trials(trials: pl.DataFrame, params: tuple[str, ...], select: str, mode: str, top: int,
                show: tuple[str, ...] = ()) -> pl.DataFrame:
    """The ``top`` trials by ``select`` (best first): their parameters, ``select`` and the ``show`` metrics."""
    finished = trials.filter(pl.col(select).is_not_null())
    shown = [m for m in show if m != select and m in trials.columns]
    return finished.sort(select, descending=mode == "max").head(top).select(*params, select, *shown)


def study_from_trials(trials: pl.DataFrame, params: tuple[str, ...], metric: str, mode: str) -> optuna.Study:
    """An in-memory Optuna study of the finished trials (``metric`` not null), each marked ``finished``."""
    optuna = _optuna()
    finished = trials.filter(pl.col(metric).is_not_null())
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    distributions = {name: _distribution(finished[name].cast(pl.Utf8).to_list()) for name in params}
    for row in finished.iter_rows(named=True):
        values = {name: _value(row[name], distributions[name]) for name in params}
        study.add_trial(optuna.trial.create_trial(params=values, distributions=distributions, value=row[metric],
                                                  user_attrs={OUTCOME: "finished"}))
    return study


def parameter_importance(study: optuna.Study, params: tuple[str, ...]) -> dict[str, float]:
    """fANOVA importance of each of ``params`` for the study's objective over its COMPLETE trials (they sum
    to 1); {} with fewer than 2 such trials."""
    if len(_counted(study)) < 2:
        return {}
    return _optuna().importance.get_param_importances(study, params=list(params))


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(_optuna().trial.TrialState.COMPLETE,))


def counted_trials(study: optuna.Study) -> str:
    """Which trials importance counted and which it left out, as one sentence."""
    complete = _optuna().trial.TrialState.COMPLETE
    counted = Counter(_kind(t.user_attrs.get(OUTCOME, "finished")) for t in _counted(study))
    left = Counter(_kind(t.user_attrs.get(OUTCOME, t.state.name.lower())) for t in study.get_trials(deepcopy=False)
                   if t.state != complete)
    parts = [f"{n} {kind}" for kind, n in sorted(counted.items())]
    text = f"Counted {sum(counted.values())} trials ({', '.join(parts) or 'none'})"
    if counted.get("stopped early"):
        text += "; a trial stopped early counts at its last reported value"
    if left:
        text += f"; left out {sum(left.values())} without a value ({', '.join(f'{n} {k}' for k, n in sorted(left.items()))})"
    return text + "."


def _kind(outcome: str) -> str:
    return "stopped early" if outcome.startswith("stopped early") else outcome


def _distribution(values: list[str]) -> optuna.distributions.BaseDistribution:
    optuna = _optuna()
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
    return text if isinstance(distribution, _optuna().distributions.CategoricalDistribution) else float(text)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def render_search(trials: pl.DataFrame, layout: ReportLayout, study: optuna.Study | None = None) -> list[str]:
    """Markdown lines: the best trials (chosen on ``layout.selection``, shown with ``layout.metrics``) and the
    importance table over ``study`` (the stored search) or, without one, over the finished trials."""
    params, select = tuple(layout.importance or layout.rows), layout.selection
    best = best_trials(trials, params, select, layout.selection_mode, layout.top or 5, layout.columns)
    metrics = best.columns[len(params):]
    lines = ["", f"## Best {best.height} trials by {select}", "",
             f"Chosen on `{select}` ({'highest' if layout.selection_mode == 'max' else 'lowest'} first); the other "
             "columns are shown, not chosen on.", "", "| " + " | ".join((*params, *metrics)) + " |",
             "|" + "---|" * len(params) + "---:|" * len(metrics)]
    for row in best.iter_rows():
        cells = [str(v) for v in row[:len(params)]] + ["—" if v is None else f"{v:.4f}" for v in row[len(params):]]
        lines.append("| " + " | ".join(cells) + " |")
    study = study if study is not None else study_from_trials(trials, params, select, layout.selection_mode)
    importance = parameter_importance(study, tuple(p for p in params if _searched(study, p)))
    if importance:
        lines += ["", f"## Parameter importance for {select} (Optuna fANOVA)", "", counted_trials(study), "",
                  "| parameter | importance |", "|---|---|"]
        lines += [f"| {name} | {value:.3f} |" for name, value in importance.items()]
    return lines


def _searched(study: optuna.Study, param: str) -> bool:
    """Whether every counted trial of the study has ``param`` (a sampled axis, not a fixed one)."""
    counted = _counted(study)
    return bool(counted) and all(param in t.params for t in counted)
