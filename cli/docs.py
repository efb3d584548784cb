"""`raysid docs`: regenerate the README blocks that quote committed results (or check that they are current)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def docs(
    check: Annotated[bool, typer.Option("--check", help="Write nothing; exit 1 naming the blocks that differ from the results.")] = False,
    root: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Project folder holding README.md, docs/, results/ and search_spaces/.")] = Path("."),
) -> None:
    """Rewrite every <!-- results:NAME --> block of README.md, docs/*.md and results/*/README.md from results/NAME/."""
    from raysid.reporting.readme_tables import refresh, write

    try:
        outcomes = refresh(root)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)  # one unwrapped line
        raise typer.Exit(2)
    stale = [name for outcome in outcomes for name in outcome.stale]
    if check:
        for name in stale:
            typer.echo(f"stale: {name}")
        if stale:
            typer.echo(f"{len(stale)} block(s) differ from the results: run `raysid docs` to regenerate them")
            raise typer.Exit(1)
        typer.echo(f"{len(outcomes)} file(s) checked: every results block is current")
        return
    for name in write(outcomes):
        typer.echo(f"rewrote {name}")
    if not stale:
        typer.echo("every results block was already current")
