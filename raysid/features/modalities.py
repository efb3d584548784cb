"""Per-modality item matrices for the tokenizers: the chosen modalities, z-scored on training items.

For imported datasets it also says which item features a trial extracts (``text``, ``categorical``,
``cooccurrence``, ``collaborative``, ``playlist_text``, or a source modality such as Spotify's ``audio``) and
computes the ones that are functions of the dataset and its training sequences; the data stage
(``raysid.pipeline.dataset``) calls them and keeps each matrix in the artifact store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from raysid.config import ConfigError, require
from raysid.data.dataset import Dataset, Splits
from raysid.data.splits import SplitConfig, decide_split
from raysid.features.categorical import categorical_matrix
from raysid.features.text import DIM as TEXT_DIM
from raysid.features.text import TextConfig, embed_texts

STD_FLOOR = 1e-6  # a constant column is divided by this instead of 0


@dataclass(frozen=True)
class FeatureConfig:
    """Which modality matrices the tokenizer sees, and whether they are standardised."""

    modalities: tuple[str, ...] = ()  # names in the wanted order; empty = all of the dataset's, in its order
    standardize: bool = True  # z-score each column with mean/std of the training items

    def __post_init__(self) -> None:
        for name in self.modalities:
            require(isinstance(name, str), "features.modalities", f"expected modality names, got {name!r}")
            require(self.modalities.count(name) == 1, "features.modalities", f"{name!r} is listed more than once")


def build_features(dataset: Dataset, cfg: FeatureConfig, train_items: np.ndarray) -> dict[str, np.ndarray]:
    """Modality name -> float32 (num_items, dim) matrix, z-scored with statistics of ``train_items`` only."""
    names = select_modalities(dataset, cfg)
    train_items = np.asarray(train_items, dtype=np.int64)
    if cfg.standardize and not len(train_items):
        raise ValueError("build_features: train_items is empty, no statistics to standardise with")
    return {name: _prepare(dataset.modalities[name], train_items, cfg.standardize) for name in names}


def select_modalities(dataset: Dataset, cfg: FeatureConfig) -> tuple[str, ...]:
    """The configured modality names, checked against the dataset's (all of them when none are configured)."""
    available = tuple(dataset.modalities)
    for name in cfg.modalities:
        if name not in dataset.modalities:
            raise ConfigError(
                f"features.modalities: unknown modality {name!r} for dataset {dataset.name!r}; "
                f"available modalities are: {', '.join(map(repr, available))}"
            )
    return cfg.modalities or available


def _prepare(matrix: np.ndarray, train_items: np.ndarray, standardize: bool) -> np.ndarray:
    """(items, dim) -> float32 (items, dim), optionally z-scored on the rows ``train_items``."""
    if not standardize:
        return np.array(matrix, dtype=np.float32)
    train = matrix[train_items].astype(np.float64)  # (train_items, dim)
    mean = train.mean(axis=0)  # (dim,)
    std = np.maximum(train.std(axis=0), STD_FLOOR)  # (dim,)
    out = np.array(matrix, dtype=np.float32)  # a float32 copy, normalised in place
    out -= mean.astype(np.float32)
    out /= std.astype(np.float32)
    return out


# --- item features of imported datasets -----------------------------------------------------------
# Content modalities (text, categorical) are computed over the dataset view's items in the dataset stage;
# modalities learned from sequences (cooccurrence, collaborative, playlist_text) use training sequences
# only and are added after the split.

CONTENT_MODALITIES = ("text", "categorical")
TRAINED_MODALITIES = ("cooccurrence", "collaborative", "playlist_text")
DEFAULT_MODALITIES = {  # per dataset kind (the importer's ``meta["kind"]``)
    "mpd": ("text", "playlist_text", "cooccurrence"),  # "track by artist", playlist titles, FusID's playlist modality
    "spotify-skip": ("audio", "categorical", "cooccurrence"),  # the semantic-IDs paper's audio vector + attributes
    "amazon": ("text", "cooccurrence"),  # MusicRec's item text (title, description)
    "amazon-reviews": ("text", "cooccurrence"),  # title, brand, categories, description
    "recbole": ("text", "cooccurrence"),  # text when its .item file has a title
}


def default_modalities(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The modalities an imported dataset of this kind extracts unless the study lists its own: the kind's
    defaults that its items can supply (``meta["supplies"]``, recorded by the import)."""
    defaults = DEFAULT_MODALITIES.get(meta.get("kind", ""), ("cooccurrence",))
    supplies = meta.get("supplies")
    if supplies is None:  # imported before imports recorded it: no text without a template or any item text
        counts = meta.get("counts", {})
        textless = not meta.get("text_template") or meta.get("items_without_text") == counts.get("items", -1)
        supplies = [m for m in (*defaults, "collaborative") if not (m == "text" and textless)]
    return tuple(m for m in defaults if m in supplies)


def check_modality(dataset: Dataset, name: str) -> None:
    """Fail naming the modalities an imported dataset can have when ``name`` is none of them."""
    if name not in dataset.modalities and name not in (*CONTENT_MODALITIES, *TRAINED_MODALITIES):
        known = ", ".join(map(repr, (*dataset.modalities, *CONTENT_MODALITIES, *TRAINED_MODALITIES)))
        raise ConfigError(f"dataset.modalities: unknown modality {name!r} for dataset {dataset.name!r}; "
                          f"available modalities are: {known}")


def categorical(dataset: Dataset) -> np.ndarray:
    """(items, dim) float32 one-hot/scaled item attributes (``raysid.features.categorical``); the dataset's
    items lacking every attribute column fail naming the dataset."""
    try:
        return categorical_matrix(dataset.items)
    except ValueError as error:
        raise ConfigError(f"dataset.modalities: dataset {dataset.name!r}: {error}") from None


def playlist_text(dataset: Dataset, splits: Splits, split_config: SplitConfig, titles: np.ndarray) -> np.ndarray:
    """(items, dim) float32: per item, the normalised sum of the title embeddings of the training sequences
    it occurs in (only their training part counts); items in no training sequence get zeros.

    ``titles`` is (sequences, dim), one row per sequence of ``dataset``. Which sequence a training
    sequence came from is found by splitting sequences of their own index (same lengths, same feedback)
    with the trial's split function and config, which decides the same split.
    """
    marks = [np.full(len(s), i, dtype=np.int64) for i, s in enumerate(dataset.sequences)]
    index = decide_split(replace(dataset, sequences=marks), split_config).splits
    items = np.concatenate(splits.train)
    origin = np.concatenate(index.train)  # (train interactions,) the sequence each came from
    out = np.zeros((dataset.num_items, titles.shape[1]), dtype=np.float64)
    np.add.at(out, items, titles[origin])
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.maximum(norms, 1e-12)).astype(np.float32)


def sequence_titles(titles: list[str], text: TextConfig) -> np.ndarray:
    """(sequences, 384) title embeddings, one row per title (zeros where a sequence has no title)."""
    present = [i for i, t in enumerate(titles) if t.strip()]
    matrix = np.zeros((len(titles), TEXT_DIM), dtype=np.float32)
    if present:
        matrix[present] = embed_texts([titles[i] for i in present], text)
    return matrix


def text_template(text: TextConfig, dataset: Dataset) -> str:
    """The template of the text modality; a dataset with no default one fails naming its item columns."""
    if not text.template:
        raise ConfigError(f"dataset.text.template: dataset {dataset.name!r} has no default text template; "
                          f"set one from its item columns ({', '.join(dataset.items.columns)}), e.g. '{{title}}'")
    return text.template
