"""End to end: a real sweep, `raysid ui` serving its MLflow store, headless Chromium listing the study's runs.

Chromium is Debian's package (`apt-get install -y chromium`, which .ci/run does); the test drives it over the
Chrome DevTools Protocol (a websocket, through aiohttp, which ray[default] already installs): open the
experiment's runs page, expand the sweep's parent run, wait until every trial's run is listed, take a
screenshot. The screenshot is kept in the test's tmp dir and copied to results/test-artifacts/.
"""

import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from raysid.sweep.runner import SweepSettings, run_sweep
from raysid.sweep.space import parse_study

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("RAYSID_TEST_ARTIFACTS", ROOT / "results" / "test-artifacts"))
CHROMIUM = shutil.which("chromium")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


class DevTools:
    """A headless Chromium page driven over the Chrome DevTools Protocol."""

    def __init__(self, profile: Path):
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             f"--user-data-dir={profile}", "--window-size=1920,1000", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for line in self.process.stderr:
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if found:
                self.port = int(found.group(1))
                break
        else:
            raise AssertionError(f"chromium exited ({self.process.wait()}) without a DevTools endpoint")
        pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10).read())
        self.page_url = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)

    def runs_page(self, url: str, parent: str, children: list[str], screenshot: Path, timeout: float = 120) -> str:
        """Open ``url``, expand ``parent``, wait until every child is listed; the page text, and a screenshot."""
        return asyncio.run(self._runs_page(url, parent, children, screenshot, timeout))

    async def _runs_page(self, url, parent, children, screenshot, timeout) -> str:
        import aiohttp

        async with aiohttp.ClientSession() as session, session.ws_connect(self.page_url, max_msg_size=0) as socket_:
            ids = iter(range(1, 1 << 30))

            async def call(method: str, **params) -> dict:
                message_id = next(ids)
                await socket_.send_json({"id": message_id, "method": method, "params": params})
                async for message in socket_:
                    data = json.loads(message.data)
                    if data.get("id") == message_id:
                        assert "error" not in data, data["error"]
                        return data["result"]
                raise AssertionError("DevTools connection closed")

            async def text() -> str:
                result = await call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''",
                                    returnByValue=True)
                return result["result"]["value"]

            async def wait_for(names: list[str]) -> str:
                deadline = time.monotonic() + timeout
                while True:
                    page = await text()
                    if all(name in page for name in names):
                        return page
                    assert time.monotonic() < deadline, f"{names} not listed; the page says: {page[:3000]}"
                    await asyncio.sleep(0.5)

            await call("Page.enable")
            await call("Page.navigate", url=url)
            await wait_for([parent])
            expand = """(() => { let n = 0; for (const cell of document.querySelectorAll('[role=gridcell][col-id*="Run Name"]')) {
                           const button = cell.querySelector('button'); if (button) { button.click(); n++; } } return n; })()"""
            await call("Runtime.evaluate", expression=expand, returnByValue=True)
            page = await wait_for(children)
            shot = await call("Page.captureScreenshot", format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            return page


@pytest.fixture
def ui_server(tmp_path):
    """`raysid ui` over tmp_path/results on a free port, default host; stopped at the end."""
    port = _free_port()
    log = open(tmp_path / "ui.log", "w")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    server = subprocess.Popen([sys.executable, "-m", "cli.main", "ui", "--results-dir", str(tmp_path / "results"),
                               "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    yield port, server, tmp_path / "ui.log"
    os.killpg(server.pid, 15)
    server.wait(timeout=30)
    log.close()


@pytest.mark.timeout(600)
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium; .ci/run does)")
def test_the_mlflow_ui_lists_the_studys_runs_in_headless_chromium(ray_local, tmp_path, tiny_overrides, ui_server):
    data = {
        "name": "ui-study", "base": {"recommender": {"kind": "none"}},
        "axes": {"tokenizer.codebook_size": {"grid": [4, 8]}}, "seeds": [0], "metric": "sid/conflict_rate",
        "mode": "min", "report": {"metrics": ["sid/conflict_rate"], "best": "sid/conflict_rate"},
        "smoke": {k: v for k, v in tiny_overrides.items() if not k.startswith("recommender.") and k != "tokenizer.codebook_size"},
    }
    study = parse_study(data, str(tmp_path / "ui-study.yaml"))
    outcome = run_sweep(study, SweepSettings(results_dir=tmp_path / "results", smoke=True, progress=False))
    assert not outcome.failed and outcome.trials.height == 2

    client = MlflowClient(outcome.tracking_uri)
    experiment = client.get_experiment_by_name("ui-study")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("raysid.kind") == "sweep")
    children = [r.data.tags["mlflow.runName"] for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(children) == ["tokenizer.codebook_size=4 seed=0", "tokenizer.codebook_size=8 seed=0"]

    port, server, log = ui_server
    deadline = time.monotonic() + 180
    while True:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            break
        except OSError:
            assert time.monotonic() < deadline, f"raysid ui did not answer: {log.read_text()[-3000:]}"
            time.sleep(1)
    assert listening_addresses(port) == {"127.0.0.1"}  # loopback only unless --host says otherwise

    browser = DevTools(tmp_path / "chromium-profile")
    screenshot = tmp_path / "mlflow-ui-runs.png"
    try:
        page = browser.runs_page(f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs",
                                 parent.data.tags["mlflow.runName"], children, screenshot)
    finally:
        browser.close()
    assert "ui-study" in page and f"{len(runs)} matching runs" in " ".join(page.split())
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / screenshot.name)
