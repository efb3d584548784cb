"""Exact full-catalogue ranking for T5, and the invalid-generation rate of unconstrained decoding.

``exact_scores`` scores every item's identifier by teacher forcing: the encoder runs once per user, then
all items' identifiers go through the decoder in batches (decoder input ``<pad> t_0 … t_{L-2}``). An
item's score is the same quantity the constrained beam search ranks by (``T5Recommender.beam_search``,
``raysid.recommenders.constrained``, whose ``TokenChoices`` does the renormalisation here): at each position the logits are restricted to the children of the identifier's trie node and
renormalised (log-softmax over the allowed tokens), and the item's score is the sum over its L tokens of
these log-probabilities; the eos after the last position is implied and not scored. So a beam as wide as
the catalogue returns exactly the ``exact_topk`` ranking, with the same scores up to float rounding.

``generate_unconstrained`` decodes with plain ``transformers`` beam search (greedy for one beam) over
the whole vocabulary, and ``invalid_rate`` is the share of generated identifiers that are not a real
item: a token outside its position's range (pad, eos, another position's code) or a code combination
no item has. ``invalid_generation_rate`` chains the two.
"""

from __future__ import annotations

import numpy as np
import torch

from raysid.metrics.report import invalid_rate
from raysid.recommenders.base import validate_histories
from raysid.recommenders.constrained import TokenChoices
from raysid.recommenders.t5 import Samples, T5Recommender
from raysid.semantic_ids.table import SemanticIds
from raysid.semantic_ids.vocab import PAD, Vocabulary

DEFAULT_ROWS = 4096  # decoder rows (user, item) per forward pass of exact_scores


