"""The data stage: the dataset, its one split, and every item modality the trial extracts, each cached.

``trial_data`` is what every later stage (and ``raysid data features``) reads: the dataset artifact (the
built-in catalog generated from its config, or an imported dataset's view with its content modalities
``text`` and ``categorical``), the split decided once for every source (``decide_split``), and the
modalities learned from that split's training sequences (``cooccurrence``, ``collaborative``,
``playlist_text``). Each matrix is a ``features`` (or ``collaborative``) artifact of the store; the
functions that compute them are pure (``raysid.features``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from raysid.cache import ArtifactStore
from raysid.config import ConfigError
from raysid.data.catalog import CatalogConfig, generate_catalog
from raysid.data.dataset import Dataset
from raysid.data.importers.source import IDENTIFIERS, Extraction, ImportedConfig, build_view, view_identifiers
from raysid.data.importers.store import load_sequence_info
from raysid.data.splits import TrialSplit, decide_split
from raysid.features.collaborative import collaborative_embeddings
from raysid.features.cooccurrence import cooccurrence_embeddings
from raysid.features.modalities import categorical, check_modality, playlist_text, sequence_titles, text_template
from raysid.features.text import embed_texts, item_texts
from raysid.pipeline.keys import StageKeys, cooccurrence_key, extraction, text_key, titles_key, view_key
from raysid.trial_config import TrialConfig

MATRIX = "matrix.npy"  # file of a cached feature matrix


@dataclass(frozen=True)
class TrialData:
    """The dataset a trial sees, with every modality it extracts, and the trial's one split."""

    dataset: Dataset
    split: TrialSplit


def trial_data(config: TrialConfig, store: ArtifactStore, keys: StageKeys | None = None) -> TrialData:
    """Fetch (or build) the dataset, decide its split once, then add the modalities learned from the split."""
    keys = keys or StageKeys.of(config)
    dataset = store.fetch("dataset", keys.dataset, lambda folder: produce_dataset(config, store, folder), Dataset.load)
    split = decide_split(dataset, config.split)  # the only split of the trial: every stage below and evaluate read it
    return TrialData(with_split_modalities(dataset, config, split, store, keys), split)


def produce_dataset(config: TrialConfig, store: ArtifactStore, folder: Path) -> None:
    """The dataset artifact: generate the catalog, or build the imported view with its content modalities
    (none when no stage of the trial reads features)."""
    if isinstance(config.dataset, CatalogConfig):
        generate_catalog(config.dataset).save(folder)
        return
    source = config.dataset.folder()
    dataset, info = build_view(Dataset.load(source), load_sequence_info(source), config.dataset)
    resolved = extraction(config, dataset.meta)
    modalities = _content_modalities(dataset, resolved, store, view_key(config.dataset))
    Dataset(dataset.name, dataset.items, modalities, dataset.sequences,
            {**dataset.meta, "modalities": list(resolved.modalities)}, dataset.feedback).save(folder)
    if info is not None:
        info.write_parquet(Path(folder) / "sequence_info.parquet")
    if (source / IDENTIFIERS).exists():
        table = view_identifiers(json.loads((source / IDENTIFIERS).read_text()), dataset.items["source_item"].to_list())
        (Path(folder) / IDENTIFIERS).write_text(json.dumps(table))


def _content_modalities(dataset: Dataset, extraction: Extraction, store: ArtifactStore, view: str) -> dict[str, np.ndarray]:
    """The source and content modalities of ``extraction.modalities`` over the view's items (text cached)."""
    out = {}
    for name in extraction.modalities:
        check_modality(dataset, name)
        if name in dataset.modalities:
            out[name] = dataset.modalities[name]
        elif name == "text":
            texts = item_texts(dataset.items, text_template(extraction.text, dataset))
            out[name] = _matrix(store, text_key(view, extraction.text), lambda: embed_texts(texts, extraction.text))
        elif name == "categorical":
            out[name] = categorical(dataset)
    return out


def with_split_modalities(dataset: Dataset, config: TrialConfig, split: TrialSplit, store: ArtifactStore,
                          keys: StageKeys) -> Dataset:
    """``dataset`` with the modalities learned from the split's training sequences added, in the configured
    order. The catalog is returned unchanged."""
    if not isinstance(config.dataset, ImportedConfig):
        return dataset
    extracted, splits = extraction(config, dataset.meta), split.splits
    modalities = {}
    for name in extracted.modalities:
        if name in dataset.modalities:
            modalities[name] = dataset.modalities[name]
        elif name == "cooccurrence":
            key = cooccurrence_key(keys.split, extracted.cooccurrence, config.training)
            modalities[name] = _matrix(store, key, lambda: cooccurrence_embeddings(
                splits.train, dataset.num_items, extracted.cooccurrence, config.training))
        elif name == "collaborative":
            modalities[name] = collaborative(config, dataset, split, store, keys)
        elif name == "playlist_text":
            titles = _sequence_titles(store, keys.dataset, extracted, dataset.name)
            modalities[name] = playlist_text(dataset, splits, config.split, titles)
    return replace(dataset, modalities=modalities)


def collaborative(config: TrialConfig, dataset: Dataset, split: TrialSplit, store: ArtifactStore, keys: StageKeys) -> np.ndarray:
    """(items, d_cf) SASRec item embeddings of the split's training sequences: MusicRec's collaborative
    signal and the ``collaborative`` modality, one artifact for both."""
    return store.fetch(
        "collaborative", keys.collaborative,
        lambda folder: np.save(folder / "embeddings.npy",
                               collaborative_embeddings(split.splits.train, dataset.num_items, config.collaborative)),
        lambda folder: np.load(folder / "embeddings.npy"),
    )


def _sequence_titles(store: ArtifactStore, dataset_key: str, extraction: Extraction, name: str) -> np.ndarray:
    """(sequences, 384) title embeddings of the dataset view's sequences (zeros where a sequence has no title)."""
    info = load_sequence_info(store.path("dataset", dataset_key))
    if info is None or "name" not in info.columns:
        raise ConfigError(f"dataset.modalities: playlist_text needs sequence titles; dataset {name!r} has none "
                          "(MPD playlists have them)")
    titles = [t or "" for t in info.sort("sequence")["name"].to_list()]
    return _matrix(store, titles_key(dataset_key, extraction.text), lambda: sequence_titles(titles, extraction.text))


def _matrix(store: ArtifactStore, key: str, compute) -> np.ndarray:
    """A ``features`` artifact holding one matrix: fetched, or computed by ``compute()`` and stored."""
    return store.fetch("features", key, lambda folder: np.save(folder / MATRIX, compute()),
                       lambda folder: np.load(folder / MATRIX))
