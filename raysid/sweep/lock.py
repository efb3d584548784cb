"""One sweep per results folder: an exclusive ``flock`` on ``<results_dir>/raysid-sweep.lock``.

The lock is taken before Ray or MLflow start and held for the whole sweep. The file holds who holds it (pid,
host, start time, study) as JSON, so a second sweep into the same folder fails at once naming the first. The
kernel releases a ``flock`` when its process dies, so a lock file left by a killed sweep is stale and the
next sweep simply takes it over.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, IO

from raysid.config import ConfigError

LOCK_FILE = "raysid-sweep.lock"
_held: dict[Path, int] = {}  # lock files this process holds -> nesting depth (the CLI locks before run_sweep)


class SweepBusy(ConfigError):
    """Another live sweep holds the results folder."""


class ResultsLock:
    """Context manager holding the results folder's sweep lock (raises SweepBusy when it is taken)."""

    def __init__(self, results_dir: Path | str, study: str):
        self.path = Path(results_dir).expanduser().resolve() / LOCK_FILE
        self.study = study
        self.handle: IO[str] | None = None

    def __enter__(self) -> "ResultsLock":
        if self.path in _held:  # this process holds it already: nested use
            _held[self.path] += 1
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            handle.close()
            raise SweepBusy(f"{self.path.parent} is in use by {describe(holder)}; one sweep per results folder: "
                            "wait for it to end or pass another --results-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(self.holder()))
        handle.flush()
        self.handle = handle
        _held[self.path] = 1
        return self

    def holder(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "study": self.study}

    def __exit__(self, *exc: Any) -> None:
        _held[self.path] -= 1
        if self.handle is not None and not _held[self.path]:
            del _held[self.path]
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def _holder(handle: IO[str]) -> dict[str, Any]:
    handle.seek(0)
    try:
        return json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        return {}


def describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another sweep (it has not written its details yet)"
    return (f"the sweep of {holder.get('study', '?')} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"started {holder.get('started', '?')})")
