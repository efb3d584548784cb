"""Spotify Million Playlist Dataset: official slice files, one-playlist-per-line JSONL, plain or gzip, or a folder.

- slice: ``{"info": {…}, "playlists": [{"name", "pid", …, "tracks": [{"pos", "track_uri", "track_name",
  "artist_name", "album_name", …}, …]}, …]}`` (``mpd.slice.0-999.json``); playlists are decoded one at a
  time, so a bad playlist is reported with the line it starts on.
- JSONL: one playlist object per line (``mpd_subset_5365.jsonl.gz``).
- a folder: every ``*.json``, ``*.jsonl``, ``*.json.gz``, ``*.jsonl.gz`` in it, in natural order, one file at
  a time (the million-playlist release is 1,000 slice files).

Items are tracks (``track_uri``) with ``title``, ``artist`` and, where the source has them, ``album``,
``artist_uri``, ``album_uri``, ``duration_ms``; sequences are playlists in track order. Playlist name,
description, pid and followers go to the sequence information (the playlist-title text modality).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from raysid.data.dataset import Dataset
from raysid.data.importers.base import (
    DataImportError,
    Imported,
    ImportLog,
    ItemTable,
    JsonWalker,
    as_sequences,
    files_in,
    finite,
    read_lines,
    read_text,
)

SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")
TRACK_FIELDS = {  # canonical column -> MPD field
    "title": "track_name", "artist": "artist_name", "album": "album_name",
    "artist_uri": "artist_uri", "album_uri": "album_uri", "duration_ms": "duration_ms",
}
PLAYLIST_FIELDS = ("pid", "name", "description", "num_followers")
TEXT_TEMPLATE = "{title} by {artist}"


def import_mpd(path: Path, name: str) -> Imported:
    """Read every playlist under ``path`` (a file or a folder of files) into the canonical dataset."""
    log = ImportLog()
    items = ItemTable("track_uri", tuple(TRACK_FIELDS))
    sequences: list[list[int]] = []
    info: dict[str, list[Any]] = {field: [] for field in PLAYLIST_FIELDS}
    files = files_in(Path(path), SUFFIXES, "MPD playlist files")
    for file in files:
        for playlist, line in playlists_in(file):
            tracks = _tracks(playlist, items, file, line, log)
            if not tracks:
                continue
            sequences.append(tracks)
            fields = _finite_fields(playlist, PLAYLIST_FIELDS, f"playlist {playlist.get('pid', '?')}", file, line, log)
            for field in PLAYLIST_FIELDS:
                info[field].append(fields[field])
    if not sequences:
        raise DataImportError(f"{path}: no readable playlist ({log.skipped} rows skipped)")
    meta = {"kind": "mpd", "source": str(Path(path).resolve()), "files": [str(f) for f in files],
            "text_template": TEXT_TEMPLATE}
    frame = items.frame({"duration_ms": pl.Int64})
    dataset = Dataset(name=name, items=frame, modalities={}, sequences=as_sequences(sequences), meta=meta)
    return Imported(dataset, log, sequence_info=_info_frame(info))


def playlists_in(file: Path) -> Iterator[tuple[dict, int]]:
    """(playlist, line) of a slice file or a JSONL file; malformed entries come as ``{"__error__": reason}``."""
    if _is_jsonl(file):
        yield from _jsonl_playlists(file)
    else:
        yield from _slice_playlists(file)


def _is_jsonl(file: Path) -> bool:
    """JSONL by name, or when the first line alone is a playlist object (a slice's first line is ``{``)."""
    if ".jsonl" in file.name:
        return True
    first = next((line for _, line in read_lines(file) if line.strip()), "")
    try:
        value = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict) and "playlists" not in value


def _jsonl_playlists(file: Path) -> Iterator[tuple[dict, int]]:
    """JSONL: a line that is not a JSON object comes back as an error entry (reported, then skipped)."""
    for number, line in read_lines(file):
        if not line.strip():
            continue
        try:
            playlist = json.loads(line)
        except json.JSONDecodeError as error:
            yield {"__error__": f"not valid JSON ({error.msg} at column {error.colno})"}, number
            continue
        yield (playlist if isinstance(playlist, dict) else {"__error__": "not a JSON object"}), number


def _slice_playlists(file: Path) -> Iterator[tuple[dict, int]]:
    """Official slice: the ``playlists`` array is decoded one playlist at a time; ``info`` is ignored."""
    walker = JsonWalker(read_text(file), file)
    found = False
    for key, value, _ in walker.object_items(stream=("playlists",)):
        if key != "playlists":
            continue
        found = True
        for playlist, line in value:
            yield (playlist if isinstance(playlist, dict) else {"__error__": "a playlist is not a JSON object"}), line
    if not found:
        raise DataImportError(f"{file}: an MPD slice needs a 'playlists' array (keys 'info' and 'playlists'), found none")


def _tracks(playlist: dict, items: ItemTable, file: Path, line: int, log: ImportLog) -> list[int]:
    """Item ids of a playlist's tracks in order; bad playlists and tracks are logged and left out."""
    if "__error__" in playlist:
        log.skip(file, line, playlist["__error__"])
        return []
    tracks = playlist.get("tracks")
    label = f"playlist {playlist.get('pid', '?')}"
    if not isinstance(tracks, list):
        log.skip(file, line, f"{label}: no 'tracks' list")
        return []
    ids = []
    for position, track in enumerate(tracks):
        uri = track.get("track_uri") if isinstance(track, dict) else None
        if not isinstance(uri, str) or not uri:
            log.skip(file, line, f"{label}: track {position} has no 'track_uri'")
            continue
        fields = _finite_fields({column: track.get(source) for column, source in TRACK_FIELDS.items()}, TRACK_FIELDS,
                                f"{label}: track {position}", file, line, log)
        ids.append(items.id_of(uri, fields))
    if not ids:
        log.skip(file, line, f"{label}: no readable track")
    return ids


def _finite_fields(record: dict, fields: Any, label: str, file: Path, line: int, log: ImportLog) -> dict[str, Any]:
    """``fields`` of ``record``; a non-finite number (JSON's ``Infinity``, ``NaN``, ``1e999``) is logged and left missing."""
    values = {field: record.get(field) for field in fields}
    for field, value in values.items():
        if not finite(value):
            log.missing(file, line, f"{label}: {field} {value!r} is not a finite number")
            values[field] = None
    return values


def _info_frame(info: dict[str, list[Any]]) -> pl.DataFrame:
    columns = {"sequence": pl.Series("sequence", range(len(info["pid"])), dtype=pl.Int64)}
    for field, values in info.items():
        if any(v is not None for v in values):
            dtype = pl.String if field in ("name", "description") else pl.Int64
            columns[field] = pl.Series(field, [_scalar(v, dtype) for v in values], dtype=dtype, strict=False)
    return pl.DataFrame(columns)


def _scalar(value: Any, dtype: pl.DataType) -> Any:
    if value is None:
        return None
    if dtype == pl.String:
        return str(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
