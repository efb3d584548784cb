"""Categorical modality: 3MToken's vectorisation of release date, tempo and key (Appendix A.3).

- release date, 18-d: normalised year (year - 1910) / (2025 - 1910); month as sin/cos of 2π(m-1)/12; day as
  sin/cos of 2π(d-1)/31; the decade one-hot over 11 bins (pre-1930, 1930s, …, 2020s); an imputation flag
  (1 when the date is missing or invalid) and an availability flag (1 when a valid date is present).
  A date with a year but no month/day (or an invalid one) keeps its year and decade; month/day are 0 then.
- tempo, 221-d: one-hot over 220 one-BPM bins for 30..249 BPM, plus the imputation bin (last index) for
  missing or out-of-range values.
- key, 25-d: one-hot over the 24 keys (pitch class 0..11, +12 for minor: the items' ``key`` column) plus the
  last index for missing or unknown keys.

3MToken reports 247 dimensions for tempo + key; 220 tempo bins + 1 imputation bin + 25 key classes are 246
(the text gives 220 bins "and" an imputation bin; the 247 would need one more bin than it describes).
Items columns read: ``release_year``, ``release_month``, ``release_day``, ``tempo``, ``key``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

FIRST_YEAR, LAST_YEAR = 1910, 2025
DECADES = 11  # pre-1930, 1930s, ..., 2020s
TEMPO_LOW, TEMPO_BINS = 30, 220  # 30..249 BPM
KEYS = 24
RELEASE_DIM, TEMPO_DIM, KEY_DIM = 18, TEMPO_BINS + 1, KEYS + 1
COLUMNS = ("release_year", "release_month", "release_day", "tempo", "key")


def release_date_vectors(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """(items,) float years/months/days (NaN = missing) -> (items, 18) float32."""
    year, month, day = (np.asarray(a, dtype=np.float64) for a in (year, month, day))
    valid = np.isfinite(year) & (year >= 1000) & (year <= 2100)
    exact = valid & np.isfinite(month) & np.isfinite(day) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)
    out = np.zeros((len(year), RELEASE_DIM), dtype=np.float32)
    out[:, 0] = np.where(valid, (year - FIRST_YEAR) / (LAST_YEAR - FIRST_YEAR), 0.0)
    month_angle = 2 * np.pi * (np.nan_to_num(month, nan=1.0) - 1) / 12
    day_angle = 2 * np.pi * (np.nan_to_num(day, nan=1.0) - 1) / 31
    out[:, 1] = np.where(exact, np.sin(month_angle), 0.0)
    out[:, 2] = np.where(exact, np.cos(month_angle), 0.0)
    out[:, 3] = np.where(exact, np.sin(day_angle), 0.0)
    out[:, 4] = np.where(exact, np.cos(day_angle), 0.0)
    decade = np.clip((np.nan_to_num(year, nan=0.0) - 1920) // 10, 0, DECADES - 1).astype(np.int64)  # 0 = pre-1930
    rows = np.flatnonzero(valid)
    out[rows, 5 + decade[rows]] = 1.0
    out[:, 16] = (~exact).astype(np.float32)  # imputation flag: missing or invalid date
    out[:, 17] = exact.astype(np.float32)  # availability flag
    return out


def tempo_vectors(tempo: np.ndarray) -> np.ndarray:
    """(items,) BPM (NaN = missing) -> (items, 221) float32 one-hot; the last bin is the imputation bin."""
    tempo = np.asarray(tempo, dtype=np.float64)
    bpm = np.floor(np.nan_to_num(tempo, nan=-1.0)).astype(np.int64) - TEMPO_LOW
    index = np.where((bpm >= 0) & (bpm < TEMPO_BINS), bpm, TEMPO_BINS)
    out = np.zeros((len(tempo), TEMPO_DIM), dtype=np.float32)
    out[np.arange(len(tempo)), index] = 1.0
    return out


def key_vectors(key: np.ndarray) -> np.ndarray:
    """(items,) key classes 0..23 (anything else = unknown) -> (items, 25) float32 one-hot."""
    key = np.asarray(key, dtype=np.float64)
    index = np.where(np.isfinite(key) & (key >= 0) & (key < KEYS), np.nan_to_num(key, nan=KEYS), KEYS).astype(np.int64)
    out = np.zeros((len(key), KEY_DIM), dtype=np.float32)
    out[np.arange(len(key)), index] = 1.0
    return out


def categorical_matrix(items: pl.DataFrame) -> np.ndarray:
    """(items, 18 + 221 + 25) float32: release date, tempo and key of every item row.

    Fails naming the columns when the items have none of them (the source carries no such metadata).
    """
    present = [c for c in COLUMNS if c in items.columns]
    if not present:
        raise ValueError(
            f"categorical modality: the items have none of the columns {', '.join(COLUMNS)} "
            f"(their columns: {', '.join(items.columns)})"
        )

    def column(name: str) -> np.ndarray:
        if name not in items.columns:
            return np.full(items.height, np.nan)
        return items[name].cast(pl.Float64, strict=False).to_numpy()

    return np.concatenate([
        release_date_vectors(column("release_year"), column("release_month"), column("release_day")),
        tempo_vectors(column("tempo")),
        key_vectors(column("key")),
    ], axis=1)
