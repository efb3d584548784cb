"""Test helpers: processes and listening sockets read from /proc, and a multi-node Ray cluster on loopback.

``LocalCluster`` starts a head and worker nodes with ``ray start``, each node on its own loopback address
(127.0.0.10 for the head, 127.0.0.11, 127.0.0.12, … for workers: Ray replaces 127.0.0.1 by the machine's
outward address, not other loopback addresses, so every packet stays on loopback), with its own temp dir and
auth token. ``kill_node`` makes a worker node vanish as a lost machine does (SIGKILL to its raylet, its
workers and agents at once); ``stop`` ends every process the cluster started, by process id.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _read(path: str) -> str:
    try:
        return Path(path).read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def processes(test) -> list[int]:
    """Ids of live (not zombie) processes whose command line and environment (a list) pass ``test``."""
    found = []
    for folder in Path("/proc").glob("[0-9]*"):
        cmdline = _read(f"{folder}/cmdline")
        environ = _read(f"{folder}/environ").split(" ")
        state = _read(f"{folder}/stat").split(") ")[-1][:1]
        if cmdline and state not in ("Z", "") and test(cmdline, environ):
            found.append(int(folder.name))
    return found


def descendants(roots) -> set[int]:
    """The processes ``roots`` started, their children, …, and the roots themselves."""
    children: dict[int, list[int]] = {}
    for folder in Path("/proc").glob("[0-9]*"):
        fields = _read(f"{folder}/stat").rsplit(")", 1)[-1].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(folder.name))
    seen, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += children.get(pid, [])
    return seen


def kill(pids, grace: float = 10.0) -> None:
    """SIGTERM then, after ``grace`` seconds, SIGKILL each of ``pids`` still alive."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() and
                                                  _read(f"/proc/{pid}/stat").split(") ")[-1][:1] != "Z" for pid in pids):
            time.sleep(0.3)


def _address(hexaddr: str) -> tuple[str, int]:
    host, port = hexaddr.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port, 16)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))  # /proc/net/tcp6: four host-order words
    return socket.inet_ntop(socket.AF_INET6, words), int(port, 16)


def listening_sockets(pids) -> list[tuple[int, str, str, int]]:
    """(pid, process name, address, port) of every TCP socket in LISTEN state that one of ``pids`` holds."""
    table = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(name).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                table[int(fields[9])] = _address(fields[1])
    found = []
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        inodes = {int(link[8:-1]) for link in links if link.startswith("socket:[")}
        name = _read(f"/proc/{pid}/comm").strip()
        found += [(pid, name, *table[inode]) for inode in sorted(inodes) if inode in table]
    return found


def is_loopback(address: str) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(address)
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalCluster:
    """A head (``head_cpus`` CPUs) and worker nodes started with ``ray start``, each on its own loopback address."""

    def __init__(self, head_cpus: float = 1):
        self.temp = Path(tempfile.mkdtemp(prefix="rsc", dir="/tmp"))  # short: Ray's socket paths must fit
        token = self.temp / "auth_token"
        token.write_text(secrets.token_hex(32))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # none a local sweep set
        self.env.update(RAY_AUTH_TOKEN_PATH=str(token), RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0",
                        RAY_enable_metrics_collection="0", PYTHONUNBUFFERED="1",
                        RAY_health_check_period_ms="1000", RAY_health_check_failure_threshold="3",
                        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        self.port = free_port()
        self.nodes: dict[str, str] = {}  # name -> loopback address (of the nodes alive)
        self._started = 0
        self._start("head", "127.0.0.10", ["--head", "--port", str(self.port), "--num-cpus", str(head_cpus),
                                           "--temp-dir", str(self.temp), "--include-dashboard", "false",
                                           "--disable-usage-stats"])

    @property
    def address(self) -> str:
        return f"{self.nodes['head']}:{self.port}"

    def add_node(self, name: str, resources: dict[str, float], cpus: float = 0) -> str:
        """Start a worker node with these custom resources; its loopback address."""
        address = f"127.0.0.{10 + self._started}"
        self._start(name, address, ["--address", self.address, "--num-cpus", str(cpus),
                                    "--resources", json.dumps(resources)])
        return address

    def _start(self, name: str, address: str, options: list[str]) -> None:
        command = ["ray", "start", "--node-ip-address", address, "--object-store-memory", str(100 * 2**20), *options]
        started = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=300,
                                 start_new_session=True)
        assert started.returncode == 0, f"{' '.join(command)}\n{started.stdout}\n{started.stderr[-3000:]}"
        self.nodes[name] = address
        self._started += 1

    def node_processes(self, name: str) -> set[int]:
        """The raylet, agents, log monitor and workers of node ``name`` (all name its address)."""
        address = self.nodes[name]
        flags = (f"--node-ip-address={address} ", f"--node_ip_address={address} ")
        return descendants(processes(lambda cmdline, environ: any(flag in cmdline + " " for flag in flags)))

    def kill_node(self, name: str) -> None:
        """The node is lost: every process of it gets SIGKILL at once."""
        pids = self.node_processes(name)
        assert any("raylet" in _read(f"/proc/{pid}/comm") for pid in pids), f"no raylet for node {name}"
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        del self.nodes[name]

    def stop(self) -> None:
        mine = processes(lambda cmdline, environ: str(self.temp) in cmdline)
        kill(descendants(mine))
        shutil.rmtree(self.temp, ignore_errors=True)
