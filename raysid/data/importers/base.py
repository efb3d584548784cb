"""What every importer shares: the problem log, the item table, file opening and line-aware JSON walking.

An importer reads a source format and returns an ``Imported``: the canonical ``Dataset`` (items with
``item_id`` = row index, sequences of item ids, optional feedback), optional per-sequence information
(playlist names, user ids) and optional identifier tables of another system. Rows that cannot be read are
skipped and logged with their file and line (``ImportLog``); a file that cannot be read at all raises
``DataImportError`` naming the file and the reason.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import polars as pl

from raysid.data.dataset import Dataset

SHOWN_PROBLEMS = 1000  # problems kept in detail (all are counted)
_WHITESPACE = re.compile(r"\s*")
_DECODER = json.JSONDecoder()


class DataImportError(ValueError):
    """A source file cannot be read at all; the message names the file and the reason."""


@dataclass(frozen=True)
class Problem:
    """One row that was skipped (``skipped``) or read with a value left missing (not ``skipped``)."""

    file: str
    line: int  # 1-based line in the file (the line where the row starts)
    reason: str
    skipped: bool = True

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}{'' if self.skipped else ' (row kept, value missing)'}"


@dataclass
class ImportLog:
    """Counts every problem; keeps the first ``SHOWN_PROBLEMS`` of them in detail."""

    problems: list[Problem] = field(default_factory=list)
    skipped: int = 0  # rows left out
    missing_values: int = 0  # rows kept with a value that could not be parsed

    def skip(self, file: Path | str, line: int, reason: str) -> None:
        self.skipped += 1
        self._keep(Problem(str(file), line, reason, True))

    def missing(self, file: Path | str, line: int, reason: str) -> None:
        self.missing_values += 1
        self._keep(Problem(str(file), line, reason, False))

    def _keep(self, problem: Problem) -> None:
        if len(self.problems) < SHOWN_PROBLEMS:
            self.problems.append(problem)

    def summary(self) -> dict[str, Any]:
        return {"skipped_rows": self.skipped, "missing_values": self.missing_values,
                "problems": [str(p) for p in self.problems[:20]]}


@dataclass(frozen=True)
class Imported:
    """An importer's output, before it is written to a dataset folder."""

    dataset: Dataset
    log: ImportLog
    sequence_info: pl.DataFrame | None = None  # one row per sequence (playlist name, pid, user id, ...)
    identifiers: dict[str, list[str]] | None = None  # item_id (str) -> tokens of another system's semantic IDs
    notes: tuple[str, ...] = ()  # lines the import prints after its counts (what a filter dropped, ...)

    @property
    def counts(self) -> dict[str, int]:
        """Sequences, items and interactions of the dataset."""
        return {
            "sequences": len(self.dataset.sequences),
            "items": self.dataset.num_items,
            "interactions": int(sum(len(s) for s in self.dataset.sequences)),
        }


class ItemTable:
    """Assigns item ids 0, 1, … in order of first sight of each source key, keeping its fields."""

    def __init__(self, key: str, columns: tuple[str, ...]) -> None:
        self.key = key
        self.columns = columns
        self.ids: dict[str, int] = {}
        self.values: dict[str, list[Any]] = {name: [] for name in (key, *columns)}

    def __len__(self) -> int:
        return len(self.ids)

    def id_of(self, source_key: str, fields: dict[str, Any] | None = None) -> int:
        """The item id of ``source_key``; a new item keeps ``fields`` (later sightings do not change them)."""
        found = self.ids.get(source_key)
        if found is not None:
            return found
        item = len(self.ids)
        self.ids[source_key] = item
        self.values[self.key].append(source_key)
        fields = fields or {}
        for name in self.columns:
            self.values[name].append(fields.get(name))
        return item

    def frame(self, schema: dict[str, pl.DataType] | None = None) -> pl.DataFrame:
        """Items frame: ``item_id`` (= row index), the source key, then every column that is not all null."""
        schema = schema or {}
        columns = {"item_id": pl.Series("item_id", np.arange(len(self.ids), dtype=np.int64))}
        for name, values in self.values.items():
            if name != self.key and all(v is None for v in values):
                continue
            columns[name] = pl.Series(name, values, dtype=schema.get(name, pl.String if name == self.key else None),
                                      strict=False)
        return pl.DataFrame(columns)


def finite(value: Any) -> bool:
    """Whether a parsed number is finite (``inf``, ``-inf``, ``1e999`` and ``nan`` parse as floats but are not)."""
    return not isinstance(value, float) or math.isfinite(value)


def as_sequences(sequences: list[list[int]]) -> list[np.ndarray]:
    return [np.asarray(s, dtype=np.int64) for s in sequences]


# --- files -----------------------------------------------------------------------------------------


