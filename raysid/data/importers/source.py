"""A trial's ``dataset`` section: the built-in catalog (default) or an imported dataset and its features.

```yaml
dataset:
  source: imported          # "catalog" (default: the CatalogConfig keys) or "imported"
  name: mpd-5365            # imported with `raysid data import mpd PATH --name mpd-5365`
  min_item_count: 20        # the view a trial uses: drop rarer items, truncate, drop sequences shorter than min_length
  max_sequences: 2000       # a seeded sample of the sequences (0 = all)
  modalities: [text, playlist_text, cooccurrence]   # item features to extract; [] = the dataset kind's defaults
  text: {template: "{title} by {artist}"}
  cooccurrence: {dim: 128, epochs: 5}
```

The dataset stage of an imported dataset (``raysid.pipeline.dataset``) loads it and applies the view
(``build_view``: sample, truncate, filter, renumber items 0..n-1 keeping ``source_item``); this module holds
the config and those pure functions of frames and arrays. Which modalities a trial extracts is
``resolve_extraction``'s answer: the study's list, or the dataset kind's defaults that its items can supply.
An identifier table imported with the data (``identifiers.json``) is re-keyed by the view's item ids
(``view_identifiers``) for the ``external`` tokenizer left without a path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from raysid.config import ConfigError, build, require
from raysid.data.catalog import CatalogConfig
from raysid.data.dataset import Dataset
from raysid.data.importers.store import dataset_folder, resolve_root
from raysid.features.cooccurrence_config import CooccurrenceConfig
from raysid.features.modalities import default_modalities
from raysid.features.text import TextConfig

SOURCES = ("catalog", "imported")
IDENTIFIERS = "identifiers.json"  # another system's identifier table, in the import's and in the view's folder


@dataclass(frozen=True)
class ImportedConfig:
    """An imported dataset and the view of it a trial uses; config section ``dataset`` with ``source: imported``."""

    source: str = "imported"
    name: str = ""  # dataset name under the root (raysid data import … --name NAME)
    root: str = ""  # dataset root; "" = $RAYSID_DATA_DIR or data/datasets
    path: str = ""  # a dataset folder, instead of name + root
    min_item_count: int = 1  # keep items occurring at least this often in the view's sequences (0 keeps all items)
    min_length: int = 3  # then drop sequences shorter than this
    max_length: int = 0  # then keep the last (most recent) max_length remaining items of each sequence (0 = all)
    max_sequences: int = 0  # a sample of this many sequences, drawn with ``seed`` (0 = all)
    seed: int = 0  # the sample of sequences
    modalities: tuple[str, ...] = ()  # item features to extract; () = the dataset kind's defaults
    text: TextConfig = field(default_factory=TextConfig)  # the text and playlist_text modalities
    cooccurrence: CooccurrenceConfig = field(default_factory=CooccurrenceConfig)  # the cooccurrence modality

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", tuple(self.modalities))
        require(self.source == "imported", "dataset.source", f"expected 'imported', got {self.source!r}")
        require(bool(self.name) != bool(self.path), "dataset.name",
                "give the imported dataset's name (or a dataset folder as dataset.path), not both and not neither")
        for name in ("min_item_count", "max_length", "max_sequences", "seed"):
            value = getattr(self, name)
            require(value >= 0, f"dataset.{name}", f"expected an integer >= 0, got {value}")
        require(self.min_length >= 1, "dataset.min_length", f"expected an integer >= 1, got {self.min_length}")
        for name in self.modalities:
            require(self.modalities.count(name) == 1, "dataset.modalities", f"{name!r} is listed more than once")

    def folder(self) -> Path:
        """The imported dataset's folder (fails naming the datasets that exist when it is missing)."""
        if self.path:
            folder = resolve_root(self.path)
            if not (folder / "dataset.json").exists():
                raise ConfigError(f"dataset.path: {folder} is not a dataset folder (no dataset.json)")
            return folder
        return dataset_folder(self.name, self.root or None)

    def view(self) -> dict[str, int]:
        """The parameters that choose the view's items and sequences."""
        keys = ("min_item_count", "min_length", "max_length", "max_sequences", "seed")
        return {key: getattr(self, key) for key in keys}


