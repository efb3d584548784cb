"""Amazon review sequences: user→items JSON, or the CSV history format; optional item text and identifiers.

- JSON sequences: ``{"user": [item, …], …}``, each list in chronological order; items are ids of the item
  file (strings or integers).
- CSV histories (``amazon-text/valid|test/*.csv``): ``user_id, history_item_title, item_title,
  history_item_id, item_id, …`` — one row per (history, next item), histories capped at a few items. A user's
  sequence is rebuilt by chaining the rows: the first row's history, then each row's next item, where each
  later history must end the sequence so far (a row that does not is reported and left out). Files are read
  in the order given (valid before test).
- item file (optional): ``{item: {"title", "description", "brand", "categories", …}}``; every item of it is
  an item of the dataset (items that no user bought too), in the file's order.
- identifier table (optional): ``{item: ["<a_60>", "<b_159>", "<c_203>"]}`` of another system; written beside
  the dataset as ``identifiers.json`` keyed by the canonical item id, for the ``external`` tokenizer.

PATH may be a folder laid out like ``amazon-text`` (``index/CAT.item.json``, ``index/CAT.index.json``,
``valid/CAT*.csv``, ``test/CAT*.csv``); ``category`` picks CAT when it holds several.
"""

from __future__ import annotations

import ast
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
    csv_header,
    csv_rows,
    files_in,
    read_text,
)

TEXT_FIELDS = ("title", "description", "brand", "categories")
CSV_COLUMNS = ("user_id", "history_item_id", "item_id")
TEXT_TEMPLATE = "{title}. {description}"


def import_amazon(path: Path, name: str, items: Path | None = None, identifiers: Path | None = None,
                  category: str | None = None) -> Imported:
    """Import JSON sequences or CSV histories at ``path`` (a file or an amazon-text style folder)."""
    path = Path(path)
    if path.is_dir() and (path / "index").is_dir():
        sources, found_items, found_ids = _layout(path, category)
        items, identifiers = items or found_items, identifiers or found_ids
    else:
        sources = files_in(path, (".json", ".json.gz", ".csv", ".csv.gz"), "sequence files")
    log = ImportLog()
    table = ItemTable("source_id", TEXT_FIELDS)
    if items:
        for key, fields in _item_fields(Path(items), log):
            table.id_of(key, fields)
    by_user: dict[str, list[str]] = {}  # user -> item ids in order; later files continue earlier ones
    for source in sources:
        (_chain_csv if ".csv" in source.name else _read_json)(source, by_user, log)
    users = list(by_user)
    sequences = [[table.id_of(item) for item in by_user[user]] for user in users]
    if not sequences:
        raise DataImportError(f"{path}: no readable user sequence ({log.skipped} rows skipped)")
    meta = {"kind": "amazon", "source": str(path.resolve()), "files": [str(s) for s in sources],
            "item_file": str(items) if items else None, "text_template": TEXT_TEMPLATE,
            "items_without_text": _without_text(table, bool(items))}
    dataset = Dataset(name, table.frame(), {}, as_sequences(sequences), meta)
    info = _user_frame(users)
    return Imported(dataset, log, sequence_info=info,
                    identifiers=_identifiers(Path(identifiers), table, log) if identifiers else None)


def _layout(folder: Path, category: str | None) -> tuple[list[Path], Path | None, Path | None]:
    """CSV files (valid then test), item file and identifier table of one category of an amazon-text folder."""
    categories = sorted(p.name[: -len(".item.json")] for p in (folder / "index").glob("*.item.json"))
    if category is None:
        if len(categories) != 1:
            raise DataImportError(f"{folder}: holds categories {', '.join(categories) or 'none'}; pick one with --category")
        category = categories[0]
    if category not in categories:
        raise DataImportError(f"{folder}: no category {category!r}; categories: {', '.join(categories) or 'none'}")
    csvs = [f for split in ("valid", "test") for f in sorted((folder / split).glob(f"{category}*.csv"))]
    if not csvs:
        raise DataImportError(f"{folder}: no valid/{category}*.csv or test/{category}*.csv history file")
    index = folder / "index" / f"{category}.index.json"
    return csvs, folder / "index" / f"{category}.item.json", index if index.exists() else None


