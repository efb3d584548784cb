"""VQ-VAE: 3MToken's single-codebook ablation (3mtoken.txt §3 "Baselines").

The RQ-VAE network of ``rqvae.py`` with one quantization level: the same encoder and decoder, one codebook
of K codewords (1024 in the paper, "4.6 times larger" than RQ-VAE's 32 + 64 + 128), k-means init on the first
batch and dead-code resets. The paper trains one VQ-VAE per modality; like ``RQVAETokenizer`` this one
tokenizes the concatenation of ``modalities`` (pick a single modality to reproduce a per-modality row).
An item's identifier is its one code, at position "vq1".
"""

from __future__ import annotations

from typing import ClassVar

from raysid.tokenizers.rqvae import RQVAETokenizer
from raysid.tokenizers.vqvae_config import VQVAEConfig


class VQVAETokenizer(RQVAETokenizer):
    """VQ-VAE behind the ``Tokenizer`` contract: one code per item, position "vq1"."""

    config_class: ClassVar[type] = VQVAEConfig
    position_prefix: ClassVar[str] = "vq"
