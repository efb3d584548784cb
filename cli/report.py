"""`raysid report` and `raysid compare`: results folders read back and shown, nothing re-run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
ResultsDir = Annotated[Path, typer.Option("--results-dir", envvar="RAYSID_RESULTS_DIR", help="Where the results folders live.")]


def fail(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


def print_markdown(path: Path, out: Console = console) -> None:
    """A summary.md rendered for the terminal: its tables as tables, not raw markdown."""
    from rich.markdown import Markdown

    out.print(Markdown(Path(path).read_text()))


def report(
    study: Annotated[str, typer.Argument(help="Study name or YAML path (its folder RESULTS_DIR/STUDY), or a results folder.")],
    results_dir: ResultsDir = Path("results"),
    smoke: Annotated[bool, typer.Option(help="The study's --smoke folder (RESULTS_DIR/STUDY-smoke).")] = False,
    out: Annotated[Optional[Path], typer.Option(help="Write summary.md and the plots here, not into the results folder.")] = None,
) -> None:
    """Render a finished sweep's summary from its results folder, without re-running: the table (and the
    tokenizer-health correlations) in the terminal; summary.md, summary.png/.svg and health.png/.svg on disk."""
    from raysid.config import ConfigError
    from raysid.reporting.folders import open_results, render

    try:
        folder = open_results(study, results_dir, smoke)
        paths = render(folder, out)
    except (ConfigError, ValueError) as error:
        fail(str(error))
    print_markdown(paths["markdown"])
    for name in ("markdown", "plot", "plot_svg", "health_plot", "health_plot_svg"):
        if name in paths:
            console.print(f"  {name}: {paths[name]}", markup=False, soft_wrap=True)


def compare(
    first: Annotated[str, typer.Argument(help="A: a results folder, or a study name (its folder in RESULTS_DIR).")],
    second: Annotated[str, typer.Argument(help="B: a results folder, or a study name.")],
    results_dir: ResultsDir = Path("results"),
    smoke: Annotated[bool, typer.Option(help="Read the studies' --smoke folders.")] = False,
) -> None:
    """B beside A: for each metric and axis point both have, the means over the seeds both ran and B − A with its
    95% paired t-interval over those seeds."""
    from raysid.config import ConfigError
    from raysid.reporting.compare import compare as compare_folders
    from raysid.reporting.folders import open_results

    try:
        a, b = open_results(first, results_dir, smoke), open_results(second, results_dir, smoke)
        lines = compare_folders(a, b)
    except (ConfigError, ValueError) as error:
        fail(str(error))
    console.print(f"A = {a.path}\nB = {b.path}", markup=False, soft_wrap=True)
    console.print(comparison_table(lines, " / ".join(a.layout.rows) or "group"))
    console.print("B − A is the mean over the seeds both ran of B's value minus A's at the same point; the interval is "
                  "its 95% Student-t interval, mean ± t(0.975, n−1)·s/√n; ✓ where it excludes 0.", soft_wrap=True)


def comparison_table(lines: list, point_name: str) -> Table:
    table = Table("metric", point_name, "A", "B", "B − A", "95% interval", "seeds", "excludes 0")
    for column in table.columns[2:7]:
        column.justify = "right"
    for line in lines:
        d = line.difference
        interval = "—" if d.low is None else f"[{d.low:+.4f}, {d.high:+.4f}]"
        table.add_row(line.metric, line.point, f"{line.first:.4f}", f"{line.second:.4f}", f"{d.mean:+.4f}", interval,
                      str(d.seeds), "✓" if d.separates else "")
    return table
