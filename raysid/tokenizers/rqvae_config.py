"""The RQ-VAE family's hyperparameters and checks (``rqvae``; ``per_modality`` and ``vqvae`` build on them),
beside ``rqvae.py``. Torch-free, so a study parses without importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from raysid.config import require
from raysid.devices import check_device
from raysid.tokenizers.base import TokenizerCapabilities


@dataclass(frozen=True)
class RQVAEConfig:
    """Hyperparameters of the RQ-VAE tokenizer; architecture defaults follow 3MToken (section 3, appendix B)."""

    modalities: tuple[str, ...] = ()  # modalities to tokenize, in this order; () = all, in the features' order
    hidden_dims: tuple[int, ...] = (512, 256, 128)  # encoder widths (Linear+BatchNorm+ReLU); the decoder mirrors
    latent_dim: int = 32  # d_z
    codebook_sizes: tuple[int, ...] = (32, 64, 128)  # K_l of each level; its length is L
    commitment_weight: float = 0.25  # β
    epochs: int = 50  # passes over the train items
    batch_size: int = 256  # items per AdamW step; the first batch also seeds the k-means init
    learning_rate: float = 1e-3  # AdamW
    reset_dead_codes: bool = True  # re-seed codes unused in an epoch to live residuals
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:N"
    seed: int = 0  # weights, k-means, shuffling, dead-code resets

    tiny: ClassVar[dict[str, Any]] = {  # a fit of seconds on a tiny catalog (contract tests)
        "latent_dim": 8, "hidden_dims": [32], "codebook_sizes": [8, 8], "epochs": 15, "batch_size": 32,
        "learning_rate": 3e-3}

    def __post_init__(self) -> None:
        object.__setattr__(self, "codebook_sizes", tuple(self.codebook_sizes))
        validate_codebook_sizes(self.codebook_sizes, "tokenizer.codebook_sizes")
        validate_autoencoder_fields(self)

    def capabilities(self) -> TokenizerCapabilities:
        """Features in, reconstructions out, a residual quantizer in between; trains on Ray Train when asked."""
        return autoencoder_capabilities()


def autoencoder_capabilities() -> TokenizerCapabilities:
    """What the RQ-VAE family (RQ-VAE, per-modality RQ-VAE, VQ-VAE) declares."""
    return TokenizerCapabilities(trains_on_ray=True)


def validate_codebook_sizes(sizes: tuple[int, ...], where: str) -> None:
    """At least one level, every K_l >= 1; ConfigError naming ``where`` otherwise."""
    require(len(sizes) >= 1, where, "at least one level is needed (one codebook size per level), got none")
    require(all(size >= 1 for size in sizes), where, f"codebook size must be >= 1, got {sizes}")


def validate_autoencoder_fields(config: Any) -> None:
    """Checks shared by the RQ-VAE, per-modality and VQ-VAE configs (every field but the codebooks).

    Normalises ``modalities`` and ``hidden_dims`` to tuples (YAML gives lists).
    """
    object.__setattr__(config, "modalities", tuple(config.modalities))
    object.__setattr__(config, "hidden_dims", tuple(config.hidden_dims))
    where = "tokenizer"
    names = config.modalities
    names_ok = all(isinstance(name, str) and name for name in names) and len(set(names)) == len(names)
    require(names_ok, f"{where}.modalities", f"expected distinct non-empty names, got {names}")
    widths_ok = all(width >= 1 for width in config.hidden_dims)
    require(widths_ok, f"{where}.hidden_dims", f"widths must be >= 1, got {config.hidden_dims}")
    require(config.latent_dim >= 1, f"{where}.latent_dim", f"must be >= 1, got {config.latent_dim}")
    beta = config.commitment_weight
    require(beta >= 0, f"{where}.commitment_weight", f"must be >= 0, got {beta}")
    require(config.epochs >= 1, f"{where}.epochs", f"must be >= 1, got {config.epochs}")
    batch = config.batch_size
    require(batch >= 2, f"{where}.batch_size", f"must be >= 2 (BatchNorm needs two rows per batch), got {batch}")
    lr = config.learning_rate
    require(lr > 0, f"{where}.learning_rate", f"must be > 0, got {lr}")
    check_device(config.device, f"{where}.device")
