"""Artifact store: each stage's output kept under the hash of its config, its inputs' keys and the code version.

A stage artifact is a folder ``<root>/<stage>/<key>/`` written atomically (built in a ``.partial`` staging
folder, then renamed) and marked complete by a ``.complete`` manifest, written last, that records the code
version and every file's size and sha256. Every read (``fetch``, ``local``, a remote store's download)
verifies the files against it; a missing or mismatching artifact, one without a manifest (written by an
older raysid), or one whose ``load`` raises is rebuilt with one ``CacheWarning`` naming the stage, key and
file. Concurrent trials that need the same artifact take a file lock, so one builds it and the others wait
and reuse it.

Keys are made with ``stage_key``, which mixes in ``code_version()``: a hash of the source files of the
raysid modules the stages run (see ``raysid.cache_manifest.CODE_EXCLUDED``), so a code change never reuses artifacts of old code.

On a cluster the store is a location every node sees: a shared filesystem path (a plain ``ArtifactStore``)
or an object-store URI (``s3://bucket/raysid/cache``, ``gs://…``, ``hdfs://…``, ``file://…``), which
``open_store`` turns into a ``RemoteArtifactStore``: artifacts are built in a local mirror folder, uploaded
file by file with ``.complete`` written last, and downloaded (and verified) to the mirror when another
node needs them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from raysid.cache_manifest import (
    COMPLETE,
    MISSING,
    artifact_files,
    code_version,
    forget,
    stage_key,
    verify,
    write_manifest,
)
from raysid.atomic_files import file_lock, replace_folder, staging_folder
from raysid.environment import DiskFull, disk_full

__all__ = ["ArtifactError", "ArtifactStore", "CacheWarning", "RemoteArtifactStore", "code_version", "load_json",
           "open_store", "stage_key"]
T = TypeVar("T")
MIRROR_ENV = "RAYSID_CACHE_MIRROR"  # where remote stores keep their local copies (default: a temp folder)


class CacheWarning(UserWarning):
    """A stored artifact was damaged, unverifiable or unloadable and is rebuilt."""


class ArtifactError(RuntimeError):
    """An artifact that cannot be loaded even after it was rebuilt."""


def load_json(path: Path) -> Any:
    """The JSON document in ``path``; an unreadable or invalid one raises an error naming the file."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ArtifactError(f"{path}: not a readable JSON file ({error})") from None


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
    repairs: list[str] = field(default_factory=list)  # the CacheWarning messages of artifacts rebuilt so far

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
        """Whether the artifact is marked complete (not verified: ``fetch`` and ``local`` verify)."""
        return (self.path(stage, key) / COMPLETE).exists()

    def fetch(
        self,
        stage: str,
        key: str,
        produce: Callable[[Path], None],
        load: Callable[[Path], T],
    ) -> T:
        """Load verified artifact (stage, key), producing it first with ``produce(folder)`` if it is missing
        or damaged; a stored artifact whose ``load`` raises is rebuilt once, a rebuilt one raises ArtifactError."""
        start = time.perf_counter()
        cached = self._ensure(stage, key, produce)
        seen = self._marker(stage, key)
        try:
            value = load(self.path(stage, key))
        except Exception as error:  # noqa: BLE001 - any failure to load is damage of the stored files
            if not cached:
                raise self._unloadable(stage, key, error) from error
            self._rebuild(stage, key, produce, seen, f"it fails to load: {_describe(error)}")
            cached = False
            try:
                value = load(self.path(stage, key))
            except Exception as again:  # noqa: BLE001
                raise self._unloadable(stage, key, again) from again
        self.records.append(StageRecord(stage, key, time.perf_counter() - start, cached))
        return value

    def local(self, stage: str, key: str) -> Path | None:
        """The local folder of a stored, verified artifact, or None if it is not stored (or damaged: warned)."""
        problem = verify(self.path(stage, key))
        if problem is None:
            return self.path(stage, key)
        if problem != MISSING:
            self._warn(stage, key, problem, "not served")
        return None

    def _ensure(self, stage: str, key: str, produce: Callable[[Path], None]) -> bool:
        """Make artifact (stage, key) complete and verified under ``path``; True when it was stored already."""
        if verify(self.path(stage, key)) is None:
            return True
        with self._lock(stage, key):
            problem = verify(self.path(stage, key))
            if problem is None:
                return True
            if problem != MISSING:
                self._warn(stage, key, problem, "rebuilding it")
            self._build(stage, key, produce)
            return False

    def _rebuild(self, stage: str, key: str, produce: Callable[[Path], None], seen: bytes | None, reason: str) -> None:
        """Build (stage, key) again, unless another trial replaced it since ``seen`` (its manifest) was read."""
        with self._lock(stage, key):
            if self._marker(stage, key) != seen and verify(self.path(stage, key)) is None:
                return
            self._warn(stage, key, reason, "rebuilding it")
            self._build(stage, key, produce)

    def _build(self, stage: str, key: str, produce: Callable[[Path], None]) -> None:
        from raysid.distributed import run_scope  # torch: only when something is built

        final = self.path(stage, key)
        staging = staging_folder(final)
        try:
            staging.mkdir(parents=True)
            with run_scope(stage, key):  # a Ray Train run of this build resumes where an interrupted one stopped
                produce(staging)
            write_manifest(staging, stage, key)
            replace_folder(staging, final)
        except Exception as error:
            if disk_full(error):  # torch says "unexpected pos", SQLite "disk is full": name the disk instead
                raise DiskFull(self.root, f"the {stage} artifact") from error
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _marker(self, stage: str, key: str) -> bytes | None:
        try:
            return (self.path(stage, key) / COMPLETE).read_bytes()
        except OSError:
            return None

    def _warn(self, stage: str, key: str, problem: str, action: str) -> None:
        message = f"stage cache: {stage} artifact {key} at {self.path(stage, key)} is damaged ({problem}); {action}"
        self.repairs.append(message)
        warnings.warn(message, CacheWarning, stacklevel=4)

    def _unloadable(self, stage: str, key: str, error: BaseException) -> ArtifactError:
        return ArtifactError(f"stage cache: {stage} artifact {key} at {self.path(stage, key)} fails to load "
                             f"after it was built: {_describe(error)}")

    @contextlib.contextmanager
    def _lock(self, stage: str, key: str) -> Iterator[None]:
        with file_lock(self.root / stage / f".{key}.lock"):
            yield

    def timings(self) -> dict[str, float]:
        """Per-stage seconds and cache flags of everything fetched so far, as flat metrics."""
        metrics: dict[str, float] = {}
        for record in self.records:
            metrics[f"time/{record.stage}"] = metrics.get(f"time/{record.stage}", 0.0) + record.seconds
            metrics[f"cached/{record.stage}"] = float(record.cached)
        return metrics


