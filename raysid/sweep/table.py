"""The trial table: one row per trial, every column of every trial, each with one declared type.

Polars infers a frame's schema from its first 100 rows by default, which drops a metric that only later
trials report and would store numbers as strings where rows disagree. Here every column's type is decided
from all of its values: booleans, integers, floats (ints and floats mixed), strings; lists, tuples and
mappings become JSON strings; a column of mixed kinds falls back to strings. Metric columns (named
``prefix/metric``) are always Float64.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

TEXT_COLUMNS = ("trial_id", "stage_keys/result", "artifact_dir")  # "a/b" names that are not metrics


def trial_table(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """A frame with the union of the rows' columns (in first-seen order), each typed from all its values."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    columns = [_column(name, [row.get(name) for row in rows]) for name in names]
    return pl.DataFrame(columns) if columns else pl.DataFrame()


def _column(name: str, values: list[Any]) -> pl.Series:
    values = [_plain(v) for v in values]
    dtype = pl.Float64 if _is_metric(name) else _dtype(values)
    if dtype == pl.String:
        values = [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values]
    elif dtype == pl.Float64:
        values = [None if v is None or not math.isfinite(float(v)) else float(v) for v in values]
    return pl.Series(name, values, dtype=dtype)


def _is_metric(name: str) -> bool:
    return "/" in name and not name.startswith(("config.", "provenance.")) and name not in TEXT_COLUMNS


def _plain(value: Any) -> Any:
    """Tuples as lists, mappings as dicts: what JSON can write."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _dtype(values: list[Any]) -> pl.DataType:
    present = [v for v in values if v is not None]
    if not present:
        return pl.String
    if all(isinstance(v, bool) for v in present):
        return pl.Boolean
    if any(isinstance(v, bool) for v in present):
        return pl.String
    if all(isinstance(v, int) for v in present):
        return pl.Int64
    if all(isinstance(v, (int, float)) for v in present):
        return pl.Float64
    return pl.String