def _item_fields(path: Path, log: ImportLog) -> list[tuple[str, dict[str, Any]]]:
    """(item id, text fields) in file order; an entry that is not an object is reported and left out."""
    walker = JsonWalker(read_text(path), path)
    found = []
    for key, value, line in walker.object_items():
        if not isinstance(value, dict):
            log.skip(path, line, f"item {key!r}: expected an object of text fields, got {type(value).__name__}")
            continue
        found.append((key, {field: as_text(value.get(field)) for field in TEXT_FIELDS}))
    return found


def as_text(value: Any) -> str | None:
    """A text field as one string: lists (and their Python-literal spelling "['a', 'b']") joined by spaces."""
    if value is None:
        return None
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value.strip() or None
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value if v)
    return str(value).strip() or None


def _read_json(path: Path, by_user: dict[str, list[str]], log: ImportLog) -> None:
    """{"user": [item, …]}: a user whose value is not a non-empty list of ids is reported and left out."""
    walker = JsonWalker(read_text(path), path)
    for user, value, line in walker.object_items():
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            log.skip(path, line, f"user {user!r}: expected a list of item ids")
        elif not value:
            log.skip(path, line, f"user {user!r}: empty sequence")
        else:
            by_user.setdefault(user, []).extend(str(v) for v in value)


def _chain_csv(path: Path, by_user: dict[str, list[str]], log: ImportLog) -> None:
    """Extend users' sequences with the (history, next item) rows of one history CSV."""
    missing = [c for c in CSV_COLUMNS if c not in csv_header(path)]
    if missing:
        raise DataImportError(f"{path}: not an Amazon history CSV: missing column(s) {', '.join(missing)}")
    for line, header, row, fields in csv_rows(path):
        if row is None:
            log.skip(path, line, f"expected {len(header)} fields, found {len(fields)}")
            continue
        parsed = _history_row(row)
        if isinstance(parsed, str):
            log.skip(path, line, parsed)
            continue
        user, history, item = parsed
        sequence = by_user.get(user)
        if sequence is None:
            by_user[user] = [*history, item]
        elif history and sequence[-len(history):] == history:
            sequence.append(item)
        else:
            log.skip(path, line, f"user {user!r}: history does not continue the user's earlier rows")


def _history_row(row: dict[str, str]) -> tuple[str, list[str], str] | str:
    """(user, history item ids, next item id) or the reason the row cannot be read."""
    if not row["user_id"] or not row["item_id"].strip():
        return "empty user_id or item_id"
    try:
        history = ast.literal_eval(row["history_item_id"] or "[]")
    except (ValueError, SyntaxError):
        return f"history_item_id {row['history_item_id'][:40]!r} is not a list of item ids"
    if not isinstance(history, list) or not all(isinstance(h, (int, str)) and not isinstance(h, bool) for h in history):
        return f"history_item_id {row['history_item_id'][:40]!r} is not a list of item ids"
    return row["user_id"], [str(h) for h in history], row["item_id"].strip()


def _user_frame(users: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"sequence": list(range(len(users))), "user": users})


def _without_text(table: ItemTable, had_item_file: bool) -> int:
    if not had_item_file:
        return len(table)
    return sum(1 for title in table.values["title"] if title is None)


def _identifiers(path: Path, table: ItemTable, log: ImportLog) -> dict[str, list[str]]:
    """Another system's identifiers keyed by canonical item id; items it does not know are reported."""
    walker = JsonWalker(read_text(path), path)
    found: dict[str, list[str]] = {}
    for key, value, line in walker.object_items():
        tokens = value if isinstance(value, list) else _split_tokens(value) if isinstance(value, str) else None
        if not tokens or not all(isinstance(t, str) for t in tokens):
            log.skip(path, line, f"item {key!r}: expected a list of tokens such as [\"<a_1>\", \"<b_7>\"]")
            continue
        item = table.ids.get(key)
        if item is None:
            log.skip(path, line, f"item {key!r} is not an item of the dataset")
            continue
        found[str(item)] = tokens
    return found


def _split_tokens(text: str) -> list[str]:
    return [f"<{part}" for part in text.split("<") if part]
