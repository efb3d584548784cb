"""Numeric kernels pinned to one instruction set, so that a locked install gives the same numbers on any x86 CPU.

numpy's OpenBLAS, torch's MKL, oneDNN and ATen each pick their kernels by the CPU they find: on an Intel Xeon
with AVX-512 they take other code paths than on an AMD EPYC with AVX2, sum in another order and differ in the
last bits, and a sweep's semantic IDs (k-means ties, an RQ-VAE's nearest codes) then drift apart. The catalog
digest pinned in tests/test_catalog.py differs between the two CPUs without these settings and agrees with
them. Each library reads its variable once, when it loads, so ``pin()`` runs when ``raysid`` is imported, before
numpy or torch are; processes started from it (Ray's local workers, `ray start` nodes, subprocesses) inherit
them, and ``raysid submit`` ships them in the job's runtime environment. A variable already set is left alone:
``OPENBLAS_CORETYPE=SkylakeX raysid sweep …`` chooses other kernels, and provenance records which ran.

This module imports nothing heavy: it must run before numpy and torch.
"""

from __future__ import annotations

import os
import sys

PINNED = {
    "OPENBLAS_CORETYPE": "Haswell",   # numpy's OpenBLAS: AVX2 kernels
    "MKL_CBWR": "COMPATIBLE",         # torch's MKL: reproducible branch (AVX2 and others hold on Intel CPUs only)
    "ONEDNN_MAX_CPU_ISA": "AVX2",     # torch's oneDNN (convolutions, some matmuls)
    "ATEN_CPU_CAPABILITY": "avx2",    # torch's own vectorised kernels (softmax, norms, reductions)
}


def pin() -> None:
    """Set every pinned variable not already set; a no-op off x86 (the libraries ignore them there)."""
    for name, value in PINNED.items():
        os.environ.setdefault(name, value)


def environment() -> dict[str, str]:
    """The kernel variables as this process has them, for a job's runtime environment."""
    return {name: os.environ[name] for name in PINNED if name in os.environ}


def in_use() -> str:
    """The kernels actually loaded, e.g. ``openblas=Haswell aten=AVX2``; a provenance field.

    ``late`` is added when numpy was imported before raysid, so that the pins may not have taken effect."""
    parts = []
    try:
        from threadpoolctl import threadpool_info

        parts += [f"{info['internal_api']}={info.get('architecture') or '?'}" for info in threadpool_info()
                  if info.get("user_api") == "blas"]
    except ImportError:
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        parts.append(f"aten={torch.backends.cpu.get_cpu_capability()}")
    if _LATE:
        parts.append("late")
    return " ".join(parts) or "unknown"


_LATE = "numpy" in sys.modules and "OPENBLAS_CORETYPE" not in os.environ
