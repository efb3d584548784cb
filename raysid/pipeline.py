"""run_trial: the stages of DESIGN.md's data flow in order, each cached in the artifact store.

dataset -> split (decided once) -> features -> collaborative embeddings -> tokenizer -> semantic IDs -> recommender
-> metrics. Nothing here knows about Ray or MLflow: the sweep adapters call ``run_trial`` and forward its
``on_epoch`` progress.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raysid import provenance
from raysid.cache import ArtifactStore, load_json, stage_key
from raysid.config import ConfigError, build, require, stable_hash, to_dict
from raysid.cost import Spent
from raysid.data.catalog import CatalogConfig
from raysid.data.dataset import Dataset, Splits
from raysid.data.importers.source import (
    ImportedConfig,
    dataset_key,
    parse_dataset_config,
    produce_dataset,
)
from raysid.data.splits import SplitConfig, TrialSplit, decide_split
from raysid.distributed import TrainingConfig
from raysid.evaluation import evaluate, fit_sequences
from raysid.features.collaborative import collaborative_embeddings
from raysid.features.modalities import (
    FeatureConfig,
    build_features,
    with_split_modalities,
)
from raysid.quality import tokenizer_report, usage_frame
from raysid.recommenders import RECOMMENDERS, get_recommender
from raysid.recommenders.sasrec import SASRecConfig
from raysid.recommenders.t5 import T5RecommenderConfig
from raysid.semantic_ids.table import SemanticIds
from raysid.tokenizers import get_tokenizer

OnEpoch = Callable[[str, int, dict[str, float]], None]  # (stage, epoch, metrics)
RECOMMENDER_KINDS = (*RECOMMENDERS, "none")  # "none": a tokenizer-only study (quality report, no ranking)


@dataclass(frozen=True)
class SemanticIdConfig:
    tie_break: bool = True  # append the 'n+1' digit so every item's identifier is unique


@dataclass(frozen=True)
class EvaluationConfig:
    ks: tuple[int, ...] = (5, 10)  # cut-offs of HR@K and NDCG@K (MusicRec: 5 and 10)
    max_users: int = 0  # evaluate at most this many users per split (0 = all), sampled with the seed
    epoch_users: int = 0  # > 0: also rank this many validation users after every recommender epoch (ASHA)

    def __post_init__(self) -> None:
        require(len(self.ks) > 0 and all(k >= 1 for k in self.ks), "evaluation.ks", f"expected cut-offs >= 1, got {self.ks}")
        require(self.max_users >= 0, "evaluation.max_users", f"expected >= 0, got {self.max_users}")
        require(self.epoch_users >= 0, "evaluation.epoch_users", f"expected >= 0, got {self.epoch_users}")


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial needs; ``seed`` seeds the tokenizer and the recommender."""

    seed: int = 0
    threads: int = 1  # torch intra-op threads per trial
    dataset: CatalogConfig | ImportedConfig = field(default_factory=CatalogConfig)  # `source: imported` for imported data
    split: SplitConfig = field(default_factory=SplitConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    collaborative: SASRecConfig = field(default_factory=SASRecConfig)
    tokenizer: Any = None  # a tokenizer config chosen by `tokenizer.kind` (default: musicrec)
    tokenizer_kind: str = "musicrec"
    semantic_ids: SemanticIdConfig = field(default_factory=SemanticIdConfig)
    recommender: Any = field(default_factory=T5RecommenderConfig)  # the config of `recommender.kind`'s model
    recommender_kind: str = "t5"  # a kind of raysid.recommenders.RECOMMENDERS, or "none": no ranking
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)  # how neural stages train (Ray Train or not)


def parse_trial_config(data: Mapping[str, Any] | None, where: str = "config") -> TrialConfig:
    """Build a TrialConfig from a nested mapping; ``tokenizer.kind`` picks the tokenizer's config class."""
    data = dict(data or {})
    dataset = parse_dataset_config(data.pop("dataset", None), f"{where}.dataset")
    tokenizer = dict(data.pop("tokenizer", None) or {})
    kind = tokenizer.pop("kind", "musicrec")
    config_class, _ = get_tokenizer(kind)
    recommender = dict(data.pop("recommender", None) or {})
    recommender_kind = recommender.pop("kind", "t5")
    require(recommender_kind in RECOMMENDER_KINDS, f"{where}.recommender.kind",
            f"unknown recommender {recommender_kind!r}; valid kinds are: {', '.join(RECOMMENDER_KINDS)}")
    base = build(TrialConfig, data, where)
    require(base.threads >= 1, f"{where}.threads", f"expected >= 1, got {base.threads}")
    return replace(
        base, dataset=dataset, tokenizer=build(config_class, tokenizer, f"{where}.tokenizer"), tokenizer_kind=kind,
        recommender=_recommender_config(recommender_kind, recommender, f"{where}.recommender"),
        recommender_kind=recommender_kind,
    )


