"""The VQ-VAE ablation's hyperparameters (``kind: vqvae``), beside ``vqvae.py``. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from raysid.config import require
from raysid.tokenizers.base import TokenizerCapabilities
from raysid.tokenizers.rqvae_config import autoencoder_capabilities, validate_autoencoder_fields


@dataclass(frozen=True)
class VQVAEConfig:
    """Hyperparameters of the VQ-VAE ablation: ``RQVAEConfig``'s fields with one codebook of ``codebook_size``."""

    modalities: tuple[str, ...] = ()  # modalities to tokenize, in this order; () = all, in the features' order
    hidden_dims: tuple[int, ...] = (512, 256, 128)  # encoder widths (Linear+BatchNorm+ReLU); the decoder mirrors
    latent_dim: int = 32  # d_z
    codebook_size: int = 1024  # K of the single codebook
    commitment_weight: float = 0.25  # β
    epochs: int = 50  # passes over the train items
    batch_size: int = 256  # items per AdamW step; the first batch also seeds the k-means init
    learning_rate: float = 1e-3  # AdamW
    reset_dead_codes: bool = True  # re-seed codes unused in an epoch to live residuals
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:N"
    seed: int = 0  # weights, k-means, shuffling, dead-code resets

    tiny: ClassVar[dict[str, Any]] = {  # a fit of seconds on a tiny catalog (contract tests)
        "latent_dim": 8, "hidden_dims": [32], "codebook_size": 16, "epochs": 15, "batch_size": 32, "learning_rate": 3e-3}

    def __post_init__(self) -> None:
        where = "tokenizer.codebook_size"
        require(self.codebook_size >= 1, where, f"codebook size must be >= 1, got {self.codebook_size}")
        validate_autoencoder_fields(self)

    def capabilities(self) -> TokenizerCapabilities:
        """As the RQ-VAE: features in, reconstructions out, one codebook in between."""
        return autoencoder_capabilities()

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """(K,): one level, so the RQ-VAE code serves unchanged."""
        return (self.codebook_size,)
