"""Artifact store: each stage's output kept under the hash of its config and of its inputs' keys.

A stage artifact is a folder ``<root>/<stage>/<key>/`` written atomically (built in a temporary folder,
then renamed) and marked complete by a ``.complete`` file. Concurrent trials that need the same artifact
take a file lock, so one builds it and the others wait and reuse it.

On a cluster the store is a location every node sees: a shared filesystem path (a plain ``ArtifactStore``)
or an object-store URI (``s3://bucket/raysid/cache``, ``gs://…``, ``hdfs://…``, ``file://…``), which
``open_store`` turns into a ``RemoteArtifactStore``: artifacts are built in a local mirror folder, uploaded
file by file with ``.complete`` written last, and downloaded to the mirror when another node needs them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
COMPLETE = ".complete"
MIRROR_ENV = "RAYSID_CACHE_MIRROR"  # where remote stores keep their local copies (default: a temp folder)


@dataclass
class StageRecord:
    """What one stage cost: wall seconds and whether its artifact came from the store."""

    stage: str
    key: str
    seconds: float
    cached: bool


@dataclass
class ArtifactStore:
    """A folder of stage artifacts keyed by content hash, safe for concurrent trials on one filesystem."""

    root: Path
    records: list[StageRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def location(self) -> str:
        """Where the artifacts live, as given to ``open_store``."""
        return str(self.root)

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def has(self, stage: str, key: str) -> bool:
        return (self.path(stage, key) / COMPLETE).exists()

    def fetch(
        self,
        stage: str,
        key: str,
        produce: Callable[[Path], None],
        load: Callable[[Path], T],
    ) -> T:
        """Load artifact (stage, key), producing it first with ``produce(folder)`` if it is missing."""
        start = time.perf_counter()
        cached = self._ensure(stage, key, produce)
        value = load(self.path(stage, key))
        self.records.append(StageRecord(stage, key, time.perf_counter() - start, cached))
        return value

    def local(self, stage: str, key: str) -> Path | None:
        """The local folder of a stored artifact (downloaded first if need be), or None if it is not stored."""
        return self.path(stage, key) if self.has(stage, key) else None

    def _ensure(self, stage: str, key: str, produce: Callable[[Path], None]) -> bool:
        """Make artifact (stage, key) complete under ``path``; True when it was stored already."""
        if self.has(stage, key):
            return True
        with self._lock(stage, key):
            if self.has(stage, key):
                return True
            self._produce(stage, key, produce)
            return False

    def _produce(self, stage: str, key: str, produce: Callable[[Path], None]) -> None:
        final = self.path(stage, key)
        staging = final.parent / f".{key}.{uuid.uuid4().hex}.partial"
        staging.mkdir(parents=True)
        try:
            produce(staging)
            (staging / COMPLETE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
            if final.exists():  # an incomplete leftover of an interrupted run
                shutil.rmtree(final)
            os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @contextlib.contextmanager
    def _lock(self, stage: str, key: str) -> Iterator[None]:
        lock_path = self.root / stage / f".{key}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def timings(self) -> dict[str, float]:
        """Per-stage seconds and cache flags of everything fetched so far, as flat metrics."""
        metrics: dict[str, float] = {}
        for record in self.records:
            metrics[f"time/{record.stage}"] = metrics.get(f"time/{record.stage}", 0.0) + record.seconds
            metrics[f"cached/{record.stage}"] = float(record.cached)
        return metrics


@dataclass
class RemoteArtifactStore(ArtifactStore):
    """Artifacts under a pyarrow filesystem URI, with a local mirror folder (``root``) to build and load in.

    Artifacts are immutable (content-addressed), so a complete mirror copy is never stale. The lock only
    serialises trials of one node: trials on different nodes that miss the same artifact at the same time
    may both build it; both uploads hold the same content and ``.complete`` is written after the files.
    """

    uri: str = ""

    def __post_init__(self) -> None:
        from pyarrow import fs

        super().__post_init__()
        try:
            self.filesystem, self.base = fs.FileSystem.from_uri(self.uri)
        except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise ValueError(f"cache URI {self.uri!r}: not a filesystem pyarrow can open ({error})") from error
        self.filesystem.create_dir(self.base, recursive=True)

    @property
    def location(self) -> str:
        return self.uri

    def remote_path(self, stage: str, key: str) -> str:
        return f"{self.base.rstrip('/')}/{stage}/{key}"

    def has(self, stage: str, key: str) -> bool:
        return super().has(stage, key) or self._remote_has(stage, key)

    def local(self, stage: str, key: str) -> Path | None:
        if super().has(stage, key):
            return self.path(stage, key)
        if not self._remote_has(stage, key):
            return None
        with self._lock(stage, key):
            if not super().has(stage, key):
                self._download(stage, key)
        return self.path(stage, key)

    def _ensure(self, stage: str, key: str, produce: Callable[[Path], None]) -> bool:
        if super().has(stage, key):
            return True
        with self._lock(stage, key):
            if super().has(stage, key):
                return True
            if self._remote_has(stage, key):
                self._download(stage, key)
                return True
            self._produce(stage, key, produce)
            self._upload(stage, key)
            return False

    def _remote_has(self, stage: str, key: str) -> bool:
        from pyarrow import fs

        info = self.filesystem.get_file_info(f"{self.remote_path(stage, key)}/{COMPLETE}")
        return info.type == fs.FileType.File

    def _upload(self, stage: str, key: str) -> None:
        """Copy the mirror folder up, every file before ``.complete``."""
        folder, remote = self.path(stage, key), self.remote_path(stage, key)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != COMPLETE)
        for path in [*files, folder / COMPLETE]:
            target = f"{remote}/{path.relative_to(folder).as_posix()}"
            self.filesystem.create_dir(target.rsplit("/", 1)[0], recursive=True)
            with self.filesystem.open_output_stream(target) as out, open(path, "rb") as handle:
                shutil.copyfileobj(handle, out, length=1 << 20)

    def _download(self, stage: str, key: str) -> None:
        """Copy a complete remote artifact into the mirror (staged, then renamed into place)."""
        from pyarrow import fs

        final = self.path(stage, key)
        staging = final.parent / f".{key}.{uuid.uuid4().hex}.partial"
        staging.mkdir(parents=True)
        try:
            fs.copy_files(self.remote_path(stage, key), str(staging), source_filesystem=self.filesystem,
                          destination_filesystem=fs.LocalFileSystem())
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def is_uri(location: Any) -> bool:
    """True for ``scheme://…`` strings (object stores, file://), False for plain paths."""
    return isinstance(location, str) and "://" in location


def open_store(location: str | Path, mirror: str | Path | None = None) -> ArtifactStore:
    """The artifact store at a local/shared folder, or at a URI (mirrored under ``mirror``)."""
    if not is_uri(location):
        return ArtifactStore(Path(location))
    return RemoteArtifactStore(Path(mirror) if mirror else default_mirror(str(location)), uri=str(location))


def default_mirror(uri: str) -> Path:
    """``$RAYSID_CACHE_MIRROR/<hash of uri>``, by default under the system's temporary folder."""
    base = Path(os.environ.get(MIRROR_ENV) or Path(tempfile.gettempdir()) / "raysid-cache-mirror")
    return base / hashlib.sha256(uri.encode()).hexdigest()[:16]
