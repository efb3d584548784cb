"""Amazon Reviews 2018 files, as the MusicRec / TIGER line of work prepares them.

- reviews (PATH): JSON lines, one review per line (``reviewerID``, ``asin``, ``unixReviewTime``, ``overall``,
  …), plain or gzipped, e.g. ``Office_Products_5.json.gz``. A line that is not JSON is read as a Python
  literal dict (some lines of the published files are); a line that is neither, or lacks one of the three
  fields, is reported with its line and left out. A user's repeated review of the same item keeps the first in the file.
- metadata (``metadata``, optional): JSON lines (or Python-literal dicts), plain or gzipped, e.g.
  ``meta_Office_Products.json.gz``, with ``asin``, ``title``, ``brand``, ``category`` (a list) or
  ``categories`` (nested lists) and ``description`` (a string or a list); only the items that survive the
  filter are kept. PATH may be a folder: its ``meta_*`` file (when there is one) is the metadata, the other
  ``.json``/``.json.gz``/``.jsonl`` files are reviews.

Each user's reviews are ordered by ``unixReviewTime`` (ties in file order), then the k-core filter removes
users and items with fewer than ``core`` interactions, again and again until none is left (default 5, the
5-core of the papers), then each sequence keeps its last ``max_history + 1`` items, so the test history
(every item but the last) holds the ``max_history`` most recent items (default 20; 0 keeps all). Items are
numbered in order of first sight in the users' sequences, users in order of their first review.
"""

from __future__ import annotations

import ast
import json
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

from raysid.data.dataset import Dataset
from raysid.data.importers.amazon import as_text
from raysid.data.importers.base import (
    DataImportError,
    Imported,
    ImportLog,
    ItemTable,
    as_sequences,
    files_in,
    read_lines,
)

REVIEW_FIELDS = ("reviewerID", "asin", "unixReviewTime")
TEXT_FIELDS = ("title", "brand", "categories", "description")


def import_amazon_reviews(path: Path, name: str, metadata: Path | None = None, core: int = 5,
                          max_history: int = 20) -> Imported:
    """Chronological k-core user sequences of the review file(s) at ``path`` and, with ``metadata``, item text."""
    if core < 1 or max_history < 0:
        raise DataImportError(f"{path}: expected core >= 1 and max_history >= 0, got core={core}, max_history={max_history}")
    log = ImportLog()
    sources, found = _review_files(Path(path))
    metadata = metadata or found
    by_user: dict[str, list[tuple[int, int, str]]] = {}  # user -> [(time, file order, asin)]
    duplicates = 0
    for source in sources:
        duplicates += _read_reviews(source, by_user, log)
    if not by_user:
        raise DataImportError(f"{path}: no readable review ({log.skipped} lines skipped)")
    ordered = {user: [asin for _, _, asin in sorted(reviews)] for user, reviews in by_user.items()}
    kept, dropped = core_filter(ordered, core)
    if not kept:
        raise DataImportError(f"{path}: no user and item keep {core} interactions each (the {core}-core is empty)")
    users = list(kept)
    cut = max_history + 1 if max_history else None
    table = ItemTable("asin", TEXT_FIELDS)
    sequences = [[table.id_of(asin) for asin in (kept[user][-cut:] if cut else kept[user])] for user in users]
    truncated = sum(len(kept[user]) for user in users) - sum(len(s) for s in sequences)
    without_text = _read_metadata(Path(metadata), table, log) if metadata else len(table)
    filtered = {"core": core, "max_history": max_history, "duplicate_reviews": duplicates, **dropped,
                "interactions_truncated": truncated}
    meta = {"kind": "amazon-reviews", "source": str(Path(path).resolve()), "files": [str(s) for s in sources],
            "item_file": str(metadata) if metadata else None, "items_without_text": without_text,
            "filter": filtered}
    frame = table.frame()
    meta["text_template"] = text_template(frame.columns)
    dataset = Dataset(name, frame, {}, as_sequences(sequences), meta)
    notes = (f"{core}-core filter dropped {dropped['users_dropped']:,} users, {dropped['items_dropped']:,} items, "
             f"{dropped['interactions_dropped']:,} interactions; {duplicates:,} repeated reviews left out; "
             f"histories capped at {max_history or 'all'} items ({truncated:,} older interactions left out); "
             f"{without_text:,} items without metadata",)
    return Imported(dataset, log, sequence_info=pl.DataFrame({"sequence": range(len(users)), "user": users}),
                    notes=notes)