def parse_dataset_config(data: Any, where: str = "config.dataset") -> CatalogConfig | ImportedConfig:
    """The ``dataset`` section: ``source: imported`` builds an ImportedConfig, anything else the catalog's."""
    if isinstance(data, (CatalogConfig, ImportedConfig)):
        return data
    data = dict(data or {})
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    source = data.pop("source", "catalog")
    require(source in SOURCES, f"{where}.source", f"got {source!r}; valid choices are: {', '.join(map(repr, SOURCES))}")
    if source == "catalog":
        return build(CatalogConfig, data, where)
    return build(ImportedConfig, data, where)


@dataclass(frozen=True)
class Extraction:
    """Which item features an imported dataset's trial extracts, with the dataset's defaults filled in."""

    modalities: tuple[str, ...]
    text: TextConfig
    cooccurrence: CooccurrenceConfig


def resolve_extraction(config: ImportedConfig, meta: Mapping[str, Any]) -> Extraction:
    """The modalities (default: the dataset kind's) and the text template (default: the dataset's)."""
    modalities = config.modalities or default_modalities(meta)
    template = config.text.template or meta.get("text_template", "")
    return Extraction(modalities, replace(config.text, template=template), config.cooccurrence)


def view_identifiers(table: Mapping[str, Any], source_items: list[int]) -> dict[str, Any]:
    """The import's identifier table keyed by the view's item ids (``source_items[item_id]`` = the import's id);
    items the table lacks are left out (the ``external`` tokenizer then names them)."""
    return {str(item): table[str(old)] for item, old in enumerate(source_items) if str(old) in table}


def build_view(dataset: Dataset, info: pl.DataFrame | None, config: ImportedConfig) -> tuple[Dataset, pl.DataFrame | None]:
    """The view: a seeded sample of sequences; items occurring fewer than ``min_item_count`` times in it
    removed; each sequence truncated to its last (most recent) ``max_length`` remaining items; sequences shorter than
    ``min_length`` dropped; items renumbered 0..n-1 in their old order (``source_item`` = old id)."""
    chosen = np.arange(len(dataset.sequences))
    if config.max_sequences and config.max_sequences < len(chosen):
        chosen = np.sort(np.random.default_rng(config.seed).choice(len(chosen), config.max_sequences, replace=False))
    sequences = [dataset.sequences[i] for i in chosen]
    feedback = [dataset.feedback[i] for i in chosen] if dataset.feedback is not None else None
    counts = np.bincount(np.concatenate(sequences), minlength=dataset.num_items) if sequences else np.zeros(dataset.num_items)
    keep_item = counts >= config.min_item_count
    cut = slice(-config.max_length if config.max_length else None, None)  # after the filter: the most recent kept items
    kept_rows, kept_sequences, kept_feedback = [], [], []
    for row, sequence in enumerate(sequences):
        mask = keep_item[sequence]
        if min(mask.sum(), config.max_length or mask.sum()) >= config.min_length:
            kept_rows.append(row)
            kept_sequences.append(sequence[mask][cut])
            if feedback is not None:
                kept_feedback.append(feedback[row][mask][cut])
    used = np.zeros(dataset.num_items, dtype=bool)
    for sequence in kept_sequences:
        used[sequence] = True
    items = np.flatnonzero(used | (keep_item if config.min_item_count == 0 else False))
    if not kept_sequences:
        raise ConfigError(
            f"dataset {dataset.name!r}: the view keeps no sequence (min_item_count={config.min_item_count}, "
            f"min_length={config.min_length}, max_length={config.max_length}); loosen them"
        )
    renumber = np.full(dataset.num_items, -1, dtype=np.int64)
    renumber[items] = np.arange(len(items))
    frame = dataset.items[items.tolist()].rename({"item_id": "source_item"})
    frame = frame.with_columns(item_id=pl.Series(np.arange(len(items), dtype=np.int64))).select(
        ["item_id", *[c for c in frame.columns if c != "item_id"]])
    modalities = {name: matrix[items] for name, matrix in dataset.modalities.items()}
    meta = {**dataset.meta, "view": {**config.view(), "sequences": len(kept_sequences), "items": len(items),
                                     "interactions": int(sum(len(s) for s in kept_sequences))}}
    view = Dataset(dataset.name, frame, modalities, [renumber[s] for s in kept_sequences], meta,
                   kept_feedback if feedback is not None else None)
    if info is not None:
        info = info[chosen[kept_rows].tolist()].rename({"sequence": "source_sequence"}).with_columns(
            sequence=pl.Series(np.arange(len(kept_rows), dtype=np.int64)))
    return view, info

