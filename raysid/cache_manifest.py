"""Integrity of stage artifacts: the code version in every key and checksum manifests (locks and atomic folders
are in ``raysid.atomic_files``).

``code_version()`` hashes the source of the raysid modules the stages run (``CODE_EXCLUDED`` left out) once
per process; ``stage_key`` mixes it into every artifact key. ``write_manifest`` records, in the artifact's
``.complete`` file written last, the code version and every file's size and sha256; ``verify`` checks them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from raysid.config import stable_hash

COMPLETE = ".complete"
MANIFEST_FORMAT = 1  # layout of the .complete manifest; another format counts as unverifiable
PACKAGE = Path(__file__).resolve().parent
# Source files (relative to the raysid package) that cannot change a stage's output, left out of the code
# version: the sweep/Tune/MLflow adapters, reports and their plots, benchmarks, report-only commands, and
# the store itself (its manifest format is checked on read instead), and the model-size presets (they only
# produce config values, which are hashed like any other).
CODE_EXCLUDED = ("sweep/", "reporting/", "bench/", "cache.py", "cache_manifest.py", "cache_maintenance.py",
                 "atomic_files.py", "environment.py", "verify.py", "presets.py")
MISSING = "missing"  # _problem's answer for an artifact that is not stored at all


@functools.cache
def code_version(package: Path = PACKAGE) -> str:
    """Hash of the source of every raysid module a stage runs (``CODE_EXCLUDED`` left out), once per process."""
    digest = hashlib.sha256()
    for path in code_files(package):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def code_files(package: Path = PACKAGE) -> list[Path]:
    """The ``.py`` files under ``package`` that make up the code version, sorted."""
    files = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if "__pycache__" not in relative and not relative.startswith(CODE_EXCLUDED):
            files.append(path)
    return files


def stage_key(*parts: Any) -> str:
    """A stage artifact's key: the stable hash of ``parts`` (config, input keys) and the code version."""
    return stable_hash(code_version(), *parts)


# --- manifests ------------------------------------------------------------------------------------------


def write_manifest(folder: Path, stage: str, key: str) -> None:
    """Record every file of ``folder`` (size, sha256) and the code version in ``folder/.complete``."""
    files = {path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": file_sha256(path)}
             for path in artifact_files(folder)}
    manifest = {"format": MANIFEST_FORMAT, "stage": stage, "key": key, "code_version": code_version(),
                "created": time.time(), "files": files}
    (folder / COMPLETE).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of ``folder``, or None when it has none in the current format."""
    try:
        manifest = json.loads((folder / COMPLETE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("files"), dict):
        return None
    return manifest


def verify(folder: Path) -> str | None:
    """None when every file of ``folder`` matches its manifest, else what is wrong, naming the file."""
    if not (folder / COMPLETE).is_file():
        return MISSING if not folder.exists() else f"{COMPLETE} is missing (an unfinished artifact)"
    manifest = read_manifest(folder)
    if manifest is None:
        return f"{COMPLETE} holds no checksums (written by an older raysid): unverifiable"
    signature = _signature(folder, manifest)
    if _VERIFIED.get(str(folder)) == signature:
        return None
    for name, entry in sorted(manifest["files"].items()):
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != entry.get("size"):
            return f"{name} has {size} bytes, its manifest says {entry.get('size')}"
        if file_sha256(path) != entry.get("sha256"):
            return f"{name} does not match its sha256 checksum"
    _VERIFIED[str(folder)] = signature
    return None


_VERIFIED: dict[str, tuple] = {}  # folder -> stat signature when last verified: unchanged files are not hashed again


def forget(folder: Path) -> None:
    """Drop what ``verify`` remembers of ``folder`` (a staging folder that is gone)."""
    _VERIFIED.pop(str(folder), None)


def _signature(folder: Path, manifest: dict[str, Any]) -> tuple:
    """Sizes, mtimes and inodes of the manifest and its files (None for a missing one)."""
    def stat(path: Path) -> tuple | None:
        try:
            info = path.stat()
        except OSError:
            return None
        return info.st_size, info.st_mtime_ns, info.st_ino

    return tuple(stat(folder / name) for name in [COMPLETE, *sorted(manifest["files"])])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() != COMPLETE)


def folder_bytes(path: Path) -> int:
    """Total size of the files under ``path`` (or of the file ``path``)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
