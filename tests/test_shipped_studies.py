"""Every shipped study runs end to end through the real sweep path (load, --dataset/--set as the CLI applies
them, Ray Tune, the stages, MLflow, the report): once as shipped on tiny data (the catalog studies on a tiny
catalog, the MPD and Amazon studies on tiny imports under the names they read), and once with --dataset on small
datasets this test imports with the real importers (an MPD playlist file; a Spotify skip log for the study
measured on played/skipped feedback). Each run is one point of the study (the first value of every axis as
shipped, the last with --dataset; one Optuna sample), shrunk by the study's smoke overrides plus the tiny
sizes below, so the whole file takes a few minutes on 2 cores."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cli.main import _variant
from conftest import TINY
from raysid.data.importers import import_dataset
from raysid.data.importers.store import save_import
from raysid.sweep.runner import SweepSettings, run_sweep
from raysid.sweep.space import Study, load_study

pytestmark = pytest.mark.slow
STUDIES = sorted(Path(__file__).resolve().parents[1].joinpath("search_spaces").glob("*.yaml"))
SHRINK = {  # conftest's TINY plus the sizes of the tokenizers and recommenders it leaves out
    **TINY, "tokenizer.codebook_sizes": [8, 8, 8], "tokenizer.niter": 5, "tokenizer.hidden_dim": 32,
    "tokenizer.num_subembeddings": 2, "tokenizer.subembedding_dim": 8, "tokenizer.pairs_per_epoch": 500,
    "tokenizer.batch_size": 64, "recommender.n_embd": 16, "recommender.n_layer": 1, "recommender.n_head": 2,
    "recommender.hidden_size": 16, "recommender.max_length": 12, "recommender.beam_size": 20,  # >= evaluation.ks
    "evaluation.epoch_users": 20,
}
LAST_MODALITIES = {  # the tokenizer's modalities at the last label on the MPD import (text, playlist_text, cooccurrence)
    "3mtoken-quantizer": ["cooccurrence"], "3mtoken-modality-ablation": ["text", "playlist_text", "cooccurrence"]}
VIEW = ["dataset.min_item_count=1", "dataset.min_length=3", "dataset.max_sequences=0",
        "dataset.cooccurrence={dim: 8, epochs: 1}"]  # the imports below are small: keep all of them


def one_point(study: Study, pick: int, imported: bool) -> Study:
    """``study`` narrowed to one point (value ``pick`` of every grid/choice axis, one Optuna sample, one
    seed) whose smoke overrides add the SHRINK keys its resolved sections have (catalog keys only on it)."""
    axes = tuple(_narrowed(axis, pick) for axis in study.axes)
    narrow = dataclasses.replace(study, axes=axes, search=dataclasses.replace(study.search, num_samples=1),
                                 seeds=study.seeds[:1], smoke_seeds=())
    config = narrow.resolve(narrow.first_point(), smoke=True)
    smoke = dict(narrow.smoke)
    for key, value in SHRINK.items():
        section, name = key.split(".", 1)
        if (section != "dataset" or not imported) and name in {f.name for f in dataclasses.fields(getattr(config, section))}:
            smoke[key] = value
    return dataclasses.replace(narrow, smoke=smoke)


def _narrowed(axis, pick: int):
    if axis.kind not in ("grid", "choice"):
        return axis
    value = axis.values[pick]
    return dataclasses.replace(axis, values=(value,), settings={value: axis.settings[value]} if axis.settings else {})


def run_one(study: Study, results: Path) -> pl.DataFrame:
    """Run the one-point study as `raysid sweep --smoke` does; its trial row, checked."""
    outcome = run_sweep(study, SweepSettings(results_dir=results, smoke=True, progress=False))
    assert not outcome.failed and not outcome.interrupted, outcome.failed
    trials = outcome.trials
    assert trials.height == 1
    value = trials[study.metric][0]
    assert value is not None and math.isfinite(value), f"{study.metric} = {value}"
    reported = [m for m in study.report.columns if m in trials.columns and trials[m][0] is not None]
    assert reported == list(study.report.columns), f"report metrics missing: {set(study.report.columns) - set(reported)}"
    return trials


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """One results folder for the module: studies share the stage cache (the tiny dataset, its features)."""
    return tmp_path_factory.mktemp("shipped")


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_shipped_study_runs_as_shipped_on_tiny_data(path, ray_local, results, imports):
    """Catalog studies on a tiny catalog; the MPD and Amazon studies on tiny imports under the names they read."""
    study = load_study(path)
    imported = study.base.get("dataset", {}).get("source") == "imported"
    if imported:  # as shipped, but with the root written out (trial workers do not see RAYSID_DATA_DIR)
        study = _variant(str(path), settings=[f"dataset.root={imports}"])
    trials = run_one(one_point(study, 0, imported), results)
    for axis in study.axes:  # the row is the study's first point
        assert axis.kind not in ("grid", "choice") or trials[axis.name][0] == axis.values[0]
    assert trials["config.dataset.name" if imported else "config.dataset.num_tracks"][0] == (
        study.base["dataset"]["name"] if imported else TINY["dataset.num_tracks"])
    assert not imported or study.base["dataset"]["name"] in ("mpd-5365", "office")  # the names imported here


def _mpd(folder: Path) -> None:
    """60 playlists of 8 of 40 tracks by 5 artists, titled 'mix 0'..'mix 2', imported as `playlists` and as
    `mpd-5365` (the name the shipped MPD studies read)."""
    rng = np.random.default_rng(0)
    lines = [json.dumps({"pid": pid, "name": f"mix {pid % 3}", "tracks": [
        {"track_uri": f"spotify:track:t{int(i)}", "track_name": f"song {int(i)}", "artist_name": f"artist {int(i) % 5}"}
        for i in rng.permutation(40)[:8]]}) for pid in range(60)]
    (folder / "playlists.jsonl").write_text("\n".join(lines) + "\n")
    for name in ("playlists", "mpd-5365"):
        save_import(import_dataset("mpd", folder / "playlists.jsonl", name), name, folder / "ds")


def _amazon(folder: Path) -> None:
    """60 users of 8 of 40 products with a title and a description (the amazon kind's text), imported as
    `office` (the name the shipped Amazon studies read)."""
    rng = np.random.default_rng(2)
    sequences = {f"u{u}": [f"p{int(i)}" for i in rng.permutation(40)[:8]] for u in range(60)}
    items = {f"p{i}": {"title": f"product {i}", "description": f"for task {i % 4}"} for i in range(40)}  # text
    (folder / "sequences.json").write_text(json.dumps(sequences))
    (folder / "items.json").write_text(json.dumps(items))
    imported = import_dataset("amazon", folder / "sequences.json", "office", items=folder / "items.json")
    save_import(imported, "office", folder / "ds")


def _skips(folder: Path) -> None:
    """60 sessions of 20 of 40 tracks (as the challenge's), each play skipped with chance 0.3, and the 40
    tracks' features."""
    rng = np.random.default_rng(1)
    log = ["session_id,session_position,track_id_clean,skip_2"] + [
        f"s{s},{p + 1},t{int(t)},{rng.random() < 0.3}" for s in range(60) for p, t in enumerate(rng.permutation(40)[:20])]
    (folder / "log.csv").write_text("\n".join(log) + "\n")
    columns = ["track_id", "track_name", "artist", "release_date_estimate", "tempo", "key", "mode", "danceability",
               "energy", *(f"acoustic_vector_{i}" for i in range(8))]
    rows = [[f"t{t}", f"song {t}", f"artist {t % 5}", f"{1990 + t % 30}-0{1 + t % 9}-1{t % 9}", f"{90 + t}", str(t % 12),
             ("major", "minor")[t % 2], *(f"{v:.4f}" for v in rng.random(10))] for t in range(40)]
    (folder / "features.csv").write_text("\n".join(",".join(r) for r in [columns, *rows]) + "\n")
    save_import(import_dataset("spotify-skip", folder, "skips"), "skips", folder / "ds")


@pytest.fixture(scope="module")
def imports(tmp_path_factory) -> Path:
    """The root holding the imports; RAYSID_DATA_DIR points at it for the module."""
    folder = tmp_path_factory.mktemp("imports")
    _mpd(folder)
    _amazon(folder)
    _skips(folder)
    patch = pytest.MonkeyPatch()
    patch.setenv("RAYSID_DATA_DIR", str(folder / "ds"))
    yield folder / "ds"
    patch.undo()


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_shipped_study_runs_with_dataset(path, ray_local, results, imports):
    feedback = "auc" in load_study(path).metric  # measured on played/skipped feedback: the skip log
    name = "skips" if feedback else "playlists"
    study = one_point(_variant(str(path), name, settings=VIEW), -1, imported=True)
    trials = run_one(study, results)
    assert study.name.startswith(f"{path.stem}-{name}-set-")
    assert trials["config.dataset.name"][0] == name and trials["config.dataset.source"][0] == "imported"
    if path.stem in LAST_MODALITIES:  # the last label names the import's modalities, not the catalog's
        assert json.loads(trials["config.tokenizer.modalities"][0]) == LAST_MODALITIES[path.stem]

