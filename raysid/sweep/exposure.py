"""What a sweep exposes on the network and on disk, kept to the least that works.

- A local Ray (the one ``raysid sweep`` starts without ``--address``) is a single-node Ray whose node address
  is 127.0.0.1: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` stops Ray from replacing a loopback node address with
  the machine's outward one, and with a loopback node address the GCS, the raylet, every worker's and the
  driver's gRPC servers, the dashboard agent and the runtime-env agent bind 127.0.0.1 only.
  ``RAY_enable_metrics_collection=0`` keeps the dashboard agent's Prometheus endpoint (no authentication)
  closed. Either can be exported to 1 to have Ray's behaviour back.
- The Ray token file is readable by its owner only (0600, folder 0700): Ray writes it with the umask (0644).
- Credentials stay out of Ray: Tune copies AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and
  AWS_SECURITY_TOKEN from the driver's environment into each trial's runtime_env, which Ray's runtime-env agent
  writes to its log and the GCS keeps in its actor table; raysid stops that copy. A local Ray's trial processes
  inherit the environment from the raylet anyway; a cluster's nodes use credentials of their own.
- Credentials never ride in a location (``s3://KEY:SECRET@bucket``, ``?secret_key=``): such a URI would be
  printed, written to ``raysid-sweep.json`` and logged to MLflow; they come from the environment instead.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from raysid.config import ConfigError

LOCAL_RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # one node: its address stays 127.0.0.1, its servers bind it
    "RAY_enable_metrics_collection": "0",  # no unauthenticated Prometheus endpoint in the dashboard agent
}
SECRET_QUERY_KEYS = ("key", "secret", "token", "password", "signature", "credential")


def local_ray_environment() -> None:
    """Settle LOCAL_RAY_ENV (unless exported otherwise) for this process and the Ray it is about to start."""
    for name, value in LOCAL_RAY_ENV.items():
        os.environ.setdefault(name, value)
    from ray._private import ray_constants

    # Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, when it is imported (before this process knew that its
    # Ray would be a local one); what ray.init asks for the node address is this constant.
    ray_constants.ENABLE_RAY_CLUSTER = os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"].lower() in ("1", "true")


def keep_credentials_out_of_ray() -> None:
    """Stop Tune from copying the driver's AWS credentials into trials' runtime_env (see the module docstring)."""
    from ray.tune.execution import class_cache

    kept = {name for name in class_cache.ENV_VARS_TO_PROPAGATE if not name.startswith("AWS_")}
    class_cache.ENV_VARS_TO_PROPAGATE = kept  # read by Tune each time it makes a trial's actor class


def token_path() -> Path | None:
    """The token file Ray reads: $RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token; None with $RAY_AUTH_TOKEN."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return None
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").expanduser()


def private_token(create: bool) -> Path | None:
    """Make the Ray token file owner-only (0600, its folder 0700 when it is ~/.ray); with ``create``, write a new
    random token first when there is none and token authentication is not disabled (what ray.init would do,
    world-readable). Returns the file, or None when there is none."""
    path = token_path()
    if path is None or os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return None
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    if not path.exists():
        return None
    _restrict(path, 0o600)
    if path.parent == Path.home() / ".ray":
        _restrict(path.parent, 0o700)
    return path


def _restrict(path: Path, mode: int) -> None:
    """chmod ``path`` to ``mode`` when it allows more and belongs to this user (another's file is left alone)."""
    info = path.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & ~mode:
        path.chmod(mode)


def check_no_credentials(option: str, location: str | None) -> None:
    """Refuse a location that carries credentials, naming the option and the location with them masked."""
    if not location or "://" not in str(location):
        return
    parts = urlsplit(str(location))
    secret_keys = [k for k, _ in parse_qsl(parts.query) if any(word in k.lower() for word in SECRET_QUERY_KEYS)]
    if parts.password is None and parts.username is None and not secret_keys:
        return
    shown = f"{parts.scheme}://***@{parts.hostname or ''}{parts.path}" if parts.username is not None else \
        f"{parts.scheme}://{parts.netloc}{parts.path}?{'&'.join(f'{k}=***' for k in secret_keys)}"
    raise ConfigError(f"{option} {shown}: credentials in a location end up in logs, raysid-sweep.json and MLflow; "
                      "give them in the environment instead (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                      "AWS_SESSION_TOKEN; GOOGLE_APPLICATION_CREDENTIALS; MLFLOW_TRACKING_USERNAME/PASSWORD)")
