"""The token vocabulary of a semantic-ID table: special tokens, then one token range per position.

Token ids: ``pad = 0`` (also T5's decoder start), ``eos = 1``, then the codes of position 0 at
``offsets[0] + code``, of position 1 at ``offsets[1] + code``, … so that the same code at two positions
(``<s1.3>`` and ``<s2.3>``) is two different tokens, as in MusicRec's prefixed identifiers.
"""

from __future__ import annotations

import numpy as np

from raysid.semantic_ids.table import SemanticIds, token_string

PAD = 0  # padding token, also the decoder start token
EOS = 1  # end of sequence
NUM_SPECIAL = 2


class Vocabulary:
    """Token ids of every (position, code) of a ``SemanticIds`` table."""

    pad = PAD
    eos = EOS

    def __init__(self, sids: SemanticIds) -> None:
        self.sids = sids
        sizes = np.array(sids.codebook_sizes, dtype=np.int64)
        self.offsets = NUM_SPECIAL + np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)  # (positions,)
        self.size = int(NUM_SPECIAL + sizes.sum())

    def encode(self, item_ids: np.ndarray) -> np.ndarray:
        """(n, positions) int64 token ids of the identifiers of ``item_ids`` (n,)."""
        item_ids = np.asarray(item_ids, dtype=np.int64)
        bad = (item_ids < 0) | (item_ids >= self.sids.num_items)
        if bad.any():
            raise ValueError(f"item id {int(item_ids[bad][0])} is outside [0, {self.sids.num_items})")
        return self.sids.codes[item_ids] + self.offsets

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Codes (n, positions) of token ids (n, positions); ValueError for a token outside its position."""
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1, len(self.offsets))
        codes = tokens - self.offsets
        sizes = np.array(self.sids.codebook_sizes, dtype=np.int64)
        bad = (codes < 0) | (codes >= sizes)
        if bad.any():
            row, position = np.argwhere(bad)[0]
            raise ValueError(
                f"token {tokens[row, position]} in row {row} is not a token of position "
                f"{self.sids.position_names[position]!r} (ids {self.offsets[position]}.."
                f"{self.offsets[position] + sizes[position] - 1})"
            )
        return codes

    def token_strings(self) -> list[str]:
        """The string of every token id: ["<pad>", "<eos>", "<s1.0>", "<s1.1>", …]."""
        strings = ["<pad>", "<eos>"]
        for name, size in zip(self.sids.position_names, self.sids.codebook_sizes):
            strings.extend(token_string(name, code) for code in range(size))
        return strings

    def __len__(self) -> int:
        return self.size
