"""VQ-VAE: 3MToken's single-codebook ablation (3mtoken.txt §3 "Baselines").

The RQ-VAE network of ``rqvae.py`` with one quantization level: the same encoder and decoder, one codebook
of K codewords (1024 in the paper, "4.6 times larger" than RQ-VAE's 32 + 64 + 128), k-means init on the first
batch and dead-code resets. The paper trains one VQ-VAE per modality; like ``RQVAETokenizer`` this one
tokenizes the concatenation of ``modalities`` (pick a single modality to reproduce a per-modality row).
An item's identifier is its one code, at position "vq1".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from raysid.config import require
from raysid.tokenizers.rqvae import RQVAETokenizer, validate_autoencoder_fields


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

    def __post_init__(self) -> None:
        where = "tokenizer.codebook_size"
        require(self.codebook_size >= 1, where, f"codebook size must be >= 1, got {self.codebook_size}")
        validate_autoencoder_fields(self)

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """(K,): one level, so the RQ-VAE code serves unchanged."""
        return (self.codebook_size,)


class VQVAETokenizer(RQVAETokenizer):
    """VQ-VAE behind the ``Tokenizer`` contract: one code per item, position "vq1"."""

    config_class: ClassVar[type] = VQVAEConfig
    position_prefix: ClassVar[str] = "vq"
