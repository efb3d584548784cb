"""Tokenizers: item features -> semantic IDs. One file per tokenizer, an explicit registry of them."""

from __future__ import annotations

from raysid.config import ConfigError
from raysid.tokenizers.base import OnEpoch, Tokenizer
from raysid.tokenizers.external import ExternalConfig, ExternalTokenizer
from raysid.tokenizers.fusid import FusIDConfig, FusIDTokenizer
from raysid.tokenizers.kmeans import KMeansConfig, KMeansTokenizer
from raysid.tokenizers.musicrec import MusicRecConfig, MusicRecTokenizer
from raysid.tokenizers.per_modality import PerModalityConfig, PerModalityTokenizer
from raysid.tokenizers.random_ids import RandomConfig, RandomTokenizer
from raysid.tokenizers.residual_kmeans import ResidualKMeansConfig, ResidualKMeansTokenizer
from raysid.tokenizers.rqvae import RQVAEConfig, RQVAETokenizer
from raysid.tokenizers.talkplay import TalkPlayConfig, TalkPlayTokenizer
from raysid.tokenizers.vqvae import VQVAEConfig, VQVAETokenizer

TOKENIZERS: dict[str, tuple[type, type]] = {
    "musicrec": (MusicRecConfig, MusicRecTokenizer),  # MusicRec: shared + modality-specific RQ
    "rqvae": (RQVAEConfig, RQVAETokenizer),  # TIGER/3MToken RQ-VAE over the concatenated modalities
    "per_modality": (PerModalityConfig, PerModalityTokenizer),  # 3MToken: one RQ-VAE per modality
    "vqvae": (VQVAEConfig, VQVAETokenizer),  # 3MToken ablation: one codebook
    "kmeans": (KMeansConfig, KMeansTokenizer),  # faiss k-means, one level
    "residual_kmeans": (ResidualKMeansConfig, ResidualKMeansTokenizer),  # faiss k-means on residuals
    "fusid": (FusIDConfig, FusIDTokenizer),  # FusID: fusion network + contrastive/VICReg losses + PQ
    "talkplay": (TalkPlayConfig, TalkPlayTokenizer),  # FusID's baseline: k-means per modality
    "random": (RandomConfig, RandomTokenizer),  # 'v0' random identifiers of the same shape
    "external": (ExternalConfig, ExternalTokenizer),  # an identifier table produced elsewhere
}
"""Tokenizer kind -> (config dataclass, tokenizer class); the class is built as ``cls(config)``."""


def get_tokenizer(kind: str) -> tuple[type, type]:
    """(config class, tokenizer class) of ``kind``; ConfigError listing the valid kinds for an unknown one."""
    if kind not in TOKENIZERS:
        valid = ", ".join(sorted(TOKENIZERS))
        raise ConfigError(f"tokenizer.kind: unknown tokenizer {kind!r}; valid kinds are: {valid}")
    return TOKENIZERS[kind]


__all__ = ["TOKENIZERS", "OnEpoch", "Tokenizer", "get_tokenizer"]
