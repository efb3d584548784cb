"""Named dataset folders: where imports are written, found, listed and fingerprinted.

``<root>/<name>/`` holds the canonical ``Dataset`` (``items.parquet``, ``sequences.npz``, ``modalities.npz``,
``feedback.npz`` when the source has feedback, ``dataset.json`` with counts, fingerprint and import
report), plus ``sequence_info.parquet`` (playlist names, user ids), ``identifiers.json`` (another system's
semantic IDs, when imported) and ``problems.txt`` (every row the import skipped, with file and line).

An import holds an exclusive lock on its name (``<root>/.<name>.lock``, ``dataset_lock``) from before it reads
its source until the dataset is in place, and writes under a temporary ``.<name>.*.partial`` folder renamed
into place: two processes importing under one name end with one dataset and one refusal.

The root is ``--root`` / ``dataset.root`` when given, else ``$RAYSID_DATA_DIR``, else ``data/datasets``.
A relative root is looked up in the working directory, then in the project folder (a Ray Tune trial runs
in its own trial folder, so a study naming ``data/datasets`` still finds the project's datasets).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from raysid.atomic_files import file_lock, replace_folder, staging_folder
from raysid.config import ConfigError
from raysid.data.dataset import Dataset
from raysid.data.importers.base import DataImportError, Imported
from raysid.features.categorical import COLUMNS as CATEGORICAL_COLUMNS
from raysid.features.text import template_fields

DEFAULT_ROOT = "data/datasets"
PROJECT = Path(__file__).resolve().parents[3]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def resolve_root(root: str | Path | None = None) -> Path:
    """The absolute dataset root (see the module docstring)."""
    root = Path(root or os.environ.get("RAYSID_DATA_DIR") or DEFAULT_ROOT).expanduser()
    if root.is_absolute():
        return root
    here = Path.cwd() / root
    if here.exists() or not (PROJECT / root).exists():
        return here.resolve()
    return (PROJECT / root).resolve()


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"dataset name {name!r}: expected letters, digits, '.', '_' or '-' (e.g. mpd-5365)")
    return name


def dataset_folder(name: str, root: str | Path | None = None) -> Path:
    """The folder of imported dataset ``name``; a missing one fails listing the datasets that exist."""
    folder = resolve_root(root) / check_name(name)
    if not (folder / "dataset.json").exists():
        known = ", ".join(sorted(info["name"] for info in list_datasets(root))) or "none"
        raise ConfigError(
            f"dataset {name!r}: not found under {folder.parent} (imported datasets: {known}); "
            f"import it with `raysid data import KIND PATH --name {name}`"
        )
    return folder


class DatasetBusy(DataImportError):
    """Another process is importing a dataset of the same name."""


_held: dict[Path, int] = {}  # dataset lock files this process holds -> nesting depth


@contextlib.contextmanager
def dataset_lock(name: str, root: str | Path | None = None) -> Iterator[Path]:
    """Hold the exclusive lock on dataset ``name`` (``<root>/.<name>.lock``); yields the dataset's folder.

    Fails at once with ``DatasetBusy`` when another process holds it; nested use in one process is allowed."""
    folder = resolve_root(root) / check_name(name)
    path = folder.parent / f".{name}.lock"
    if path in _held:
        _held[path] += 1
        try:
            yield folder
        finally:
            _held[path] -= 1
        return
    with file_lock(path, blocking=False) as taken:
        if not taken:
            raise DatasetBusy(f"dataset {name!r} is being imported by {_holder(path)} right now; one import per name "
                              f"at a time: wait for it to end (then pass --force to replace it) or choose another --name")
        path.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                    "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
        _held[path] = 1
        try:
            yield folder
        finally:
            del _held[path]


def _holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not holder:
        return "another process"
    return f"another process (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')})"


def save_import(imported: Imported, name: str, root: str | Path | None = None, force: bool = False) -> Path:
    """Write ``imported`` to ``<root>/<name>/`` atomically under the name's lock; an existing dataset is replaced
    only with ``force``, and a name another process is importing is refused (``DatasetBusy``)."""
    with dataset_lock(name, root) as folder:
        if folder.exists() and not force:
            raise DataImportError(f"dataset {name!r} already exists at {folder}; pass --force to replace it")
        staging = staging_folder(folder)
        staging.mkdir(parents=True)
        try:
            _write(imported, name, staging)
            replace_folder(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def _write(imported: Imported, name: str, staging: Path) -> None:
    """Every file of the dataset folder, into ``staging``."""
    dataset = imported.dataset
    meta = {**dataset.meta, "counts": imported.counts, "fingerprint": fingerprint(dataset),
            "supplies": list(supplied_modalities(imported)),
            "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "import_log": imported.log.summary()}
    Dataset(name, dataset.items, dataset.modalities, dataset.sequences, meta, dataset.feedback).save(staging)
    if imported.sequence_info is not None:
        imported.sequence_info.write_parquet(staging / "sequence_info.parquet")
    if imported.identifiers is not None:
        (staging / "identifiers.json").write_text(json.dumps(imported.identifiers))
    (staging / "problems.txt").write_text("".join(f"{p}\n" for p in imported.log.problems))


def supplied_modalities(imported: Imported) -> tuple[str, ...]:
    """What the import's items can supply: its source modalities (Spotify's ``audio``), ``text`` when the
    dataset's text template reads columns the items have and some item has text, ``categorical`` when the
    items have release date, tempo or key, ``playlist_text`` when the sequences have titles, ``cooccurrence``
    and ``collaborative`` always (they are learned from the sequences), and ``identifiers`` when another
    system's identifier table was imported (the ``external`` tokenizer's input)."""
    dataset, info = imported.dataset, imported.sequence_info
    items = dataset.items
    template = dataset.meta.get("text_template") or ""
    fields = template_fields(template) if template else []
    has_text = bool(fields) and all(f in items.columns for f in fields) and any(
        items[f].cast(pl.String, strict=False).fill_null("").str.strip_chars().str.len_chars().max() for f in fields)
    found = [*dataset.modalities]
    found += ["text"] if has_text else []
    found += ["categorical"] if any(c in items.columns for c in CATEGORICAL_COLUMNS) else []
    found += ["playlist_text"] if info is not None and "name" in info.columns else []
    found += ["cooccurrence", "collaborative"]
    found += ["identifiers"] if imported.identifiers else []
    return tuple(found)


def read_info(folder: Path) -> dict[str, Any]:
    """``dataset.json`` of a dataset folder: {"name", "meta"}."""
    return json.loads((Path(folder) / "dataset.json").read_text())


def list_datasets(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Name, kind, counts and folder of every dataset under the root."""
    base = resolve_root(root)
    found = []
    for folder in sorted(base.iterdir()) if base.is_dir() else ():
        if not folder.name.startswith(".") and (folder / "dataset.json").is_file():  # not a .partial build
            info = read_info(folder)
            meta = info.get("meta", {})
            found.append({"name": info["name"], "kind": meta.get("kind", "?"), "counts": meta.get("counts", {}),
                          "folder": str(folder), "fingerprint": meta.get("fingerprint", "")})
    return found


def load_sequence_info(folder: Path) -> pl.DataFrame | None:
    path = Path(folder) / "sequence_info.parquet"
    return pl.read_parquet(path) if path.exists() else None


def fingerprint(dataset: Dataset) -> str:
    """A content hash of items, sequences, feedback and modality matrices (not of file bytes)."""
    digest = hashlib.sha256()
    for column in dataset.items.iter_columns():
        digest.update(f"{column.name}:{column.dtype}".encode())
        if column.dtype.is_numeric():
            digest.update(column.fill_null(-1).to_numpy().tobytes())
        else:
            digest.update("\x1f".join("\x00" if v is None else str(v) for v in column.to_list()).encode())
    for name, groups in (("sequences", dataset.sequences), ("feedback", dataset.feedback or [])):
        digest.update(name.encode())
        digest.update(np.array([len(s) for s in groups], dtype=np.int64).tobytes())
        if groups:
            digest.update(np.concatenate(groups).astype(np.int64).tobytes())
    for name in sorted(dataset.modalities):
        matrix = np.ascontiguousarray(dataset.modalities[name], dtype=np.float32)
        digest.update(f"{name}{matrix.shape}".encode())
        digest.update(matrix.tobytes())
    return digest.hexdigest()[:16]
