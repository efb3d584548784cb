"""run_trial end to end on a tiny catalog: reproducible, cached by stage, metrics consistent."""

import numpy as np
import pytest

from raysid.cache import ArtifactStore
from raysid.config import override
from raysid.pipeline.keys import StageKeys
from raysid.pipeline.trial import run_trial
from raysid.trial_config import parse_trial_config
from raysid.semantic_ids.table import SemanticIds


@pytest.fixture
def config(tiny_overrides):
    return parse_trial_config(override({"tokenizer": {"kind": "musicrec", "shared_levels": 1, "specific_levels": 1}}, tiny_overrides))


def sid_codes(store: ArtifactStore, config) -> np.ndarray:
    return SemanticIds.load(store.path("tokenizer", StageKeys.of(config).tokenizer) / "codes").codes


def test_same_seed_gives_same_semantic_ids_and_metrics(config, tmp_path):
    first, second = ArtifactStore(tmp_path / "a"), ArtifactStore(tmp_path / "b")
    metrics_a, metrics_b = run_trial(config, first), run_trial(config, second)
    np.testing.assert_array_equal(sid_codes(first, config), sid_codes(second, config))
    quality = [k for k in metrics_a if k.startswith(("test/", "valid/", "sid/", "popularity/"))]
    assert quality and all(metrics_a[k] == metrics_b[k] for k in quality)


def test_other_seed_changes_the_semantic_ids(config, tmp_path, tiny_overrides):
    other = parse_trial_config(override({"tokenizer": {"kind": "musicrec", "shared_levels": 1, "specific_levels": 1}},
                                        {**tiny_overrides, "seed": 1}))
    first, second = ArtifactStore(tmp_path / "a"), ArtifactStore(tmp_path / "b")
    run_trial(config, first), run_trial(other, second)
    assert StageKeys.of(other).dataset == StageKeys.of(config).dataset  # the seed does not touch the data
    assert not np.array_equal(sid_codes(first, config), sid_codes(second, other))


def test_second_run_is_served_from_the_cache(config, tmp_path):
    store = ArtifactStore(tmp_path)
    cold = run_trial(config, store)
    assert cold["cached/result"] == 0.0 and cold["cached/tokenizer"] == 0.0
    warm = run_trial(config, ArtifactStore(tmp_path))
    assert warm["cached/result"] == 1.0
    assert "time/tokenizer" not in warm  # nothing below the result stage was even loaded
    assert warm["test/ndcg@10"] == cold["test/ndcg@10"]


def test_trials_that_differ_only_in_the_recommender_share_the_tokenizer(config, tmp_path, tiny_overrides):
    store = ArtifactStore(tmp_path)
    run_trial(config, store)
    changed = parse_trial_config(override({"tokenizer": {"kind": "musicrec", "shared_levels": 1, "specific_levels": 1}},
                                          {**tiny_overrides, "recommender.learning_rate": 1e-3}))
    again = run_trial(changed, ArtifactStore(tmp_path))
    assert again["cached/result"] == 0.0 and again["cached/tokenizer"] == 1.0 and again["cached/dataset"] == 1.0


def test_metrics_are_consistent(config, tmp_path):
    metrics = run_trial(config, ArtifactStore(tmp_path))
    for split in ("valid", "test", "popularity/test"):
        assert 0.0 <= metrics[f"{split}/ndcg@5"] <= metrics[f"{split}/ndcg@10"] <= metrics[f"{split}/hr@10"] <= 1.0
        assert metrics[f"{split}/hr@5"] <= metrics[f"{split}/hr@10"]
    assert 0.0 <= metrics["sid/conflict_rate"] <= 1.0 and 0.0 <= metrics["sid/cur"] <= 1.0
    assert metrics["sid/cardinality"] <= 120


@pytest.mark.slow
def test_t5_on_musicrec_ids_beats_the_popularity_floor(tmp_path):
    """The shipped study's settings, on a smaller catalog: generative ranking must beat popularity."""
    from raysid.sweep.space import load_study

    study = load_study("musicrec-ratio")
    config = study.resolve({"ratio": "3:1", "seed": 0})
    smaller = parse_trial_config(override(study.base, {**study.axes[0].overrides("3:1"), "dataset.num_tracks": 800,
                                                       "dataset.num_playlists": 400, "dataset.num_artists": 100}))
    assert smaller.recommender == config.recommender and smaller.tokenizer == config.tokenizer
    metrics = run_trial(smaller, ArtifactStore(tmp_path))
    assert metrics["test/ndcg@10"] > 1.5 * metrics["popularity/test/ndcg@10"]
    assert metrics["test/hr@10"] > metrics["popularity/test/hr@10"]


@pytest.mark.parametrize("tokenizer", [
    {"kind": "kmeans", "codebook_size": 16},
    {"kind": "rqvae", "latent_dim": 8, "hidden_dims": [32], "codebook_sizes": [4, 4, 4], "epochs": 3},
])
def test_any_registered_tokenizer_feeds_the_recommender(tokenizer, tiny_overrides, tmp_path):
    shared = {k: v for k, v in tiny_overrides.items() if not k.startswith("tokenizer.")}
    config = parse_trial_config(override({"tokenizer": tokenizer}, shared))
    metrics = run_trial(config, ArtifactStore(tmp_path))
    assert "cached/collaborative" not in metrics  # only MusicRec's alignment consumes SASRec embeddings
    assert 0.0 <= metrics["test/ndcg@10"] <= 1.0 and metrics["sid/cardinality"] <= 120
