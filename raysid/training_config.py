"""The ``training`` section: how a training loop runs (in this process, or on Ray Train workers).

Torch-free, so a config parses without importing torch; ``raysid.distributed`` runs the loops it describes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raysid.config import require


@dataclass(frozen=True)
class TrainingConfig:
    """How a training loop runs; config section ``training`` (shared by tokenizer and recommender stages)."""

    ray: bool = False  # False: in this process, no Ray; True: a Ray Train TorchTrainer
    num_workers: int = 1  # DDP workers of the TorchTrainer
    use_gpu: bool = False  # one GPU per worker (NCCL); False: CPU workers (gloo)
    resources_per_worker: dict[str, float] = field(default_factory=lambda: {"CPU": 1.0})
    precision: str = "fp32"  # "bf16": autocast to bfloat16 on CUDA (ignored on CPU)
    max_failures: int = 0  # restarts of the worker group from the last checkpoint after a failure
    storage_path: str = ""  # where Ray Train keeps run folders and checkpoints; "" = a temporary folder
    device: str = "auto"  # without Ray: "auto" (cuda if available), "cpu", "cuda", "cuda:N"

    def __post_init__(self) -> None:
        object.__setattr__(self, "resources_per_worker", dict(self.resources_per_worker))
        require(self.num_workers >= 1, "training.num_workers", f"must be >= 1, got {self.num_workers}")
        require(self.max_failures >= 0, "training.max_failures", f"must be >= 0, got {self.max_failures}")
        require(
            self.precision in ("fp32", "bf16"), "training.precision",
            f"got {self.precision!r}; valid choices are: 'fp32', 'bf16'",
        )
        bad = {k: v for k, v in self.resources_per_worker.items() if not isinstance(v, (int, float)) or v < 0}
        require(not bad, "training.resources_per_worker", f"amounts must be numbers >= 0, got {bad}")
        require(
            self.ray or self.num_workers == 1, "training.num_workers",
            f"{self.num_workers} workers need training.ray: true (without Ray a loop runs in one process)",
        )

    @property
    def distributed_backend(self) -> str:
        return "nccl" if self.use_gpu else "gloo"

    @property
    def cpus(self) -> float:
        """CPUs the whole worker group asks for (what a Tune trial must leave free for it)."""
        return self.num_workers * float(self.resources_per_worker.get("CPU", 1.0))
