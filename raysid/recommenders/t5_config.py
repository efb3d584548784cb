"""The T5 recommender's hyperparameters (config section ``recommender`` with ``kind: t5``), beside ``t5.py``.

Torch-free, so a study parses without importing torch or transformers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from raysid.config import require
from raysid.recommenders.base import RecommenderCapabilities


@dataclass(frozen=True)
class T5RecommenderConfig:
    """T5 generative recommender hyperparameters; config section ``recommender``."""

    d_model: int = 64  # hidden size of encoder and decoder
    d_ff: int = 256  # inner size of the feed-forward blocks
    num_layers: int = 2  # blocks in the encoder and (as many) in the decoder
    num_heads: int = 4  # attention heads per block
    d_kv: int = 16  # size of each head's keys and values (T5 does not tie it to d_model / num_heads)
    dropout: float = 0.1  # dropout rate inside the T5 blocks
    max_history: int = 20  # the encoder reads the identifiers of the last max_history items
    epochs: int = 10  # passes over the training samples (0 leaves the model untrained)
    batch_size: int = 128  # training samples (history, next item) per optimisation step
    learning_rate: float = 3e-3  # AdamW peak learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    warmup_ratio: float = 0.05  # fraction of steps with linear warmup; then linear decay to 0
    beam_size: int = 20  # constrained beam width (MusicRec uses 20); recommend needs k <= beam_size
    eval_batch_size: int = 256  # users per beam search / validation batch
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 autocast is used only on CUDA
    tasks: tuple[str, ...] = ("mmg",)  # MusicRec's generation tasks: "mmg", "umg", "mma" (see tasks.py)
    seed: int = 0  # seeds initialisation, dropout and sample order

    tiny: ClassVar[dict[str, Any]] = {  # one epoch of seconds on a tiny catalog (contract tests)
        "d_model": 16, "d_ff": 32, "num_layers": 1, "num_heads": 2, "d_kv": 8, "epochs": 1, "beam_size": 5, "device": "cpu"}

    def capabilities(self) -> RecommenderCapabilities:
        """Generates identifiers: reads the semantic IDs; ranks after every epoch when asked; seeded; trains on
        Ray Train when asked."""
        return RecommenderCapabilities()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        positive = ("d_model", "d_ff", "num_layers", "num_heads", "d_kv", "max_history", "batch_size")
        for name in (*positive, "beam_size", "eval_batch_size"):
            value = getattr(self, name)
            require(value >= 1, f"recommender.{name}", f"must be a positive integer, got {value}")
        require(self.epochs >= 0, "recommender.epochs", f"must be >= 0, got {self.epochs}")
        require(0.0 <= self.dropout < 1.0, "recommender.dropout", f"must be in [0, 1), got {self.dropout}")
        require(self.learning_rate > 0, "recommender.learning_rate", f"must be positive, got {self.learning_rate}")
        require(self.weight_decay >= 0, "recommender.weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(
            0.0 <= self.warmup_ratio < 1.0, "recommender.warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}"
        )
        require(
            self.precision in ("fp32", "bf16"),
            "recommender.precision",
            f"got {self.precision!r}; valid choices are: 'fp32', 'bf16'",
        )