def _recommender_config(kind: str, data: Mapping[str, Any], where: str) -> Any:
    """The ``recommender`` section as its kind's config ("none" keeps the T5 defaults, unused)."""
    if kind == "none":
        return build(T5RecommenderConfig, data, where)
    return build(get_recommender(kind)[0], data, where)


def trial_config_dict(config: TrialConfig) -> dict[str, Any]:
    """The nested dict a TrialConfig was (or could have been) parsed from."""
    data = to_dict(config)
    data["tokenizer"] = {"kind": data.pop("tokenizer_kind"), **(data["tokenizer"] or {})}
    data["recommender"] = {"kind": data.pop("recommender_kind"), **data["recommender"]}
    return data


@dataclass(frozen=True)
class TokenizerArtifact:
    """What the tokenizer stage keeps: the raw codes, their quality report and the artifact folder."""

    sids: SemanticIds
    quality: dict[str, float]
    folder: Path

    @classmethod
    def load(cls, folder: Path) -> TokenizerArtifact:
        return cls(SemanticIds.load(folder / "codes"), load_json(folder / "quality.json"), folder)


@dataclass(frozen=True)
class StageKeys:
    """Content keys of every cached stage, derived from configs alone (no stage has to run).

    Every key mixes in ``raysid.cache.code_version()`` (``stage_key``): a code change gives new keys.
    """

    dataset: str
    collaborative: str
    tokenizer: str
    result: str

    @classmethod
    def of(cls, config: TrialConfig) -> StageKeys:
        dataset = dataset_key(config.dataset)  # catalog: its config; imported: content fingerprint + view + features
        split = stable_hash(dataset, config.split)
        collaborative = stage_key("collaborative", split, config.collaborative)
        numerics = _training_numerics(config.training)
        tokenizer = stage_key(
            "tokenizer", split, config.features, config.tokenizer_kind, config.tokenizer, config.seed,
            collaborative if _uses_collaborative(config) else None, _file_digest(getattr(config.tokenizer, "path", "")),
            *numerics,
        )
        result = stage_key("result", tokenizer, config.semantic_ids, config.recommender_kind, config.recommender,
                             config.evaluation, config.seed, *numerics)
        return cls(dataset, collaborative, tokenizer, result)


def _training_numerics(training: TrainingConfig) -> tuple:
    """What of the training section changes results: DDP world size and precision (not where it runs)."""
    if training.num_workers == 1 and training.precision == "fp32":
        return ()  # the in-process default
    return ("training", training.num_workers, training.precision)


def _uses_collaborative(config: TrialConfig) -> bool:
    """Tokenizer configs that consume CF embeddings say so with a ``needs_collaborative`` property."""
    return bool(getattr(config.tokenizer, "needs_collaborative", False))


def _file_digest(path: str) -> str | None:
    """Content hash of a tokenizer's input file (an external identifier table), so edits invalidate the cache."""
    if not path or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_trial(config: TrialConfig, store: ArtifactStore, on_epoch: OnEpoch | None = None) -> dict[str, Any]:
    """Run (or reuse) every stage of one trial: its metrics, stage times, cache flags, result key and the
    provenance (``provenance.*`` strings) of the run that produced the metrics; when a stored artifact was
    damaged and rebuilt, ``cache/repairs`` holds the warnings (also issued here)."""
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
    """The inputs every recommender needs: data, the trial's one split and the tokenizer stage's output.

    ``trained_on`` records, per trained stage ("features", "collaborative" when the tokenizer uses CF
    embeddings, "tokenizer", "recommender"), what it is given to learn from, so a run can be audited.
    """

    dataset: Dataset
    split: TrialSplit
    tokenizer: TokenizerArtifact
    trained_on: dict[str, StageTraining]

    @property
    def splits(self) -> Splits:
        return self.split.splits


