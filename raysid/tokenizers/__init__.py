"""Tokenizers: item features -> semantic IDs. One file per tokenizer, an explicit registry of them."""

from __future__ import annotations

from raysid.config import ConfigError
from raysid.tokenizers.base import OnEpoch, Tokenizer
from raysid.tokenizers.musicrec import MusicRecConfig, MusicRecTokenizer

TOKENIZERS: dict[str, tuple[type, type]] = {
    "musicrec": (MusicRecConfig, MusicRecTokenizer),
}
"""Tokenizer kind -> (config dataclass, tokenizer class); the class is built as ``cls(config)``."""


def get_tokenizer(kind: str) -> tuple[type, type]:
    """(config class, tokenizer class) of ``kind``; ConfigError listing the valid kinds for an unknown one."""
    if kind not in TOKENIZERS:
        valid = ", ".join(sorted(TOKENIZERS))
        raise ConfigError(f"tokenizer.kind: unknown tokenizer {kind!r}; valid kinds are: {valid}")
    return TOKENIZERS[kind]


__all__ = ["TOKENIZERS", "MusicRecConfig", "MusicRecTokenizer", "OnEpoch", "Tokenizer", "get_tokenizer"]
