"""Every registered recommender, built through the one constructor shape from its config's ``tiny`` setting,
trains for an epoch on a tiny catalog, ranks real items through the same contract, and honours the
capabilities its config declares. A recommender added with one file and one registry line is checked here
with no other edit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raysid.config import ConfigError, build
from raysid.data.dataset import EvalSet
from raysid.data.splits import FeedbackSet
from raysid.distributed import TrainingConfig
from raysid.recommenders import (
    RECOMMENDERS,
    ItemCatalog,
    PopularityConfig,
    RecommenderCapabilities,
    RecommenderInputs,
    build_recommender,
    get_recommender,
)
from raysid.recommenders.base import Recommender
from raysid.semantic_ids.table import SemanticIds

torch.set_num_threads(1)

NUM_ITEMS = 30
KINDS = sorted(RECOMMENDERS)
RNG = np.random.default_rng(1)
SEQUENCES = [RNG.integers(0, NUM_ITEMS, size=6) for _ in range(20)]
VALID = EvalSet([s[:-1] for s in SEQUENCES[:4]], np.array([s[-1] for s in SEQUENCES[:4]]))
HISTORIES = [RNG.integers(0, NUM_ITEMS, size=4) for _ in range(30)]


def config_of(kind, **changes):
    spec = RECOMMENDERS[kind]
    return build(spec.config, {**spec.config.tiny, **changes}, f"recommender({kind})")


def capabilities(kind) -> RecommenderCapabilities:
    return config_of(kind).capabilities()


@pytest.fixture(scope="module")
def sids() -> SemanticIds:
    return SemanticIds.from_codes(np.random.default_rng(0).integers(0, 3, size=(NUM_ITEMS, 2)), ("a", "b"), (3, 3))


def catalog(kind, sids, **changes) -> ItemCatalog:
    """The catalogue the evaluation stage builds: the identifiers only for a model that reads them."""
    return ItemCatalog(**{"sids": sids if capabilities(kind).reads_semantic_ids else None, "num_items": NUM_ITEMS,
                          **changes})


def trained(kind, sids, config=None, **inputs):
    model = build_recommender(kind, config or config_of(kind), catalog(kind, sids))
    return model.fit(RecommenderInputs(SEQUENCES, **inputs))


def test_registry_names_every_kind_and_rejects_unknown_ones():
    assert set(RECOMMENDERS) == {"t5", "gpt2", "sasrec", "popularity"}
    assert all(isinstance(capabilities(kind), RecommenderCapabilities) for kind in KINDS)
    with pytest.raises(ConfigError, match="recommender.kind: unknown recommender 'bert4rec'; valid kinds are: "
                                          "gpt2, popularity, sasrec, t5"):
        get_recommender("bert4rec")


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_trains_and_ranks_real_items_through_one_contract(kind, sids):
    epochs, evaluated = [], []
    model = trained(kind, sids, valid=VALID, on_epoch=lambda e, m: epochs.append(e),
                    epoch_eval=lambda recommender: evaluated.append(recommender) or {})
    assert isinstance(model, Recommender) and model.name == kind
    ranked = model.recommend([np.array([1, 2]), np.array([7])], 5)
    assert ranked.shape == (2, 5) and ranked.dtype == np.int64
    assert ((ranked >= 0) & (ranked < NUM_ITEMS)).all() and all(len(set(row)) == 5 for row in ranked.tolist())
    assert epochs == ([1] if capabilities(kind).reports_epochs else [])
    assert evaluated == ([model] if capabilities(kind).epoch_ranking else [])
    counts = model.parameter_counts()
    assert set(counts) == set(capabilities(kind).parameter_parts) and all(v > 0 for v in counts.values())


@pytest.mark.parametrize("kind", KINDS)
def test_semantic_ids_are_needed_only_where_declared(kind, sids):
    if capabilities(kind).reads_semantic_ids:
        with pytest.raises((ConfigError, ValueError), match="sids|SemanticIds"):
            build_recommender(kind, config_of(kind), ItemCatalog(None, NUM_ITEMS))
    else:
        assert trained(kind, sids).recommend(HISTORIES, 5).shape == (len(HISTORIES), 5)


@pytest.mark.parametrize("kind", KINDS)
def test_the_seed_matters_only_where_declared(kind, sids):
    if not capabilities(kind).seeded:
        np.testing.assert_array_equal(trained(kind, sids).recommend(HISTORIES, 5), trained(kind, sids).recommend(HISTORIES, 5))
        return
    first, again = trained(kind, sids).recommend(HISTORIES, 5), trained(kind, sids).recommend(HISTORIES, 5)
    other = trained(kind, sids, config_of(kind, seed=1)).recommend(HISTORIES, 5)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("kind", KINDS)
def test_feedback_is_scored_only_where_declared(kind, sids):
    """A model that scores feedback trains on it and scores a period's tracks; any other ignores it."""
    feedback = [np.asarray(RNG.integers(0, 2, size=len(s)), dtype=np.int8) for s in SEQUENCES]
    if not capabilities(kind).scores_feedback:
        np.testing.assert_array_equal(trained(kind, sids, feedback=feedback).recommend(HISTORIES, 5),
                                      trained(kind, sids).recommend(HISTORIES, 5))
        return
    period = FeedbackSet([s[:3] for s in SEQUENCES[:5]], [f[:3] for f in feedback[:5]], [s[3:] for s in SEQUENCES[:5]],
                         [f[3:] for f in feedback[:5]])
    model = build_recommender(kind, config_of(kind), catalog(kind, sids, has_feedback=True))
    model.fit(RecommenderInputs(SEQUENCES, valid=period, feedback=feedback))
    scores = model.score_items(period.histories, period.items, period.history_feedback)
    assert [len(s) for s in scores] == [len(items) for items in period.items]
    assert all(np.isfinite(s).all() for s in scores)


