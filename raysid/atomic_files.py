"""Folder and lock primitives shared by the artifact store and the dataset importers: an exclusive lock on a
file, a staging folder beside a final one, and an atomic replace of one by the other."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def file_lock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if need be); yields False when not blocking and it is taken.

    The lock file may be removed by ``raysid cache prune`` while nobody holds it: a lock taken on a file
    that was unlinked meanwhile is dropped and taken again on the current file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            yield False
            return
        if _same_file(handle, path):
            break
        handle.close()
    try:
        yield True
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _same_file(handle: Any, path: Path) -> bool:
    try:
        return os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def staging_folder(final: Path) -> Path:
    """A fresh ``.KEY.UUID.partial`` folder beside ``final`` (what ``raysid cache prune`` clears if left)."""
    return final.parent / f".{final.name}.{uuid.uuid4().hex}.partial"


def replace_folder(staging: Path, final: Path) -> None:
    """Move ``staging`` to ``final`` atomically; an old ``final`` is moved aside first, then deleted."""
    old = None
    if final.exists():
        old = staging_folder(final)
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