def prepare(config: TrialConfig, store: ArtifactStore, on_epoch: OnEpoch | None = None) -> Prepared:
    """Fetch (or build) the dataset, decide its split once, then the features, CF embeddings and tokenizer stages."""
    keys = StageKeys.of(config)
    dataset = store.fetch("dataset", keys.dataset, lambda f: produce_dataset(config.dataset, store, f), Dataset.load)
    split = decide_split(dataset, config.split)  # the only split of the trial: every stage below and evaluate read it
    splits, train = split.splits, StageTraining(split.splits.train, split.splits.train_items())
    dataset = with_split_modalities(dataset, config, splits, store, keys)  # imported data: modalities from training sequences
    features = build_features(dataset, config.features, train.items)
    trained_on = {"features": train, "tokenizer": train,
                  "recommender": StageTraining(fit_sequences(config, split), train.items)}
    collaborative = None
    if _uses_collaborative(config):
        trained_on["collaborative"] = train
        collaborative = store.fetch(
            "collaborative", keys.collaborative,
            lambda f: np.save(f / "embeddings.npy", collaborative_embeddings(train.sequences, dataset.num_items, config.collaborative)),
            lambda f: np.load(f / "embeddings.npy"),
        )
    config = _with_dataset_identifiers(config, store, keys)
    artifact = store.fetch(
        "tokenizer", keys.tokenizer,
        lambda f: _produce_semantic_ids(config, features, dataset, splits, collaborative, f, on_epoch),
        TokenizerArtifact.load,
    )
    return Prepared(dataset, split, artifact, trained_on)


def _with_dataset_identifiers(config: TrialConfig, store: ArtifactStore, keys: StageKeys) -> TrialConfig:
    """A tokenizer reading the dataset's identifier table (``external`` with no path) gets the view's copy of it."""
    if not getattr(config.tokenizer, "reads_dataset_identifiers", False):
        return config
    folder = store.local("dataset", keys.dataset)
    table = folder / "identifiers.json" if folder is not None else None
    if table is None or not table.exists():
        name = getattr(config.dataset, "name", "") or "the built-in catalog"
        raise ConfigError(
            f"tokenizer.path: empty, and dataset {name!r} has no identifier table; give the table's file, or run on "
            "a dataset imported with one (raysid data import amazon PATH --identifiers FILE --name NAME)")
    return replace(config, tokenizer=replace(config.tokenizer, path=str(table)))


def _produce_result(config: TrialConfig, store: ArtifactStore, folder: Path, on_epoch: OnEpoch | None) -> None:
    spent = Spent.start()
    prepared = prepare(config, store, on_epoch)
    unique = identifiers(prepared.tokenizer.sids, config.semantic_ids)
    started = time.perf_counter()
    metrics = dict(prepared.tokenizer.quality)
    if config.recommender_kind != "none":
        metrics.update(evaluate(config, unique, prepared.dataset, prepared.split, on_epoch))
    metrics["time/recommender_fit_eval"] = time.perf_counter() - started
    metrics |= spent.metrics()
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


def _produce_semantic_ids(config, features, dataset: Dataset, splits: Splits, collaborative, folder: Path, on_epoch) -> None:
    """Fit the tokenizer on training items; store it, its raw codes (no tie-break) and their quality report."""
    _, tokenizer_class = get_tokenizer(config.tokenizer_kind)
    tokenizer_config = replace(config.tokenizer, seed=config.seed) if hasattr(config.tokenizer, "seed") else config.tokenizer
    tokenizer = tokenizer_class(tokenizer_config)
    report = (lambda epoch, values: on_epoch("tokenizer", epoch, values)) if on_epoch else None
    extra = {"sequences": splits.train} if getattr(tokenizer, "needs_sequences", False) else {}
    if "training" in inspect.signature(tokenizer.fit).parameters:  # the neural tokenizers train on Ray Train
        extra["training"] = config.training
    tokenizer.fit(features, splits.train_items(), collaborative=collaborative, on_epoch=report, **extra)
    tokenizer.save(folder / "tokenizer")
    codes = tokenizer.encode(features)
    names, sizes = tuple(tokenizer.position_names), tuple(tokenizer.codebook_sizes)
    SemanticIds.from_codes(codes, names, sizes, tie_break=False).save(folder / "codes")
    quality = tokenizer_report(tokenizer, features, codes, splits.test_items(), dataset.sequences)
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
