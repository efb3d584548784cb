"""Importers on the shared real samples, checked against plain json/csv readings; malformed variants fail clearly."""

from __future__ import annotations

import ast
import csv
import gzip
import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from raysid.data.dataset import Dataset
from raysid.data.importers import import_dataset
from raysid.data.importers.base import DataImportError
from raysid.data.importers.store import (
    dataset_folder,
    fingerprint,
    list_datasets,
    save_import,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MPD_SLICE = DATA / "mpd" / "mpd.slice.sample.json"
SKIP_LOG = DATA / "spotify-skip" / "log_sample.csv"
SKIP_FEATURES = DATA / "spotify-skip" / "track_features_sample.csv"
AMAZON = DATA / "amazon-text"
pytestmark = pytest.mark.skipif(not MPD_SLICE.exists(), reason="the shared real-data samples are not on this machine")


def _slice_playlists() -> list[dict]:
    return json.loads(MPD_SLICE.read_text())["playlists"]


def _sequences_as_keys(imported, key: str) -> list[list[str]]:
    keys = imported.dataset.items[key].to_list()
    return [[keys[i] for i in sequence] for sequence in imported.dataset.sequences]


# --- MPD -------------------------------------------------------------------------------------------


def test_mpd_slice_counts_and_fields_match_the_json():
    playlists = _slice_playlists()
    imported = import_dataset("mpd", MPD_SLICE, "sample")
    uris = {t["track_uri"] for p in playlists for t in p["tracks"]}
    assert imported.counts == {"sequences": len(playlists), "items": len(uris),
                               "interactions": sum(len(p["tracks"]) for p in playlists)}
    assert _sequences_as_keys(imported, "track_uri") == [[t["track_uri"] for t in p["tracks"]] for p in playlists]
    items = imported.dataset.items
    assert items["item_id"].to_list() == list(range(len(uris)))
    first = playlists[0]["tracks"][0]
    row = items.row(0, named=True)
    assert (row["title"], row["artist"], row["album"], row["duration_ms"]) == (
        first["track_name"], first["artist_name"], first["album_name"], first["duration_ms"])
    assert imported.sequence_info["name"].to_list() == [p["name"] for p in playlists]
    assert imported.log.skipped == 0 and imported.dataset.meta["text_template"] == "{title} by {artist}"


def test_mpd_jsonl_gzip_and_a_folder_of_slices_stream_the_same_playlists(tmp_path):
    playlists = _slice_playlists()
    with gzip.open(tmp_path / "part.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(p) + "\n" for p in playlists[10:])
    (tmp_path / "part.json").write_text(json.dumps({"info": {"slice": "0-9"}, "playlists": playlists[:10]}, indent=2))
    whole = import_dataset("mpd", MPD_SLICE, "a")
    folder = import_dataset("mpd", tmp_path, "b")  # natural order: part.json, then part.jsonl.gz
    assert _sequences_as_keys(folder, "track_uri") == _sequences_as_keys(whole, "track_uri")
    assert folder.counts == whole.counts


def test_mpd_unreadable_rows_are_counted_with_file_and_line(tmp_path):
    playlists = _slice_playlists()[:3]
    broken = dict(playlists[1], tracks=[{"track_name": "no uri"}, *playlists[1]["tracks"]])
    lines = [json.dumps(playlists[0]), "{not json", json.dumps(broken), json.dumps({"pid": 7, "name": "no tracks"}),
             json.dumps(playlists[2])]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    imported = import_dataset("mpd", path, "bad")
    assert imported.counts["sequences"] == 3  # playlists 0, 1 (less its bad track) and 2
    assert imported.log.skipped == 3
    reasons = [str(p) for p in imported.log.problems]
    assert reasons[0].startswith(f"{path}:2: not valid JSON")
    assert reasons[1] == f"{path}:3: playlist {broken['pid']}: track 0 has no 'track_uri'"
    assert reasons[2] == f"{path}:4: playlist 7: no 'tracks' list"


def test_mpd_slice_reports_the_line_a_bad_playlist_starts_on(tmp_path):
    playlists = _slice_playlists()[:2]
    text = json.dumps({"info": {}, "playlists": [playlists[0], {"pid": 99, "tracks": "oops"}, playlists[1]]}, indent=2)
    path = tmp_path / "mpd.slice.0-2.json"
    path.write_text(text)
    imported = import_dataset("mpd", path, "s")
    lines = text.splitlines()
    pid = next(i for i, line in enumerate(lines) if '"pid": 99' in line)
    line = max(i for i in range(pid) if lines[i] == "    {") + 1  # 1-based line of the playlist's opening brace
    assert [str(p) for p in imported.log.problems] == [f"{path}:{line}: playlist 99: no 'tracks' list"]
    assert imported.counts["sequences"] == 2


def test_mpd_unreadable_files_fail_naming_the_file(tmp_path):
    syntax = tmp_path / "syntax.json"
    syntax.write_text('{"info": {}, "playlists": [{"pid": 1, "tracks": []},\n  {"pid": 2 "tracks": []}]}')
    with pytest.raises(DataImportError, match=rf"{syntax}: not valid JSON at line 2 column 13: Expecting .,. delimiter"):
        import_dataset("mpd", syntax, "x")
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(gzip.compress(MPD_SLICE.read_bytes())[:5000])
    with pytest.raises(DataImportError, match=rf"{truncated}: unreadable after line \d+ \(EOFError"):
        import_dataset("mpd", truncated, "x")
    no_playlists = tmp_path / "info.json"
    no_playlists.write_text('{\n"info": {"slice": "0-999"}\n}')
    with pytest.raises(DataImportError, match=rf"{no_playlists}: an MPD slice needs a 'playlists' array"):
        import_dataset("mpd", no_playlists, "x")
    with pytest.raises(DataImportError, match=r"missing.json: no such file or folder"):
        import_dataset("mpd", tmp_path / "missing.json", "x")


# --- Spotify skip prediction -------------------------------------------------------------------------


def _log_rows() -> list[dict]:
    with open(SKIP_LOG, newline="") as handle:
        return list(csv.DictReader(handle))


def test_spotify_sessions_feedback_and_features_match_the_csv():
    rows = _log_rows()
    imported = import_dataset("spotify-skip", DATA / "spotify-skip", "skips")
    sessions = defaultdict(list)
    for row in rows:
        sessions[row["session_id"]].append(row)
    with open(SKIP_FEATURES, newline="", encoding="utf-8-sig") as handle:
        features = list(csv.DictReader(handle))
    tracks = {r["track_id_clean"] for r in rows} | {f["track_id"] for f in features}
    assert imported.counts == {"sequences": len(sessions), "items": len(tracks), "interactions": len(rows)}
    expected = [sorted(s, key=lambda r: int(r["session_position"])) for s in sessions.values()]
    assert _sequences_as_keys(imported, "track_id") == [[r["track_id_clean"] for r in s] for s in expected]
    assert [f.tolist() for f in imported.dataset.feedback] == [[int(r["skip_2"] == "False") for r in s] for s in expected]
    items = imported.dataset.items
    shostakovich = items.filter(items["track_id"] == "t12347").row(0, named=True)
    assert (shostakovich["release_year"], shostakovich["release_month"], shostakovich["release_day"]) == (2015, 7, 31)
    assert shostakovich["key"] == int(float(features[2]["key"])) + (12 if features[2]["mode"] == "minor" else 0)
    assert shostakovich["popularity"] == pytest.approx(float(features[2]["us_popularity_estimate"]))
    audio = imported.dataset.modalities["audio"]
    assert audio.shape == (len(tracks), 25)  # 8 acoustic + 17 attributes; popularity is not a content feature
    row = int(shostakovich["item_id"])
    assert audio[row, 0] == pytest.approx(float(features[2]["acoustic_vector_0"]))
    assert not any(np.isclose(audio[row], float(features[2]["us_popularity_estimate"])))
    assert int(items["has_features"].sum()) == len(features)


def test_spotify_rows_are_ordered_by_position_and_bad_rows_reported(tmp_path):
    lines = SKIP_LOG.read_text().splitlines()
    header, body = lines[0], lines[1:21]  # the first session (20 rows)
    shuffled = [body[5], *body[:5], *body[6:]]
    bad_fields = body[0].rsplit(",", 3)[0]
    bad_skip = body[1].replace(",False,False,False,True,", ",False,maybe,False,True,", 1)
    path = tmp_path / "log.csv"
    path.write_text("\n".join([header, *shuffled, bad_fields, bad_skip]) + "\n")
    imported = import_dataset("spotify-skip", path, "s")
    assert imported.counts["sequences"] == 1
    positions = {r.split(",")[3]: int(r.split(",")[1]) for r in body}
    order = _sequences_as_keys(imported, "track_id")[0]
    assert [positions[t] for t in order] == sorted(positions.values())
    assert [str(p) for p in imported.log.problems] == [
        f"{path}:22: expected 21 fields, found 18", f"{path}:23: skip_2 'maybe' is not true/false"]


def test_spotify_file_of_unknown_layout_fails_naming_it(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataImportError, match=rf"{other}: neither a session log .* its header is a, b, c"):
        import_dataset("spotify-skip", other, "s")


# --- Amazon ----------------------------------------------------------------------------------------


def _chained(category: str) -> dict[str, list[str]]:
    """Users' sequences from the CSV rows by a plain reading: the longest history of each user + its item."""
    rows = defaultdict(list)
    for split in ("valid", "test"):
        with open(next((AMAZON / split).glob(f"{category}*.csv")), newline="") as handle:
            for row in csv.DictReader(handle):
                rows[row["user_id"]].append(row)
    out = {}
    for user, user_rows in rows.items():
        first = ast.literal_eval(user_rows[0]["history_item_id"])
        out[user] = [str(i) for i in first] + [r["item_id"] for r in user_rows]
    return out


def test_amazon_csv_histories_rebuild_users_sequences():
    imported = import_dataset("amazon", AMAZON, "office", category="Office_Products")
    expected = _chained("Office_Products")
    items = json.loads((AMAZON / "index" / "Office_Products.item.json").read_text())
    assert imported.counts == {"sequences": len(expected), "items": len(items),
                               "interactions": sum(len(s) for s in expected.values())}
    assert dict(zip(imported.sequence_info["user"].to_list(), _sequences_as_keys(imported, "source_id"))) == expected
    assert expected["A1179"][-2:] == ["1595", "1465"]  # two test rows chained onto the history
    frame = imported.dataset.items
    assert frame["source_id"].to_list() == list(items)
    assert frame["title"][5] == items["5"]["title"]
    assert imported.identifiers["0"] == json.loads((AMAZON / "index" / "Office_Products.index.json").read_text())["0"]
    assert imported.log.skipped == 0


def test_amazon_needs_a_category_when_the_folder_has_several():
    with pytest.raises(DataImportError, match="pick one with --category"):
        import_dataset("amazon", AMAZON, "x")


def test_amazon_json_sequences_with_items_and_bad_entries(tmp_path):
    (tmp_path / "seq.json").write_text('{\n "u1": ["a", "b", "a"],\n "u2": "not a list",\n "u3": ["c"]\n}')
    (tmp_path / "items.json").write_text(json.dumps({"a": {"title": "Alpha"}, "b": {"title": "Beta"}, "z": {"title": "Zed"}}))
    imported = import_dataset("amazon", tmp_path / "seq.json", "j", items=tmp_path / "items.json")
    assert _sequences_as_keys(imported, "source_id") == [["a", "b", "a"], ["c"]]
    assert imported.dataset.items["title"].to_list() == ["Alpha", "Beta", "Zed", None]
    assert [str(p) for p in imported.log.problems] == [f"{tmp_path / 'seq.json'}:3: user 'u2': expected a list of item ids"]


def test_amazon_csv_row_that_does_not_chain_is_reported(tmp_path):
    path = tmp_path / "hist.csv"
    path.write_text('user_id,history_item_id,item_id\nU,"[1, 2]",3\nU,"[2, 3]",4\nU,"[9]",5\nV,[oops,1\n')
    imported = import_dataset("amazon", path, "c")
    assert _sequences_as_keys(imported, "source_id") == [["1", "2", "3", "4"]]
    assert [str(p) for p in imported.log.problems] == [
        f"{path}:4: user 'U': history does not continue the user's earlier rows",
        f"{path}:5: history_item_id '[oops' is not a list of item ids"]
    (tmp_path / "bad.json").write_text('{"u": [1,}')
    with pytest.raises(DataImportError, match=r"bad.json: not valid JSON at line 1 column 10: Expecting value"):
        import_dataset("amazon", tmp_path / "bad.json", "b")


# --- RecBole ---------------------------------------------------------------------------------------


def test_recbole_inter_orders_by_timestamp_and_reads_items(tmp_path):
    (tmp_path / "toy.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u1\ti2\t5\t20\nu1\ti1\t4\t10\nu2\ti3\t3\t5\nu1\ti3\t1\tlate\nu2\ti1\n")
    (tmp_path / "toy.item").write_text("item_id:token\ttitle:token_seq\ni1\tFirst song\ni2\tSecond song\n")
    imported = import_dataset("recbole", tmp_path, "toy")
    assert _sequences_as_keys(imported, "source_id") == [["i1", "i2"], ["i3"]]
    assert imported.dataset.items["title"].to_list() == ["First song", "Second song", None]
    assert [str(p) for p in imported.log.problems] == [
        f"{tmp_path / 'toy.inter'}:5: timestamp 'late' is not a number",
        f"{tmp_path / 'toy.inter'}:6: expected 4 tab-separated fields, found 2"]
    (tmp_path / "toy.inter").write_text("user item\nu1 i1\n")
    with pytest.raises(DataImportError, match=r"toy.inter: header field 'user item' is not NAME:TYPE"):
        import_dataset("recbole", tmp_path / "toy.inter", "toy")


# --- the dataset folder and the CLI ------------------------------------------------------------------


def test_saved_dataset_round_trips_and_lists(tmp_path):
    imported = import_dataset("spotify-skip", SKIP_LOG, "skips", features=SKIP_FEATURES)
    folder = save_import(imported, "skips", tmp_path)
    loaded = Dataset.load(folder)
    assert [s.tolist() for s in loaded.sequences] == [s.tolist() for s in imported.dataset.sequences]
    assert [f.tolist() for f in loaded.feedback] == [f.tolist() for f in imported.dataset.feedback]
    assert loaded.meta["fingerprint"] == fingerprint(imported.dataset) == fingerprint(loaded)
    assert [d["name"] for d in list_datasets(tmp_path)] == ["skips"]
    with pytest.raises(DataImportError, match="already exists"):
        save_import(imported, "skips", tmp_path)
    with pytest.raises(ValueError, match=r"dataset 'nope': not found .* \(imported datasets: skips\)"):
        dataset_folder("nope", tmp_path)


def test_cli_import_prints_counts_and_problems(tmp_path):
    from cli.main import app

    source = tmp_path / "in.jsonl"
    playlists = _slice_playlists()[:4]
    source.write_text("\n".join([json.dumps(p) for p in playlists] + ["[1, 2]"]) + "\n")
    runner = CliRunner()
    result = runner.invoke(app, ["data", "import", "mpd", str(source), "--name", "four", "--root", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    interactions = sum(len(p["tracks"]) for p in playlists)
    items = len({t["track_uri"] for p in playlists for t in p["tracks"]})
    assert f"4 sequences, {items:,} items, {interactions:,} interactions" in result.output
    assert "1 unreadable rows skipped" in result.output and f"  {source}:5: not a JSON object\n" in result.output
    again = runner.invoke(app, ["data", "import", "mpd", str(source), "--name", "four", "--root", str(tmp_path / "ds")])
    assert again.exit_code == 2 and "already exists" in again.output
    listed = runner.invoke(app, ["data", "list", "--root", str(tmp_path / "ds")])
    assert "four" in listed.output and "mpd" in listed.output
    shutil.rmtree(tmp_path / "ds")
