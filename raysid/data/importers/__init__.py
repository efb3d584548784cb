"""Importers of the papers' dataset formats into the canonical ``Dataset``; one file per format.

``import_dataset(kind, path, name)`` reads a source and ``store.save_import`` writes it to a named dataset
folder (``raysid data import KIND PATH --name NAME``). ``source.ImportedConfig`` is the trial config that
points a study at an imported dataset.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from raysid.config import ConfigError
from raysid.data.importers.amazon import import_amazon
from raysid.data.importers.amazon_reviews import import_amazon_reviews
from raysid.data.importers.base import DataImportError, Imported, ImportLog
from raysid.data.importers.mpd import import_mpd
from raysid.data.importers.recbole import import_recbole
from raysid.data.importers.spotify_skip import import_spotify_skip

IMPORTERS: dict[str, Callable[..., Imported]] = {
    "mpd": import_mpd,
    "spotify-skip": import_spotify_skip,
    "amazon": import_amazon,
    "amazon-reviews": import_amazon_reviews,
    "recbole": import_recbole,
}
OPTIONS = {  # keyword options each importer accepts beyond (path, name)
    "mpd": (),
    "spotify-skip": ("features",),
    "amazon": ("items", "identifiers", "category"),
    "amazon-reviews": ("metadata", "core", "max_history"),
    "recbole": (),
}


def import_dataset(kind: str, path: str | Path, name: str, **options: Any) -> Imported:
    """Read ``path`` with the importer of ``kind``; options not given (None) are left to the importer."""
    if kind not in IMPORTERS:
        raise ConfigError(f"unknown dataset kind {kind!r}; valid kinds are: {', '.join(IMPORTERS)}")
    given = {key: value for key, value in options.items() if value is not None}
    unknown = sorted(set(given) - set(OPTIONS[kind]))
    if unknown:
        raise ConfigError(f"{kind} import does not take {', '.join(unknown)}; it takes: {', '.join(OPTIONS[kind]) or 'no options'}")
    return IMPORTERS[kind](Path(path), name, **given)


__all__ = ["IMPORTERS", "DataImportError", "ImportLog", "Imported", "import_dataset"]
