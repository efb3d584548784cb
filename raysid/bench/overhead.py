"""Benchmarks of the platform itself: what the sweep machinery costs on top of the trials' own work."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console

from raysid.sweep.runner import SweepSettings, run_sweep
from raysid.sweep.space import Study


def sweep_overhead(study: Study, smoke: bool = True) -> dict[str, float]:
    """Run ``study`` twice in a fresh results folder: cold (everything trained) and fully cached.

    Returns wall times, the sum of the trials' own stage times (``time/trial`` measured inside each
    trial), the concurrency, and the ratios: overhead = wall / (trial seconds / concurrency) of the cold
    run, and cached_ratio = warm wall / cold wall (the warm run is answered from the cache without Ray when
    the study is a grid: warm_without_ray 1.0).
    """
    with tempfile.TemporaryDirectory(prefix="raysid-bench-") as folder:
        settings = SweepSettings(results_dir=Path(folder), smoke=smoke, progress=False)
        cold = run_sweep(study, settings)
        warm = run_sweep(study, settings)
    trial_seconds = float(cold.trials["time/trial"].sum())
    concurrency = min(cold.concurrency, cold.trials.height)
    ideal = trial_seconds / concurrency
    return {
        "trials": float(cold.trials.height),
        "concurrency": float(concurrency),
        "cold_wall_s": cold.wall_seconds,
        "trial_seconds_sum": trial_seconds,
        "ideal_wall_s": ideal,
        "overhead_ratio": cold.wall_seconds / ideal,
        "warm_wall_s": warm.wall_seconds,
        "warm_trial_seconds_sum": float(warm.trials["time/trial"].sum()),
        "cached_ratio": warm.wall_seconds / cold.wall_seconds,
        "warm_without_ray": float(warm.from_cache),
    }


def print_overhead(figures: dict[str, float], console: Console) -> None:
    console.print(f"trials: {figures['trials']:.0f} at concurrency {figures['concurrency']:.0f}")
    console.print(f"cold sweep wall time:            {figures['cold_wall_s']:8.1f} s")
    console.print(f"sum of trials' own stage times:  {figures['trial_seconds_sum']:8.1f} s "
                  f"(ideal wall at this concurrency {figures['ideal_wall_s']:.1f} s)")
    console.print(f"platform overhead ratio (wall / ideal): {figures['overhead_ratio']:.2f}x")
    console.print(f"fully cached re-run wall time:   {figures['warm_wall_s']:8.1f} s "
                  f"(trials' own time {figures['warm_trial_seconds_sum']:.2f} s"
                  f"{', answered without starting Ray' if figures.get('warm_without_ray') else ''})")
    console.print(f"cached re-run / cold run: {figures['cached_ratio']:.3f}")
