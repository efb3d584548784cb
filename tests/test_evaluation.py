"""Every recommender kind runs through the same trial pipeline and the same metrics."""

import math

import pytest

from raysid.cache import ArtifactStore
from raysid.config import ConfigError, override
from raysid.pipeline import parse_trial_config, run_trial

TOKENIZER = {"kind": "random", "codebook_sizes": [8, 8]}


def _trial(tiny_overrides, recommender, **sections):
    dataset = {k: v for k, v in tiny_overrides.items() if k.startswith("dataset.")}
    return parse_trial_config(override({"tokenizer": TOKENIZER, "recommender": recommender,
                                        "evaluation": {"ks": [1, 5, 10]}, **sections}, dataset))


@pytest.mark.parametrize("recommender", [
    {"kind": "gpt2", "n_embd": 16, "n_layer": 1, "n_head": 2, "epochs": 1, "beam_size": 10},
    {"kind": "sasrec", "hidden_size": 16, "num_layers": 1, "epochs": 1, "loss": "cross_entropy", "feedback_inputs": False},
    {"kind": "popularity"},
])
def test_each_kind_reports_the_same_metrics(tiny_overrides, tmp_path, recommender):
    metrics = run_trial(_trial(tiny_overrides, recommender), ArtifactStore(tmp_path))
    for split in ("valid", "test", "popularity/test"):
        for name in ("hr@1", "hr@10", "ndcg@10", "recall@5", "mrr"):
            assert 0.0 <= metrics[f"{split}/{name}"] <= 1.0, f"{split}/{name}"
    assert 0.0 < metrics["test/coverage@10"] <= 1.0 and metrics["test/distinct_items@10"] <= 10
    assert metrics["test/mrr"] >= metrics["test/hr@1"]  # a hit at rank 1 gives reciprocal rank 1
    if recommender["kind"] != "popularity":
        assert metrics["recommender/parameters"] > 0


def test_sasrec_on_feedback_reports_stratified_auc(tiny_overrides, tmp_path):
    recommender = {"kind": "sasrec", "hidden_size": 16, "num_layers": 1, "epochs": 2, "item_representation": "sid",
                   "components": ["artist"]}
    config = _trial(tiny_overrides, recommender, dataset={"skips": {"enabled": True}}, split={"feedback_period": 2})
    metrics = run_trial(config, ArtifactStore(tmp_path))
    assert 0.0 <= metrics["test/auc"] <= 1.0 and metrics["test/auc_sessions"] > 0
    assert math.isfinite(metrics["test/hr@10"]) and "popularity/test/hr@10" in metrics
    assert metrics["recommender/parameters"] == metrics["recommender/parameters_total"]


def test_unknown_recommender_lists_the_kinds(tiny_overrides):
    with pytest.raises(ConfigError, match="valid kinds are: t5, gpt2, sasrec, popularity, none"):
        _trial(tiny_overrides, {"kind": "bert4rec"})
