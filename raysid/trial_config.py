"""The configuration of one trial: one section per stage, parsed from a nested mapping.

A leaf module: it imports config dataclasses and the registries that name them, nothing that runs a
stage, so every stage and every adapter (the pipeline, the sweep, the CLI) can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from raysid.config import build, require, to_dict
from raysid.data.catalog import CatalogConfig
from raysid.data.importers.source import ImportedConfig, parse_dataset_config
from raysid.data.splits import SplitConfig
from raysid.training_config import TrainingConfig
from raysid.features.modalities import FeatureConfig
from raysid.recommenders import RECOMMENDERS, get_recommender
from raysid.recommenders.sasrec_config import SASRecConfig
from raysid.recommenders.t5_config import T5RecommenderConfig
from raysid.tokenizers import TokenizerCapabilities, get_tokenizer

RECOMMENDER_KINDS = (*RECOMMENDERS, "none")  # "none": a tokenizer-only study (quality report, no ranking)
NO_TOKENIZER = TokenizerCapabilities(needs_features=False, reconstructs_inputs=False, quantizer=False, seeded=False)
"""What ``tokenizer: {kind: none}`` amounts to: no tokenizer stage, no features, no semantic IDs."""


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
    tokenizer: Any = None  # a tokenizer config chosen by `tokenizer.kind` (default: musicrec); None for kind "none"
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
    spec = get_tokenizer(kind) if kind != "none" else None
    require(spec is not None or not tokenizer, f"{where}.tokenizer",
            f"kind 'none' has no settings, got {', '.join(map(repr, sorted(tokenizer)))}")
    recommender = dict(data.pop("recommender", None) or {})
    recommender_kind = recommender.pop("kind", "t5")
    require(recommender_kind in RECOMMENDER_KINDS, f"{where}.recommender.kind",
            f"unknown recommender {recommender_kind!r}; valid kinds are: {', '.join(RECOMMENDER_KINDS)}")
    base = build(TrialConfig, data, where)
    require(base.threads >= 1, f"{where}.threads", f"expected >= 1, got {base.threads}")
    config = replace(
        base, dataset=dataset, tokenizer=build(spec.config, tokenizer, f"{where}.tokenizer") if spec else None,
        tokenizer_kind=kind,
        recommender=_recommender_config(recommender_kind, recommender, f"{where}.recommender"),
        recommender_kind=recommender_kind,
    )
    _check_stages(config, where)
    _check_beam(config, where)
    return config


def _check_beam(config: TrialConfig, where: str) -> None:
    """Beam search returns ``beam_size`` items: the largest cut-off must fit in it, and it in the catalogue.

    An imported dataset's size is known once it is read; the recommender checks the beam against it then."""
    beam = getattr(config.recommender, "beam_size", None)
    if config.recommender_kind == "none" or beam is None or getattr(config.recommender, "ranking", "beam") != "beam":
        return
    k = max(config.evaluation.ks)
    require(k <= beam, f"{where}.evaluation.ks", f"cut-off {k} is larger than recommender.beam_size = {beam} "
            f"(beam search ranks beam_size items); use cut-offs <= {beam} or a beam_size >= {k}")
    if isinstance(config.dataset, CatalogConfig):
        items = config.dataset.num_tracks
        require(beam <= items, f"{where}.recommender.beam_size",
                f"{beam} is larger than the catalogue (dataset.num_tracks = {items}); use beam_size <= {items}")


def _check_stages(config: TrialConfig, where: str) -> None:
    """A trial without a tokenizer needs a recommender, one that reads no semantic IDs."""
    if config.tokenizer is not None:
        return
    require(config.recommender_kind != "none", f"{where}.tokenizer.kind",
            "'none' and recommender kind 'none' leave nothing to run; give one of them a kind")
    readers = [kind for kind, spec in RECOMMENDERS.items() if not spec.config().capabilities().reads_semantic_ids]
    require(not config.recommender.capabilities().reads_semantic_ids, f"{where}.tokenizer.kind",
            f"'none' gives no semantic IDs, and this {config.recommender_kind!r} recommender reads them; set a "
            f"tokenizer, or a recommender over plain item ids ({', '.join(readers)} as configured by default)")


def tokenizer_capabilities(config: TrialConfig) -> TokenizerCapabilities:
    """What the trial's tokenizer declares (``NO_TOKENIZER`` for kind "none")."""
    return NO_TOKENIZER if config.tokenizer is None else config.tokenizer.capabilities()


def needs_features(config: TrialConfig) -> bool:
    """Whether any stage of the trial reads item features (only a tokenizer does)."""
    return tokenizer_capabilities(config).needs_features


def _recommender_config(kind: str, data: Mapping[str, Any], where: str) -> Any:
    """The ``recommender`` section as its kind's config ("none" keeps the T5 defaults, unused)."""
    if kind == "none":
        return build(T5RecommenderConfig, data, where)
    return build(get_recommender(kind).config, data, where)


def trial_config_dict(config: TrialConfig) -> dict[str, Any]:
    """The nested dict a TrialConfig was (or could have been) parsed from."""
    data = to_dict(config)
    data["tokenizer"] = {"kind": data.pop("tokenizer_kind"), **(data["tokenizer"] or {})}  # kind "none": no settings
    data["recommender"] = {"kind": data.pop("recommender_kind"), **data["recommender"]}
    return data
