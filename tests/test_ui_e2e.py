"""End to end: `raysid sweep musicrec-ratio --smoke`, `raysid ui` serving its MLflow store, headless Chromium.

Chromium is Debian's package (`apt-get install -y chromium`, which .ci/run does); the test drives it over the
Chrome DevTools Protocol (a websocket, through aiohttp, which ray[default] already installs): open the study's
runs table in raysid's saved view, expand the sweep's parent run, wait until every trial's run and the study's
metric columns are shown; open the sweep run's artifacts and the rendered ablation table. The screenshots are
kept in the test's tmp dir and copied to results/test-artifacts/.
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

from typer.testing import CliRunner

from cli.main import app

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

    def visit(self, url: str, texts: list[str], screenshot: Path | None = None, then: str = "", after: list[str] = (),
              timeout: float = 120) -> str:
        """Open ``url`` and wait until the page shows every one of ``texts``; then run the script ``then`` (a
        click) and wait for ``after``. The page text; a screenshot when asked."""
        return asyncio.run(self._visit(url, texts, then, list(after), screenshot, timeout))

    async def _visit(self, url, texts, then, after, screenshot, timeout) -> str:
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
                    assert time.monotonic() < deadline, f"{names} not shown; the page says: {page[:3000]}"
                    await asyncio.sleep(0.5)

            await call("Page.enable")
            await call("Page.navigate", url=url)
            page = await wait_for(texts)
            if then:
                await call("Runtime.evaluate", expression=then, returnByValue=True)
                page = await wait_for(after)
            if screenshot is not None:
                shot = await call("Page.captureScreenshot", format="png")
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            return page


EXPAND = """(() => { let n = 0; for (const cell of document.querySelectorAll('[role=gridcell][col-id*="Run Name"]')) {
              const button = cell.querySelector('button'); if (button) { button.click(); n++; } } return n; })()"""


def click_text(text: str) -> str:
    """A script clicking the innermost element whose text is ``text``."""
    return f"""(() => {{ const found = [...document.querySelectorAll('body *')].filter(e => e.innerText === {json.dumps(text)});
                 const element = found[found.length - 1]; if (element) element.click(); return Boolean(element); }})()"""


@pytest.fixture
def ui_server(tmp_path):
    """Start `raysid ui` over tmp_path/results on a free port, default host (a call); stopped at the end."""
    started = []

    def start() -> tuple[int, subprocess.Popen, Path]:
        port = _free_port()
        log = open(tmp_path / "ui.log", "w")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        server = subprocess.Popen([sys.executable, "-m", "cli.main", "ui", "--results-dir", str(tmp_path / "results"),
                                   "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        started.append((server, log))
        return port, server, tmp_path / "ui.log"

    yield start
    for server, log in started:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        log.close()


def _wait_until_served(port: int, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while True:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return
        except OSError:
            assert time.monotonic() < deadline, f"raysid ui did not answer: {log.read_text()[-3000:]}"
            time.sleep(1)


@pytest.mark.timeout(900)
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium; .ci/run does)")
def test_the_mlflow_ui_shows_the_study_in_headless_chromium(ray_local, tmp_path, ui_server):
    """`raysid sweep musicrec-ratio --smoke`, then `raysid ui`: the study's saved view lists every trial under the
    sweep run with the axis, seed and metric columns (test/ndcg@10 among them), and the sweep run's artifacts
    hold the ablation table, which the UI renders."""
    results = tmp_path / "results"
    sweep = CliRunner().invoke(app, ["sweep", "musicrec-ratio", "--smoke", "--no-progress", "--results-dir", str(results)])
    assert sweep.exit_code == 0, sweep.output

    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("musicrec-ratio")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("raysid.kind") == "sweep")
    children = sorted(r.data.tags["mlflow.runName"] for r in runs if "mlflow.parentRunId" in r.data.tags)
    assert children == ["ratio=1:3 seed=0", "ratio=2:2 seed=0", "ratio=3:1 seed=0"]

    port, server, log = ui_server()
    _wait_until_served(port, server, log)
    assert listening_addresses(port) == {"127.0.0.1"}  # loopback only unless --host says otherwise
    view = f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs?viewStateShareKey=raysid&workflowType=machine_learning"
    assert f"musicrec-ratio: {view}" in log.read_text()  # raysid ui prints the study's address

    browser = DevTools(tmp_path / "chromium-profile")
    screenshot, table = tmp_path / "mlflow-ui-runs.png", tmp_path / "mlflow-ui-table.png"
    columns = ["ratio", "seed", "valid/ndcg_at_10", "test/ndcg_at_10", "test/hr_at_10", "sid/conflict_rate"]
    artifacts = (f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}"
                 "/artifacts?workflowType=machine_learning")
    try:
        runs_page = browser.visit(view, [parent.data.tags["mlflow.runName"], *columns], screenshot, EXPAND, children)
        rendered = browser.visit(artifacts, ["summary.md", "summary.parquet", "summary.png", "study.json", "trials.parquet"],
                                 table, click_text("summary.md"), ["MusicRec shared:specific codebook ratio", "2:2",
                                                                   "popularity (baseline)"])
    finally:
        browser.close()
    assert f"{len(runs)} matching runs" in " ".join(runs_page.split()) and "Evaluations" not in runs_page
    assert "Evaluations" not in rendered and "marks the best mean" in rendered  # a training run, the table's footer
    for shot in (screenshot, table):
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, ARTIFACTS / shot.name)
