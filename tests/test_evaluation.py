"""Every recommender kind runs through the same trial pipeline and the same metrics."""

import math

import pytest

from raysid.cache import ArtifactStore
from raysid.config import ConfigError, override
from raysid.pipeline.metrics import is_reported, trial_metric_names
from raysid.pipeline.trial import run_trial
from raysid.trial_config import parse_trial_config

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
    config = _trial(tiny_overrides, recommender)
    metrics = run_trial(config, ArtifactStore(tmp_path))
    assert undeclared(metrics, config) == []
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
    assert undeclared(metrics, config) == []
    assert 0.0 <= metrics["test/auc"] <= 1.0 and metrics["test/auc_sessions"] > 0
    assert math.isfinite(metrics["test/hr@10"]) and "popularity/test/hr@10" in metrics
    assert metrics["recommender/parameters"] == metrics["recommender/parameters_total"]


def undeclared(metrics: dict, config) -> list[str]:
    """The numbers a trial reported that its stages do not declare (what study validation accepts)."""
    names = trial_metric_names(config)
    return sorted(key for key, value in metrics.items() if isinstance(value, float) and not is_reported(key, names))


def test_the_stages_declare_every_metric_they_report(tiny_overrides, tmp_path):
    """A tokenizer that reconstructs its input, the collaborative stage and T5: each number is declared, and a
    declaration that names no reported metric is not one of the stages' (parameters of popularity, AUC of T5)."""
    config = _trial(tiny_overrides, {"kind": "t5", **{k.split(".")[1]: v for k, v in tiny_overrides.items()
                                                       if k.startswith("recommender.")}},
                    tokenizer={"kind": "musicrec", "shared_levels": 1, "specific_levels": 1, "codebook_size": 8,
                               "latent_dim": 8, "hidden_dims": [32], "epochs": 2},
                    collaborative={"epochs": 1, "hidden_size": 16})
    metrics = run_trial(config, ArtifactStore(tmp_path))
    assert undeclared(metrics, config) == [] and "recon/text/mse" in metrics and "time/collaborative" in metrics
    names = trial_metric_names(config)
    assert not is_reported("test/auc", names) and is_reported("sid/entropy/s1", names)
    popularity = trial_metric_names(_trial(tiny_overrides, {"kind": "popularity"}))
    assert "recommender/parameters" not in popularity and not is_reported("recon/mse", popularity)  # random: no recon


def test_unknown_recommender_lists_the_kinds(tiny_overrides):
    with pytest.raises(ConfigError, match="valid kinds are: t5, gpt2, sasrec, popularity, none"):
        _trial(tiny_overrides, {"kind": "bert4rec"})


@pytest.mark.parametrize("kind", ["t5", "gpt2"])
def test_a_beam_that_cannot_rank_k_items_fails_at_load(tiny_overrides, kind):
    """Before any stage runs: the largest cut-off beyond the beam, and a beam beyond the built-in catalogue."""
    with pytest.raises(ConfigError, match=r"config.evaluation.ks: cut-off 10 is larger than recommender.beam_size = 5"):
        _trial(tiny_overrides, {"kind": kind, "beam_size": 5})
    with pytest.raises(ConfigError, match=r"config.recommender.beam_size: 200 is larger than the catalogue "
                                          r"\(dataset.num_tracks = 120\); use beam_size <= 120"):
        _trial(tiny_overrides, {"kind": kind, "beam_size": 200})
    exact = _trial(tiny_overrides, {"kind": "gpt2", "beam_size": 5, "ranking": "exact"})  # ranks every item
    assert exact.recommender.beam_size == 5
