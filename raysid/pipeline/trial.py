"""run_trial: the stages of DESIGN.md's data flow in order, each cached in the artifact store.

dataset -> split (decided once) -> features -> collaborative embeddings -> tokenizer -> semantic IDs -> recommender
-> metrics. Nothing here knows about Ray or MLflow: the sweep adapters call ``run_trial`` and forward its
``on_epoch`` progress. The pipeline package is the only place that touches the artifact store.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from raysid import provenance
from raysid.cache import ArtifactStore, load_json
from raysid.config import ConfigError
from raysid.cost import Spent
from raysid.data.dataset import Dataset, Splits
from raysid.data.importers.source import ImportedConfig
from raysid.data.splits import TrialSplit
from raysid.evaluation import evaluate, fit_sequences
from raysid.features.modalities import build_features
from raysid.pipeline.dataset import collaborative, trial_data
from raysid.pipeline.keys import StageKeys
from raysid.quality import tokenizer_report, usage_frame
from raysid.semantic_ids.table import SemanticIds
from raysid.tokenizers import TokenizerInputs, get_tokenizer
from raysid.trial_config import SemanticIdConfig, TrialConfig, tokenizer_capabilities, trial_config_dict

OnEpoch = Callable[[str, int, dict[str, float]], None]  # (stage, epoch, metrics)


@dataclass(frozen=True)
class TokenizerArtifact:
    """What the tokenizer stage keeps: the raw codes, their quality report and the artifact folder."""

    sids: SemanticIds
    quality: dict[str, float]
    folder: Path

    @classmethod
    def load(cls, folder: Path) -> TokenizerArtifact:
        return cls(SemanticIds.load(folder / "codes"), load_json(folder / "quality.json"), folder)


def run_trial(config: TrialConfig, store: ArtifactStore, on_epoch: OnEpoch | None = None) -> dict[str, Any]:
    """Run (or reuse) every stage of one trial: its metrics, stage times, cache flags, result key and the
    provenance (``provenance.*`` strings) of the run that produced the metrics; when a stored artifact was
    damaged and rebuilt, ``cache/repairs`` holds the warnings (also issued here)."""
    import torch

    torch.set_num_threads(config.threads)
    keys = StageKeys.of(config)
    start = time.perf_counter()
    metrics = store.fetch("result", keys.result, lambda folder: _produce_result(config, store, folder, on_epoch), _load_metrics)
    repairs = {"cache/repairs": " | ".join(store.repairs)} if store.repairs else {}  # shown by the sweep's driver
    return {**metrics, **store.timings(), "time/trial": time.perf_counter() - start, "stage_keys/result": keys.result,
            **repairs}


@dataclass(frozen=True)
class StageTraining:
    """What one trained stage is given to learn from: sequences of the split's training part and training items."""

    sequences: list[np.ndarray]
    items: np.ndarray  # (items,) sorted ids: what the features are standardised on and the tokenizer fits on


@dataclass(frozen=True)
class Prepared:
    """The inputs every recommender needs: data, the trial's one split and the tokenizer stage's output
    (None for ``tokenizer: {kind: none}``).

    ``trained_on`` records, per trained stage ("features" when the tokenizer reads features, "collaborative"
    when it uses CF embeddings, "tokenizer", "recommender"), what it is given to learn from, so a run can be
    audited.
    """

    dataset: Dataset
    split: TrialSplit
    tokenizer: TokenizerArtifact | None
    trained_on: dict[str, StageTraining]

    @property
    def splits(self) -> Splits:
        return self.split.splits


def prepare(config: TrialConfig, store: ArtifactStore, on_epoch: OnEpoch | None = None) -> Prepared:
    """The data stage (dataset, its one split, its modalities), then the features, CF embeddings and
    tokenizer stages, each as the tokenizer's capabilities ask."""
    keys, capabilities = StageKeys.of(config), tokenizer_capabilities(config)
    data = trial_data(config, store, keys)
    dataset, split = data.dataset, data.split
    train = StageTraining(split.splits.train, split.splits.train_items())
    trained_on = {"recommender": StageTraining(fit_sequences(config, split), train.items)}
    if config.tokenizer is None:
        return Prepared(dataset, split, None, trained_on)
    features = None
    if capabilities.needs_features:
        trained_on["features"] = train
        features = build_features(dataset, config.features, train.items)
    trained_on["tokenizer"] = train
    embeddings = None
    if capabilities.uses_collaborative:
        trained_on["collaborative"] = train
        embeddings = collaborative(config, dataset, split, store, keys)
    inputs = TokenizerInputs(
        features, train.items, sequences=train.sequences if capabilities.needs_sequences else None,
        collaborative=embeddings, training=config.training, num_items=dataset.num_items,
        identifiers=_dataset_identifiers(config, store, keys) if capabilities.reads_dataset_identifiers else None,
        on_epoch=(lambda epoch, values: on_epoch("tokenizer", epoch, values)) if on_epoch else None)
    artifact = store.fetch("tokenizer", keys.tokenizer, lambda f: _produce_semantic_ids(config, inputs, dataset, split, f),
                           TokenizerArtifact.load)
    return Prepared(dataset, split, artifact, trained_on)


