"""What producing a trial's result cost: wall seconds, process CPU seconds, GPU seconds where a GPU was used.

Stored with the result's metrics (``time/result_*``), so a re-run answered from the stage cache still reports
what the result cost when it was made. CPU seconds are the trial process's CPU time (every thread; Ray Train
workers are other processes and not counted); GPU seconds are wall seconds times the CUDA devices on which
the trial allocated memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Spent:
    """Clocks read when the work started."""

    wall: float
    cpu: float

    @classmethod
    def start(cls) -> Spent:
        for device in _initialized_devices():
            torch.cuda.reset_peak_memory_stats(device)
        return cls(time.perf_counter(), time.process_time())

    def metrics(self) -> dict[str, float]:
        """``time/result_wall_s``, ``time/result_cpu_s`` and, where a GPU was used, ``time/result_gpu_s``."""
        wall = time.perf_counter() - self.wall
        spent = {"time/result_wall_s": wall, "time/result_cpu_s": time.process_time() - self.cpu}
        gpus = sum(torch.cuda.max_memory_allocated(device) > 0 for device in _initialized_devices())
        return spent | ({"time/result_gpu_s": wall * gpus} if gpus else {})


def _initialized_devices() -> range:
    """The CUDA devices of this process, when it has initialised CUDA at all (never initialises it)."""
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return range(0)
    return range(torch.cuda.device_count())
