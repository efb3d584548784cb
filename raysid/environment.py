"""The machine a sweep runs on: checks before anything starts, and one line for each way it can fail.

Pre-flight (``preflight``, before Ray or MLflow start): every local location a sweep writes (results, stage
cache, Tune storage, the SQLite MLflow store) must be a folder it can write with at least ``MIN_FREE_BYTES``
free on its disk, and an ``http(s)://`` MLflow server must answer. Afterwards ``explain`` turns the errors
an environment causes (a full disk, an unwritable folder, a local Ray that does not start in time, a cluster
or job server that wants Ray's auth token) into one line with the next step; ``disk_full`` recognises a full
disk behind any library's error (an ``OSError`` ENOSPC, SQLite's "database or disk is full", torch's
"unexpected pos" from a truncated write).
"""

from __future__ import annotations

import errno
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from raysid.config import ConfigError

MIN_FREE_BYTES = 64 * 2**20  # a sweep refuses to start with less free on a disk it writes
DISK_FULL_SIGNS = ("no space left on device", "database or disk is full", "disk quota exceeded", "unexpected pos")
RAY_START_SIGNS = ("timed out during startup", "raylet_start_wait_time_s", "while waiting for node to startup",
                   "failed to start gcs")
AUTH_SIGNS = ("invalidauthtoken", "authentication token is missing", "authentication token was found")


class DiskFull(OSError):
    """A write failed because the disk is full; the message names the disk, its free space and the next step."""

    def __init__(self, path: str | Path, what: str = ""):
        super().__init__(errno.ENOSPC, disk_full_line(path, what))

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):  # crosses process boundaries (a Ray trial's error) with its message
        return (_rebuild_disk_full, (self.strerror,))


def _rebuild_disk_full(message: str) -> DiskFull:
    error = DiskFull.__new__(DiskFull)
    OSError.__init__(error, errno.ENOSPC, message)
    return error


def size_text(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def existing(path: str | Path) -> Path:
    """``path`` or its nearest ancestor that exists (what statvfs and a mount lookup can ask about)."""
    path = Path(path).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def mount_point(path: str | Path) -> Path:
    path = existing(path).resolve()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: str | Path) -> tuple[int, int]:
    """(free bytes for an unprivileged writer, total bytes) of the disk holding ``path``."""
    usage = os.statvfs(existing(path))
    return usage.f_bavail * usage.f_frsize, usage.f_blocks * usage.f_frsize


def disk_full_line(path: str | Path, what: str = "") -> str:
    free, total = free_bytes(path)
    return (f"the disk holding {path} ({mount_point(path)}) is full{f' while writing {what}' if what else ''}: "
            f"{size_text(free)} free of {size_text(total)}; free space there or move the stores to a larger disk "
            "(--results-dir, --cache-dir), then continue with --resume")


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or one it was raised from) says that a disk is full."""
    for link in _chain(error):
        if isinstance(link, OSError) and link.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if says_disk_full(str(link)):
            return True
    return False


def says_disk_full(text: str) -> bool:
    """Whether an error's text (a trial's error file, a library's message) says that a disk is full."""
    return any(sign in text.lower() for sign in DISK_FULL_SIGNS)


def _os_error(error: BaseException) -> OSError | None:
    return next((link for link in _chain(error) if isinstance(link, OSError) and link.errno), None)


# --- pre-flight ------------------------------------------------------------------------------------------


def check_writable(location: str | Path, option: str) -> Path:
    """Create the folder if need be and write a probe file in it; one line naming the option when it cannot."""
    path = Path(location).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".raysid-probe-"):
            pass
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), path)
        raise ConfigError(f"{option} {path}: {blocker} is a file, not a folder; give a folder "
                          f"(or remove the file)") from None
    except OSError as error:
        if disk_full(error):
            raise ConfigError(f"{option} {path}: {disk_full_line(path)}") from None
        raise ConfigError(f"{option} {path}: cannot write there ({error.strerror or error}); give a folder you can "
                          f"write to") from None
    return path


def check_free_space(location: str | Path, option: str, minimum: int = MIN_FREE_BYTES) -> None:
    free, total = free_bytes(location)
    if free < minimum:
        raise ConfigError(f"{option} {location}: its disk ({mount_point(location)}) has {size_text(free)} free of "
                          f"{size_text(total)}; a sweep needs at least {size_text(minimum)} there: free space or "
                          f"give a folder on another disk")


