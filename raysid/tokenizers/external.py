"""External identifiers: a semantic-ID table produced elsewhere (another codebase, a paper's release), imported.

With ``path`` left empty, a trial on an imported dataset uses the identifier table imported with it
(``raysid data import amazon … --identifiers``), keyed by the trial's view of the items: naming the dataset
is enough. The file is a JSON object mapping every item id of the catalogue (a string of an int, "0", "1", …) to its
tokens, e.g. ``{"0": ["<a_1>", "<b_7>", "<c_0>"], …}``. A token is ``<prefix_index>``, ``<prefix.index>`` or
``<prefix-index>``; position p's prefix must be the same for every item and names that position, and its
codebook size is the largest index seen there plus one. fit reads and checks the table (every problem is a
ValueError naming the file); save keeps a copy, so a loaded tokenizer no longer needs the file. The tokenizer
needs no features (the pipeline builds none for it), and decode reconstructs nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from raysid.config import require
from raysid.tokenizers.base import TokenizerCapabilities, TokenizerInputs, check_fit_inputs, read_meta, write_meta
from raysid.tokenizers.kmeans import check_codes, check_modality_names, feature_rows

TOKEN = re.compile(r"<(?P<prefix>[^<>]+)[_.\-](?P<index>\d+)>")  # greedy prefix: "<text_1_5>" is ("text_1", 5)
_ITEM_ID = re.compile(r"0|[1-9][0-9]*")
_RESERVED = ("t", "item_id", "sid")  # the tie-break position and SemanticIds' frame columns
_SHOWN = 5  # items named in an error message


@dataclass(frozen=True)
class ExternalConfig:
    """Where the identifier table lies."""

    path: str = ""  # JSON file {item_id: [token, …]}; "" = the identifier table imported with the trial's dataset
    modalities: tuple[str, ...] = ()  # unused: the identifiers are given, no features are read (kept so studies parse)
    seed: int = 0  # unused: the identifiers are given

    tiny: ClassVar[dict[str, Any]] = {}  # nothing to shrink

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", tuple(self.modalities))
        check_modality_names(self.modalities, "tokenizer.modalities")

    def capabilities(self) -> TokenizerCapabilities:
        """A given table: no features, no seed, nothing to reconstruct or quantize. Without ``path`` it reads the
        table imported with the trial's dataset (the pipeline hands it over); with one, that file keys the stage."""
        return TokenizerCapabilities(needs_features=False, reads_dataset_identifiers=not self.path, input_file=self.path,
                                     reconstructs_inputs=False, quantizer=False, seeded=False)