def _review_files(path: Path) -> tuple[list[Path], Path | None]:
    """The review files at ``path``; in a folder, ``meta_*`` files are metadata (the one there is used)."""
    files = files_in(path, (".json", ".json.gz", ".jsonl", ".jsonl.gz"), "review files")
    if not path.is_dir():
        return files, None
    metadata = [f for f in files if f.name.startswith("meta_")]
    reviews = [f for f in files if not f.name.startswith("meta_")]
    if not reviews:
        raise DataImportError(f"{path}: the folder holds only metadata files ({', '.join(f.name for f in metadata)})")
    return reviews, metadata[0] if len(metadata) == 1 else None


def core_filter(sequences: dict[str, list[str]], core: int) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Drop users and items with fewer than ``core`` interactions until every one left has at least ``core``;
    the kept sequences (order kept) and the users, items and interactions dropped."""
    items_before = len({item for sequence in sequences.values() for item in sequence})
    interactions_before = sum(len(s) for s in sequences.values())
    current = dict(sequences)
    while True:
        counts = Counter(item for sequence in current.values() for item in sequence)
        rare = {item for item, count in counts.items() if count < core}
        pruned = {user: [i for i in sequence if i not in rare] for user, sequence in current.items()}
        pruned = {user: sequence for user, sequence in pruned.items() if len(sequence) >= core}
        if not rare and len(pruned) == len(current):
            break
        current = pruned
    items_after = len({item for sequence in current.values() for item in sequence})
    return current, {"users_dropped": len(sequences) - len(current), "items_dropped": items_before - items_after,
                     "interactions_dropped": interactions_before - sum(len(s) for s in current.values())}


def text_template(columns: list[str]) -> str:
    """The item text: title, brand, categories and description, those the items have, joined by '. '."""
    return ". ".join(f"{{{field}}}" for field in TEXT_FIELDS if field in columns)


def parse_line(line: str) -> Any:
    """A JSON value, or a Python literal (the published files hold some ``{'asin': …}`` lines); None if neither."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _read_reviews(path: Path, by_user: dict[str, list[tuple[int, int, str]]], log: ImportLog) -> int:
    """Add the reviews of one file to ``by_user``; the number of repeated (user, item) reviews left out."""
    seen: set[tuple[str, str]] = {(user, asin) for user, reviews in by_user.items() for _, _, asin in reviews}
    order, duplicates = sum(len(r) for r in by_user.values()), 0
    for line, text in read_lines(path):
        if not text.strip():
            continue
        review = _review(parse_line(text.strip()))
        if isinstance(review, str):
            log.skip(path, line, review)
            continue
        user, asin, time = review
        if (user, asin) in seen:
            duplicates += 1
            continue
        seen.add((user, asin))
        by_user.setdefault(user, []).append((time, order, asin))
        order += 1
    return duplicates


def _review(value: Any) -> tuple[str, str, int] | str:
    """(user, asin, unix time) of one parsed line, or the reason it cannot be read."""
    if not isinstance(value, dict):
        return "not a JSON object (nor a Python dict literal)"
    missing = [name for name in REVIEW_FIELDS if value.get(name) in (None, "")]
    if missing:
        return f"review without {', '.join(missing)}"
    time = value["unixReviewTime"]
    if isinstance(time, bool) or not isinstance(time, (int, float, str)) or not str(time).strip().isdigit():
        return f"unixReviewTime {time!r} is not a whole number of seconds"
    return str(value["reviewerID"]), str(value["asin"]), int(time)


def _read_metadata(path: Path, table: ItemTable, log: ImportLog) -> int:
    """Fill the text fields of the table's items from the metadata file; the number of items it lacks."""
    found: set[int] = set()
    for line, text in read_lines(path):
        if not text.strip():
            continue
        value = parse_line(text.strip())
        if not isinstance(value, dict) or not value.get("asin"):
            log.skip(path, line, "not a metadata object with an asin")
            continue
        item = table.ids.get(str(value["asin"]))
        if item is None or item in found:
            continue
        found.add(item)
        for field, text_value in item_text_fields(value).items():
            table.values[field][item] = text_value
    return len(table) - len(found)


def item_text_fields(value: dict[str, Any]) -> dict[str, str | None]:
    """title, brand, categories (``category`` list or nested ``categories``, flattened, repeats dropped) and
    description (a list joined) of one metadata record, as text (None when empty)."""
    categories = value.get("category") or value.get("categories") or []
    flat = []
    for entry in categories if isinstance(categories, list) else [categories]:
        for name in entry if isinstance(entry, list) else [entry]:
            name = as_text(name)
            if name and name not in flat:
                flat.append(name)
    return {"title": as_text(value.get("title")), "brand": as_text(value.get("brand")),
            "categories": ", ".join(flat) or None, "description": as_text(value.get("description"))}
