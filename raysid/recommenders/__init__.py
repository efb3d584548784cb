"""Recommenders: one file per model, one contract (``raysid.recommenders.base.Recommender``), one registry.

Every kind is built the same way, ``cls.from_catalog(config, ItemCatalog(sids, num_items, attributes))``,
trained with ``fit(RecommenderInputs(...))`` and asked only through the capabilities its config declares
(reads semantic IDs, scores feedback, item attributes, epoch ranking, ...). The registry names each kind's
config class directly (configs import no torch, so a study parses without it) and its model class by import
path, loaded when a model is built. Adding a recommender is one file (its config beside its model; a model
that imports torch keeps its config in a torch-free ``NAME_config.py``) and one line here; the contract
tests iterate this registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raysid.config import ConfigError, import_object, require
from raysid.recommenders.base import (
    ItemCatalog,
    OnEpoch,
    Recommender,
    RecommenderCapabilities,
    RecommenderInputs,
)
from raysid.recommenders.gpt2_config import GPT2RecommenderConfig
from raysid.recommenders.popularity import PopularityConfig
from raysid.recommenders.sasrec_config import SASRecRecommenderConfig
from raysid.recommenders.t5_config import T5RecommenderConfig


@dataclass(frozen=True)
class RecommenderSpec:
    """A registered recommender kind: its config class and its model class ("module:Class"), built with
    ``from_catalog``; the config declares ``capabilities()`` and a ``tiny`` setting for the contract tests."""

    config: type
    model: str

    def model_class(self) -> type:
        return import_object(self.model)


RECOMMENDERS: dict[str, RecommenderSpec] = {
    "t5": RecommenderSpec(T5RecommenderConfig, "raysid.recommenders.t5:T5Recommender"),  # MusicRec: T5, beam 20
    "gpt2": RecommenderSpec(GPT2RecommenderConfig, "raysid.recommenders.gpt2:GPT2Recommender"),  # FusID: GPT-2
    "sasrec": RecommenderSpec(SASRecRecommenderConfig, "raysid.recommenders.sasrec:SASRec"),  # id/SID/attribute items
    "popularity": RecommenderSpec(PopularityConfig, "raysid.recommenders.popularity:PopularityRecommender"),  # the floor
}
"""Recommender kind -> its spec."""


def get_recommender(kind: str) -> RecommenderSpec:
    """The spec of ``kind``; ConfigError listing the valid kinds for an unknown one."""
    if kind not in RECOMMENDERS:
        valid = ", ".join(sorted(RECOMMENDERS))
        raise ConfigError(f"recommender.kind: unknown recommender {kind!r}; valid kinds are: {valid}")
    return RECOMMENDERS[kind]


def build_recommender(kind: str, config: Any, catalog: ItemCatalog) -> Recommender:
    """A ``kind`` recommender from its ``config`` for ``catalog`` (the one constructor shape)."""
    spec = get_recommender(kind)
    require(isinstance(config, spec.config), "recommender",
            f"kind {kind!r} needs a {spec.config.__name__}, got {type(config).__name__}")
    return spec.model_class().from_catalog(config, catalog)


__all__ = [
    "RECOMMENDERS",
    "ItemCatalog",
    "OnEpoch",
    "PopularityConfig",
    "Recommender",
    "RecommenderCapabilities",
    "RecommenderInputs",
    "RecommenderSpec",
    "build_recommender",
    "get_recommender",
]
