"""3MToken: one RQ-VAE per modality (3mtoken.txt §2 "Music Tokenizer with RQ-VAE" and "Token Formation").

Each modality m gets its own encoder, L codebooks of sizes (K_1, …, K_L) and decoder (the ``RQVAE`` network
of ``rqvae.py``), trained side by side on the same shuffled batches but with separate weights and optimisers.
An item's identifier is the concatenation over modalities of their L codes, (k_{m,1}, …, k_{m,L}) per m; a
modality is reconstructed from its own codes only.

Position names are ``f"{modality}{level}"``, so tokens render as ``<text1.5>``; 3MToken writes the same token
as ``<TEXT1-5>``.
"""

from __future__ import annotations

from typing import ClassVar

from raysid.tokenizers.per_modality_config import PerModalityConfig
from raysid.tokenizers.rqvae import RQVAETokenizer


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