def _dataset_identifiers(config: TrialConfig, store: ArtifactStore, keys: StageKeys) -> Path:
    """The view's copy of the identifier table imported with the dataset (what ``external`` without a path reads)."""
    folder = store.local("dataset", keys.dataset)
    table = folder / "identifiers.json" if folder is not None else None
    if table is None or not table.exists():
        name = (config.dataset.name if isinstance(config.dataset, ImportedConfig) else "") or "the built-in catalog"
        raise ConfigError(
            f"tokenizer.path: empty, and dataset {name!r} has no identifier table; give the table's file, or run on "
            "a dataset imported with one (raysid data import amazon PATH --identifiers FILE --name NAME)")
    return table


def _produce_result(config: TrialConfig, store: ArtifactStore, folder: Path, on_epoch: OnEpoch | None) -> None:
    spent = Spent.start()
    prepared = prepare(config, store, on_epoch)
    unique = identifiers(prepared.tokenizer.sids, config.semantic_ids) if prepared.tokenizer else None
    started = time.perf_counter()
    metrics = dict(prepared.tokenizer.quality) if prepared.tokenizer else {}
    if config.recommender_kind != "none":
        metrics.update(evaluate(config, unique, prepared.dataset, prepared.split, on_epoch))
    metrics["time/recommender_fit_eval"] = time.perf_counter() - started
    metrics |= spent.metrics()
    if prepared.tokenizer:
        unique.to_frame().write_parquet(folder / "semantic_ids.parquet")
        shutil.copy(prepared.tokenizer.folder / "usage.parquet", folder / "usage.parquet")
    (folder / "config.json").write_text(json.dumps(trial_config_dict(config), indent=2))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (folder / "provenance.json").write_text(json.dumps(provenance.collect(config.threads), indent=2))


def _load_metrics(folder: Path) -> dict[str, Any]:
    """The stored metrics, the artifact folder and the provenance of the run that produced them."""
    metrics = load_json(folder / "metrics.json")
    metrics["artifact_dir"] = str(folder)
    made_by = folder / "provenance.json"
    return metrics | (provenance.tagged(load_json(made_by)) if made_by.exists() else {})


def _produce_semantic_ids(config: TrialConfig, inputs: TokenizerInputs, dataset: Dataset, split: TrialSplit,
                          folder: Path) -> None:
    """Fit the tokenizer on training items; store it, its raw codes (no tie-break) and their quality report."""
    capabilities, splits = config.tokenizer.capabilities(), split.splits
    tokenizer_config = replace(config.tokenizer, seed=config.seed) if capabilities.seeded else config.tokenizer
    tokenizer = get_tokenizer(config.tokenizer_kind).build(tokenizer_config)
    tokenizer.fit(inputs)
    tokenizer.save(folder / "tokenizer")
    codes = tokenizer.encode(inputs.features)
    names, sizes = tuple(tokenizer.position_names), tuple(tokenizer.codebook_sizes)
    SemanticIds.from_codes(codes, names, sizes, tie_break=False).save(folder / "codes")
    quality = tokenizer_report(tokenizer, inputs.features, codes, splits.test_items(), dataset.sequences)
    (folder / "quality.json").write_text(json.dumps(quality, indent=2))
    usage_frame(codes, sizes, names, splits.train_items(), splits.test_items()).write_parquet(folder / "usage.parquet")


def identifiers(sids: SemanticIds, config: SemanticIdConfig) -> SemanticIds:
    """The learned codes with the tie-break digit appended when asked; every item's identifier must be unique."""
    unique = SemanticIds.from_codes(sids.codes, sids.position_names, sids.codebook_sizes, config.tie_break)
    if not unique.is_unique():
        raise ConfigError(
            "semantic_ids.tie_break: identifiers collide and tie_break is false; a generative recommender needs "
            "one identifier per item (set semantic_ids.tie_break: true)"
        )
    return unique
