"""`raysid data …`: import real datasets, extract their item features, list and show them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from raysid.config import ConfigError

app = typer.Typer(help="Import real datasets (MPD, Spotify skips, Amazon, RecBole) and extract their item features.",
                  no_args_is_help=True)
console = Console()
SHOWN = 10  # problems printed after an import (all are in problems.txt)

Root = Annotated[Optional[Path], typer.Option(help="Dataset root (default $RAYSID_DATA_DIR or data/datasets).")]


def fail(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


@app.command("import")
def import_(
    kind: Annotated[str, typer.Argument(help="mpd, spotify-skip, amazon, amazon-reviews or recbole.")],
    path: Annotated[Path, typer.Argument(help="A source file, or a folder of them.")],
    name: Annotated[str, typer.Option(help="Name of the dataset folder to write (e.g. mpd-5365).")],
    root: Root = None,
    force: Annotated[bool, typer.Option(help="Replace an existing dataset of that name.")] = False,
    features: Annotated[Optional[Path], typer.Option(help="spotify-skip: the track-features CSV.")] = None,
    items: Annotated[Optional[Path], typer.Option(help="amazon: item JSON of text fields.")] = None,
    identifiers: Annotated[Optional[Path], typer.Option(help="amazon: identifier table of another system.")] = None,
    category: Annotated[Optional[str], typer.Option(help="amazon: category of an amazon-text folder.")] = None,
    metadata: Annotated[Optional[Path], typer.Option(help="amazon-reviews: the metadata JSON lines (meta_CATEGORY.json.gz).")] = None,
    core: Annotated[Optional[int], typer.Option(min=1, help="amazon-reviews: k of the k-core filter (default 5).")] = None,
    max_history: Annotated[Optional[int], typer.Option(min=0, help="amazon-reviews: most recent items kept per history (default 20; 0 = all).")] = None,
) -> None:
    """Read a dataset in its published format and write the canonical dataset folder."""
    from raysid.data.importers import import_dataset
    from raysid.data.importers.store import dataset_lock, resolve_root, save_import

    start = time.perf_counter()
    try:
        with dataset_lock(name, root) as folder:  # held from before the source is read until the dataset is in place
            if folder.exists() and not force:
                fail(f"dataset {name!r} already exists under {resolve_root(root)}; pass --force to replace it")
            imported = import_dataset(kind, path, name, features=features, items=items, identifiers=identifiers,
                                      category=category, metadata=metadata, core=core, max_history=max_history)
            folder = save_import(imported, name, root, force)
    except (ConfigError, ValueError) as error:
        fail(str(error))
    counts = imported.counts
    console.print(f"[green]imported {kind}[/green] {path} -> {folder} in {time.perf_counter() - start:.1f} s", soft_wrap=True)
    console.print(f"  {counts['sequences']:,} sequences, {counts['items']:,} items, {counts['interactions']:,} interactions")
    for note in imported.notes:
        console.print(f"  {note}", markup=False, soft_wrap=True)
    log = imported.log
    if log.skipped or log.missing_values:
        console.print(f"[yellow]{log.skipped:,} unreadable rows skipped, {log.missing_values:,} values left missing[/yellow] "
                      f"(all listed in {folder / 'problems.txt'}):", soft_wrap=True)
        for problem in log.problems[:SHOWN]:
            console.print(f"  {problem}", markup=False, soft_wrap=True)  # unwrapped: paths stay copyable
    else:
        console.print("  no unreadable rows")


@app.command()
def features(
    name: Annotated[str, typer.Argument(help="An imported dataset.")],
    modalities: Annotated[Optional[str], typer.Option(
        help="Comma-separated: text, playlist_text, cooccurrence, categorical, collaborative, or a source modality "
             "(audio); default: the dataset kind's defaults.")] = None,
    root: Root = None,
    cache_dir: Annotated[Path, typer.Option(help="Stage artifact store (the sweeps' default).")] = Path("results/cache"),
    min_item_count: Annotated[int, typer.Option(min=1, help="View: keep items occurring at least this often.")] = 1,
    max_sequences: Annotated[int, typer.Option(min=0, help="View: a seeded sample of sequences (0 = all).")] = 0,
    max_length: Annotated[int, typer.Option(min=0, help="View: keep the last (most recent) N remaining items of each sequence (0 = all).")] = 0,
    min_length: Annotated[int, typer.Option(min=1, help="View: drop sequences shorter than this.")] = 3,
    threads: Annotated[int, typer.Option(min=1, help="torch threads.")] = 2,
) -> None:
    """Extract (or find cached) the item feature matrices a study on this dataset uses.

    The view options and the default split must match the study's `dataset` section for the study to reuse
    them (a study computes whatever is missing itself)."""
    import torch

    from raysid.cache import ArtifactStore
    from raysid.pipeline.dataset import trial_data
    from raysid.trial_config import parse_trial_config

    torch.set_num_threads(threads)
    section = {"source": "imported", "name": name, "min_item_count": min_item_count,
               "max_sequences": max_sequences, "max_length": max_length, "min_length": min_length}
    if root:
        section["root"] = str(root.resolve())
    if modalities:
        section["modalities"] = [m.strip() for m in modalities.split(",") if m.strip()]
    store = ArtifactStore(cache_dir)
    start = time.perf_counter()
    try:
        data = trial_data(parse_trial_config({"dataset": section}), store)
    except (ConfigError, ValueError) as error:
        fail(str(error))
    dataset, splits = data.dataset, data.split.splits
    table = Table("modality", "items", "dim", "source")
    for modality, matrix in dataset.modalities.items():
        table.add_row(modality, f"{matrix.shape[0]:,}", str(matrix.shape[1]), "import" if modality == "audio" else "extracted")
    console.print(table)
    cached = [r for r in store.records if r.cached]
    console.print(f"{dataset.num_items:,} items, {len(splits.train):,} training sequences; "
                  f"{time.perf_counter() - start:.1f} s ({len(cached)} of {len(store.records)} artifacts cached) in {store.root}")


@app.command("list")
def list_(root: Root = None) -> None:
    """The imported datasets under the root."""
    from raysid.data.importers.store import list_datasets, resolve_root

    table = Table("name", "kind", "sequences", "items", "interactions", "folder")
    for info in list_datasets(root):
        counts = info["counts"]
        table.add_row(info["name"], info["kind"], *(f"{counts.get(k, 0):,}" for k in ("sequences", "items", "interactions")),
                      info["folder"])
    console.print(table if table.row_count else f"no datasets under {resolve_root(root)}")


@app.command()
def show(name: Annotated[str, typer.Argument(help="An imported dataset.")], root: Root = None) -> None:
    """Counts, import report, item columns and the first items and sequences of a dataset."""
    from raysid.data.dataset import Dataset
    from raysid.data.importers.store import dataset_folder
    from raysid.features.modalities import default_modalities

    try:
        folder = dataset_folder(name, root)
    except ConfigError as error:
        fail(str(error))
    dataset = Dataset.load(folder)
    meta = dataset.meta
    console.print(f"[bold]{name}[/bold] ({meta.get('kind')}) in {folder}, imported {meta.get('imported_at')} from {meta.get('source')}")
    counts = meta.get("counts", {})
    console.print(f"  {counts.get('sequences', 0):,} sequences, {counts.get('items', 0):,} items, "
                  f"{counts.get('interactions', 0):,} interactions; fingerprint {meta.get('fingerprint')}")
    lengths = [len(s) for s in dataset.sequences]
    console.print(f"  sequence length {min(lengths)}–{max(lengths)}, mean {sum(lengths) / len(lengths):.1f}; "
                  f"feedback: {'yes' if dataset.feedback is not None else 'no'}; "
                  f"source modalities: {', '.join(f'{k} {v.shape[1]}-d' for k, v in dataset.modalities.items()) or 'none'}")
    supplies = meta.get("supplies")
    console.print(f"  supplies: {', '.join(supplies) if supplies is not None else 'not recorded (imported before it was)'}; "
                  f"default modalities: {', '.join(default_modalities(meta))}; text template: {meta.get('text_template')!r}",
                  soft_wrap=True)
    report = meta.get("import_log", {})
    console.print(f"  import: {report.get('skipped_rows', 0):,} rows skipped, {report.get('missing_values', 0):,} values missing")
    console.print(dataset.items.head(5))
    for index, sequence in enumerate(dataset.sequences[:3]):
        console.print(f"  sequence {index}: {sequence[:12].tolist()}{' …' if len(sequence) > 12 else ''}")
