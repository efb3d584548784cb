"""Vectorised decoding constrained by the prefix trie of valid identifiers, shared by the generative models.

At every depth a beam (or a teacher-forced identifier) may only continue with the children of its trie
node. The model's logits are restricted to those tokens and renormalised (a log-softmax over the allowed
tokens), so an item's score — the sum of these log-probabilities over its identifier — is a proper
log-probability over the catalogue: the scores of all items sum to one in probability. ``beam_step``
advances every beam of every user in one tensor op (no per-token Python callback); ``item_log_probs``
scores every item's identifier exactly with the same renormalisation, so a beam as wide as the catalogue
ranks exactly as the exact scores do.
"""

from __future__ import annotations

import math

import torch

from raysid.semantic_ids.trie import PrefixTrie


def initial_beams(users: int, beams: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(users, beams) scores with only the first beam of each user live (0, the rest -inf), and the
    (users*beams,) trie nodes (all the root)."""
    scores = torch.full((users, beams), -math.inf, device=device)
    scores[:, 0] = 0.0
    return scores, torch.zeros(users * beams, dtype=torch.int64, device=device)


def beam_step(
    logits: torch.Tensor, scores: torch.Tensor, nodes: torch.Tensor, depth: int, trie: PrefixTrie
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One constrained beam step: extend every beam by each allowed token, keep the best ``beams`` per user.

    ``logits`` (users*beams, vocab) are the next-token logits of each beam, ``scores`` (users, beams) the
    beams' log-probabilities so far, ``nodes`` (users*beams,) their trie nodes at ``depth``. Returns the
    new (users, beams) scores, sorted best first, and the (users*beams,) chosen tokens, trie nodes at
    depth + 1 and parent beams (global row indices into the previous users*beams rows, to reorder caches).
    """
    users, beams = scores.shape
    allowed, children, valid = trie.children(depth, nodes)  # (users*beams, max_children)
    width = allowed.shape[1]
    log_probs = logits.float().gather(1, allowed).masked_fill(~valid, -math.inf).log_softmax(dim=-1)
    candidates = (scores.view(-1, 1) + log_probs).view(users, beams * width)  # (users, beams*max_children)
    scores, flat = candidates.topk(beams, dim=1)  # (users, beams)
    user_offset = torch.arange(users, device=scores.device)[:, None] * beams
    parents = (user_offset + flat // width).view(-1)  # (users*beams,)
    slots = (flat % width).view(-1)
    return scores, allowed[parents, slots], children[parents, slots], parents


def finished_items(scores: torch.Tensor, nodes: torch.Tensor, trie: PrefixTrie) -> torch.Tensor:
    """(users, beams) item ids of the leaf ``nodes`` (users*beams,) after the last step; -1 for dead beams."""
    items = trie.items(nodes).view(scores.shape)
    return torch.where(torch.isfinite(scores), items, -1)


def item_paths(trie: PrefixTrie, tokens: torch.Tensor) -> torch.Tensor:
    """(items, depth) trie node of every identifier ``tokens`` (items, depth) before each of its tokens.

    Column 0 is the root; column d is the node reached by the first d tokens. ValueError if a row is not
    an identifier of the trie.
    """
    tokens = torch.as_tensor(tokens, dtype=torch.int64, device=trie.leaf_items.device)
    nodes = torch.zeros(len(tokens), dtype=torch.int64, device=tokens.device)
    path = []
    for depth in range(trie.depth):
        path.append(nodes)
        allowed, children, valid = trie.children(depth, nodes)  # (items, max_children)
        match = (allowed == tokens[:, depth : depth + 1]) & valid
        if not match.any(dim=1).all():
            row = int((~match.any(dim=1)).nonzero()[0])
            raise ValueError(f"row {row} of tokens {tokens[row].tolist()} is not an identifier of the trie")
        nodes = children.gather(1, match.int().argmax(dim=1, keepdim=True)).squeeze(1)
    return torch.stack(path, dim=1)


class TokenChoices:
    """For each item and depth: the tokens its trie node allows and which one is the item's own.

    Precomputed once per trie so that ``log_probs`` scores a chunk of items with two gathers.
    """

    def __init__(self, trie: PrefixTrie, tokens: torch.Tensor) -> None:
        """``tokens`` (items, depth) are the identifiers of the items, in item-id order."""
        tokens = torch.as_tensor(tokens, dtype=torch.int64, device=trie.leaf_items.device)
        paths = item_paths(trie, tokens)  # (items, depth)
        self.allowed, self.valid, self.slots = [], [], []
        for depth in range(trie.depth):
            allowed, _, valid = trie.children(depth, paths[:, depth])  # (items, max_children)
            self.allowed.append(allowed)
            self.valid.append(valid)
            self.slots.append(((allowed == tokens[:, depth : depth + 1]) & valid).int().argmax(dim=1))  # (items,)

    def to(self, device: torch.device | str) -> TokenChoices:
        """Move the tensors to ``device`` (in place) and return self."""
        for tensors in (self.allowed, self.valid, self.slots):
            tensors[:] = [t.to(device) for t in tensors]
        return self

    def log_probs(self, logits: torch.Tensor, depth: int, items: torch.Tensor) -> torch.Tensor:
        """(..., n) renormalised log-probability of the depth-``depth`` token of each of ``items`` (n,),
        from next-token ``logits`` (..., n, vocab) computed after the item's first ``depth`` tokens."""
        allowed = self.allowed[depth][items]  # (n, max_children)
        lead = logits.shape[:-2]
        gathered = logits.float().gather(-1, allowed.expand(*lead, *allowed.shape))  # (..., n, max_children)
        log_probs = gathered.masked_fill(~self.valid[depth][items], -math.inf).log_softmax(dim=-1)
        slots = self.slots[depth][items].expand(*lead, len(items)).unsqueeze(-1)  # (..., n, 1)
        return log_probs.gather(-1, slots).squeeze(-1)
