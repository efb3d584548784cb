"""`raysid show STUDY`: what a study is: its points (or search space), trial counts, what it changes from the
study it extends, and the resolved config of its first trial."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from rich.console import Console


def flow(value: Any) -> str:
    """A value as one line of YAML flow style: [audio, tags], {grid: [8, 16]}, 0.01."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False, allow_unicode=True)
    return text.removesuffix("\n...\n").strip()


def print_study(study, smoke: bool, console: Console) -> None:
    """Everything `raysid show` prints about ``study`` (a raysid.sweep.space.Study, possibly varied by options)."""
    say = lambda line="": console.print(line, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    say(f"{study.name} ({study.source}): {' '.join(study.description.split())}")
    _print_space(study, say)
    _print_changes(study, say)
    _print_config(study, smoke, say)


def _print_space(study, say) -> None:
    """The axes with what each label sets, then the grid points (grid studies) and the trial counts."""
    optuna = study.search.algorithm == "optuna"
    search = study.search
    say(f"search: {search.algorithm}" + (f" (TPE seeded {study.seeds[0]}), {search.num_samples} samples" if optuna else "")
        + f", scheduler {search.scheduler}" + (f" (grace period {search.grace_period})" if search.scheduler == "asha" else ""))
    say("search space:" if optuna else "axes (applied in this order):")
    for axis in study.axes:
        say(f"  {axis.name}: {axis.kind} {flow(list(axis.values)) if not axis.settings else f'of {len(axis.values)} labels'}")
        for label, setting in axis.settings.items():
            say(f"    {label}: {', '.join(f'{key}={flow(value)}' for key, value in setting.items()) or '(the base config)'}")
    if not optuna:
        points = study.grid_points()
        distinct = [point for point in points if point["seed"] == study.seeds[0]]
        say(f"grid points ({len(distinct)}):")
        for point in distinct:
            say("  " + (" ".join(f"{name}={value}" for name, value in point.items() if name != "seed") or "(one point)"))
    say(f"trials: {study.trial_count()} (seeds {flow(list(study.seeds))}); with --smoke: {study.trial_count(True)} "
        f"(seeds {flow(list(study.seeds_for(True)))})")
    say(f"metric {study.metric} ({study.mode}); report rows {flow(list(study.report.rows))}, best {study.report.best}")


def _print_changes(study, say) -> None:
    from raysid.sweep.space import changes_from_parent

    if not study.parent:
        say("extends: no other study")
        return
    found = changes_from_parent(study.source)
    say(f"extends {Path(study.parent).stem} ({study.parent}); what this study changes ({len(found)}):")
    for sign, path, old, new in found:
        say(f"  {sign} {path}: " + {"+": flow(new), "-": "deleted", "~": f"{flow(old)} -> {flow(new)}"}[sign])


def _print_config(study, smoke: bool, say) -> None:
    from raysid.config import flatten
    from raysid.trial_config import trial_config_dict

    first = study.first_point()
    say(f"resolved config of the first trial ({' '.join(f'{k}={v}' for k, v in first.items())}"
        f"{', smoke' if smoke else ''}):")
    for key, value in flatten(trial_config_dict(study.resolve(first, smoke))).items():
        say(f"    {key} = {value}")