def read_table(path: str, num_items: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes (num_items, positions) int64 and the position prefixes of the identifier table at ``path``."""
    require(bool(path), "tokenizer.path", "no identifier table given (path is empty)")
    try:
        table = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"identifier table {path}: cannot read the file ({error})") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"identifier table {path}: not valid JSON ({error})") from error
    if not isinstance(table, dict):
        kind = type(table).__name__
        raise ValueError(f"identifier table {path}: expected a JSON object {{item_id: [token, …]}}, got {kind}")
    unknown = [key for key in table if not _ITEM_ID.fullmatch(key) or int(key) >= num_items]
    if unknown:
        raise ValueError(
            f"identifier table {path}: {len(unknown)} unknown item(s), ids must be integers in [0, {num_items}): "
            f"{', '.join(map(repr, unknown[:_SHOWN]))}{', …' if len(unknown) > _SHOWN else ''}"
        )
    missing = sorted(set(range(num_items)) - {int(key) for key in table})
    if missing:
        raise ValueError(
            f"identifier table {path}: {len(missing)} of the catalogue's {num_items} items are missing, e.g. "
            f"{', '.join(map(str, missing[:_SHOWN]))}{', …' if len(missing) > _SHOWN else ''}"
        )
    rows = [_parse_identifier(path, item, table[str(item)]) for item in range(num_items)]  # [(prefixes, indices)]
    return _check_positions(path, rows)


def _parse_identifier(path: str, item: int, tokens: Any) -> tuple[list[str], list[int]]:
    """(prefixes, indices) of one item's list of tokens."""
    if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
        raise ValueError(f"identifier table {path}: item {item}: expected a list of token strings, got {tokens!r}")
    prefixes, indices = [], []
    for position, token in enumerate(tokens):
        match = TOKEN.fullmatch(token)
        if match is None:
            raise ValueError(
                f"identifier table {path}: item {item}: token {token!r} at position {position} does not parse as "
                "<prefix_index>, <prefix.index> or <prefix-index>"
            )
        prefixes.append(match["prefix"])
        indices.append(int(match["index"]))
    return prefixes, indices


def _check_positions(path: str, rows: list[tuple[list[str], list[int]]]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Same length and same prefix per position for every item; distinct usable prefixes; the codes."""
    names, _ = rows[0]
    if not names:
        raise ValueError(f"identifier table {path}: item 0 has no tokens")
    for item, (prefixes, _) in enumerate(rows):
        if len(prefixes) != len(names):
            raise ValueError(
                f"identifier table {path}: item {item} has {len(prefixes)} tokens, expected {len(names)} like item 0"
            )
        if prefixes != names:
            position = next(p for p, (a, b) in enumerate(zip(prefixes, names)) if a != b)
            raise ValueError(
                f"identifier table {path}: position {position}: item {item} has prefix {prefixes[position]!r} but "
                f"item 0 has {names[position]!r}; a position's prefix must be the same for every item"
            )
    if len(set(names)) != len(names) or set(names) & set(_RESERVED):
        raise ValueError(
            f"identifier table {path}: position prefixes {names} must be distinct and not one of {_RESERVED}"
        )
    return np.array([indices for _, indices in rows], dtype=np.int64), tuple(names)


class ExternalTokenizer:
    """Identifiers read from a JSON table behind the ``Tokenizer`` contract; positions named by the prefixes."""

    def __init__(self, config: ExternalConfig):
        self.config = config
        self.codes: np.ndarray | None = None  # (items, positions) int64
        self.names: tuple[str, ...] = ()

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """Largest index at each position plus one."""
        return tuple(int(size) for size in self._codes().max(axis=0) + 1)

    @property
    def position_names(self) -> tuple[str, ...]:
        """The tokens' prefixes, e.g. ("a", "b", "c") for "<a_1><b_7><c_0>"."""
        self._codes()
        return self.names

    def fit(self, inputs: TokenizerInputs) -> ExternalTokenizer:
        """Read and check the table against the catalogue: ``config.path``, else the dataset's table
        (``inputs.identifiers``)."""
        num_items = check_fit_inputs(inputs, needs_features=False)
        path = self.config.path or (str(inputs.identifiers) if inputs.identifiers else "")
        self.codes, self.names = read_table(path, num_items)
        return self

    def _codes(self) -> np.ndarray:
        if self.codes is None:
            raise RuntimeError("ExternalTokenizer: call fit or load first")
        return self.codes

    def encode(self, features: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """The table's codes: (items, positions) int64; features, when given, must have the catalogue's rows."""
        codes = self._codes()
        if features is not None and feature_rows(features) != len(codes):
            raise ValueError(f"features: the identifier table has {len(codes)} items, got {feature_rows(features)} rows")
        return codes.copy()

    def decode(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        """``{}``: imported identifiers carry no content to reconstruct."""
        check_codes(codes, self.codebook_sizes)
        return {}

    def save(self, folder: Path) -> None:
        """Write ``tokenizer.json`` (config, prefixes) and ``codes.npy``."""
        codes = self._codes()
        np.save(write_meta(folder, self.config, names=list(self.names)) / "codes.npy", codes)

    @classmethod
    def load(cls, folder: Path) -> ExternalTokenizer:
        """Rebuild a tokenizer written by ``save``, without reading the original table."""
        config, meta = read_meta(folder, ExternalConfig)
        tokenizer = cls(config)
        tokenizer.names = tuple(meta["names"])
        tokenizer.codes = np.load(Path(folder) / "codes.npy")
        return tokenizer
