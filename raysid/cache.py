"""Artifact store: each stage's output kept under the hash of its config and of its inputs' keys.

A stage artifact is a folder ``<root>/<stage>/<key>/`` written atomically (built in a temporary folder,
then renamed) and marked complete by a ``.complete`` file. Concurrent trials that need the same artifact
take a file lock, so one builds it and the others wait and reuse it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
COMPLETE = ".complete"


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
        cached = self.has(stage, key)
        if not cached:
            with self._lock(stage, key):
                cached = self.has(stage, key)
                if not cached:
                    self._produce(stage, key, produce)
        value = load(self.path(stage, key))
        self.records.append(StageRecord(stage, key, time.perf_counter() - start, cached))
        return value

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