def open_text(path: Path) -> TextIO:
    """A text handle on ``path``, gunzipped when the file starts with the gzip magic bytes. The file is opened
    once (its first bytes peeked), so a pipe works too (``<(zcat …)``, a FIFO)."""
    path = Path(path)
    try:
        raw = open(path, "rb")
        if raw.peek(2)[:2] == b"\x1f\x8b":
            unzipped = gzip.GzipFile(fileobj=raw, mode="rb")
            unzipped.myfileobj = raw  # closed with it, as when gzip opens the file itself
            return io.TextIOWrapper(unzipped, encoding="utf-8-sig", newline="")
        return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    except OSError as error:
        raise DataImportError(f"{path}: cannot open the file ({error.strerror or error})") from error


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) of a plain or gzip text file; decoding errors fail naming the file."""
    number = 0
    try:
        with open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                yield number, line
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, zlib.error, OSError) as error:
        raise DataImportError(f"{path}: unreadable after line {number} ({type(error).__name__}: {error})") from error


def read_text(path: Path) -> str:
    """The whole text of a plain or gzip file; undecodable content fails naming the file."""
    try:
        with open_text(path) as handle:
            return handle.read()
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, zlib.error, OSError) as error:
        raise DataImportError(f"{path}: unreadable ({type(error).__name__}: {error})") from error


def csv_rows(file: Path, delimiter: str = ",") -> Iterator[tuple[int, list[str], dict[str, str] | None, list[str]]]:
    """(start line, header, row, raw fields) of each record of a CSV file (plain or gzip); a row whose
    number of fields differs from the header's comes as ``None``. Blank lines are not rows. Tab-separated
    files (RecBole) are read without quoting."""
    position = 0

    def lines() -> Iterator[str]:
        nonlocal position
        for position, line in read_lines(file):
            yield line

    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(lines(), delimiter=delimiter, quoting=quoting)
    try:
        header = next(reader, None)
        if header is None:
            raise DataImportError(f"{file}: the file is empty (expected a header line)")
        while True:
            start = position + 1
            fields = next(reader, None)
            if fields is None:
                return
            if fields:
                yield start, header, (dict(zip(header, fields)) if len(fields) == len(header) else None), fields
    except csv.Error as error:
        raise DataImportError(f"{file}: unreadable at line {position} ({error})") from error


def csv_header(file: Path, delimiter: str = ",") -> list[str]:
    """The header line of a CSV file, split into column names."""
    for _, line in read_lines(file):
        return next(csv.reader([line], delimiter=delimiter), [])
    raise DataImportError(f"{file}: the file is empty (expected a header line)")


def files_in(path: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    """``path`` itself, or the files of folder ``path`` whose names end in one of ``suffixes`` (natural order)."""
    path = Path(path)
    if not path.exists():
        raise DataImportError(f"{path}: no such file or folder")
    if not path.is_dir():  # a file, or a pipe
        return [path]
    found = sorted((p for p in path.iterdir() if p.is_file() and p.name.endswith(suffixes)), key=_natural)
    if not found:
        raise DataImportError(f"{path}: the folder holds no {what} ({', '.join(suffixes)})")
    return found


def _natural(path: Path) -> list[Any]:
    """Sort key that orders mpd.slice.1000-1999.json after mpd.slice.0-999.json."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


# --- line-aware JSON walking ----------------------------------------------------------------------


class JsonWalker:
    """Decodes the top level of a JSON document entry by entry, knowing the line each entry starts on.

    Used for official MPD slices (``{"info": …, "playlists": [ … ]}``) and ``{"user": [items]}`` files:
    each playlist or user is decoded on its own, so a bad entry can be reported with its line.
    Syntax errors make the whole file unreadable and fail naming the file, line and column.
    """

    def __init__(self, text: str, path: Path) -> None:
        self.text, self.path = text, Path(path)
        self._line, self._line_pos = 1, 0
        self._end = 0  # end position of the last streamed array

    def line_at(self, pos: int) -> int:
        """1-based line of character ``pos`` (positions must be asked in increasing order)."""
        self._line += self.text.count("\n", self._line_pos, pos)
        self._line_pos = pos
        return self._line

    def object_items(self, pos: int = 0, stream: tuple[str, ...] = ()) -> Iterator[tuple[str, Any, int]]:
        """(key, value, line) of each entry of the object at ``pos``.

        For a key in ``stream`` the value is an iterator of (element, line) over the array's elements,
        decoded one at a time; the next entry is read once the caller has moved on (unread elements are
        still decoded, to find the end of the array).
        """
        pos = self._skip(self._expect(pos, "{"))
        if self.text.startswith("}", pos):
            return
        while True:
            key, pos = self._decode(pos)
            if not isinstance(key, str):
                self._fail(pos, "expected a string key")
            pos = self._skip(self._expect(pos, ":"))
            line = self.line_at(pos)
            if key in stream:
                elements = self._array(pos)
                yield key, elements, line
                for _ in elements:  # drain what the caller left
                    pass
                pos = self._end
            else:
                value, pos = self._decode(pos)
                yield key, value, line
            pos = self._skip(pos)
            if self.text.startswith(",", pos):
                pos = self._skip(pos + 1)
                continue
            self._expect(pos, "}")
            return

    def _array(self, pos: int) -> Iterator[tuple[Any, int]]:
        """(element, start line) of each element of the array at ``pos``; leaves its end in ``self._end``."""
        pos = self._skip(self._expect(pos, "["))
        if self.text.startswith("]", pos):
            self._end = pos + 1
            return
        while True:
            line = self.line_at(pos)
            element, pos = self._decode(pos)
            yield element, line
            pos = self._skip(pos)
            if self.text.startswith(",", pos):
                pos = self._skip(pos + 1)
                continue
            self._end = self._expect(pos, "]")
            return

    def _decode(self, pos: int) -> tuple[Any, int]:
        try:
            return _DECODER.raw_decode(self.text, pos)
        except json.JSONDecodeError as error:
            raise DataImportError(
                f"{self.path}: not valid JSON at line {error.lineno} column {error.colno}: {error.msg}"
            ) from error

    def _skip(self, pos: int) -> int:
        return _WHITESPACE.match(self.text, pos).end()

    def _expect(self, pos: int, char: str) -> int:
        pos = self._skip(pos)
        if not self.text.startswith(char, pos):
            self._fail(pos, f"expected {char!r}")
        return pos + 1

    def _fail(self, pos: int, message: str) -> None:
        line = self.text.count("\n", 0, pos) + 1
        column = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        found = self.text[pos:pos + 1] or "end of file"
        raise DataImportError(f"{self.path}: not valid JSON at line {line} column {column}: {message}, found {found!r}")
