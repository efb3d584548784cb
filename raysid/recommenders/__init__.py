"""Recommenders: one file per model, one contract (``raysid.recommenders.base.Recommender``), one registry.

Generative models over semantic IDs (``t5``, ``gpt2``) are built as ``cls(config, sids)``; SASRec as
``cls(config, num_items, sids=..., attributes=...)`` (the table only for ``item_representation: sid``);
popularity as ``cls(num_items)`` (it has nothing to configure). ``build_recommender`` hides the
difference: every kind is built from its config and the semantic-ID table (whose ``num_items`` sizes the
catalogue), or from ``num_items`` for the kinds that can rank plain item ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from raysid.config import ConfigError, require
from raysid.recommenders.base import OnEpoch, Recommender
from raysid.recommenders.gpt2 import GPT2Recommender, GPT2RecommenderConfig
from raysid.recommenders.popularity import PopularityRecommender
from raysid.recommenders.sasrec import SASRec, SASRecRecommenderConfig
from raysid.recommenders.t5 import T5Recommender, T5RecommenderConfig
from raysid.semantic_ids.table import SemanticIds


@dataclass(frozen=True)
class PopularityConfig:
    """The popularity baseline has no hyperparameters; config section ``recommender`` with ``kind: popularity``."""


RECOMMENDERS: dict[str, tuple[type, type]] = {
    "t5": (T5RecommenderConfig, T5Recommender),  # MusicRec: T5 generating the next identifier, beam 20
    "gpt2": (GPT2RecommenderConfig, GPT2Recommender),  # FusID: GPT-2 over playlist token sequences
    "sasrec": (SASRecRecommenderConfig, SASRec),  # SASRec: item-id, semantic-ID or attribute item embeddings
    "popularity": (PopularityConfig, PopularityRecommender),  # the floor every study shows
}
"""Recommender kind -> (config dataclass, model class)."""

SEMANTIC_ID_KINDS = ("t5", "gpt2")  # kinds that read identifiers: built as cls(config, sids)


def get_recommender(kind: str) -> tuple[type, type]:
    """(config class, model class) of ``kind``; ConfigError listing the valid kinds for an unknown one."""
    if kind not in RECOMMENDERS:
        valid = ", ".join(sorted(RECOMMENDERS))
        raise ConfigError(f"recommender.kind: unknown recommender {kind!r}; valid kinds are: {valid}")
    return RECOMMENDERS[kind]


def build_recommender(
    kind: str,
    config: object,
    sids: SemanticIds | None = None,
    num_items: int | None = None,
    attributes: Mapping[str, np.ndarray] | None = None,
) -> Recommender:
    """A ``kind`` recommender from its ``config``. The SID kinds need ``sids``; the others take ``sids`` or
    ``num_items`` (SASRec with ``item_representation: sid`` needs ``sids``); ``attributes`` feed SASRec's
    ``components``."""
    config_class, model_class = get_recommender(kind)
    require(
        isinstance(config, config_class), "recommender",
        f"kind {kind!r} needs a {config_class.__name__}, got {type(config).__name__}",
    )
    if kind in SEMANTIC_ID_KINDS:
        require(sids is not None, "recommender", f"kind {kind!r} ranks semantic IDs: pass sids")
        return model_class(config, sids)
    if sids is not None:
        require(
            num_items in (None, sids.num_items), "num_items",
            f"{num_items} disagrees with the semantic-ID table's {sids.num_items} items",
        )
        num_items = sids.num_items
    require(num_items is not None, "num_items", f"kind {kind!r} needs num_items (or sids) to size the catalogue")
    if kind == "popularity":
        return model_class(num_items)
    uses_sids = config.item_representation == "sid"
    return model_class(config, num_items, sids=sids if uses_sids else None, attributes=attributes)


__all__ = [
    "RECOMMENDERS",
    "SEMANTIC_ID_KINDS",
    "OnEpoch",
    "PopularityConfig",
    "Recommender",
    "build_recommender",
    "get_recommender",
]
