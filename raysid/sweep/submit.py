"""Ray Jobs adapter: ship a study to a cluster, follow its job.

``submit_study`` sends the study YAML (as the job's working_dir) and this checkout's ``raysid`` and ``cli``
packages (as py_modules) to the cluster's job server, and runs ``python -m cli.main sweep STUDY --address
auto …`` there as the job's driver, so the study runs unchanged. The job server is addressed by its HTTP
address (``http://127.0.0.1:8265``) or by a cluster definition under ``clusters/``: a Ray cluster launcher
YAML (a loopback head is reached directly, any other head through ``ray dashboard``'s SSH tunnel) or a
KubeRay RayCluster manifest (through ``kubectl port-forward``). Every helper process takes an argument list,
never a shell string; the job's entrypoint, which the job server runs through a shell, is ``shlex.join``-ed.
Ray's token authentication: the local token is sent to loopback addresses only (see ``use_local_token``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from raysid import kernels, provenance
from raysid.config import ConfigError, require

PACKAGES = ("raysid", "cli")  # shipped as py_modules: the code that runs on the cluster is this checkout's
SHIPPED = ("*.py", "py.typed", "bench/peers/*.txt")  # the allow-list: sources and package data, nothing else
SECRET_LIKE = (".env*", "*.pem", "*.key", "*.p12", "id_rsa*", "id_ed25519*", "*token*", "*credential*", "*secret*", ".netrc")
DEFAULT_DASHBOARD_PORT = 8265
TUNNEL_WAIT_S = 120.0


@dataclass(frozen=True)
class Submission:
    """What a submitted job runs: ``raysid sweep STUDY`` with these options, evaluated on the cluster."""

    study: str  # a study name (search_spaces/NAME.yaml) or a YAML path on this machine
    smoke: bool = False
    results_dir: str | None = None  # a path on the cluster; None: the cluster's $RAYSID_RESULTS_DIR
    cache: str | None = None  # stage cache folder/URI every node sees; default <results_dir>/cache
    storage: str | None = None  # Tune storage folder/URI; default <results_dir>/tune
    tracking_uri: str | None = None  # MLflow store as the driver (on the head) sees it
    mlflow_artifacts: str | None = None
    max_concurrent: int | None = None
    resume: bool = False

    def arguments(self, study_file: str) -> list[str]:
        """The job's entrypoint as an argument list."""
        args = ["python", "-m", "cli.main", "sweep", study_file, "--address", "auto", "--no-progress"]
        options = {"--results-dir": self.results_dir, "--cache-dir": self.cache, "--storage": self.storage,
                   "--tracking-uri": self.tracking_uri, "--mlflow-artifacts": self.mlflow_artifacts,
                   "--max-concurrent": self.max_concurrent}
        for flag, value in options.items():
            if value is not None:
                args += [flag, str(value)]
        return args + ["--smoke"] * self.smoke + ["--resume"] * self.resume


def submit_study(submission: Submission, address: str) -> str:
    """Submit ``submission`` to the job server at ``address``; returns the job (submission) id."""
    from raysid.sweep.space import find_study, load_study, self_contained  # imports the pipeline (torch): only to submit

    study = load_study(submission.study)  # a broken study fails here, not on the cluster
    source = find_study(submission.study)
    job_id = f"raysid-{re.sub(r'[^A-Za-z0-9_-]', '-', study.name)}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="raysid-job-") as folder, tempfile.TemporaryDirectory(prefix="raysid-code-") as code:
        study_file = f"{source.stem}.yaml"
        (Path(folder) / study_file).write_text(self_contained(source))  # its parents merged in: the job has no search_spaces/
        runtime_env = {
            "working_dir": folder,
            "py_modules": [str(stage_package(root / package, Path(code))) for package in PACKAGES],
            "env_vars": {"PYTHONUNBUFFERED": "1", **provenance.environment(), **kernels.environment()},  # the shipped code has no .git
        }
        return _client(address).submit_job(
            entrypoint=shlex.join(submission.arguments(study_file)), runtime_env=runtime_env,
            submission_id=job_id,
            metadata={"raysid.study": study.name, "raysid.results_dir": submission.results_dir or "$RAYSID_RESULTS_DIR"},
        )


def stage_package(package: Path, into: Path) -> Path:
    """A copy of ``package`` under ``into`` holding only the allow-listed files (SHIPPED): a stray ``.env``,
    key or notebook beside the sources never travels. Files that look like secrets are named in a warning."""
    kept = {path for pattern in SHIPPED for path in package.rglob(pattern) if "__pycache__" not in path.parts}
    for path in sorted(kept):
        target = into / package.name / path.relative_to(package)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    secrets = sorted(str(path.relative_to(package.parent)) for pattern in SECRET_LIKE for path in package.rglob(pattern)
                     if path.is_file() and path not in kept)
    if secrets:
        warnings.warn(f"not shipped to the cluster (they look like secrets; keep them out of {package.name}/): "
                      f"{', '.join(secrets)}", stacklevel=2)
    return into / package.name


def job_info(job_id: str, address: str) -> Any:
    """The job's details (status, message, entrypoint, metadata, times)."""
    return _client(address).get_job_info(job_id)


