"""The ``dataset.cooccurrence`` section: the skip-gram of the co-occurrence modality (``cooccurrence.py``).

Torch-free, so a config parses without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from raysid.config import require


@dataclass(frozen=True)
class CooccurrenceConfig:
    """Skip-gram with negative sampling; config section ``dataset.cooccurrence``."""

    dim: int = 128  # embedding width (FusID's M_playlist is 128-d)
    window: int = 5  # context positions on each side of the center item
    negatives: int = 5  # negative items per positive pair
    epochs: int = 5  # passes over the (subsampled) pairs
    batch_size: int = 4096  # positive pairs per optimisation step (over all workers)
    learning_rate: float = 0.01  # Adam
    subsample: float = 1e-3  # word2vec's frequent-item threshold t (0 = keep every pair)
    seed: int = 0  # initialisation, subsampling, pair order and negatives
    device: str = "cpu"  # without Ray: "auto", "cpu", "cuda", ...

    def __post_init__(self) -> None:
        for name in ("dim", "window", "negatives", "epochs", "batch_size"):
            value = getattr(self, name)
            require(value >= 1, f"dataset.cooccurrence.{name}", f"expected an integer >= 1, got {value}")
        require(self.learning_rate > 0, "dataset.cooccurrence.learning_rate", f"expected > 0, got {self.learning_rate}")
        require(self.subsample >= 0, "dataset.cooccurrence.subsample", f"expected >= 0, got {self.subsample}")