def _describe(error: BaseException) -> str:
    """An exception as one line, with the file it names (OSError) when it names one."""
    where = f" ({error.filename})" if isinstance(error, OSError) and error.filename else ""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}{where}: {text[0] if text else ''}"


@dataclass
class RemoteArtifactStore(ArtifactStore):
    """Artifacts under a pyarrow filesystem URI, with a local mirror folder (``root``) to build and load in.

    Artifacts are immutable (content-addressed), so a complete, verified mirror copy is never stale; a
    damaged mirror copy is downloaded again, a damaged remote artifact rebuilt and uploaded again. The lock
    only serialises trials of one node: trials on different nodes that miss the same artifact at the same
    time may both build it; both uploads hold the same content and ``.complete`` is written after the files.
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
        if verify(self.path(stage, key)) is None:
            return self.path(stage, key)
        if not self._remote_has(stage, key):
            return None
        with self._lock(stage, key):
            problem = verify(self.path(stage, key))
            if problem is not None:
                problem = self._download(stage, key)
        if problem is None:
            return self.path(stage, key)
        self._warn(stage, key, f"remote copy: {problem}", "not served")
        return None

    def _ensure(self, stage: str, key: str, produce: Callable[[Path], None]) -> bool:
        if verify(self.path(stage, key)) is None:
            return True
        with self._lock(stage, key):
            if verify(self.path(stage, key)) is None:
                return True
            problem = self._download(stage, key) if self._remote_has(stage, key) else MISSING
            if problem is None:
                return True
            if problem != MISSING:
                self._warn(stage, key, f"remote copy: {problem}", "rebuilding it")
            self._build(stage, key, produce)
            return False

    def _build(self, stage: str, key: str, produce: Callable[[Path], None]) -> None:
        super()._build(stage, key, produce)
        self._upload(stage, key)

    def _remote_has(self, stage: str, key: str) -> bool:
        from pyarrow import fs

        info = self.filesystem.get_file_info(f"{self.remote_path(stage, key)}/{COMPLETE}")
        return info.type == fs.FileType.File

    def _upload(self, stage: str, key: str) -> None:
        """Copy the mirror folder up (replacing a damaged remote copy), every file before ``.complete``."""
        from pyarrow import fs

        folder, remote = self.path(stage, key), self.remote_path(stage, key)
        if self.filesystem.get_file_info(remote).type == fs.FileType.Directory:
            self.filesystem.delete_dir(remote)
        for path in [*artifact_files(folder), folder / COMPLETE]:
            target = f"{remote}/{path.relative_to(folder).as_posix()}"
            self.filesystem.create_dir(target.rsplit("/", 1)[0], recursive=True)
            with self.filesystem.open_output_stream(target) as out, open(path, "rb") as handle:
                shutil.copyfileobj(handle, out, length=1 << 20)

    def _download(self, stage: str, key: str) -> str | None:
        """Copy a complete remote artifact into the mirror if it verifies; else what is wrong with it."""
        from pyarrow import fs

        final = self.path(stage, key)
        staging = staging_folder(final)
        staging.mkdir(parents=True)
        try:
            fs.copy_files(self.remote_path(stage, key), str(staging), source_filesystem=self.filesystem,
                          destination_filesystem=fs.LocalFileSystem())
            problem = verify(staging)
            if problem is None:
                replace_folder(staging, final)
            return problem
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            forget(staging)


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
