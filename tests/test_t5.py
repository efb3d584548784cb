"""T5 generative recommender on 40 items with 3-token identifiers, and the popularity baseline.

The identifiers are random 2-level codes (4 x 4) plus the tie-break digit, so several items share a
prefix. The learnable rule is: item i is followed by (i + 1) mod 40.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from raysid.config import ConfigError
from raysid.data.dataset import EvalSet
from raysid.recommenders.base import Recommender, RecommenderInputs
from raysid.recommenders.popularity import PopularityRecommender
from raysid.recommenders.t5 import T5Recommender, T5RecommenderConfig
from raysid.semantic_ids.table import SemanticIds
from raysid.semantic_ids.vocab import EOS, PAD, Vocabulary

torch.set_num_threads(1)

NUM_ITEMS = 40
TINY = T5RecommenderConfig(
    d_model=32, d_ff=128, num_layers=1, num_heads=2, d_kv=16, dropout=0.0, max_history=2, epochs=15,
    batch_size=64, learning_rate=1e-2, warmup_ratio=0.05, beam_size=10, eval_batch_size=64, device="cpu",
)


@pytest.fixture(scope="module")
def sids() -> SemanticIds:
    codes = np.random.default_rng(0).integers(0, 4, size=(NUM_ITEMS, 2))
    return SemanticIds.from_codes(codes, ("s1", "s2"), (4, 4))


def rule_sequences(count: int, length: int, seed: int) -> list[np.ndarray]:
    """Runs of consecutive items (mod NUM_ITEMS) from random starts."""
    starts = np.random.default_rng(seed).integers(0, NUM_ITEMS, size=count)
    return [(start + np.arange(length)) % NUM_ITEMS for start in starts]


def random_histories(count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, NUM_ITEMS, size=rng.integers(1, 9)) for _ in range(count)]


def hit_rate_at_1(recommender: T5Recommender, evaluation: EvalSet) -> float:
    return float((recommender.recommend(evaluation.histories, 1)[:, 0] == evaluation.targets).mean())


@pytest.fixture(scope="module")
def trained(sids) -> tuple[T5Recommender, list[dict[str, float]]]:
    history: list[dict[str, float]] = []
    valid = held_out(60, seed=7)
    recommender = T5Recommender(TINY, sids).fit(RecommenderInputs(
        rule_sequences(120, 8, seed=1), valid, on_epoch=lambda e, m: history.append(m)))
    return recommender, history


def held_out(count: int, seed: int) -> EvalSet:
    histories = rule_sequences(count, 4, seed)
    return EvalSet(histories=histories, targets=np.array([(h[-1] + 1) % NUM_ITEMS for h in histories]))


def test_untrained_constrained_search_returns_distinct_real_items(sids):
    recommender = T5Recommender(dataclasses.replace(TINY, epochs=0), sids)
    assert isinstance(recommender, Recommender)
    ranked = recommender.recommend(random_histories(150, seed=3), k=10)
    assert ranked.shape == (150, 10) and ranked.dtype == np.int64
    assert ((ranked >= 0) & (ranked < NUM_ITEMS)).all()
    assert all(len(set(row)) == 10 for row in ranked.tolist())


def exhaustive_scores(recommender: T5Recommender, sids: SemanticIds, history: np.ndarray) -> np.ndarray:
    """(items,) log-likelihood of every identifier under the model, with each step's softmax restricted to
    the tokens that continue the prefix to some item (written without the trie or the beam search)."""
    vocab = Vocabulary(sids)
    tokens = vocab.encode(np.arange(sids.num_items))  # (items, positions)
    source = np.r_[vocab.encode(history[-recommender.config.max_history :]).ravel(), EOS]
    decoder_input = np.column_stack([np.full(len(tokens), PAD), tokens[:, :-1]])
    with torch.no_grad():
        logits = recommender.model(
            input_ids=torch.as_tensor(np.tile(source, (len(tokens), 1))),
            decoder_input_ids=torch.as_tensor(decoder_input),
        ).logits  # (items, positions, vocab)
    scores = np.zeros(len(tokens))
    for item, row in enumerate(tokens):
        for depth, token in enumerate(row):
            allowed = sorted({int(t[depth]) for t in tokens if tuple(t[:depth]) == tuple(row[:depth])})
            step = torch.log_softmax(logits[item, depth, allowed], dim=-1)
            scores[item] += float(step[allowed.index(int(token))])
    return scores


def test_full_width_beam_search_equals_exhaustive_scoring(sids):
    recommender = T5Recommender(dataclasses.replace(TINY, epochs=0, beam_size=NUM_ITEMS), sids)
    histories = random_histories(3, seed=5)
    items, scores = recommender.beam_search(histories)  # users padded to different lengths in one batch
    for user, history in enumerate(histories):
        reference = exhaustive_scores(recommender, sids, history)
        order = np.argsort(-reference, kind="stable")
        np.testing.assert_array_equal(items[user, :5], order[:5])
        np.testing.assert_allclose(scores[user], reference[order], atol=1e-4)
        np.testing.assert_allclose(scores[user], reference[items[user]], atol=1e-4)
        assert sorted(items[user]) == list(range(NUM_ITEMS))


def test_training_learns_the_next_item_rule(sids, trained):
    recommender, history = trained
    evaluation = held_out(100, seed=11)
    untrained = T5Recommender(dataclasses.replace(TINY, epochs=0), sids)
    assert len(history) == TINY.epochs and {"train/loss", "valid/loss"} <= set(history[0])
    assert history[-1]["train/loss"] < history[0]["train/loss"] / 2
    assert history[-1]["valid/loss"] < history[0]["valid/loss"]
    assert hit_rate_at_1(recommender, evaluation) >= 0.85  # 0.97 with this seed
    assert hit_rate_at_1(recommender, evaluation) > hit_rate_at_1(untrained, evaluation) + 0.5


def test_same_seed_gives_identical_recommendations_and_save_load_keeps_them(sids, tmp_path):
    config = dataclasses.replace(TINY, epochs=1, dropout=0.1)
    sequences, histories = rule_sequences(30, 6, seed=2), random_histories(20, seed=4)
    first = T5Recommender(config, sids).fit(RecommenderInputs(sequences)).recommend(histories, 5)
    second = T5Recommender(config, sids).fit(RecommenderInputs(sequences))
    np.testing.assert_array_equal(first, second.recommend(histories, 5))
    second.save(tmp_path)
    loaded = T5Recommender.load(tmp_path)
    np.testing.assert_array_equal(first, loaded.recommend(histories, 5))
    assert loaded.num_parameters() == second.num_parameters() > 0


def test_errors_name_the_problem(sids):
    recommender = T5Recommender(dataclasses.replace(TINY, epochs=0), sids)
    with pytest.raises(ValueError, match="beam_size"):
        recommender.recommend([np.array([1, 2])], k=11)
    with pytest.raises(ValueError, match="larger than the catalogue"):
        T5Recommender(dataclasses.replace(TINY, beam_size=NUM_ITEMS + 1), sids)
    with pytest.raises(ValueError, match="user 1 holds item id 40"):
        recommender.recommend([np.array([1]), np.array([3, NUM_ITEMS])], k=5)
    duplicates = SemanticIds.from_codes(np.zeros((12, 2), dtype=np.int64), ("s1", "s2"), (4, 4), tie_break=False)
    with pytest.raises(ValueError, match="unique"):
        T5Recommender(TINY, duplicates)
    with pytest.raises(ConfigError, match="recommender.beam_size"):
        T5RecommenderConfig(beam_size=0)


def test_popularity_by_hand():
    sequences = [np.array([3, 1, 3]), np.array([2, 1]), np.array([4, 3])]  # counts: 3 -> 3, 1 -> 2, 2 and 4 -> 1
    recommender = PopularityRecommender(num_items=6).fit(RecommenderInputs(sequences))
    assert isinstance(recommender, Recommender) and recommender.name == "popularity"
    ranked = recommender.recommend([np.array([0]), np.array([5, 2])], k=4)
    np.testing.assert_array_equal(ranked, [[3, 1, 2, 4], [3, 1, 2, 4]])  # tie 2 vs 4: lower id first
    np.testing.assert_array_equal(recommender.recommend([np.array([0])], k=8)[0], [3, 1, 2, 4, 0, 5, -1, -1])
    with pytest.raises(ValueError, match="outside the catalogue"):
        recommender.recommend([np.array([6])], k=2)


def test_beam_search_ranks_like_transformers_generate_when_last_position_is_skipped():
    """Only users with a beam at a trie node of several children decode the last position (tie-break digit):
    items 0-9 share 5 code pairs, the other 30 have their own, so some users are skipped and some are not."""
    from raysid.bench.decoding import allowed_tokens_table, generate_constrained, prefix_allowed_tokens_fn

    pairs = np.random.default_rng(0).permutation(64)[:35]
    codes = np.stack(divmod(np.r_[pairs[:5].repeat(2), pairs[5:]], 8), axis=1)  # (items, 2)
    sids = SemanticIds.from_codes(codes, ("s1", "s2"), (8, 8), tie_break=True)
    recommender = T5Recommender(dataclasses.replace(TINY, epochs=0, beam_size=4), sids)
    histories = random_histories(12, seed=6)
    items, scores = recommender.beam_search(histories)
    allowed = prefix_allowed_tokens_fn(allowed_tokens_table(recommender.vocab.encode(np.arange(NUM_ITEMS))))
    hf_items, hf_scores = generate_constrained(recommender, histories, allowed)
    np.testing.assert_array_equal(items, hf_items)
    np.testing.assert_allclose(scores, hf_scores, atol=1e-5)
    decoded = np.isin(items, np.arange(10)).any(axis=1)  # a beam ended under a node of two children
    assert decoded.any() and not decoded.all()
