"""The GPT-2 recommender's hyperparameters (config section ``recommender`` with ``kind: gpt2``), beside ``gpt2.py``.

Torch-free, so a study parses without importing torch or transformers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from raysid.config import require
from raysid.devices import check_device
from raysid.recommenders.base import RecommenderCapabilities


@dataclass(frozen=True)
class GPT2RecommenderConfig:
    """GPT-2 recommender hyperparameters; config section ``recommender``. FusID gives no model sizes or
    optimiser settings; the defaults are sized like the T5 recommender's for the built-in catalog."""

    n_embd: int = 64  # hidden size
    n_layer: int = 2  # transformer blocks
    n_head: int = 4  # attention heads; must divide n_embd
    n_inner: int = 0  # feed-forward inner size; 0 = 4 * n_embd (GPT-2)
    dropout: float = 0.1  # residual, embedding and attention dropout
    max_context_items: int = 30  # FusID: at most the first 30 tracks as context
    loss: Literal["sequence", "target"] = "sequence"  # next-token loss on every token, or the target's only
    epochs: int = 10  # passes over the training windows (0 leaves the model untrained)
    batch_size: int = 64  # playlists per optimisation step (the global batch over all workers)
    learning_rate: float = 3e-3  # AdamW peak learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    warmup_ratio: float = 0.05  # fraction of steps with linear warmup; then linear decay to 0
    beam_size: int = 20  # constrained beam width; FusID reports Recall@1..20
    ranking: Literal["beam", "exact"] = "beam"  # what recommend uses: beam search or exact scores of all items
    eval_batch_size: int = 256  # users per beam search / scoring / validation batch
    score_rows: int = 4096  # (user, item) pairs per teacher-forced forward in score_items
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 autocast is used only on CUDA
    seed: int = 0  # seeds initialisation, dropout and sample order

    tiny: ClassVar[dict[str, Any]] = {  # one epoch of seconds on a tiny catalog (contract tests)
        "n_embd": 16, "n_layer": 1, "n_head": 2, "epochs": 1, "beam_size": 5, "device": "cpu"}

    def capabilities(self) -> RecommenderCapabilities:
        """Generates identifiers: reads the semantic IDs; ranks after every epoch when asked; seeded; trains on
        Ray Train when asked."""
        return RecommenderCapabilities()

    def __post_init__(self) -> None:
        positive = ("n_embd", "n_layer", "n_head", "max_context_items", "batch_size", "beam_size")
        for name in (*positive, "eval_batch_size", "score_rows"):
            value = getattr(self, name)
            require(value >= 1, f"recommender.{name}", f"must be a positive integer, got {value}")
        require(self.n_embd % self.n_head == 0, "recommender.n_embd", f"{self.n_embd} is not divisible by n_head={self.n_head}")
        require(self.n_inner >= 0, "recommender.n_inner", f"must be >= 0 (0 = 4 * n_embd), got {self.n_inner}")
        require(self.epochs >= 0, "recommender.epochs", f"must be >= 0, got {self.epochs}")
        require(0.0 <= self.dropout < 1.0, "recommender.dropout", f"must be in [0, 1), got {self.dropout}")
        require(self.learning_rate > 0, "recommender.learning_rate", f"must be positive, got {self.learning_rate}")
        require(self.weight_decay >= 0, "recommender.weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(0.0 <= self.warmup_ratio < 1.0, "recommender.warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        for name, choices in (("loss", ("sequence", "target")), ("ranking", ("beam", "exact")), ("precision", ("fp32", "bf16"))):
            value = getattr(self, name)
            require(value in choices, f"recommender.{name}", f"got {value!r}; valid choices are: {', '.join(map(repr, choices))}")
        check_device(self.device, "recommender.device")
