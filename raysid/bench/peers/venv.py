"""The peers' virtual environments: each created once from its requirements file, reused while the pins are the same.

Each peer has its own (``PeerEnvironment``): RecBole's lives at ``--peers-venv`` / ``$RAYSID_PEERS_VENV``, else
``~/.cache/raysid/peers-venv``, installed from ``requirements.txt``; cornac's (the TIGER peer) at
``--cornac-venv`` / ``$RAYSID_CORNAC_VENV``, else ``~/.cache/raysid/cornac-venv``, from
``requirements-cornac.txt``. A file ``raysid-peers.sha256`` inside an environment records the digest of the
requirements it was installed from; a missing or different digest (an interrupted install, changed pins)
installs again. Packages come from this machine's package index exactly as pinned, with ``--no-deps`` (each
file lists its whole closure).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from raysid.atomic_files import file_lock

REQUIREMENTS = Path(__file__).with_name("requirements.txt")
RUNNER = Path(__file__).with_name("recbole_runner.py")
DEFAULT_VENV = "~/.cache/raysid/peers-venv"
VENV_ENV = "RAYSID_PEERS_VENV"
MARKER = "raysid-peers.sha256"
QUIET = "is ignored: it is neither a file nor a directory"  # pip's note on this machine's empty extra indexes

Say = Callable[[str], None]


class PeerInstallError(RuntimeError):
    """Creating or installing the peers' environment failed; the message holds the command to rerun."""


@dataclass(frozen=True)
class PeerEnvironment:
    """Where one peer's environment lives by default and what it is installed from."""

    requirements: Path
    default: str  # the folder when neither a path nor ``variable`` is given
    variable: str  # the environment variable naming the folder
    contents: str  # what the install message says it installs


RECBOLE = PeerEnvironment(REQUIREMENTS, DEFAULT_VENV, VENV_ENV, "RecBole and torch CPU")
CORNAC = PeerEnvironment(Path(__file__).with_name("requirements-cornac.txt"), "~/.cache/raysid/cornac-venv",
                         "RAYSID_CORNAC_VENV", "cornac, transformers and torch CPU")
CORNAC_RUNNER = Path(__file__).with_name("cornac_runner.py")


def venv_path(path: str | Path | None = None, environment: PeerEnvironment = RECBOLE) -> Path:
    """A peer's environment: ``path``, else ``$VARIABLE`` of ``environment``, else its default folder
    (RecBole's: ``$RAYSID_PEERS_VENV``, else ``~/.cache/raysid/peers-venv``)."""
    return Path(path or os.environ.get(environment.variable) or environment.default).expanduser().resolve()


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def requirements_digest(requirements: Path = REQUIREMENTS) -> str:
    return hashlib.sha256(requirements.read_bytes()).hexdigest()


def ensure_venv(path: str | Path | None = None, say: Say = print, requirements: Path | None = None,
                environment: PeerEnvironment = RECBOLE) -> Path:
    """A peer's python, creating and installing its environment first unless it is already installed;
    ``requirements`` replaces the environment's own file when given. One process at a time creates or checks
    an environment (a lock file beside it), so two benchmarks started together never use a half-made one."""
    venv = venv_path(path, environment)
    requirements = requirements or environment.requirements
    with file_lock(venv.with_name(f".{venv.name}.lock")):
        return _ensure_installed(venv, requirements, say, environment)


def _ensure_installed(venv: Path, requirements: Path, say: Say, environment: PeerEnvironment) -> Path:
    marker, digest = venv / MARKER, requirements_digest(requirements)
    if marker.is_file() and marker.read_text().strip() == digest and python_of(venv).exists():
        say(f"peers: reusing the environment at {venv}")
        return python_of(venv)
    if not python_of(venv).exists():
        say(f"peers: creating a virtual environment at {venv}")
        _run([sys.executable, "-m", "venv", str(venv)], say, "creating the peers' virtual environment")
    marker.unlink(missing_ok=True)
    count = sum(1 for line in requirements.read_text().splitlines() if line[:1].isalnum())  # pins, not hashes
    say(f"peers: installing {count} pinned package{'s' * (count != 1)} from {requirements} ({environment.contents}; a few minutes)")
    install = [str(python_of(venv)), "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
               "-r", str(requirements)]
    _run(install, say, "installing the peers")
    marker.write_text(digest + "\n")
    say("peers: installed")
    return python_of(venv)


def _run(command: list[str], say: Say, what: str) -> None:
    """Run ``command``, passing its progress lines to ``say``; a failure raises naming the command to rerun."""
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as error:
        raise PeerInstallError(f"{what} failed ({error}); rerun: {shlex.join(command)}") from None
    tail: list[str] = []
    for line in process.stdout:
        line = line.rstrip()
        if line and QUIET not in line:
            tail = (tail + [line])[-5:]
            if line.startswith(("Collecting", "Installing", "Successfully", "ERROR")):
                say(f"  {line}")
    if process.wait() != 0:
        last = tail[-1] if tail else "no output"
        raise PeerInstallError(f"{what} failed (exit {process.returncode}: {last}); rerun: {shlex.join(command)}")
