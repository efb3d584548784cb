"""RecBole atomic files: ``NAME.inter`` (and, when present beside it, ``NAME.item``).

Atomic files are tab-separated with a typed header, e.g. ``user_id:token	item_id:token	rating:float
timestamp:float``. A user's sequence is their items ordered by ``timestamp`` (file order among equal or
missing timestamps). ``NAME.item`` adds item columns (``title:token_seq`` → ``title``); its items come first,
in its order. PATH is the ``.inter`` file or the folder holding one.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from raysid.data.dataset import Dataset
from raysid.data.importers.base import (
    DataImportError,
    Imported,
    ImportLog,
    ItemTable,
    as_sequences,
    csv_header,
    csv_rows,
    files_in,
    finite,
)

TYPES = ("token", "token_seq", "float", "float_seq")


def import_recbole(path: Path, name: str) -> Imported:
    """Sequences from the ``.inter`` file at ``path``; item columns from the ``.item`` file beside it."""
    inters = files_in(Path(path), (".inter",), "RecBole .inter file")
    if len(inters) != 1:
        raise DataImportError(f"{path}: holds {len(inters)} .inter files ({', '.join(f.name for f in inters)}); give one")
    inter = inters[0]
    log = ImportLog()
    item_file = inter.with_suffix(".item")
    columns = _columns(item_file) if item_file.exists() else {}
    extra = tuple(c for c in columns.values() if c != "item_id")
    items = ItemTable("source_id", extra)
    if item_file.exists():
        _read_items(item_file, columns, items, log)
    events = _read_inter(inter, log)
    if not events:
        raise DataImportError(f"{inter}: no readable interaction ({log.skipped} rows skipped)")
    users = list(events)
    sequences = []
    for user in users:
        ordered = sorted(events[user], key=lambda e: (e[0] is None, e[0] or 0.0, e[1]))
        sequences.append([items.id_of(item) for _, _, item in ordered])
    meta = {"kind": "recbole", "source": str(inter.resolve()), "files": [str(inter)],
            "text_template": "{title}" if "title" in extra else ""}
    dataset = Dataset(name, items.frame(), {}, as_sequences(sequences), meta)
    return Imported(dataset, log, sequence_info=pl.DataFrame({"sequence": range(len(users)), "user": users}))


def _columns(file: Path) -> dict[str, str]:
    """Header field (``title:token_seq``) -> column name (``title``); a field without a known type fails."""
    columns = {}
    for field in csv_header(file, "\t"):
        column, _, kind = field.partition(":")
        if kind not in TYPES:
            raise DataImportError(
                f"{file}: header field {field!r} is not NAME:TYPE with TYPE one of {', '.join(TYPES)}"
            )
        columns[field] = column
    return columns


def _read_inter(file: Path, log: ImportLog) -> dict[str, list[tuple[float | None, int, str]]]:
    """user -> [(timestamp or None, row order, item)]."""
    columns = _columns(file)
    names = {column: field for field, column in columns.items()}
    for needed in ("user_id", "item_id"):
        if needed not in names:
            raise DataImportError(f"{file}: the header has no {needed}:token field (found {', '.join(columns)})")
    stamp = names.get("timestamp")
    events: dict[str, list[tuple[float | None, int, str]]] = {}
    for order, (line, header, row, fields) in enumerate(csv_rows(file, "\t")):
        if row is None:
            log.skip(file, line, f"expected {len(header)} tab-separated fields, found {len(fields)}")
            continue
        user, item = row[names["user_id"]], row[names["item_id"]]
        if not user or not item:
            log.skip(file, line, "empty user_id or item_id")
            continue
        time = None
        if stamp and row[stamp] != "":
            try:
                time = float(row[stamp])
            except ValueError:
                log.skip(file, line, f"timestamp {row[stamp]!r} is not a number")
                continue
            if not finite(time):
                log.skip(file, line, f"timestamp {row[stamp]!r} is not a finite number")
                continue
        events.setdefault(user, []).append((time, order, item))
    return events


def _read_items(file: Path, columns: dict[str, str], items: ItemTable, log: ImportLog) -> None:
    key = next((field for field, column in columns.items() if column == "item_id"), None)
    if key is None:
        raise DataImportError(f"{file}: the header has no item_id:token field")
    for line, header, row, fields in csv_rows(file, "\t"):
        if row is None or not row[key]:
            log.skip(file, line, f"expected {len(header)} tab-separated fields with an item_id, found {len(fields)}")
            continue
        items.id_of(row[key], {columns[f]: (v or None) for f, v in row.items() if f != key})
