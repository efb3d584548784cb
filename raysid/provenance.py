"""Provenance: which code, which libraries and which hardware produced a number.

``collect(threads)`` returns flat string fields (``commit``, ``dirty``, ``raysid``, ``torch``, …, ``cpu``,
``gpu``, ``threads``). The pipeline stores them in every result artifact (what *made* the metrics, also when
a later sweep answers the trial from the cache); the sweep logs them as MLflow tags (``provenance.*``) on the
sweep run and every trial run, as ``provenance.*`` columns of ``trials.parquet``, and as ``provenance.json``
beside each ``summary.md``.

The commit is read from the git checkout raysid runs from. A job shipped to a cluster has no ``.git``: the
submitting side passes its commit in ``RAYSID_GIT_COMMIT`` / ``RAYSID_GIT_DIRTY`` (see ``environment``).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
import sys
import time
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from raysid import kernels
from raysid.cache_manifest import code_version

ROOT = Path(__file__).resolve().parents[1]  # the checkout (or site-packages) raysid is imported from
LIBRARIES = {  # provenance field -> distribution name
    "raysid": "raysid", "torch": "torch", "ray": "ray", "transformers": "transformers", "optuna": "optuna",
    "faiss": "faiss-cpu", "mlflow": "mlflow", "polars": "polars", "numpy": "numpy",
}
# What decides results: a change here makes the tree "dirty" (results/ and docs do not).
CODE_PATHS = ("raysid", "cli", "search_spaces", "pyproject.toml", "requirements.lock", "requirements.in")
COMMIT_ENV, DIRTY_ENV = "RAYSID_GIT_COMMIT", "RAYSID_GIT_DIRTY"
UNKNOWN = "unknown"
PREFIX = "provenance."  # of MLflow tags, table columns and trial-report keys


def collect(threads: int | None = None) -> dict[str, str]:
    """Commit, dirty flag, library versions, lock hash, platform, CPU/GPU model and threads, as strings."""
    fields = {**_static(), "gpu": _gpu(), "kernels": kernels.in_use()}
    fields["threads"] = str(threads if threads is not None else _torch_threads())
    return fields


@lru_cache(maxsize=1)
def _static() -> dict[str, str]:
    commit, dirty = _git()
    fields = {"commit": commit, "dirty": dirty}
    fields |= {name: _version(dist) for name, dist in LIBRARIES.items()}
    fields["python"] = platform.python_version()
    fields["lock"] = _lock_digest()
    fields["code_version"] = code_version()  # what the stage cache keys carry
    fields["platform"] = platform.platform()
    fields["cpu"] = cpu_model()
    fields["cpu_count"] = str(os.cpu_count() or 0)
    return fields


def environment() -> dict[str, str]:
    """Environment variables that carry this checkout's commit to a process with no git checkout (a job)."""
    commit, dirty = _git()
    return {COMMIT_ENV: commit, DIRTY_ENV: dirty}


def _git() -> tuple[str, str]:
    """(commit, "true"/"false") of the checkout, from the environment when it was shipped without .git."""
    if os.environ.get(COMMIT_ENV):
        return os.environ[COMMIT_ENV], os.environ.get(DIRTY_ENV, UNKNOWN)
    commit = _run_git("rev-parse", "HEAD")
    if commit is None:
        return UNKNOWN, UNKNOWN
    status = _run_git("status", "--porcelain", "--", *CODE_PATHS)
    return commit, UNKNOWN if status is None else str(bool(status)).lower()


def _run_git(*args: str) -> str | None:
    if not (ROOT / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _lock_digest() -> str:
    """sha256 of the requirements.lock beside the checkout (what the install was made from), if any."""
    lock = ROOT / "requirements.lock"
    return hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else UNKNOWN


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or UNKNOWN


def _gpu() -> str:
    """The first CUDA device's name, or "none"; only asks torch when it is imported already (no import cost)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return "none"
    return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"


def _torch_threads() -> int:
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else 0


def tagged(fields: dict[str, str]) -> dict[str, str]:
    """The fields as MLflow tags / table columns / report keys: ``provenance.commit``, …"""
    return {f"{PREFIX}{key}": value for key, value in fields.items()}


def command_line() -> str:
    """The command this process runs, as a user would type it (``raysid sweep musicrec-ratio --smoke``)."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program == "raysid" or Path(sys.argv[0]).as_posix().endswith("cli/main.py"):
        program = "raysid"
    return shlex.join([program, *sys.argv[1:]])


def results_record(trials: Any, study: str, smoke: bool) -> dict[str, Any]:
    """What ``provenance.json`` beside a ``summary.md`` holds: the command, this process's provenance and
    every distinct provenance of the runs that produced the trials' metrics, with their trial counts."""
    columns = [c for c in getattr(trials, "columns", []) if c.startswith(PREFIX)]
    producers = []
    if columns:
        counted = trials.group_by(columns, maintain_order=True).len("trials")
        producers = [{k.removeprefix(PREFIX): v for k, v in row.items()} for row in counted.iter_rows(named=True)]
    return {"study": study, "smoke": smoke, "command": command_line(),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "report_made_by": collect(), "trials_made_by": producers}


def summary_line(record: dict[str, Any]) -> str:
    """One markdown line saying which code and libraries made a report's numbers."""
    made = record["trials_made_by"] or [record["report_made_by"]]
    commits = sorted({f"{m.get('commit', UNKNOWN)[:10]}{' (dirty)' if m.get('dirty') == 'true' else ''}" for m in made})
    first = made[0]
    libraries = ", ".join(f"{name} {first.get(name, UNKNOWN)}" for name in ("torch", "ray", "transformers", "numpy", "polars"))
    versions = ", ".join(sorted({m.get("code_version", UNKNOWN) for m in made}))
    threads = first.get("threads", "?")
    return (f"Made by `{record['command']}` at commit {', '.join(commits)} (code version {versions}) with {libraries} "
            f"on {first.get('cpu', UNKNOWN)} ({threads} thread{'' if threads == '1' else 's'} per trial); "
            "all of it in `provenance.json`.")
