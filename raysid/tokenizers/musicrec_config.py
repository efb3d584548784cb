"""MusicRec's hyperparameters (config section ``tokenizer`` with ``kind: musicrec``), beside ``musicrec.py``.

Torch-free, so a study parses without importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from raysid.config import require
from raysid.devices import check_device
from raysid.tokenizers.base import TokenizerCapabilities


@dataclass(frozen=True)
class MusicRecConfig:
    """Hyperparameters of the MusicRec tokenizer; defaults follow the paper's implementation details."""

    latent_dim: int = 32  # d: latent and specific-codeword dimension per modality
    hidden_dims: tuple[int, ...] = (256, 128)  # MLP encoder widths (Linear+ReLU); decoders mirror them
    shared_levels: int = 2  # L_e: shared codebooks, codewords in R^{M·d}
    specific_levels: int = 2  # L_c: codebooks per modality, codewords in R^d
    total_levels: int = 0  # > 0: the study fixes L_e + L_c (the paper's 4 for its ratio sweep); 0 = unchecked
    codebook_size: int = 256  # N: codewords per codebook
    commitment_weight: float = 0.25  # μ of eq. 8
    alpha: float = 1e-2  # weight of L_align (eq. 12)
    beta: float = 1e-4  # weight of L_relation (eq. 12)
    temperature: float = 0.1  # τ of the InfoNCE of eq. 10 (not given in the paper)
    epochs: int = 60  # passes over the train items
    batch_size: int = 256  # items per Adam step (also the in-batch negatives of L_align)
    learning_rate: float = 1e-3  # Adam
    reset_dead_codes: bool = True  # re-seed codes unused in an epoch to live residuals
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:N"
    seed: int = 0  # weights, k-means, shuffling, dead-code resets

    tiny: ClassVar[dict[str, Any]] = {  # a fit of seconds on a tiny catalog (contract tests)
        "latent_dim": 8, "hidden_dims": [32], "codebook_size": 8, "shared_levels": 1, "specific_levels": 1,
        "epochs": 15, "batch_size": 32, "learning_rate": 3e-3}

    def capabilities(self) -> TokenizerCapabilities:
        """Features in, reconstructions out, shared and specific quantizers in between; CF embeddings are
        used when L_align or L_relation is switched on (α or β > 0); trains on Ray Train when asked."""
        return TokenizerCapabilities(uses_collaborative=self.alpha > 0 or self.beta > 0, trains_on_ray=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_dims", tuple(self.hidden_dims))
        where = "tokenizer"
        require(self.latent_dim >= 1, f"{where}.latent_dim", f"must be >= 1, got {self.latent_dim}")
        widths_ok = all(h >= 1 for h in self.hidden_dims)
        require(widths_ok, f"{where}.hidden_dims", f"widths must be >= 1, got {self.hidden_dims}")
        require(self.shared_levels >= 0, f"{where}.shared_levels", f"must be >= 0, got {self.shared_levels}")
        require(self.specific_levels >= 0, f"{where}.specific_levels", f"must be >= 0, got {self.specific_levels}")
        require(
            self.shared_levels + self.specific_levels >= 1,
            f"{where}.shared_levels",
            "shared_levels + specific_levels must be >= 1 (an identifier needs at least one code)",
        )
        require(
            self.total_levels <= 0 or self.shared_levels + self.specific_levels == self.total_levels,
            f"{where}.shared_levels",
            f"shared_levels + specific_levels = {self.shared_levels} + {self.specific_levels} does not add up to "
            f"total_levels = {self.total_levels} (a shared:specific ratio splits a fixed number of codebooks)",
        )
        require(self.codebook_size >= 1, f"{where}.codebook_size", f"must be >= 1, got {self.codebook_size}")
        mu = self.commitment_weight
        require(mu >= 0, f"{where}.commitment_weight", f"must be >= 0, got {mu}")
        require(self.alpha >= 0, f"{where}.alpha", f"must be >= 0, got {self.alpha}")
        require(self.beta >= 0, f"{where}.beta", f"must be >= 0, got {self.beta}")
        require(self.temperature > 0, f"{where}.temperature", f"must be > 0, got {self.temperature}")
        require(self.epochs >= 1, f"{where}.epochs", f"must be >= 1, got {self.epochs}")
        require(self.batch_size >= 1, f"{where}.batch_size", f"must be >= 1, got {self.batch_size}")
        require(self.learning_rate > 0, f"{where}.learning_rate", f"must be > 0, got {self.learning_rate}")
        check_device(self.device, f"{where}.device")
