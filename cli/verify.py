"""`raysid verify STUDY`: re-run the trials behind a committed results folder and diff every metric."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from cli.options import finite
from raysid.config import ConfigError

console = Console()


def fail(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


def verify(
    study: Annotated[str, typer.Argument(help="Study name in search_spaces/ or a YAML path.")],
    results_dir: Annotated[Path, typer.Option("--results-dir", envvar="RAYSID_RESULTS_DIR", help="Where the study's results folder lies.")] = Path("results"),
    smoke: Annotated[bool, typer.Option(help="Verify RESULTS_DIR/STUDY-smoke (the smoke run).")] = False,
    one_seed: Annotated[bool, typer.Option(help="Re-run one seed per cell (the first committed one) instead of every trial.")] = False,
    tolerance: Annotated[float, typer.Option(callback=finite(0), help="Largest |new - committed| that agrees: 0 on the same locked install and hardware; on other hardware pass e.g. 1e-6.")] = 0.0,
    jobs: Annotated[Optional[int], typer.Option(min=1, help="Trials at once (default: CPUs / the trials' threads).")] = None,
    work_dir: Annotated[Optional[Path], typer.Option(help="Keep the re-run's stage cache here (default: a temporary folder, removed after).")] = None,
    only_differences: Annotated[bool, typer.Option(help="Print only the metrics that disagree.")] = False,
) -> None:
    """Re-run a results folder's trials from scratch and print, per trial and metric, committed, new and difference.

    Exit 0 only when every metric of every trial agrees within --tolerance.
    """
    from raysid.sweep.runner import experiment_name
    from raysid.sweep.space import load_study
    from raysid.verify import verify as run_verify

    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops the re-run like Ctrl-C
    try:
        loaded = load_study(study)
        folder = Path(results_dir).expanduser().resolve() / experiment_name(loaded, smoke)
        console.print(f"verifying {folder} (tolerance |new − committed| ≤ {tolerance:g}"
                      f"{': identical numbers expected on the same locked install and hardware' if tolerance == 0 else ''})")
        result = run_verify(loaded, folder, smoke, one_seed, tolerance, jobs, work_dir,
                            on_trial=lambda trial, rows: _print_trial(trial, rows, only_differences))
    except (ConfigError, ValueError) as error:
        fail(str(error))
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]: verify stopped and its workers were terminated; nothing was compared "
                      "beyond the trials printed above")
        raise typer.Exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print_provenance(result.provenance)
    bad = result.disagreements
    if result.agrees:
        console.print(f"[green]{result.trials} trials agree[/green]: {len(result.differences)} metrics, "
                      f"every difference ≤ {tolerance:g}")
        return
    console.print(f"[red]{len(bad)} of {len(result.differences)} metrics disagree[/red] over {result.trials} trials "
                  f"(tolerance {tolerance:g})")
    raise typer.Exit(1)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _print_trial(trial: str, rows: list, only_differences: bool) -> None:
    shown = [row for row in rows if not (only_differences and row.agrees)]
    disagree = sum(not row.agrees for row in rows)
    console.print(f"[bold]{trial}[/bold]: {len(rows) - disagree} of {len(rows)} metrics agree", markup=True)
    for row in shown:
        delta = "missing" if row.delta is None and row.committed != row.new else f"{row.delta or 0.0:+.3g}"
        mark = "  " if row.agrees else "✗ "
        console.print(f"  {mark}{row.metric:<40} {_value(row.committed):>14} {_value(row.new):>14}  {delta}", markup=False)


def _value(value: float | None) -> str:
    return "—" if value is None else f"{value:.8g}"


def _print_provenance(changes: dict[str, tuple[str, str]]) -> None:
    if not changes:
        console.print("provenance: the committed trials were made by this commit, lock, library versions and CPU")
        return
    console.print("provenance differs from the committed trials' (committed → now):")
    for key, (then, now) in changes.items():
        console.print(f"  {key}: {then} → {now}", markup=False)
