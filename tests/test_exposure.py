"""What a sweep exposes: the Ray token file's permissions, credentials in locations, and (slow) the sockets a
real local sweep listens on."""

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ray_processes import ROOT, descendants, is_loopback, kill, listening_sockets

from raysid.config import ConfigError
from raysid.sweep.exposure import check_no_credentials, private_token
from raysid.sweep.runner import SweepSettings


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_missing_token_is_created_owner_only(home):
    path = private_token(create=True)
    assert path == home / ".ray" / "auth_token" and len(path.read_text()) == 64
    assert _mode(path) == 0o600 and _mode(home / ".ray") == 0o700
    assert private_token(create=True).read_text() == path.read_text()  # kept, not replaced


def test_a_world_readable_token_is_tightened_and_none_is_made_when_not_asked(home):
    assert private_token(create=False) is None and not (home / ".ray").exists()
    (home / ".ray").mkdir(mode=0o755)
    (home / ".ray" / "auth_token").write_text("t" * 64)
    os.chmod(home / ".ray" / "auth_token", 0o644)  # as ray.init / ray get-auth-token --generate leave it
    assert private_token(create=False).read_text() == "t" * 64
    assert _mode(home / ".ray" / "auth_token") == 0o600 and _mode(home / ".ray") == 0o700


def test_the_token_path_and_mode_of_the_environment_are_followed(home, monkeypatch):
    token = home / "elsewhere" / "token"
    token.parent.mkdir(mode=0o755)
    token.write_text("x")
    os.chmod(token, 0o640)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    assert private_token(create=True) == token and _mode(token) == 0o600 and _mode(token.parent) == 0o755
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    token.unlink()
    assert private_token(create=True) is None and not token.exists()
    monkeypatch.delenv("RAY_AUTH_MODE")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "in-the-environment")
    assert private_token(create=True) is None and not token.exists()


@pytest.mark.parametrize("option, location", [
    ("--cache-dir", "s3://AKIAEXAMPLE:s3cr3t-value@bucket/cache"),
    ("--storage", "s3://bucket/tune?access_key=AKIAEXAMPLE&secret_key=s3cr3t-value"),
    ("--tracking-uri", "http://user:s3cr3t-value@mlflow.example:5000"),
])
def test_a_location_with_credentials_is_refused_without_echoing_them(option, location):
    with pytest.raises(ConfigError) as refused:
        SweepSettings(**{{"--cache-dir": "cache_dir", "--storage": "storage", "--tracking-uri": "tracking_uri"}[option]: location})
    message = str(refused.value)
    assert message.startswith(f"{option} ") and "AWS_SECRET_ACCESS_KEY" in message and "***" in message
    assert "s3cr3t-value" not in message and "AKIAEXAMPLE" not in message


def test_raysid_sweep_refuses_a_location_with_credentials_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["sweep", "musicrec-ratio", "--smoke", "--results-dir", str(tmp_path),
                                      "--mlflow-artifacts", "s3://AKIAEXAMPLE:s3cr3t-value@bucket/mlartifacts"])
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert output.startswith("error: --mlflow-artifacts s3://***@bucket/mlartifacts: credentials in a location")
    assert "s3cr3t-value" not in result.output and not (tmp_path / "tune").exists()


def test_locations_without_credentials_pass():
    for location in (None, "results/cache", "s3://bucket/raysid/cache", "gs://b/c", "file:///tmp/x",
                     "s3://bucket/c?region=eu-west-1&endpoint_override=127.0.0.1:9000", "sqlite:////tmp/mlflow.db"):
        check_no_credentials("--cache-dir", location)


@pytest.mark.parametrize("name", ["local.yaml", "aws-gpu.yaml"])
def test_cluster_definitions_make_the_copied_token_owner_only(name):
    import yaml

    config = yaml.safe_load((ROOT / "clusters" / name).read_text())
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert "chmod 700 ~/.ray && chmod 600 ~/.ray/auth_token" in config["setup_commands"]  # after file_mounts


# --- a real local sweep: what it listens on ----------------------------------------------------------------

RAY_METRICS_SERVERS = ("dashboard/dashboard.py", "autoscaler/_private/monitor.py")  # README: no off switch, loopback


def _answers_prometheus(port: int) -> bool:
    """Whether 127.0.0.1:port answers an unauthenticated ``GET /metrics`` with Prometheus text."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
            connection.sendall(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            reply = b""
            while len(reply) < 65536 and (chunk := connection.recv(4096)):
                reply += chunk
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0] and b"# TYPE " in reply


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_local_sweep_listens_on_loopback_only_with_no_metrics_endpoint_of_its_own(tmp_path):
    """`raysid sweep musicrec-ratio --smoke` on the local Ray it starts: every socket its processes listen on is
    on loopback, the dashboard agent serves no metrics, and the token raysid made is owner-only."""
    ray_temp = Path(tempfile.mkdtemp(prefix="rse", dir="/tmp"))
    token = tmp_path / "ray-token"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
    env.update(RAY_TMPDIR=str(ray_temp), RAY_AUTH_TOKEN_PATH=str(token), RAY_USAGE_STATS_ENABLED="0")
    command = [sys.executable, "-m", "cli.main", "sweep", "musicrec-ratio", "--smoke", "--results-dir",
               str(tmp_path / "results"), "--no-progress"]
    seen, probed = {}, {}
    with open(tmp_path / "sweep.log", "w") as log:
        sweep = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while sweep.poll() is None:
                tree = descendants([sweep.pid])
                for pid, name, address, port in listening_sockets(tree):
                    seen[(address, port)] = (name, Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
                trials_running = list((tmp_path / "results" / "tune").glob("musicrec-ratio-smoke/trainable_*"))
                if trials_running and not probed:  # mid-sweep: Ray and its trial workers are up
                    probed = {port: _answers_prometheus(port) for (address, port) in seen if is_loopback(address)}
                time.sleep(0.5)
        finally:
            kill(descendants([sweep.pid]) if sweep.poll() is None else [], grace=5)
            shutil.rmtree(ray_temp, ignore_errors=True)
    output = (tmp_path / "sweep.log").read_text()
    assert sweep.returncode == 0 and "3 trials finished" in output, output[-3000:]
    names = {name for name, _ in seen.values()}
    assert {"gcs_server", "raylet"} <= names and probed, (seen, probed)  # it did see Ray's servers, mid-sweep
    exposed = {address: name for (address, port), (name, _) in seen.items() if not is_loopback(address)}
    assert not exposed, exposed
    serving = {port for port, answers in probed.items() if answers}
    assert all(any(server in seen[(a, p)][1] for server in RAY_METRICS_SERVERS) for (a, p) in seen if p in serving)
    agents = [(a, p) for (a, p), (name, _) in seen.items() if name == "ray::DashboardA"]
    assert agents and not serving & {p for _, p in agents}  # the dashboard agent's Prometheus exporter is off
    assert _mode(token) == 0o600
