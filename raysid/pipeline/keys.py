"""Content keys of every cached artifact of a trial, derived from configs alone (no stage has to run).

Every key mixes in ``raysid.cache.code_version()`` (``stage_key``): a code change gives new keys. The
dataset key of an imported dataset hashes its content fingerprint, the view and the extraction configs, so
the same data under another path or name shares the cache and a re-import with other content does not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from raysid.cache import stage_key
from raysid.config import stable_hash
from raysid.data.catalog import CatalogConfig
from raysid.data.importers.source import IDENTIFIERS, Extraction, ImportedConfig, resolve_extraction
from raysid.data.importers.store import read_info
from raysid.training_config import TrainingConfig
from raysid.features.cooccurrence_config import CooccurrenceConfig
from raysid.features.text import TextConfig
from raysid.trial_config import TrialConfig, needs_features, tokenizer_capabilities


@dataclass(frozen=True)
class StageKeys:
    """The keys of a trial's stages: dataset, its split, CF embeddings, tokenizer, and the trial's result."""

    dataset: str
    split: str
    collaborative: str
    tokenizer: str
    result: str

    @classmethod
    def of(cls, config: TrialConfig) -> StageKeys:
        dataset = dataset_key(config)  # catalog: its config; imported: content fingerprint + view + features
        split = stable_hash(dataset, config.split)
        collaborative = stage_key("collaborative", split, config.collaborative)
        numerics = training_numerics(config.training)
        capabilities = tokenizer_capabilities(config)
        tokenizer = stage_key(
            "tokenizer", split, config.features, config.tokenizer_kind, config.tokenizer, config.seed,
            collaborative if capabilities.uses_collaborative else None, _file_digest(capabilities.input_file),
            *numerics,
        )
        result = stage_key("result", tokenizer, config.semantic_ids, config.recommender_kind, config.recommender,
                           config.evaluation, config.seed, *numerics)
        return cls(dataset, split, collaborative, tokenizer, result)


def dataset_key(config: TrialConfig) -> str:
    """The dataset stage's key: the catalog config, or the imported content + view + extraction configs."""
    if isinstance(config.dataset, CatalogConfig):
        return stage_key("dataset", config.dataset)
    folder = config.dataset.folder()
    info = read_info(folder)
    table = folder / IDENTIFIERS
    identifiers = (hashlib.sha256(table.read_bytes()).hexdigest(),) if table.exists() else ()  # none: keys as before
    return stage_key("dataset-imported", info["meta"].get("fingerprint", ""), config.dataset.view(),
                     extraction(config, info["meta"]), *identifiers)


def extraction(config: TrialConfig, meta: Mapping[str, Any]) -> Extraction:
    """The item features an imported dataset's trial extracts: the study's or the dataset kind's modalities,
    and none when no stage of the trial reads features (an identifier table, random IDs, no tokenizer)."""
    resolved = resolve_extraction(config.dataset, meta)
    return resolved if needs_features(config) else replace(resolved, modalities=())


def view_key(config: ImportedConfig) -> str:
    """Key of the view's items (what content features are computed over), independent of extraction configs."""
    return stage_key("view", read_info(config.folder())["meta"].get("fingerprint", ""), config.view())


def text_key(view: str, text: TextConfig) -> str:
    """The ``text`` modality of a view's items: its template and embedding settings."""
    return stage_key("text", view, text)


def titles_key(dataset: str, text: TextConfig) -> str:
    """The title embeddings of a dataset view's sequences (the ``playlist_text`` modality's input)."""
    return stage_key("playlist_titles", dataset, text)


def cooccurrence_key(split: str, config: CooccurrenceConfig, training: TrainingConfig) -> str:
    """SGNS embeddings of a split's training sequences: the config and the DDP world size."""
    return stage_key("cooccurrence", split, config, training.num_workers if training.ray else 1)


def training_numerics(training: TrainingConfig) -> tuple:
    """What of the training section changes results: DDP world size and precision (not where it runs)."""
    if training.num_workers == 1 and training.precision == "fp32":
        return ()  # the in-process default
    return ("training", training.num_workers, training.precision)


def _file_digest(path: str) -> str | None:
    """Content hash of a tokenizer's input file (an external identifier table), so edits invalidate the cache."""
    if not path or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
