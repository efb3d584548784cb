"""A prefix trie of every item's token sequence, in flat tensors, for constrained beam search.

Nodes are numbered per depth: depth 0 holds the root (node 0), depth d holds one node per distinct
length-d prefix, numbered in lexicographic order of the prefixes. The children of node n at depth d are
the depth-(d+1) nodes ``offsets[d][n] : offsets[d][n + 1]`` (a CSR layout, sorted by token), their tokens
are ``child_tokens[d][...]`` and a node at the last depth maps to its item through ``leaf_items``.
``children(d, nodes)`` turns a batch of nodes into padded (batch, max_children) tensors with one gather,
so beam search advances every beam of every user in one tensor op.
"""

from __future__ import annotations

import numpy as np
import torch

from raysid.semantic_ids.table import SemanticIds
from raysid.semantic_ids.vocab import Vocabulary


class PrefixTrie:
    """The trie of unique token sequences (items, depth); built with numpy sorting, stored as tensors."""

    def __init__(self, tokens: np.ndarray) -> None:
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] == 0:
            raise ValueError(f"a trie needs a non-empty (items, depth) token array, got shape {tokens.shape}")
        offsets, child_tokens, leaf_items = _build(tokens)
        self.depth = tokens.shape[1]  # number of tokens per identifier
        self.num_items = tokens.shape[0]
        self.offsets = [torch.from_numpy(o) for o in offsets]  # depth d: (nodes_d + 1,) into depth d+1
        self.child_tokens = [torch.from_numpy(t) for t in child_tokens]  # depth d: (nodes_{d+1},) token ids
        self.leaf_items = torch.from_numpy(leaf_items)  # (nodes_depth,) item id of each leaf
        self.max_children = [int(np.diff(o).max()) for o in offsets]  # widest node per depth

    @classmethod
    def from_semantic_ids(cls, sids: SemanticIds, vocab: Vocabulary | None = None) -> PrefixTrie:
        """The trie of the token ids of every item of ``sids`` (item ids 0..num_items-1)."""
        vocab = Vocabulary(sids) if vocab is None else vocab
        return cls(vocab.encode(np.arange(sids.num_items)))

    @property
    def num_nodes(self) -> list[int]:
        """Number of nodes at each depth 0..depth (1 root, …, one leaf per item)."""
        return [len(o) - 1 for o in self.offsets] + [len(self.leaf_items)]

    def to(self, device: torch.device | str) -> PrefixTrie:
        """Move the tensors to ``device`` (in place) and return self."""
        self.offsets = [o.to(device) for o in self.offsets]
        self.child_tokens = [t.to(device) for t in self.child_tokens]
        self.leaf_items = self.leaf_items.to(device)
        return self

    def children(
        self, depth: int, nodes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Allowed next tokens of ``nodes`` (batch,) at ``depth``, padded to the widest node of that depth.

        Returns (tokens, child_nodes, valid), each (batch, max_children): token ids sorted ascending,
        the depth+1 node reached by each token, and which slots are real. Padded slots repeat the first
        child so that every entry is a valid index.
        """
        if not 0 <= depth < self.depth:
            raise ValueError(f"depth must be in [0, {self.depth}), got {depth}")
        offsets = self.offsets[depth]
        nodes = torch.as_tensor(nodes, dtype=torch.int64, device=offsets.device)
        starts = offsets[nodes]  # (batch,)
        counts = offsets[nodes + 1] - starts  # (batch,)
        slots = torch.arange(self.max_children[depth], device=offsets.device)  # (max_children,)
        valid = slots < counts[:, None]  # (batch, max_children)
        child_nodes = starts[:, None] + torch.where(valid, slots, 0)  # (batch, max_children)
        return self.child_tokens[depth][child_nodes], child_nodes, valid

    def items(self, nodes: torch.Tensor) -> torch.Tensor:
        """Item ids (batch,) of leaf ``nodes`` (batch,) at the last depth."""
        nodes = torch.as_tensor(nodes, dtype=torch.int64, device=self.leaf_items.device)
        return self.leaf_items[nodes]


def _build(tokens: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """CSR offsets and child tokens per depth and the leaf -> item map, from lexicographically sorted rows."""
    order = np.lexsort(tokens.T[::-1])  # rows sorted by token 0, then token 1, …
    rows = tokens[order]  # (items, depth)
    node_of_row = np.zeros(len(rows), dtype=np.int64)  # node of each sorted row at the current depth
    is_new = np.zeros(len(rows), dtype=bool)  # row starts a new node at the current depth
    offsets, child_tokens = [], []
    for d in range(rows.shape[1]):
        is_new |= np.r_[True, rows[1:, d] != rows[:-1, d]]
        first = np.flatnonzero(is_new)  # (nodes_{d+1},) first sorted row of each depth-(d+1) node
        parent = node_of_row[first]  # (nodes_{d+1},) nondecreasing parent ids
        offsets.append(np.searchsorted(parent, np.arange(node_of_row[-1] + 2)).astype(np.int64))
        child_tokens.append(rows[first, d])
        node_of_row = np.cumsum(is_new) - 1
    if node_of_row[-1] + 1 != len(rows):
        duplicate = order[np.flatnonzero(~np.r_[True, (rows[1:] != rows[:-1]).any(axis=1)])[0]]
        raise ValueError(f"item {duplicate} shares its identifier with another item; identifiers must be unique")
    return offsets, child_tokens, order.astype(np.int64)
