"""`raysid cache …`: verify the stage cache's checksums, remove damaged artifacts and prune old ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from cli.options import finite

app = typer.Typer(help="Verify, repair and prune the stage artifact cache (RESULTS_DIR/cache).", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)  # errors only; report lines go through typer.echo, unwrapped

CacheDir = Annotated[Optional[str], typer.Option(envvar="RAYSID_CACHE", help="The cache folder (default RESULTS_DIR/cache).")]
ResultsDir = Annotated[Path, typer.Option("--results-dir", envvar="RAYSID_RESULTS_DIR", help="Results folder whose cache/ to use.")]


def fail(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(2)


def cache_root(cache_dir: str | None, results_dir: Path) -> Path:
    """The local cache folder to work on; a URI or a missing folder fails naming it."""
    from raysid.cache import is_uri

    if is_uri(cache_dir):
        fail(f"--cache-dir {cache_dir}: only a local or shared folder can be checked here, not a URI "
             "(check a node's mirror folder, $RAYSID_CACHE_MIRROR, instead)")
    root = Path(cache_dir) if cache_dir else results_dir / "cache"
    if not root.is_dir():
        fail(f"--cache-dir {root}: no such folder (a sweep creates RESULTS_DIR/cache; pass --results-dir or --cache-dir)")
    return root.expanduser().resolve()


def size_text(size: int) -> str:
    """Bytes as ``1,234,567 bytes (1.2 MB)``."""
    if size < 1000:
        return f"{size} bytes"
    value, unit = size / 1000, "kB"
    for unit in ("kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            break
        value /= 1000
    return f"{size:,} bytes ({value:.1f} {unit})"


@app.command()
def check(
    cache_dir: CacheDir = None,
    results_dir: ResultsDir = Path("results"),
    fix: Annotated[bool, typer.Option(help="Remove every damaged artifact (the next trial that needs it rebuilds it).")] = False,
) -> None:
    """Verify every artifact's files against its sha256 manifest; exit 1 if any is damaged (0 once --fix removed them)."""
    from raysid.cache_maintenance import check_cache, remove_artifact

    root = cache_root(cache_dir, results_dir)
    checks = check_cache(root)
    damaged = [c for c in checks if c.problem is not None]
    left = []
    for item in damaged:
        typer.echo(f"damaged  {item.name}: {item.problem}")
        if fix and remove_artifact(item.folder, item.problem or "") is None:
            typer.echo(f"  kept   {item.name}: a running trial holds its lock (it is being rebuilt)")
            left.append(item)
        elif fix:
            typer.echo(f"  removed {item.name} ({size_text(item.size)})")
    ok_bytes = sum(c.size for c in checks if c.problem is None)
    typer.echo(f"{len(checks)} artifacts in {root}: {len(checks) - len(damaged)} verified ({size_text(ok_bytes)}), "
                  f"{len(damaged)} damaged{', removed' if fix and not left else ''}; "
                  f"{_partials(root)} unfinished .partial builds (raysid cache prune clears them)")
    if damaged and (not fix or left):
        raise typer.Exit(1)


def _partials(root: Path) -> int:
    from raysid.cache_maintenance import PARTIAL, leftovers

    return sum(path.name.endswith(PARTIAL) for path in leftovers(root))


@app.command()
def prune(
    cache_dir: CacheDir = None,
    results_dir: ResultsDir = Path("results"),
    older_than: Annotated[Optional[float], typer.Option(callback=finite(0), help="Also remove artifacts created more than DAYS ago.", metavar="DAYS")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print what would be removed; remove nothing.")] = False,
) -> None:
    """Remove unfinished builds (.partial), unheld lock files and artifacts of another code version (or older than --older-than)."""
    from raysid.cache import code_version
    from raysid.cache_maintenance import prune_cache

    if older_than is not None and older_than < 0:
        fail(f"--older-than {older_than}: expected a number of days >= 0")
    root = cache_root(cache_dir, results_dir)
    removed = prune_cache(root, older_than, dry_run)
    verb = "would remove" if dry_run else "removed"
    for item in removed:
        typer.echo(f"{verb}  {item.path.relative_to(root)}: {item.reason} ({size_text(item.size)})")
    freed = sum(item.size for item in removed)
    typer.echo(f"{verb} {len(removed)} entries from {root}, {'would free' if dry_run else 'freed'} {size_text(freed)} "
                  f"(code version {code_version()})")
