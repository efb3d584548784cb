"""Pinned numeric kernels: every process of a sweep runs numpy's and torch's AVX2 code paths, on any x86 CPU.

The catalog digest pinned in test_catalog.py is the end-to-end check (it was made on an AMD EPYC and holds on an
Intel Xeon with AVX-512 only with these pins); these tests check that the pins reach each kind of process."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from raysid import kernels

X86 = platform.machine() in ("x86_64", "AMD64")


def test_importing_raysid_pins_each_library_before_it_loads():
    """A fresh interpreter that imports raysid, then numpy and torch, runs the AVX2 kernels."""
    script = "import raysid, numpy, torch; from raysid import kernels; print(kernels.in_use())"
    env = {k: v for k, v in os.environ.items() if k not in kernels.PINNED}
    used = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    if X86:
        assert "openblas=Haswell" in used and "aten=AVX2" in used and "late" not in used, used


def test_a_variable_the_user_set_is_kept_and_numpy_first_is_reported():
    script = "import numpy, raysid, torch; from raysid import kernels; print(kernels.in_use())"
    env = {k: v for k, v in os.environ.items() if k not in kernels.PINNED} | {"ATEN_CPU_CAPABILITY": "default"}
    used = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    assert "late" in used  # numpy loaded its kernels before raysid could pin them
    if X86:
        assert "aten=DEFAULT" in used, used


@pytest.mark.skipif(not X86, reason="the pins name x86 instruction sets")
def test_ray_workers_run_the_pinned_kernels(ray_local):
    @ray_local.remote(num_cpus=0)
    def used() -> str:
        import numpy  # noqa: F401
        import torch  # noqa: F401

        return kernels.in_use()

    assert ray_local.get(used.remote()).split(" ")[:2] == ["openblas=Haswell", "aten=AVX2"]
