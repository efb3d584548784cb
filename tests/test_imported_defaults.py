"""Imported data that just works: recorded modalities drive the defaults, truncation keeps the most recent
items, SASRec's loss follows the data's feedback, and an import's identifier table is used by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from cli.main import app

from raysid.cache import ArtifactStore
from raysid.data.dataset import Dataset
from raysid.data.importers import import_dataset
from raysid.data.importers.source import ImportedConfig, build_view
from raysid.data.importers.store import save_import
from raysid.features.modalities import default_modalities
from raysid.pipeline.dataset import produce_dataset
from raysid.trial_config import parse_trial_config

AMAZON_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon-text"


def _sequences_json(path: Path, users: int = 12) -> Path:
    """users u0.. each buying 5 of the items a..f in a rotating order: no item text anywhere."""
    items = list("abcdef")
    path.write_text(json.dumps({f"u{u}": [items[(u + i) % 6] for i in range(5)] for u in range(users)}))
    return path


def test_an_import_without_item_text_supplies_no_text_and_its_trial_dataset_builds(tmp_path):
    imported = import_dataset("amazon", _sequences_json(tmp_path / "seq.json"), "bare")
    folder = save_import(imported, "bare", tmp_path / "ds")
    meta = Dataset.load(folder).meta
    assert meta["supplies"] == ["cooccurrence", "collaborative"]
    assert default_modalities(meta) == ("cooccurrence",)  # was ("text", "cooccurrence"): the first stage failed
    config = parse_trial_config({"dataset": {"source": "imported", "name": "bare", "root": str(tmp_path / "ds")}})
    produce_dataset(config, ArtifactStore(tmp_path / "cache"), tmp_path / "view")
    assert Dataset.load(tmp_path / "view").meta["modalities"] == ["cooccurrence"]
    shown = CliRunner().invoke(app, ["data", "show", "bare", "--root", str(tmp_path / "ds")])
    assert "supplies: cooccurrence, collaborative; default modalities: cooccurrence;" in " ".join(shown.output.split())


def test_imports_made_before_supplies_was_recorded_still_drop_text_without_item_text():
    textless = {"kind": "amazon", "text_template": "{title}. {description}", "items_without_text": 6,
                "counts": {"items": 6}}
    assert default_modalities(textless) == ("cooccurrence",)
    assert default_modalities({**textless, "items_without_text": 0}) == ("text", "cooccurrence")
    assert default_modalities({"kind": "recbole", "text_template": ""}) == ("cooccurrence",)


@pytest.mark.skipif(not AMAZON_TEXT.exists(), reason="../shared/data/amazon-text is not on this machine")
def test_an_import_with_item_text_and_identifiers_supplies_both(tmp_path):
    imported = import_dataset("amazon", AMAZON_TEXT, "office", category="Office_Products")
    meta = Dataset.load(save_import(imported, "office", tmp_path)).meta
    assert meta["supplies"] == ["text", "cooccurrence", "collaborative", "identifiers"]
    assert default_modalities(meta) == ("text", "cooccurrence")


def test_the_view_keeps_the_most_recent_items_of_each_sequence():
    items = pl.DataFrame({"item_id": range(6)})
    sequences = [np.array([0, 1, 2, 3, 4, 5]), np.array([5, 4, 3])]
    feedback = [np.array([1, 0, 1, 0, 1, 1], dtype=np.int8), np.array([0, 1, 1], dtype=np.int8)]
    dataset = Dataset("d", items, {}, sequences, {}, feedback)
    view, _ = build_view(dataset, None, ImportedConfig(name="d", max_length=2, min_length=2))
    # last two of each: [4, 5] and [4, 3]; items 3, 4, 5 are used and renumbered 0, 1, 2
    assert view.items["source_item"].to_list() == [3, 4, 5]
    assert [s.tolist() for s in view.sequences] == [[1, 2], [1, 0]]
    assert [f.tolist() for f in view.feedback] == [[1, 1], [1, 1]]


def test_sasrec_loss_and_feedback_inputs_follow_the_data():
    from raysid.evaluation import build
    from raysid.semantic_ids.table import SemanticIds

    items = pl.DataFrame({"item_id": range(4)})
    plain = Dataset("plain", items, {}, [np.array([0, 1, 2, 3])], {})
    played = Dataset("played", items, {}, [np.array([0, 1, 2, 3])], {}, [np.array([1, 0, 1, 1], dtype=np.int8)])
    sids = SemanticIds.from_codes(np.arange(4).reshape(4, 1), ("a",), (4,), tie_break=False)
    config = parse_trial_config({"recommender": {"kind": "sasrec", "hidden_size": 8, "device": "cpu"}})
    assert (config.recommender.loss, config.recommender.feedback_inputs) == ("auto", None)
    without = build(config, sids, plain)
    assert (without.config.loss, without.config.feedback_inputs) == ("cross_entropy", False)
    assert without.model.feedback_embedding is None
    with_feedback = build(config, sids, played)
    assert (with_feedback.config.loss, with_feedback.config.feedback_inputs) == ("bce", True)
    assert with_feedback.model.feedback_embedding is not None
    explicit = parse_trial_config({"recommender": {"kind": "sasrec", "hidden_size": 8, "device": "cpu", "loss": "bce"}})
    assert (build(explicit, sids, plain).config.loss, build(explicit, sids, plain).config.feedback_inputs) == ("bce", False)


def _study(path: Path, tokenizer: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({
        "name": "ext", "description": "external identifiers", "metric": "sid/cur", "mode": "max", "seeds": [0],
        "base": {"tokenizer": tokenizer, "recommender": {"kind": "none"},
                 "dataset": {"num_tracks": 60, "num_playlists": 40, "num_artists": 8, "num_genres": 2}},
        "axes": {}, "report": {"rows": []}}))
    return path


def test_tokenize_dataset_uses_the_identifier_table_imported_with_it(tmp_path, monkeypatch):
    """Item z is in the item file but bought by no one: the view drops it and every other item's id shifts down."""
    users = {f"u{u}": [list("abcd")[(u + i) % 4] for i in range(4)] for u in range(6)}
    (tmp_path / "seq.json").write_text(json.dumps(users))
    (tmp_path / "items.json").write_text(json.dumps({k: {"title": k.upper()} for k in "zabcd"}))
    table = {"z": ["<a_3>", "<b_3>"], "a": ["<a_0>", "<b_1>"], "b": ["<a_0>", "<b_2>"], "c": ["<a_1>", "<b_0>"],
             "d": ["<a_2>", "<b_2>"]}
    (tmp_path / "ids.json").write_text(json.dumps(table))
    imported = import_dataset("amazon", tmp_path / "seq.json", "shop", items=tmp_path / "items.json",
                              identifiers=tmp_path / "ids.json")
    save_import(imported, "shop", tmp_path / "ds")
    monkeypatch.setenv("RAYSID_DATA_DIR", str(tmp_path / "ds"))
    study = _study(tmp_path / "ext.yaml", {"kind": "external"})
    result = CliRunner().invoke(app, ["tokenize", str(study), "--dataset", "shop", "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    ids = pl.read_parquet(tmp_path / "r" / "tokenize" / "ext-shop" / "seed=0" / "semantic_ids.parquet")
    # the view's items are a, b, c, d (z dropped): codes (a, b) as the table gives them, tie-break digit after
    assert ids.select("a", "b").rows() == [(0, 1), (0, 2), (1, 0), (2, 2)]
    catalog = CliRunner().invoke(app, ["tokenize", str(study), "--results-dir", str(tmp_path / "r")])
    assert catalog.exit_code == 2
    assert "tokenizer.path: empty, and dataset 'the built-in catalog' has no identifier table" in " ".join(catalog.output.split())