@torch.no_grad()
def exact_scores(
    recommender: T5Recommender, histories: list[np.ndarray], max_rows: int = DEFAULT_ROWS
) -> np.ndarray:
    """(users, items) float32: log p(identifier | history) of every item, renormalised over trie children.

    Runs in float32 (no autocast) with the model in eval mode; ``max_rows`` bounds the (user, item) rows
    of one decoder pass (memory ~ max_rows x positions x vocabulary floats).
    """
    validate_histories(histories, recommender.num_items)
    if max_rows < 1:
        raise ValueError(f"max_rows must be a positive integer, got {max_rows}")
    model = recommender.model.eval()
    num_items = recommender.num_items
    item_tokens = torch.as_tensor(recommender.vocab.encode(np.arange(num_items)), device=recommender.device)
    choices = TokenChoices(recommender.trie, item_tokens)
    decoder_input_ids = _decoder_inputs(item_tokens)  # (items, positions)
    samples = Samples.from_histories(histories, None, recommender.device)
    users_per_block = max(1, max_rows // num_items)
    items_per_block = min(num_items, max_rows)
    scores = np.empty((len(histories), num_items), dtype=np.float32)
    for start in range(0, len(histories), users_per_block):
        index = torch.arange(start, min(start + users_per_block, len(histories)), device=recommender.device)
        input_ids, mask = recommender.encoder_inputs(samples.history_items(index, recommender.config.max_history))
        encoded = model.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state  # (users, src, d)
        for first in range(0, num_items, items_per_block):
            items = torch.arange(first, min(first + items_per_block, num_items), device=recommender.device)
            block = _score_block(model, choices, decoder_input_ids, encoded, mask, items)  # (users, block items)
            scores[start : start + len(index), first : first + len(items)] = block.cpu().numpy()
    return scores


def _decoder_inputs(item_tokens: torch.Tensor) -> torch.Tensor:
    """(items, positions) teacher-forcing decoder inputs: pad (the decoder start), then all but the last token."""
    start = torch.full((len(item_tokens), 1), PAD, dtype=torch.int64, device=item_tokens.device)
    return torch.cat([start, item_tokens[:, :-1]], dim=1)


def _score_block(
    model, choices: TokenChoices, decoder_input_ids: torch.Tensor, encoded: torch.Tensor, mask: torch.Tensor,
    items: torch.Tensor,
) -> torch.Tensor:
    """(users, len(items)) renormalised log-likelihood of ``items`` for users with encoder output (users, src, d)."""
    users, count = len(encoded), len(items)
    hidden = encoded[:, None].expand(users, count, *encoded.shape[1:]).reshape(users * count, *encoded.shape[1:])
    rows_mask = mask[:, None].expand(users, count, mask.shape[1]).reshape(users * count, -1)
    inputs = decoder_input_ids[items].repeat(users, 1)  # (users*count, positions)
    logits = model(encoder_outputs=(hidden,), attention_mask=rows_mask, decoder_input_ids=inputs).logits
    logits = logits.view(users, count, *logits.shape[1:])  # (users, count, positions, vocab)
    return sum(choices.log_probs(logits[:, :, depth], depth, items) for depth in range(logits.shape[2]))


def exact_topk(
    recommender: T5Recommender, histories: list[np.ndarray], k: int, max_rows: int = DEFAULT_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """(users, k) int64 items and float32 scores of the k best identifiers by ``exact_scores``, best first.

    Ties are broken by the lower item id (a stable sort of the negated scores).
    """
    if not 1 <= k <= recommender.num_items:
        raise ValueError(f"k={k} must be in [1, {recommender.num_items}] (the catalogue size)")
    scores = exact_scores(recommender, histories, max_rows)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order.astype(np.int64), np.take_along_axis(scores, order, axis=1)


# --------------------------------------------------------------------------------- invalid generation
@torch.no_grad()
def generate_unconstrained(recommender: T5Recommender, histories: list[np.ndarray], num_beams: int) -> np.ndarray:
    """(users, num_beams, positions) int64 tokens of ``transformers`` beam search without any constraint.

    ``num_beams = 1`` is greedy decoding. Exactly ``positions`` tokens are generated after the decoder start
    token; a hypothesis that ended early (eos) is padded with pad, which ``invalid_rate`` counts as invalid.
    """
    validate_histories(histories, recommender.num_items)
    if num_beams < 1:
        raise ValueError(f"num_beams must be a positive integer, got {num_beams}")
    positions = recommender.sids.num_positions
    samples = Samples.from_histories(histories, None, recommender.device)
    batch = recommender.config.eval_batch_size
    out = np.full((len(histories), num_beams, positions), PAD, dtype=np.int64)
    model = recommender.model.eval()
    for start in range(0, len(histories), batch):
        index = torch.arange(start, min(start + batch, len(histories)), device=recommender.device)
        input_ids, mask = recommender.encoder_inputs(samples.history_items(index, recommender.config.max_history))
        beam_options = {"length_penalty": 0.0, "early_stopping": True} if num_beams > 1 else {}  # greedy: none
        sequences = model.generate(
            input_ids=input_ids, attention_mask=mask, num_beams=num_beams, num_return_sequences=num_beams,
            max_new_tokens=positions, min_new_tokens=0, do_sample=False, **beam_options,
        )  # (users*num_beams, 1 + generated); column 0 is the decoder start token
        generated = sequences[:, 1 : 1 + positions].view(len(index), num_beams, -1).cpu().numpy()
        out[start : start + len(index), :, : generated.shape[2]] = generated
    return out


def generated_items(sids: SemanticIds, tokens: np.ndarray) -> np.ndarray:
    """Item id of each generated identifier (..., positions) of token ids -> (...), -1 where no item has it."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim < 1 or tokens.shape[-1] != sids.num_positions:
        raise ValueError(
            f"generated tokens must end with a positions axis of {sids.num_positions}, got shape {tokens.shape}"
        )
    codes = tokens - Vocabulary(sids).offsets  # a token of another position or a special token -> out of range
    return sids.lookup(codes.reshape(-1, sids.num_positions)).reshape(tokens.shape[:-1])


def invalid_generation_rate(recommender: T5Recommender, histories: list[np.ndarray], num_beams: int = 1) -> float:
    """Share of invalid identifiers among the num_beams (1: greedy) unconstrained generations per history."""
    return invalid_rate(generated_items(recommender.sids, generate_unconstrained(recommender, histories, num_beams)))
