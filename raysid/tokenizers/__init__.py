"""Tokenizers: item features -> semantic IDs. One file per tokenizer, an explicit registry of them.

The registry names each kind's config class directly (configs import no torch, so a study parses without
it) and its tokenizer class by import path, loaded when a tokenizer is built. Adding a tokenizer is one
file (its config beside its class; a class that imports torch keeps its config in a torch-free
``NAME_config.py``) and one line here; the contract tests iterate this registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raysid.config import ConfigError, import_object
from raysid.tokenizers.base import OnEpoch, Quantizer, Tokenizer, TokenizerCapabilities, TokenizerInputs
from raysid.tokenizers.external import ExternalConfig
from raysid.tokenizers.fusid_config import FusIDConfig
from raysid.tokenizers.kmeans import KMeansConfig
from raysid.tokenizers.musicrec_config import MusicRecConfig
from raysid.tokenizers.per_modality_config import PerModalityConfig
from raysid.tokenizers.random_ids import RandomConfig
from raysid.tokenizers.residual_kmeans import ResidualKMeansConfig
from raysid.tokenizers.rqvae_config import RQVAEConfig
from raysid.tokenizers.talkplay import TalkPlayConfig
from raysid.tokenizers.vqvae_config import VQVAEConfig


@dataclass(frozen=True)
class TokenizerSpec:
    """A registered tokenizer kind: its config class and its tokenizer class ("module:Class"), built as
    ``cls(config)``; the config declares ``capabilities()`` and a ``tiny`` setting for the contract tests."""

    config: type
    model: str

    def model_class(self) -> type:
        return import_object(self.model)

    def build(self, config: Any) -> Tokenizer:
        return self.model_class()(config)


TOKENIZERS: dict[str, TokenizerSpec] = {
    # MusicRec: shared + modality-specific RQ
    "musicrec": TokenizerSpec(MusicRecConfig, "raysid.tokenizers.musicrec:MusicRecTokenizer"),
    # TIGER/3MToken RQ-VAE over the concatenated modalities
    "rqvae": TokenizerSpec(RQVAEConfig, "raysid.tokenizers.rqvae:RQVAETokenizer"),
    # 3MToken: one RQ-VAE per modality
    "per_modality": TokenizerSpec(PerModalityConfig, "raysid.tokenizers.per_modality:PerModalityTokenizer"),
    # 3MToken ablation: one codebook
    "vqvae": TokenizerSpec(VQVAEConfig, "raysid.tokenizers.vqvae:VQVAETokenizer"),
    # faiss k-means, one level
    "kmeans": TokenizerSpec(KMeansConfig, "raysid.tokenizers.kmeans:KMeansTokenizer"),
    # faiss k-means on residuals
    "residual_kmeans": TokenizerSpec(ResidualKMeansConfig, "raysid.tokenizers.residual_kmeans:ResidualKMeansTokenizer"),
    # FusID: fusion network + contrastive/VICReg losses + PQ
    "fusid": TokenizerSpec(FusIDConfig, "raysid.tokenizers.fusid:FusIDTokenizer"),
    # FusID's baseline: k-means per modality
    "talkplay": TokenizerSpec(TalkPlayConfig, "raysid.tokenizers.talkplay:TalkPlayTokenizer"),
    # 'v0' random identifiers of the same shape
    "random": TokenizerSpec(RandomConfig, "raysid.tokenizers.random_ids:RandomTokenizer"),
    # an identifier table produced elsewhere
    "external": TokenizerSpec(ExternalConfig, "raysid.tokenizers.external:ExternalTokenizer"),
}
"""Tokenizer kind -> its spec."""


def get_tokenizer(kind: str) -> TokenizerSpec:
    """The spec of ``kind``; ConfigError listing the valid kinds for an unknown one."""
    if kind not in TOKENIZERS:
        valid = ", ".join(sorted(TOKENIZERS))
        raise ConfigError(f"tokenizer.kind: unknown tokenizer {kind!r}; valid kinds are: {valid}")
    return TOKENIZERS[kind]


__all__ = ["TOKENIZERS", "OnEpoch", "Quantizer", "Tokenizer", "TokenizerCapabilities", "TokenizerInputs",
           "TokenizerSpec", "get_tokenizer"]