@pytest.mark.parametrize("kind", [kind for kind in KINDS if not capabilities(kind).trains_on_ray])
def test_recommenders_not_on_ray_train_ignore_the_training_section(kind, sids):
    elsewhere = TrainingConfig(ray=True, num_workers=2)  # would need a Ray cluster if it were used
    np.testing.assert_array_equal(trained(kind, sids, training=elsewhere).recommend(HISTORIES, 5),
                                  trained(kind, sids).recommend(HISTORIES, 5))


@pytest.mark.slow
@pytest.mark.parametrize("kind", [kind for kind in KINDS if capabilities(kind).trains_on_ray])
def test_recommenders_on_ray_train_run_there(kind, sids, ray_local, tmp_path):
    """One Ray Train worker runs the model's loop: epoch reports come back and the model ranks real items."""
    epochs = []
    training = TrainingConfig(ray=True, num_workers=1, resources_per_worker={"CPU": 0.5}, storage_path=str(tmp_path))
    model = trained(kind, sids, training=training, on_epoch=lambda e, m: epochs.append(e))
    ranked = model.recommend(HISTORIES, 5)
    assert epochs == [1] and ((ranked >= 0) & (ranked < NUM_ITEMS)).all()


def test_the_factory_checks_the_config_and_the_catalogue(sids):
    with pytest.raises(ConfigError, match="kind 'gpt2' needs a GPT2RecommenderConfig, got T5RecommenderConfig"):
        build_recommender("gpt2", config_of("t5"), ItemCatalog(sids, NUM_ITEMS))
    with pytest.raises(ValueError, match="num_items: 12 disagrees with the semantic-ID table's 30 items"):
        ItemCatalog(sids, 12)
    assert build_recommender("popularity", PopularityConfig(), ItemCatalog(None, 7)).num_items == 7
    sasrec = config_of("sasrec", item_representation="sid")
    assert build_recommender("sasrec", sasrec, ItemCatalog(sids, NUM_ITEMS)).sids is sids
    plain = build_recommender("sasrec", config_of("sasrec"), ItemCatalog(sids, NUM_ITEMS))
    assert plain.sids is None and plain.num_items == NUM_ITEMS  # item ids: the table is not used
