"""3MToken: one RQ-VAE per modality (3mtoken.txt §2 "Music Tokenizer with RQ-VAE" and "Token Formation").

Each modality m gets its own encoder, L codebooks of sizes (K_1, …, K_L) and decoder (the ``RQVAE`` network
of ``rqvae.py``), trained side by side on the same shuffled batches but with separate weights and optimisers.
An item's identifier is the concatenation over modalities of their L codes, (k_{m,1}, …, k_{m,L}) per m; a
modality is reconstructed from its own codes only.

Position names are ``f"{modality}{level}"``, so tokens render as ``<text1.5>``; 3MToken writes the same token
as ``<TEXT1-5>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from raysid.tokenizers.rqvae import RQVAEConfig, RQVAETokenizer


@dataclass(frozen=True)
class PerModalityConfig(RQVAEConfig):
    """Hyperparameters of 3MToken: the fields of ``RQVAEConfig``, applied to each modality's own RQ-VAE.

    ``modalities`` picks which modalities get tokens (() = all, in the features' order); the same
    hidden_dims, latent_dim (d_z), codebook_sizes (K_l), β and training settings serve every modality.
    """


class PerModalityTokenizer(RQVAETokenizer):
    """3MToken behind the ``Tokenizer`` contract: per-modality RQ-VAEs, identifiers concatenated over modalities."""

    config_class: ClassVar[type] = PerModalityConfig

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """(K_1, …, K_L) repeated for each modality."""
        return tuple(self.config.codebook_sizes) * len(self._fitted_modalities())

    @property
    def position_names(self) -> tuple[str, ...]:
        """("{modality}1", …, "{modality}{L}") for each modality in order, e.g. ("text1", "text2", "text3", …)."""
        levels = range(1, len(self.config.codebook_sizes) + 1)
        return tuple(f"{name}{level}" for name in self._fitted_modalities() for level in levels)

    def _groups(self) -> list[tuple[str, ...]]:
        """One network per modality."""
        return [(name,) for name in self._fitted_modalities()]
