"""raysid: sweeps and ablations for semantic-ID music recommendation."""

from raysid import kernels as _kernels

_kernels.pin()  # before anything imports numpy or torch: the same kernels, so the same numbers, on any x86 CPU
