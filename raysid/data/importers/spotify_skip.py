"""Spotify Sequential Skip Prediction: session logs and track features (CSV, plain or gzip).

- session log: ``session_id, session_position, session_length, track_id_clean, skip_1, skip_2, skip_3,
  not_skipped, …`` — one row per play, rows of a session together. A session becomes a sequence ordered by
  ``session_position``; its feedback is 1 = played, 0 = skipped, where skipped is ``skip_2`` (the
  challenge's label: the track was played only briefly).
- track features: ``track_id, duration, release_year`` or ``release_date_estimate, us_popularity_estimate,
  acousticness, …, acoustic_vector_0..7`` — joined on the log's ``track_id_clean``. The content columns
  become the ``audio`` modality; ``us_popularity_estimate`` is kept as the items' ``popularity`` column and
  is not a content feature (it is excluded from ``audio``, as in the semantic-IDs paper). Release date,
  tempo, key and mode fill the columns 3MToken's categorical vectorisation reads.

PATH is a log CSV, or a folder: every ``*.csv`` / ``*.csv.gz`` in it is a log or a feature file, told apart by
its header. Tracks of the feature file that no session plays are items too (the catalogue).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from raysid.data.dataset import Dataset
from raysid.data.importers.base import (
    DataImportError,
    Imported,
    ImportLog,
    ItemTable,
    csv_header,
    csv_rows,
    files_in,
    finite,
)

LOG_COLUMNS = ("session_id", "session_position", "track_id_clean", "skip_2")
FEATURE_KEY = "track_id"
SKIP_LABEL = "skip_2"
ACOUSTIC = tuple(f"acoustic_vector_{i}" for i in range(8))
ATTRIBUTES = ("acousticness", "beat_strength", "bounciness", "danceability", "dyn_range_mean", "energy", "flatness",
              "instrumentalness", "liveness", "loudness", "mechanism", "organism", "speechiness", "tempo",
              "time_signature", "valence", "duration")
NOT_CONTENT = ("us_popularity_estimate",)  # kept as items' popularity, never a feature
_TRUE, _FALSE = {"true", "1", "t", "yes"}, {"false", "0", "f", "no"}


def import_spotify_skip(path: Path, name: str, features: Path | None = None) -> Imported:
    """Sessions from the log file(s) under ``path``, track features from ``features`` or the folder."""
    files = files_in(Path(path), (".csv", ".csv.gz"), "CSV files")
    extra = [Path(features)] if features and Path(features).resolve() not in {f.resolve() for f in files} else []
    logs, feature_files = _classify([*files, *extra])
    if not logs:
        raise DataImportError(f"{path}: no session log CSV (a header with {', '.join(LOG_COLUMNS)})")
    log = ImportLog()
    items = ItemTable("track_id", ())
    sequences, feedback = _sessions(logs, items, log)
    if not sequences:
        raise DataImportError(f"{path}: no readable session ({log.skipped} rows skipped)")
    table = _features(feature_files, log)
    for track in table:
        items.id_of(track)
    frame = _items_frame(items.frame(), table)
    audio = _audio(frame)
    meta = {"kind": "spotify-skip", "source": str(Path(path).resolve()), "files": [str(f) for f in logs + feature_files],
            "skip_label": SKIP_LABEL, "text_template": "{title} by {artist}" if {"title", "artist"} <= set(frame.columns) else "",
            "items_with_features": int(frame["has_features"].sum())}
    dataset = Dataset(name, frame, {"audio": audio} if audio is not None else {},
                      [np.asarray(s, dtype=np.int64) for s in sequences], meta,
                      [np.asarray(f, dtype=np.int8) for f in feedback])
    return Imported(dataset, log)


def _classify(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """Split CSV files into session logs and track-feature files by their header."""
    logs, features = [], []
    for file in files:
        header = csv_header(file)
        if set(LOG_COLUMNS) <= set(header):
            logs.append(file)
        elif FEATURE_KEY in header:
            features.append(file)
        else:
            raise DataImportError(
                f"{file}: neither a session log (needs {', '.join(LOG_COLUMNS)}) nor a track-feature file "
                f"(needs {FEATURE_KEY}); its header is {', '.join(header[:8])}{'…' if len(header) > 8 else ''}"
            )
    return logs, features


def _sessions(files: list[Path], items: ItemTable, log: ImportLog) -> tuple[list[list[int]], list[list[int]]]:
    """Sequences and feedback, one per session (rows of a session must be contiguous)."""
    sequences, feedback, finished = [], [], set()
    for file in files:
        current, rows = None, []
        for number, header, row, fields in csv_rows(file):
            parsed = _log_row(row, len(fields), len(header))
            if isinstance(parsed, str):
                log.skip(file, number, parsed)
                continue
            session, position, track, skipped = parsed
            if session != current:
                _close(rows, items, sequences, feedback)
                if session in finished:
                    log.skip(file, number, f"session {session} continues after other sessions (rows of a session must be together)")
                    current, rows = None, []
                    continue
                finished.add(session)
                current, rows = session, []
            rows.append((position, track, skipped))
        _close(rows, items, sequences, feedback)
    return sequences, feedback


def _log_row(row: dict | None, got: int, expected: int) -> tuple[str, int, str, bool] | str:
    """(session, position, track, skipped) or the reason the row cannot be read."""
    if row is None:
        return f"expected {expected} fields, found {got}"
    try:
        position = int(row["session_position"])
    except ValueError:
        return f"session_position {row['session_position']!r} is not an integer"
    skip = row[SKIP_LABEL].strip().lower()
    if skip not in _TRUE | _FALSE:
        return f"{SKIP_LABEL} {row[SKIP_LABEL]!r} is not true/false"
    if not row["session_id"] or not row["track_id_clean"]:
        return "empty session_id or track_id_clean"
    return row["session_id"], position, row["track_id_clean"], skip in _TRUE


def _close(rows: list, items: ItemTable, sequences: list, feedback: list) -> None:
    if rows:
        rows.sort(key=lambda r: r[0])
        sequences.append([items.id_of(track) for _, track, _ in rows])
        feedback.append([0 if skipped else 1 for _, _, skipped in rows])


def _features(files: list[Path], log: ImportLog) -> dict[str, dict[str, Any]]:
    """track_id -> parsed feature values, from every feature file (first occurrence wins)."""
    table: dict[str, dict[str, Any]] = {}
    for file in files:
        for number, header, row, fields in csv_rows(file):
            if row is None:
                log.skip(file, number, f"expected {len(header)} fields, found {len(fields)}")
                continue
            track = row.get(FEATURE_KEY, "")
            if not track:
                log.skip(file, number, f"empty {FEATURE_KEY}")
                continue
            table.setdefault(track, _parse_features(row, file, number, log))
    return table


def _parse_features(row: dict[str, str], file: Path, number: int, log: ImportLog) -> dict[str, Any]:
    values: dict[str, Any] = {"title": row.get("track_name") or None, "artist": row.get("artist") or None,
                              "album": row.get("album_name") or None, "track_uri": row.get("track_uri") or None}
    for column in (*ACOUSTIC, *ATTRIBUTES, *NOT_CONTENT, "key"):
        if column in row:
            values[column] = _number(row[column], column, file, number, log)
    values["key"] = _key(values.get("key"), row.get("mode"), file, number, log)
    values.update(_release(row, file, number, log))
    return values


def _number(text: str, column: str, file: Path, number: int, log: ImportLog) -> float | None:
    if text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        log.missing(file, number, f"{column} {text!r} is not a number")
        return None
    if not finite(value):
        log.missing(file, number, f"{column} {text!r} is not a finite number")
        return None
    return value


def _key(pitch: float | None, mode: str | None, file: Path, number: int, log: ImportLog) -> int:
    """3MToken key class: pitch class 0..11 + 12 for minor; -1 when unknown."""
    if pitch is None or not 0 <= pitch <= 11:
        return -1
    mode = (mode or "").strip().lower()
    if mode not in ("major", "minor", "1", "0"):
        if mode:
            log.missing(file, number, f"mode {mode!r} is not major/minor")
        return -1
    return int(pitch) + (12 if mode in ("minor", "0") else 0)


def _release(row: dict[str, str], file: Path, number: int, log: ImportLog) -> dict[str, int | None]:
    """release_year/month/day from ``release_date_estimate`` (YYYY-MM-DD, DD/MM/YYYY or YYYY) or ``release_year``."""
    text = (row.get("release_date_estimate") or row.get("release_year") or "").strip()
    empty = {"release_year": None, "release_month": None, "release_day": None}
    if not text:
        return empty
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%Y"):
        try:
            date = datetime.datetime.strptime(text, fmt)
        except ValueError:
            continue
        exact = fmt != "%Y"
        return {"release_year": date.year, "release_month": date.month if exact else None,
                "release_day": date.day if exact else None}
    log.missing(file, number, f"release date {text!r} is not YYYY-MM-DD, DD/MM/YYYY or YYYY")
    return empty


def _items_frame(base: pl.DataFrame, table: dict[str, dict[str, Any]]) -> pl.DataFrame:
    """Items with their feature columns (null where the track has no features) and ``has_features``."""
    tracks = base["track_id"].to_list()
    rows = [table.get(track, {}) for track in tracks]
    names = dict.fromkeys(name for row in rows for name in row)
    columns = {name: pl.Series(name, [row.get(name) for row in rows], strict=False) for name in names}
    frame = base.with_columns(**columns, has_features=pl.Series([bool(row) for row in rows]))
    if "us_popularity_estimate" in frame.columns:
        frame = frame.rename({"us_popularity_estimate": "popularity"})
    if "key" in frame.columns:
        frame = frame.with_columns(pl.col("key").fill_null(-1).cast(pl.Int64))
    return frame


def _audio(frame: pl.DataFrame) -> np.ndarray | None:
    """(items, dim) float32 content matrix; items without features get the mean of those with them."""
    columns = [c for c in (*ACOUSTIC, *ATTRIBUTES) if c in frame.columns]
    if not columns or not frame["has_features"].any():
        return None
    matrix = frame.select(pl.col(columns).cast(pl.Float64)).to_numpy()  # (items, dim), NaN where missing
    means = np.nanmean(np.where(np.isnan(matrix).all(axis=0), 0.0, matrix), axis=0)
    missing = np.isnan(matrix)
    matrix[missing] = np.take(means, np.nonzero(missing)[1])
    return matrix.astype(np.float32)
