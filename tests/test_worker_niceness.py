"""Trial workers of a local Ray run at the niceness the sweep asks for (Ray's own default is 15)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import os, sys
import ray
from raysid.sweep.runner import ensure_ray

ensure_ray(None, int(sys.argv[1]))
print("worker niceness", ray.get(ray.remote(lambda: os.nice(0)).remote()))
ray.shutdown()
"""


def _worker_niceness(niceness: int) -> int:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(niceness)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("worker niceness")]
    assert done.returncode == 0 and lines, done.stderr[-2000:]
    return int(lines[-1].split()[-1])


@pytest.mark.slow
def test_local_workers_run_at_the_requested_niceness():
    own = os.nice(0)
    assert _worker_niceness(0) == own  # normal priority: the driver's own, not Ray's 15
    assert _worker_niceness(19) == 19
