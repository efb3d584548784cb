"""A study as the command line varies it: --dataset keeps the dataset keys that still apply, --set sets any key."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from raysid.config import ConfigError
from raysid.data.importers import import_dataset
from raysid.data.importers.store import save_import
from raysid.sweep.space import load_study, parse_study, retarget_study, with_settings


def _toy(tmp_path, tracks: int = 12) -> str:
    """A 30-playlist MPD file of 6 of ``tracks`` tracks each, imported as ``toy`` under tmp_path/ds; returns the
    root. The shipped studies' beam of 20 needs ``tracks`` >= 20."""
    rng = np.random.default_rng(0)
    lines = [json.dumps({"pid": pid, "name": f"mix {pid % 3}", "tracks": [
        {"track_uri": f"spotify:track:t{int(i)}", "track_name": f"song {int(i)}", "artist_name": f"a{int(i) % 4}"}
        for i in rng.permutation(tracks)[:6]]}) for pid in range(30)]
    (tmp_path / "toy.jsonl").write_text("\n".join(lines) + "\n")
    save_import(import_dataset("mpd", tmp_path / "toy.jsonl", "toy"), "toy", tmp_path / "ds")
    return str(tmp_path / "ds")


def _study(dataset: dict, smoke: dict | None = None):
    return parse_study({"name": "s", "base": {"dataset": dataset, "recommender": {"kind": "none"}},
                        "axes": {"tokenizer.codebook_size": {"grid": [4, 8]}}, "metric": "sid/cur",
                        "smoke": smoke or {}}, "s.yaml")


def test_dataset_keeps_an_imported_studys_view_keys_and_drops_the_catalogs(tmp_path):
    root = _toy(tmp_path)
    study = _study({"source": "imported", "name": "toy", "root": root, "min_length": 4, "modalities": ["cooccurrence"],
                    "cooccurrence": {"dim": 8}}, {"dataset.max_sequences": 20, "dataset.min_length": 3})
    moved = retarget_study(study, "toy", root)
    assert moved.name == "s-toy"
    assert moved.base["dataset"] == {"min_length": 4, "modalities": ["cooccurrence"], "cooccurrence": {"dim": 8},
                                     "source": "imported", "name": "toy", "root": root}
    assert moved.smoke == {"dataset.max_sequences": 20, "dataset.min_length": 3}
    config = moved.resolve(moved.first_point())
    assert config.dataset.min_length == 4 and config.dataset.modalities == ("cooccurrence",)
    catalog = retarget_study(_study({"num_tracks": 300, "min_length": 5}, {"dataset.num_playlists": 50}), "toy", root)
    assert catalog.base["dataset"] == {"source": "imported", "name": "toy", "root": root}  # generator keys dropped
    assert catalog.smoke == {"dataset.max_sequences": 500}


def test_set_applies_yaml_values_and_names_a_folder_of_its_own():
    study = load_study("musicrec-ratio")
    changed = with_settings(study, ["recommender.epochs=7", "tokenizer.alpha=0.5", "dataset.num_playlists=300"])
    config = changed.resolve(changed.first_point())
    assert (config.recommender.epochs, config.tokenizer.alpha, config.dataset.num_playlists) == (7, 0.5, 300)
    assert changed.name.startswith("musicrec-ratio-set-") and changed.name != study.name
    assert with_settings(study, ["recommender.epochs=7"]).name != with_settings(study, ["recommender.epochs=8"]).name
    assert with_settings(study, []) is study
    sections = load_study("fusid-recommendation")  # its labelled axis sets whole tokenizer and recommender sections
    with pytest.raises(ConfigError, match="tokenizer.codebook_size is set by the study's axes"):
        with_settings(sections, ["tokenizer.codebook_size=32"])


@pytest.mark.parametrize("setting, expected", [
    ("recommender.epochs", "expected KEY=VALUE"),
    ("tokenizer.shared_levels=2", "tokenizer.shared_levels is set by the study's axes"),
    ("tokenizer={kind: rqvae}", "tokenizer is set by the study's axes"),  # a section holding an axis key
    ("recommender.epochs=many", "recommender.epochs"),
    ("recommender.no_such_key=1", "unknown key 'no_such_key'"),
])
def test_a_bad_setting_fails_naming_it(setting, expected):
    with pytest.raises(ConfigError, match=expected):
        with_settings(load_study("musicrec-ratio"), [setting])


def test_show_prints_the_set_and_retargeted_config(tmp_path):
    root = _toy(tmp_path)
    result = CliRunner().invoke(app, ["show", "musicrec-ratio", "--set", "recommender.epochs=7",
                                      "--set", "dataset.modalities=[cooccurrence]", "--set", "recommender.beam_size=10",
                                      "--dataset", "toy"],
                                env={"RAYSID_DATA_DIR": root})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "recommender.epochs = 7" in text and "dataset.modalities = ['cooccurrence']" in text
    assert "dataset.name = toy" in text and "musicrec-ratio-toy-set-" in text
    result = CliRunner().invoke(app, ["show", "musicrec-ratio", "--set", "recommender.epochs"])
    assert result.exit_code == 2 and "--set: expected KEY=VALUE" in " ".join(result.output.split())


def _labels(study, axis: str) -> dict:
    found = next(a for a in study.axes if a.name == axis)
    return {label: setting.get("tokenizer.modalities", setting.get("features.modalities")) for label, setting in found.settings.items()}