def wait_for_job(job_id: str, address: str, timeout: float, poll: float = 1.0) -> Any:
    """Poll the job until it ends (or ``timeout`` seconds pass); its last details."""
    client, deadline = _client(address), time.monotonic() + timeout
    while True:
        info = client.get_job_info(job_id)
        if info.status.is_terminal() or time.monotonic() > deadline:
            return info
        time.sleep(poll)


def job_logs(job_id: str, address: str) -> str:
    return _client(address).get_job_logs(job_id)


def follow_logs(job_id: str, address: str) -> Iterator[str]:
    """The job's log as it is written, chunk by chunk, until the job ends."""
    stream = _client(address).tail_job_logs(job_id)
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(stream.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.close()


def _client(address: str) -> Any:
    from ray.job_submission import JobSubmissionClient

    use_local_token(address)
    return JobSubmissionClient(address)


def use_local_token(address: str) -> None:
    """Send this machine's Ray token (~/.ray/auth_token, $RAY_AUTH_TOKEN[_PATH]) to a loopback ``address``.

    ``ray start`` turns token authentication on, but Ray enables it on the client side only for
    ``address="auto"``: an explicit address needs ``RAY_AUTH_MODE=token``. raysid sets that for loopback
    addresses (a local head, or an SSH/kubectl tunnel to the cluster a cluster definition names); for any
    other address the token is sent only when the user exported RAY_AUTH_MODE=token. The token file is made
    owner-only (0600) first.
    """
    from raysid.sweep.exposure import private_token

    private_token(create=False)  # owner-only, whichever address it is for
    if "RAY_AUTH_MODE" in os.environ or not is_loopback(address):
        return
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)  # what ray.init does for "auto"


def is_loopback(address: str) -> bool:
    """Whether an address (``host:port``, ``http://host:port``, ``ray://host:port``) names this machine."""
    host = urlsplit(address if "://" in address else f"tcp://{address}").hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- cluster definitions -> a job server address ----------------------------------------------------------


def read_cluster(path: str | Path) -> dict[str, Any]:
    """A cluster definition (YAML, loaded safely; of a multi-document manifest its ray.io document)."""
    where = str(path)
    try:
        documents = [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    except OSError as error:
        raise ConfigError(f"{where}: cannot read the cluster definition ({error})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{where}: not valid YAML ({error})") from None
    ray_documents = [d for d in documents if isinstance(d, dict) and str(d.get("apiVersion", "")).startswith("ray.io/")]
    data = ray_documents[0] if ray_documents else (documents[0] if len(documents) == 1 else documents)
    require(isinstance(data, dict), where, "expected a Ray cluster launcher YAML or a KubeRay manifest (a mapping)")
    require("provider" in data or str(data.get("apiVersion", "")).startswith("ray.io/"), where,
            "expected a Ray cluster launcher YAML (with 'provider') or a KubeRay manifest (apiVersion ray.io/v1)")
    return data


def dashboard_port(config: dict[str, Any]) -> int:
    """The head's dashboard (job server) port: ``--dashboard-port`` in its start command, else 8265."""
    commands = config.get("head_start_ray_commands") or []
    params = (config.get("spec") or {}).get("headGroupSpec", {}).get("rayStartParams", {})
    if "dashboard-port" in params:
        return int(params["dashboard-port"])
    for command in commands:
        words = shlex.split(str(command))
        for index, word in enumerate(words):
            if word.startswith("--dashboard-port="):
                return int(word.split("=", 1)[1])
            if word == "--dashboard-port" and index + 1 < len(words):
                return int(words[index + 1])
    return DEFAULT_DASHBOARD_PORT


def tunnel_command(config: dict[str, Any], path: str | Path, local_port: int) -> list[str] | None:
    """The command forwarding ``127.0.0.1:local_port`` to the head's job server; None when it is local."""
    if "provider" in config:
        provider = config["provider"]
        if provider.get("type") == "local" and is_loopback(str(provider.get("head_ip", ""))):
            return None
        return ["ray", "dashboard", str(path), "--port", str(local_port), "--remote-port", str(dashboard_port(config))]
    kind, meta = config.get("kind"), config.get("metadata") or {}
    require(kind == "RayCluster", f"{path}: kind",
            f"got {kind!r}: submit to a RayCluster; a RayJob runs its own entrypoint (kubectl apply -f {path})")
    return ["kubectl", "port-forward", "--address", "127.0.0.1", "-n", str(meta.get("namespace", "default")),
            f"service/{meta['name']}-head-svc", f"{local_port}:{dashboard_port(config)}"]


@contextlib.contextmanager
def cluster_address(path: str | Path) -> Iterator[str]:
    """The job server address of cluster definition ``path``, through a tunnel while the block runs."""
    config = read_cluster(path)
    port = _free_port()
    command = tunnel_command(config, path, port)
    if command is None:
        yield f"http://127.0.0.1:{dashboard_port(config)}"
        return
    tunnel = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait_for_port(port, tunnel, command)
        yield f"http://127.0.0.1:{port}"
    finally:
        tunnel.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            tunnel.wait(timeout=10)


def _wait_for_port(port: int, process: subprocess.Popen, command: list[str]) -> None:
    deadline = time.monotonic() + TUNNEL_WAIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{shlex.join(command)} exited ({process.returncode}): {process.stderr.read().decode()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{shlex.join(command)}: no tunnel on 127.0.0.1:{port} after {TUNNEL_WAIT_S:.0f} s")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
