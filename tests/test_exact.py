"""Exact full-catalogue scoring for T5 against full-width beam search and an independent brute force;
unconstrained generation and the invalid-generation rate on hand-made identifiers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raysid.metrics.report import invalid_rate
from raysid.recommenders.exact import (
    exact_scores,
    exact_topk,
    generate_unconstrained,
    generated_items,
    invalid_generation_rate,
)
from raysid.recommenders.base import RecommenderInputs
from raysid.recommenders.t5 import T5Recommender, T5RecommenderConfig
from raysid.semantic_ids.table import SemanticIds
from raysid.semantic_ids.vocab import EOS, PAD, Vocabulary

torch.set_num_threads(1)

NUM_ITEMS = 30
TINY = T5RecommenderConfig(
    d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16, dropout=0.0, max_history=3, epochs=2,
    batch_size=32, learning_rate=1e-2, beam_size=NUM_ITEMS, eval_batch_size=64, device="cpu",
)


@pytest.fixture(scope="module")
def sids() -> SemanticIds:
    codes = np.random.default_rng(0).integers(0, 3, size=(NUM_ITEMS, 2))  # 9 prefixes for 30 items: tie-breaks
    return SemanticIds.from_codes(codes, ("s1", "s2"), (3, 3))


@pytest.fixture(scope="module")
def recommender(sids) -> T5Recommender:
    rng = np.random.default_rng(1)
    sequences = [(rng.integers(0, NUM_ITEMS) + np.arange(6)) % NUM_ITEMS for _ in range(40)]
    return T5Recommender(TINY, sids).fit(RecommenderInputs(sequences))  # a few steps, so that scores are not uniform


def histories(count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, NUM_ITEMS, size=rng.integers(1, 7)) for _ in range(count)]


def brute_force_scores(recommender: T5Recommender, sids: SemanticIds, history: np.ndarray) -> np.ndarray:
    """(items,) one decoder pass per item; allowed tokens found by scanning all identifiers (no trie)."""
    vocab = Vocabulary(sids)
    tokens = vocab.encode(np.arange(sids.num_items))
    source = torch.as_tensor(np.r_[vocab.encode(history[-recommender.config.max_history :]).ravel(), EOS])[None]
    scores = np.zeros(len(tokens))
    with torch.no_grad():
        for item, row in enumerate(tokens):
            decoder = torch.as_tensor(np.r_[PAD, row[:-1]])[None]
            logits = recommender.model(input_ids=source, decoder_input_ids=decoder).logits[0]  # (positions, vocab)
            for depth, token in enumerate(row):
                allowed = sorted({int(t[depth]) for t in tokens if tuple(t[:depth]) == tuple(row[:depth])})
                scores[item] += float(torch.log_softmax(logits[depth, allowed], dim=-1)[allowed.index(int(token))])
    return scores


def test_exact_scores_match_brute_force_and_form_a_distribution(recommender, sids):
    users = histories(4, seed=2)
    scores = exact_scores(recommender, users)
    assert scores.shape == (4, NUM_ITEMS) and scores.dtype == np.float32
    for user, history in enumerate(users[:2]):
        np.testing.assert_allclose(scores[user], brute_force_scores(recommender, sids, history), atol=1e-5)
    # renormalised over the children of every trie node, the scores are a distribution over the catalogue
    np.testing.assert_allclose(np.exp(scores.astype(np.float64)).sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(exact_scores(recommender, users, max_rows=7), scores, atol=1e-6)  # blocks of items


def test_full_width_beam_search_equals_exact_ranking(recommender):
    users = histories(8, seed=3)
    beam_items, beam_scores = recommender.beam_search(users)  # beam_size = catalogue size
    items, scores = exact_topk(recommender, users, NUM_ITEMS)
    np.testing.assert_array_equal(beam_items, items)
    np.testing.assert_allclose(beam_scores, scores, atol=1e-5)
    top5, _ = exact_topk(recommender, users, 5)
    np.testing.assert_array_equal(top5, items[:, :5])


def test_generated_identifiers_are_mapped_to_items_by_hand():
    # items 0 and 1 share codes (0, 0) and get tie digits 0 and 1; tokens: pad 0, eos 1, s1 2-3, s2 4-6, t 7-8
    sids = SemanticIds.from_codes(np.array([[0, 0], [0, 0], [0, 1], [1, 2]]), ("s1", "s2"), (2, 3))
    assert sids.codes[:, 2].tolist() == [0, 1, 0, 0]
    generated = np.array([
        [[2, 4, 8], [3, 6, 7]],  # items 1 and 3
        [[2, 5, 8], [3, 4, 7]],  # every token in range, but no item is (0, 1, 1) or (1, 0, 0)
        [[4, 2, 7], [1, 4, 7]],  # s2 token in the s1 position; eos first
        [[2, 4, 0], [2, 4, 7]],  # ended early (pad); item 0
    ])  # (users 4, beams 2, positions 3)
    items = generated_items(sids, generated)
    np.testing.assert_array_equal(items, [[1, 3], [-1, -1], [-1, -1], [-1, 0]])
    assert invalid_rate(items) == pytest.approx(5 / 8)


def greedy_by_hand(recommender: T5Recommender, history: np.ndarray) -> list[int]:
    vocab = recommender.vocab
    source = torch.as_tensor(np.r_[vocab.encode(history[-recommender.config.max_history :]).ravel(), EOS])[None]
    decoded = [PAD]
    with torch.no_grad():
        for _ in range(recommender.sids.num_positions):
            logits = recommender.model(input_ids=source, decoder_input_ids=torch.as_tensor([decoded])).logits
            decoded.append(int(logits[0, -1].argmax()))
    return decoded[1:]


def test_unconstrained_generation(recommender):
    users = histories(5, seed=4)
    greedy = generate_unconstrained(recommender, users, num_beams=1)
    assert greedy.shape == (5, 1, 3)
    for user, history in enumerate(users):
        assert greedy[user, 0].tolist() == greedy_by_hand(recommender, history)
    beams = generate_unconstrained(recommender, users, num_beams=4)
    assert beams.shape == (5, 4, 3)
    rate = invalid_generation_rate(recommender, users, num_beams=4)
    assert rate == invalid_rate(generated_items(recommender.sids, beams)) and 0.0 <= rate <= 1.0


def test_bad_input_fails_clearly(recommender):
    with pytest.raises(ValueError, match="k=31 must be in"):
        exact_topk(recommender, histories(1, 0), NUM_ITEMS + 1)
    with pytest.raises(ValueError, match="user 0 holds item id 30"):
        exact_scores(recommender, [np.array([NUM_ITEMS])])
    with pytest.raises(ValueError, match="max_rows"):
        exact_scores(recommender, histories(1, 0), max_rows=0)
    with pytest.raises(ValueError, match="positions axis of 3"):
        generated_items(recommender.sids, np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="num_beams"):
        generate_unconstrained(recommender, histories(1, 0), num_beams=0)