def check_tracking_server(uri: str, timeout: float = 10.0) -> None:
    """An ``http(s)://`` MLflow tracking server must answer (MLflow itself retries for minutes, then prints a
    traceback); other stores are left to MLflow."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            raise ConfigError(f"--tracking-uri {uri}: the MLflow server refused ({error.code} {error.reason}); set "
                              "MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD") from None
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise ConfigError(f"--tracking-uri {uri}: no MLflow server answers there ({reason}); start one "
                          "(mlflow server --host 127.0.0.1 --port 5000) or leave --tracking-uri out to use "
                          "RESULTS_DIR/mlflow.db") from None


def sqlite_folder(uri: str) -> Path | None:
    """The folder of a ``sqlite:///PATH`` store (None for any other store)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///")).expanduser().absolute().parent


def preflight(locations: dict[str, str | Path | None], tracking_uri: str) -> None:
    """Check, before Ray or MLflow start, every local folder a sweep writes and the MLflow server (see the
    module docstring); ``locations`` maps each option name to its folder (None or a URI: skipped)."""
    folders = dict(locations)
    folders.setdefault("--tracking-uri", sqlite_folder(tracking_uri))
    checked: set[Path] = set()
    for option, location in folders.items():
        if location is None or "://" in str(location):
            continue
        path = check_writable(location, option)
        disk = mount_point(path)
        if disk not in checked:
            checked.add(disk)
            check_free_space(path, option)
    check_tracking_server(tracking_uri)


# --- one line per environment failure ---------------------------------------------------------------------


def ray_start_line(error: BaseException) -> str | None:
    """A local Ray that did not start in time, as one line with the next step (None for other errors)."""
    text = " ".join(str(link) for link in _chain(error)).lower()
    if not any(sign in text for sign in RAY_START_SIGNS):
        return None
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs" if hasattr(os, "getloadavg") else "a busy machine"
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    return (f"the local Ray did not start in time ({first.split('. ')[0].rstrip('.')}; {load}); run it again when the machine is "
            "less busy, give Ray longer (export RAY_raylet_start_wait_time_s=120), or pass --address of a running "
            "cluster")


def auth_line(error: BaseException, address: str) -> str | None:
    """A cluster or job server that wants Ray's auth token, as one line with the next step (None otherwise)."""
    links = list(_chain(error))
    text = " ".join(str(link) for link in links).lower()
    if not any(type(link).__name__ == "AuthenticationError" for link in links) and not any(s in text for s in AUTH_SIGNS):
        return None  # ray.exceptions.AuthenticationError, by name: ray need not be imported to tell
    return (f"the Ray cluster at {address} needs its auth token, which this machine does not have, or has another one: "
            "copy the head's ~/.ray/auth_token here (or export RAY_AUTH_TOKEN_PATH=FILE or RAY_AUTH_TOKEN=…) "
            "and export RAY_AUTH_MODE=token")


def explain(error: BaseException) -> str | None:
    """One line for an error the environment caused (full disk, unwritable path, Ray start), else None."""
    if isinstance(error, (DiskFull, ConfigError)):
        return str(error)
    if disk_full(error):
        found = _os_error(error)
        where = getattr(found, "filename", None) or os.getcwd()
        return disk_full_line(where)
    found = _os_error(error)
    if found is not None and found.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"cannot write {found.filename or 'a file'} ({found.strerror}); give folders you can write to "
                "(--results-dir, --cache-dir, --storage, --root) or fix the folder's permissions")
    if found is not None and found.errno in (errno.ENOTDIR, errno.EISDIR, errno.ENOENT) and found.filename:
        return f"{found.filename}: {found.strerror}; check the path given"
    ray_line = ray_start_line(error) or auth_line(error, "the address given")
    if ray_line is not None:
        return ray_line
    if isinstance(error, MemoryError):
        return "out of memory; run fewer trials at once (--max-concurrent 1) or a smaller study (--smoke)"
    return None


__all__ = ["DiskFull", "MIN_FREE_BYTES", "check_free_space", "check_tracking_server", "check_writable", "disk_full",
           "explain", "free_bytes", "preflight", "ray_start_line", "says_disk_full"]