def test_modality_axes_follow_the_data_they_run_on(tmp_path):
    """{modality} labels and all / all-but-NAME lists spell out the catalog's text, audio, tags as the
    studies once listed them, and the modalities of an import on --dataset and --set."""
    study = load_study("3mtoken-modality-ablation")
    assert _labels(study, "modalities") == {
        "text": ["text"], "audio": ["audio"], "tags": ["tags"], "without-text": ["audio", "tags"],
        "without-audio": ["text", "tags"], "without-tags": ["text", "audio"], "all": ["text", "audio", "tags"]}
    root = _toy(tmp_path, tracks=24)
    moved = retarget_study(study, "toy", root)
    assert _labels(moved, "modalities") == {
        "text": ["text"], "playlist_text": ["playlist_text"], "cooccurrence": ["cooccurrence"],
        "without-text": ["playlist_text", "cooccurrence"], "without-playlist_text": ["text", "cooccurrence"],
        "without-cooccurrence": ["text", "playlist_text"], "all": ["text", "playlist_text", "cooccurrence"]}
    assert moved.resolve({"modalities": "without-text", "seed": 0}).tokenizer.modalities == ("playlist_text", "cooccurrence")
    narrowed = with_settings(moved, ["dataset.modalities=[cooccurrence, text]"])
    assert list(_labels(narrowed, "modalities")) == ["cooccurrence", "text", "without-cooccurrence", "without-text", "all"]
    assert _labels(retarget_study(load_study("musicrec-ablation"), "toy", root), "variant")["w/o playlist_text ids"] == [
        "text", "cooccurrence"]
    assert list(_labels(retarget_study(load_study("3mtoken-quantizer"), "toy", root), "modality")) == [
        "text", "playlist_text", "cooccurrence"]


@pytest.mark.parametrize("axis, modalities, expected", [
    ({"grid": {"x": {"tokenizer.modalities": ["all-but-lyrics"]}}}, [],
     r"s.yaml: axes.m.x: tokenizer.modalities: 'all-but-lyrics': 'lyrics' is not a modality of the trials' features \(text, playlist_text, cooccurrence\)"),
    ({"grid": {"without-{modality}": {"tokenizer.modalities": ["all-but-{modality}"]}}}, ["cooccurrence"],
     r"s.yaml: axes.m.without-cooccurrence: tokenizer.modalities: \['all-but-cooccurrence'\] leaves no modality: the trials' features hold only cooccurrence"),
    ({"grid": {"audio": {"tokenizer.modalities": ["audio"]}}}, [],
     r"s.yaml: axes.m=audio: tokenizer.modalities names 'audio', which dataset 'toy' does not give the features \(they hold: text, playlist_text, cooccurrence\)"),
    ({"grid": {"{modality}": {"tokenizer.modalities": ["{modality}"]}, "text": {}}}, [],
     r"s.yaml: axes.m: label 'text' appears twice once \{modality\} is spelled out"),
])
def test_modality_names_the_data_cannot_give_fail_at_load(tmp_path, axis, modalities, expected):
    dataset = {"source": "imported", "name": "toy", "root": _toy(tmp_path), "modalities": modalities}
    with pytest.raises(ConfigError, match=expected) as caught:
        parse_study({"name": "s", "base": {"recommender": {"kind": "none"}, "dataset": dataset,
                                           "tokenizer": {"kind": "kmeans", "codebook_size": 4}},
                     "axes": {"m": axis}, "metric": "sid/cur"}, "s.yaml")
    assert "\n" not in str(caught.value)


def test_a_study_on_feedback_fails_at_load_on_data_without_it(tmp_path):
    root = _toy(tmp_path)
    with pytest.raises(ConfigError, match=r"semantic-ids-k-vs-h.yaml: metric: valid/auc is the stratified AUC over "
                                          r"played/skipped feedback, which dataset 'toy' does not have; run it on data"):
            retarget_study(load_study("semantic-ids-k-vs-h"), "toy", root)
    with pytest.raises(ConfigError, match=r"valid/auc is the stratified AUC .* which the built-in catalog does not have"):
        with_settings(load_study("semantic-ids-k-vs-h"), ["dataset.skips={enabled: false}"])


def test_a_beam_wider_than_the_imported_items_fails_at_load(tmp_path):
    """Before Ray starts or any stage runs; the 30-playlist toy holds 12 items, the shipped T5 beam is 20."""
    root = _toy(tmp_path)
    dataset = {"source": "imported", "name": "toy", "root": root}
    with pytest.raises(ConfigError, match=r"s.yaml: axes.tokenizer.codebook_size=4: recommender.beam_size = 20 is "
                                          r"larger than dataset 'toy' \(12 items\); use beam_size <= 12"):
        parse_study({"name": "s", "base": {"dataset": dataset, "tokenizer": {"kind": "kmeans"},
                                           "recommender": {"kind": "t5"}},
                     "axes": {"tokenizer.codebook_size": {"grid": [4, 8]}}, "metric": "valid/ndcg@10"}, "s.yaml")
    fits = parse_study({"name": "s", "base": {"dataset": dataset, "tokenizer": {"kind": "kmeans"},
                                              "recommender": {"kind": "t5", "beam_size": 12}},
                        "axes": {"tokenizer.codebook_size": {"grid": [4, 8]}}, "metric": "valid/ndcg@10"}, "s.yaml")
    assert fits.resolve(fits.first_point()).recommender.beam_size == 12
    with pytest.raises(ConfigError, match=r"beam_size = 20 is larger than dataset 'toy' \(12 items\)"):
        retarget_study(load_study("fusid-recommendation"), "toy", root)
