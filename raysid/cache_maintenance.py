"""``raysid cache check`` and ``raysid cache prune``: verify, repair and clean a local stage cache folder.

A cache folder holds ``<stage>/<key>/`` artifacts (each with its ``.complete`` manifest), and beside them
the ``.<key>.lock`` files of the stage locks and, after an interrupted build, ``.<key>.<uuid>.partial``
staging folders. Removals take the artifact's lock without waiting: whatever a running trial is building
is left alone. A trial that reads an artifact while it is removed finds it damaged and rebuilds it.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from raysid.cache_manifest import (
    COMPLETE,
    code_version,
    folder_bytes,
    read_manifest,
    verify,
)
from raysid.atomic_files import file_lock, staging_folder

PARTIAL = ".partial"
LOCK = ".lock"
DAY = 86400.0


@dataclass(frozen=True)
class ArtifactCheck:
    """One stored artifact and what is wrong with it (None: every file matches its manifest)."""

    stage: str
    key: str
    folder: Path
    problem: str | None
    size: int

    @property
    def name(self) -> str:
        return f"{self.stage}/{self.key}"


@dataclass(frozen=True)
class Removal:
    """A path ``prune`` (or ``check --fix``) removed, or would remove with ``dry_run``, and why."""

    path: Path
    reason: str
    size: int


def artifact_folders(root: Path) -> Iterator[tuple[str, str, Path]]:
    """(stage, key, folder) of every artifact folder under ``root`` (hidden leftovers skipped), sorted."""
    for stage in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for folder in sorted(p for p in stage.iterdir() if p.is_dir() and not p.name.startswith(".")):
            yield stage.name, folder.name, folder


def check_cache(root: Path) -> list[ArtifactCheck]:
    """Verify every artifact's files against its manifest (every file is hashed)."""
    return [ArtifactCheck(stage, key, folder, verify(folder), folder_bytes(folder))
            for stage, key, folder in artifact_folders(root)]


def leftovers(root: Path) -> list[Path]:
    """The ``.partial`` staging folders and ``.lock`` files under ``root``'s stage folders."""
    found = []
    for stage in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found += sorted(p for p in stage.iterdir() if p.name.startswith(".") and p.name.endswith((PARTIAL, LOCK)))
    return found


def remove_artifact(folder: Path, reason: str, dry_run: bool = False) -> Removal | None:
    """Remove one artifact folder under its lock; None when a trial holds the lock (it is being built)."""
    size = folder_bytes(folder)
    with _unheld(folder.parent / f".{folder.name}{LOCK}", dry_run) as taken:
        if not taken:
            return None
        if not dry_run:
            aside = staging_folder(folder)
            folder.rename(aside)  # atomic: readers see it either whole or gone
            shutil.rmtree(aside)
    return Removal(folder, reason, size)


def prune_cache(root: Path, older_than_days: float | None = None, dry_run: bool = False) -> list[Removal]:
    """Remove incomplete leftovers (unheld ``.partial`` folders and lock files) and artifacts made by
    another code version (or with no manifest), or created more than ``older_than_days`` ago."""
    removed = [r for path in leftovers(root) if path.name.endswith(PARTIAL)
               if (r := _remove_leftover(path, "unfinished build (.partial)", dry_run))]
    for _, _, folder in artifact_folders(root):
        reason = _prune_reason(folder, older_than_days)
        if reason and (removal := remove_artifact(folder, reason, dry_run)):
            removed.append(removal)
    removed += [r for path in leftovers(root) if path.name.endswith(LOCK) and path.exists()
                if (r := _remove_leftover(path, "lock file nobody holds", dry_run))]
    return removed


def _prune_reason(folder: Path, older_than_days: float | None) -> str | None:
    """Why ``prune`` removes this artifact, or None to keep it."""
    manifest = read_manifest(folder)
    if manifest is None:
        return f"no checksum manifest in {COMPLETE} (older raysid or unfinished)"
    if manifest.get("code_version") != code_version():
        return f"made by code version {manifest.get('code_version')} (this one is {code_version()})"
    age_days = (time.time() - float(manifest.get("created", 0))) / DAY
    if older_than_days is not None and age_days > older_than_days:
        return f"created {age_days:.1f} days ago (more than {older_than_days:g})"
    return None


def _remove_leftover(path: Path, reason: str, dry_run: bool) -> Removal | None:
    """Remove a ``.KEY.UUID.partial`` folder or ``.KEY.lock`` file when nobody holds KEY's lock."""
    key = path.name[1:].split(".")[0]
    size = folder_bytes(path)
    with _unheld(path.parent / f".{key}{LOCK}", dry_run) as taken:
        if not taken:
            return None
        if not dry_run:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()  # while held: a waiter on this file takes the lock again on a new one
    return Removal(path, reason, size)


@contextlib.contextmanager
def _unheld(lock: Path, dry_run: bool) -> Iterator[bool]:
    """Take ``lock`` without waiting (True if taken); a lock file that was not there is not left behind."""
    existed = lock.exists()
    if dry_run and not existed:
        yield True
        return
    with file_lock(lock, blocking=False) as taken:
        yield taken
        if taken and not existed:
            lock.unlink(missing_ok=True)  # while held: a waiter on this file takes the lock again on a new one
