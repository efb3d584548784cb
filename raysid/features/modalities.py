"""Per-modality item matrices for the tokenizers: the chosen modalities, z-scored on training items.

For imported datasets this module also extracts the item features (``text``, ``categorical``,
``cooccurrence``, ``collaborative``, ``playlist_text``) and caches each matrix in the artifact store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from raysid.cache import ArtifactStore, stage_key
from raysid.config import ConfigError, require, stable_hash
from raysid.data.dataset import Dataset, Splits
from raysid.data.importers.store import load_sequence_info
from raysid.data.splits import SplitConfig, decide_split
from raysid.features.categorical import categorical_matrix
from raysid.features.collaborative import collaborative_embeddings
from raysid.features.cooccurrence import CooccurrenceConfig, cooccurrence_embeddings
from raysid.features.text import DIM as TEXT_DIM
from raysid.features.text import TextConfig, embed_texts, item_texts

STD_FLOOR = 1e-6  # a constant column is divided by this instead of 0
MATRIX = "matrix.npy"  # file of a cached feature matrix


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
# only and are added after the split. Each matrix is cached in the artifact store.

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


def content_modalities(dataset: Dataset, extraction: Any, store: ArtifactStore, view_key: str) -> dict[str, np.ndarray]:
    """The source and content modalities of ``extraction.modalities`` over the view's items (text cached)."""
    out = {}
    for name in extraction.modalities:
        if name in dataset.modalities:
            out[name] = dataset.modalities[name]
        elif name == "text":
            out[name] = _item_text(dataset, extraction.text, store, view_key)
        elif name == "categorical":
            try:
                out[name] = categorical_matrix(dataset.items)
            except ValueError as error:
                raise ConfigError(f"dataset.modalities: dataset {dataset.name!r}: {error}") from None
        elif name not in TRAINED_MODALITIES:
            known = ", ".join(map(repr, (*dataset.modalities, *CONTENT_MODALITIES, *TRAINED_MODALITIES)))
            raise ConfigError(f"dataset.modalities: unknown modality {name!r} for dataset {dataset.name!r}; "
                              f"available modalities are: {known}")
    return out


def with_split_modalities(dataset: Dataset, config: Any, splits: Splits, store: ArtifactStore, keys: Any) -> Dataset:
    """``dataset`` with the modalities learned from ``splits.train`` added, in the configured order.

    ``config`` is the TrialConfig, ``keys`` its StageKeys. The catalog is returned unchanged.
    """
    if getattr(config.dataset, "source", "catalog") != "imported":
        return dataset
    from raysid.data.importers.source import resolve_extraction

    extraction = resolve_extraction(config.dataset, dataset.meta)
    split_key = stable_hash(keys.dataset, config.split)
    modalities = {}
    for name in extraction.modalities:
        if name in dataset.modalities:
            modalities[name] = dataset.modalities[name]
        elif name == "cooccurrence":
            modalities[name] = _cooccurrence(dataset, splits, extraction.cooccurrence, config.training, store, split_key)
        elif name == "collaborative":
            modalities[name] = _collaborative(dataset, splits, config.collaborative, store, keys.collaborative)
        elif name == "playlist_text":
            titles = _sequence_titles(store, keys.dataset, extraction.text, dataset.name)
            modalities[name] = playlist_text(dataset, splits, config.split, titles)
    return replace(dataset, modalities=modalities)


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


def _sequence_titles(store: ArtifactStore, dataset_key: str, text: TextConfig, name: str) -> np.ndarray:
    """(sequences, 384) title embeddings of the dataset view's sequences (zeros where a sequence has no title)."""
    info = load_sequence_info(store.path("dataset", dataset_key))
    if info is None or "name" not in info.columns:
        raise ConfigError(f"dataset.modalities: playlist_text needs sequence titles; dataset {name!r} has none "
                          "(MPD playlists have them)")
    titles = [t or "" for t in info.sort("sequence")["name"].to_list()]

    def produce(folder: Path) -> None:
        present = [i for i, t in enumerate(titles) if t.strip()]
        matrix = np.zeros((len(titles), TEXT_DIM), dtype=np.float32)
        if present:
            matrix[present] = embed_texts([titles[i] for i in present], text)
        np.save(folder / MATRIX, matrix)

    return store.fetch("features", stage_key("playlist_titles", dataset_key, text), produce, _load_matrix)


def _item_text(dataset: Dataset, text: TextConfig, store: ArtifactStore, view_key: str) -> np.ndarray:
    """(items, 384) embeddings of the items' template texts, cached under the view and the text config."""
    texts = item_texts(dataset.items, _template(text, dataset))
    return store.fetch("features", stage_key("text", view_key, text),
                       lambda folder: np.save(folder / MATRIX, embed_texts(texts, text)), _load_matrix)


def _cooccurrence(dataset: Dataset, splits: Splits, config: CooccurrenceConfig, training: Any, store: ArtifactStore,
                  split_key: str) -> np.ndarray:
    """SGNS embeddings of the training sequences, cached under the split, the config and the DDP world size."""
    workers = training.num_workers if training.ray else 1
    return store.fetch(
        "features", stage_key("cooccurrence", split_key, config, workers),
        lambda folder: np.save(folder / MATRIX, cooccurrence_embeddings(splits.train, dataset.num_items, config, training)),
        _load_matrix,
    )


def _collaborative(dataset: Dataset, splits: Splits, config: Any, store: ArtifactStore, key: str) -> np.ndarray:
    """SASRec item embeddings: the same artifact as MusicRec's collaborative stage (``keys.collaborative``)."""
    return store.fetch(
        "collaborative", key,
        lambda folder: np.save(folder / "embeddings.npy", collaborative_embeddings(splits.train, dataset.num_items, config)),
        lambda folder: np.load(folder / "embeddings.npy"),
    )


def _template(text: TextConfig, dataset: Dataset) -> str:
    if not text.template:
        raise ConfigError(f"dataset.text.template: dataset {dataset.name!r} has no default text template; "
                          f"set one from its item columns ({', '.join(dataset.items.columns)}), e.g. '{{title}}'")
    return text.template


def _load_matrix(folder: Path) -> np.ndarray:
    return np.load(folder / MATRIX)


def trial_dataset(config: Any, store: ArtifactStore) -> tuple[Dataset, Splits]:
    """The dataset a trial sees, with every modality it extracts, and its splits (``raysid data features``)."""
    from raysid.data.importers.source import produce_dataset
    from raysid.pipeline import StageKeys

    keys = StageKeys.of(config)
    dataset = store.fetch("dataset", keys.dataset, lambda f: produce_dataset(config.dataset, store, f), Dataset.load)
    splits = decide_split(dataset, config.split).splits
    return with_split_modalities(dataset, config, splits, store, keys), splits
