"""Stages that need no features get none: an identifier table (``external``), SASRec over plain item ids and
popularity run end to end on imported data without a single feature matrix, and ``tokenizer: {kind: none}``
skips the tokenizer stage for a recommender that reads no semantic IDs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from raysid.cache import ArtifactStore
from raysid.config import ConfigError
from raysid.data.dataset import Dataset
from raysid.data.importers import import_dataset
from raysid.data.importers.store import save_import
from raysid.pipeline.keys import StageKeys
from raysid.pipeline.trial import run_trial
from raysid.trial_config import parse_trial_config

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MPD_SLICE = DATA / "mpd" / "mpd.slice.sample.json"
SKIPS = DATA / "spotify-skip"
T5 = {"kind": "t5", "epochs": 1, "d_model": 16, "d_ff": 32, "num_layers": 1, "num_heads": 2, "d_kv": 8, "beam_size": 4,
      "device": "cpu"}
SASREC = {"kind": "sasrec", "epochs": 1, "hidden_size": 16, "num_layers": 1, "max_length": 8, "device": "cpu"}


def _import(kind: str, source: Path, name: str, root: Path, **options) -> dict:
    save_import(import_dataset(kind, source, name, **options), name, root)
    return {"source": "imported", "name": name, "root": str(root), "min_length": 2}


def _stages(store: ArtifactStore) -> set[str]:
    """The artifact stages a trial left in the store."""
    return {path.name for path in store.root.iterdir() if path.is_dir()}


@pytest.fixture
def shop(tmp_path) -> dict:
    """An import without item text whose identifier table came with it: 12 users over items a..f."""
    items = list("abcdef")
    (tmp_path / "seq.json").write_text(json.dumps({f"u{u}": [items[(u + i) % 6] for i in range(5)] for u in range(12)}))
    table = {item: [f"<a_{i % 3}>", f"<b_{i // 3}>"] for i, item in enumerate(items)}
    (tmp_path / "ids.json").write_text(json.dumps(table))
    return _import("amazon", tmp_path / "seq.json", "shop", tmp_path / "ds", identifiers=tmp_path / "ids.json")


def test_an_identifier_table_runs_on_an_import_without_any_feature_matrix(shop, tmp_path):
    config = parse_trial_config({"dataset": shop, "tokenizer": {"kind": "external"}, "recommender": T5,
                                 "evaluation": {"ks": [1, 3]}})
    store = ArtifactStore(tmp_path / "cache")
    metrics = run_trial(config, store)
    assert _stages(store) == {"dataset", "tokenizer", "result"}  # no co-occurrence model, no CF embeddings
    view = Dataset.load(store.path("dataset", StageKeys.of(config).dataset))
    assert view.modalities == {} and view.meta["modalities"] == []
    assert metrics["sid/cardinality"] == 6 and not [key for key in metrics if key.startswith("recon/")]
    assert 0.0 <= metrics["test/hr@1"] <= metrics["test/hr@3"] <= 1.0
    reads = parse_trial_config({"dataset": shop, "tokenizer": {"kind": "kmeans", "codebook_size": 2}, "recommender": T5,
                                "evaluation": {"ks": [1, 3]}})
    assert StageKeys.of(reads).dataset != StageKeys.of(config).dataset  # that view extracts its co-occurrence modality


@pytest.mark.skipif(not MPD_SLICE.exists(), reason="../shared/data/mpd is not on this machine")
@pytest.mark.parametrize("recommender", [SASREC, {"kind": "popularity"}])
def test_no_tokenizer_for_item_id_models_on_real_playlists(recommender, tmp_path):
    dataset = _import("mpd", MPD_SLICE, "slice", tmp_path / "ds")
    config = parse_trial_config({"dataset": dataset, "tokenizer": {"kind": "none"}, "recommender": recommender})
    store = ArtifactStore(tmp_path / "cache")
    metrics = run_trial(config, store)
    assert _stages(store) == {"dataset", "result"}  # no features, no tokenizer
    assert not [key for key in metrics if key.startswith(("sid/", "retrieval/", "recon/"))]
    assert 0.0 <= metrics["test/ndcg@10"] <= metrics["test/hr@10"] <= 1.0
    if recommender["kind"] == "popularity":  # it is its own floor
        assert all(metrics[f"test/{m}"] == metrics[f"popularity/test/{m}"] for m in ("hr@10", "ndcg@10", "mrr"))
    else:
        items = Dataset.load(store.path("dataset", StageKeys.of(config).dataset)).num_items
        assert metrics["recommender/parameters_item"] == 16 * (items + 1)  # an id row per item and the padding row


@pytest.mark.skipif(not SKIPS.exists(), reason="../shared/data/spotify-skip is not on this machine")
def test_no_tokenizer_for_sasrec_on_real_skip_sessions(tmp_path):
    dataset = _import("spotify-skip", SKIPS, "skips", tmp_path / "ds")
    config = parse_trial_config({"dataset": dataset, "tokenizer": {"kind": "none"}, "recommender": SASREC,
                                 "split": {"feedback_period": 2}})
    metrics = run_trial(config, ArtifactStore(tmp_path / "cache"))
    assert 0.0 <= metrics["test/auc"] <= 1.0 and metrics["test/auc_sessions"] > 0  # played/skipped feedback scored
    assert not [key for key in metrics if key.startswith("sid/")]


@pytest.mark.parametrize(("tokenizer", "recommender", "message"), [
    ({"kind": "none"}, {"kind": "t5"}, "'none' gives no semantic IDs, and this 't5' recommender reads them"),
    ({"kind": "none"}, {"kind": "sasrec", "item_representation": "sid"}, "this 'sasrec' recommender reads them"),
    ({"kind": "none"}, {"kind": "none"}, "leave nothing to run"),
    ({"kind": "none", "codebook_size": 8}, {"kind": "popularity"}, "kind 'none' has no settings, got 'codebook_size'"),
])
def test_a_trial_without_a_tokenizer_is_checked_against_its_recommender(tokenizer, recommender, message):
    with pytest.raises(ConfigError, match=message):
        parse_trial_config({"tokenizer": tokenizer, "recommender": recommender})


def test_a_study_without_a_tokenizer_validates_and_tokenize_refuses_it(tmp_path):
    study = {"name": "ids", "description": "item ids", "seeds": [0], "axes": {},
             "base": {"tokenizer": {"kind": "none"}, "recommender": {"kind": "popularity"}}}
    (tmp_path / "ids.yaml").write_text(yaml.safe_dump(study))
    shown = CliRunner().invoke(app, ["show", str(tmp_path / "ids.yaml")])
    assert shown.exit_code == 0 and "tokenizer.kind = none" in shown.output
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(study | {"name": "bad", "metric": "sid/cur"}))
    refused = CliRunner().invoke(app, ["show", str(tmp_path / "bad.yaml")])
    assert refused.exit_code == 2 and "'sid/cur' is not a metric these trials report" in refused.output
    tokenized = CliRunner().invoke(app, ["tokenize", str(tmp_path / "ids.yaml"), "--results-dir", str(tmp_path / "r")])
    assert tokenized.exit_code == 2 and "'none' has no tokenizer to fit" in tokenized.output
    assert not np.any([path.suffix == ".parquet" for path in (tmp_path / "r").rglob("*")])
