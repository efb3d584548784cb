"""The recommender registry and factory: every kind is built from its config, trains for an epoch on a tiny
catalog and ranks real items through the same contract."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from raysid.config import ConfigError
from raysid.data.dataset import EvalSet
from raysid.recommenders import (
    RECOMMENDERS,
    PopularityConfig,
    build_recommender,
    get_recommender,
)
from raysid.recommenders.base import Recommender
from raysid.recommenders.gpt2 import GPT2RecommenderConfig
from raysid.recommenders.sasrec import SASRecRecommenderConfig
from raysid.recommenders.t5 import T5RecommenderConfig
from raysid.semantic_ids.table import SemanticIds

torch.set_num_threads(1)

NUM_ITEMS = 30
TINY = {
    "t5": T5RecommenderConfig(d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8, epochs=1, beam_size=5, device="cpu"),
    "gpt2": GPT2RecommenderConfig(n_embd=16, n_layer=1, n_head=2, epochs=1, beam_size=5, device="cpu"),
    "sasrec": SASRecRecommenderConfig(hidden_size=16, num_layers=1, num_heads=2, max_length=8, epochs=1, device="cpu"),
    "popularity": PopularityConfig(),
}


@pytest.fixture(scope="module")
def sids() -> SemanticIds:
    return SemanticIds.from_codes(np.random.default_rng(0).integers(0, 3, size=(NUM_ITEMS, 2)), ("a", "b"), (3, 3))


def test_registry_names_every_kind_and_rejects_unknown_ones():
    assert set(RECOMMENDERS) == {"t5", "gpt2", "sasrec", "popularity"}
    assert all(isinstance(TINY[kind], get_recommender(kind)[0]) for kind in RECOMMENDERS)
    with pytest.raises(ConfigError, match="recommender.kind: unknown recommender 'bert4rec'; valid kinds are: "
                                          "gpt2, popularity, sasrec, t5"):
        get_recommender("bert4rec")


@pytest.mark.parametrize("kind", sorted(TINY))
def test_every_kind_trains_and_ranks_real_items_through_one_contract(kind, sids):
    model = build_recommender(kind, TINY[kind], sids)
    assert isinstance(model, Recommender) and model.name == kind
    rng = np.random.default_rng(1)
    sequences = [rng.integers(0, NUM_ITEMS, size=6) for _ in range(20)]
    valid = EvalSet([s[:-1] for s in sequences[:4]], np.array([s[-1] for s in sequences[:4]]))
    epochs = []
    assert model.fit(sequences, valid, lambda e, m: epochs.append(e)) is model
    ranked = model.recommend([np.array([1, 2]), np.array([7])], 5)
    assert ranked.shape == (2, 5) and ranked.dtype == np.int64
    assert ((ranked >= 0) & (ranked < NUM_ITEMS)).all() and all(len(set(row)) == 5 for row in ranked.tolist())
    assert epochs == ([] if kind == "popularity" else [1])


def test_factory_errors_name_what_is_missing(sids):
    with pytest.raises(ConfigError, match="kind 'gpt2' needs a GPT2RecommenderConfig, got T5RecommenderConfig"):
        build_recommender("gpt2", TINY["t5"], sids)
    with pytest.raises(ConfigError, match="kind 't5' ranks semantic IDs: pass sids"):
        build_recommender("t5", TINY["t5"], num_items=NUM_ITEMS)
    with pytest.raises(ConfigError, match="num_items: kind 'sasrec' needs num_items"):
        build_recommender("sasrec", TINY["sasrec"])
    with pytest.raises(ConfigError, match="num_items: 12 disagrees with the semantic-ID table's 30 items"):
        build_recommender("popularity", PopularityConfig(), sids, num_items=12)
    assert build_recommender("sasrec", TINY["sasrec"], num_items=7).num_items == 7
    with pytest.raises(ValueError, match="'sid' needs a SemanticIds table"):
        build_recommender("sasrec", dataclasses.replace(TINY["sasrec"], item_representation="sid"), num_items=7)
    with_sids = build_recommender("sasrec", dataclasses.replace(TINY["sasrec"], item_representation="sid"), sids)
    assert with_sids.sids is sids
