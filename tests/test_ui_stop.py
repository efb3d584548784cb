"""`raysid ui` stops its MLflow server and the server's workers on SIGTERM and Ctrl-C, without a traceback."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_ui_e2e import _free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _session_processes(session: int) -> list[int]:
    """Live processes (not zombies) of a session, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[3]) == session:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_ui_stops_its_server_on_a_signal(tmp_path, stop_signal):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ui = subprocess.Popen([sys.executable, "-m", "cli.main", "ui", "--results-dir", str(tmp_path / "results"),
                           "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    while True:  # the server answers: it and its workers are up
        assert ui.poll() is None, ui.stdout.read()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            break
        except OSError:
            assert time.monotonic() < deadline, "raysid ui did not answer in 240 s"
            time.sleep(1)
    children = [int(p) for p in Path(f"/proc/{ui.pid}/task/{ui.pid}/children").read_text().split()]
    assert children, "raysid ui started no server process"
    server_session = os.getsid(children[0])
    assert server_session != os.getsid(ui.pid)  # its own session: a terminal's Ctrl-C reaches raysid only
    ui.send_signal(stop_signal)
    try:
        output = ui.communicate(timeout=120)[0]
    except subprocess.TimeoutExpired:
        os.killpg(ui.pid, signal.SIGKILL)
        os.killpg(server_session, signal.SIGKILL)
        raise
    assert ui.returncode == 0, output
    assert "stopped the MLflow UI" in output and "Traceback" not in output
    assert _session_processes(server_session) == []  # the server and every worker of it are gone
