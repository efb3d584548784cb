"""3MToken's per-modality RQ-VAE hyperparameters (``kind: per_modality``), beside ``per_modality.py``.

Torch-free."""

from __future__ import annotations

from dataclasses import dataclass

from raysid.tokenizers.rqvae_config import RQVAEConfig


@dataclass(frozen=True)
class PerModalityConfig(RQVAEConfig):
    """Hyperparameters of 3MToken: the fields of ``RQVAEConfig``, applied to each modality's own RQ-VAE.

    ``modalities`` picks which modalities get tokens (() = all, in the features' order); the same
    hidden_dims, latent_dim (d_z), codebook_sizes (K_l), β and training settings serve every modality.
    """
