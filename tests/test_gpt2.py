"""GPT-2 recommender (FusID) on 40 items with 3-token identifiers: samples, loss, training through
``run_training`` (in-process and 2 Ray workers), constrained beam search vs exact scores, persistence, errors.

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
from raysid.distributed import TrainingConfig
from raysid.metrics.ranking import ranking_metrics
from raysid.recommenders.base import Recommender, RecommenderInputs
from raysid.recommenders.gpt2 import (
    GPT2Recommender,
    GPT2RecommenderConfig,
    Windows,
    label_mask,
    summed_loss,
    window_tokens,
)
from raysid.semantic_ids.table import SemanticIds
from raysid.semantic_ids.vocab import EOS, PAD, Vocabulary

torch.set_num_threads(1)

NUM_ITEMS = 40
SMALL = GPT2RecommenderConfig(
    n_embd=16, n_layer=1, n_head=2, dropout=0.0, epochs=2, batch_size=16, learning_rate=1e-2,
    beam_size=10, eval_batch_size=16, device="cpu",
)
LEARNER = dataclasses.replace(SMALL, n_embd=64, n_layer=2, epochs=15, batch_size=8, learning_rate=5e-3)


@pytest.fixture(scope="module")
def sids() -> SemanticIds:
    codes = np.random.default_rng(0).integers(0, 4, size=(NUM_ITEMS, 2))
    return SemanticIds.from_codes(codes, ("s1", "s2"), (4, 4))


def rule_sequences(count: int, length: int, seed: int) -> list[np.ndarray]:
    """Runs of consecutive items (mod NUM_ITEMS) from random starts."""
    starts = np.random.default_rng(seed).integers(0, NUM_ITEMS, size=count)
    return [(start + np.arange(length)) % NUM_ITEMS for start in starts]


def held_out(count: int, seed: int) -> EvalSet:
    histories = rule_sequences(count, 4, seed)
    return EvalSet(histories=histories, targets=np.array([(h[-1] + 1) % NUM_ITEMS for h in histories]))


def random_histories(count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, NUM_ITEMS, size=rng.integers(1, 9)) for _ in range(count)]


@pytest.fixture(scope="module")
def trained(sids) -> tuple[GPT2Recommender, list[tuple[int, dict[str, float]]]]:
    history: list[tuple[int, dict[str, float]]] = []
    recommender = GPT2Recommender(LEARNER, sids)
    recommender.fit(RecommenderInputs(
        rule_sequences(120, 8, seed=1), held_out(40, seed=7), on_epoch=lambda e, m: history.append((e, m))))
    return recommender, history


# ------------------------------------------------------------------------------ samples and loss
def test_windows_follow_fusids_context_rule():
    """l <= 30: the whole playlist (l - 1 context tracks + target); l > 30: the first 30 + the 31st."""
    windows = Windows.training([np.arange(3), np.arange(100, 135)], max_context_items=30)
    assert windows.lengths.tolist() == [3, 31]
    assert windows.items[0].tolist() == [0, 1, 2] + [-1] * 28
    assert windows.items[1].tolist() == list(range(100, 131))
    evaluation = Windows.evaluation(EvalSet([np.arange(40), np.array([7])], np.array([5, 6])), max_context_items=30)
    assert evaluation.items[0].tolist() == [*range(10, 40), 5]  # the last 30 of a history, then its target
    assert evaluation.items[1, :2].tolist() == [7, 6] and evaluation.lengths.tolist() == [31, 2]


def test_window_tokens_and_label_masks_by_hand():
    item_tokens = torch.tensor([[2, 5], [3, 6], [PAD, PAD]])  # items 0 and 1; last row pads the -1 slots
    tokens = window_tokens(item_tokens, torch.tensor([[1, 0, 1], [0, -1, -1]]))
    assert tokens.tolist() == [[EOS, 3, 6, 2, 5, 3, 6], [EOS, 2, 5, PAD, PAD, PAD, PAD]]
    lengths = torch.tensor([3, 1])
    # labels are tokens[:, 1:]: every real token, or only the last (target) item's two tokens
    assert label_mask(lengths, 2, 3, target_only=False).int().tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]]
    assert label_mask(lengths, 2, 3, target_only=True).int().tolist() == [[0, 0, 0, 0, 1, 1], [1, 1, 0, 0, 0, 0]]


def test_summed_loss_matches_transformers_own_language_model_loss(sids):
    recommender = GPT2Recommender(SMALL, sids)
    windows = Windows.training(rule_sequences(3, 5, seed=3) + [np.array([4, 9])], 30)
    tokens = window_tokens(recommender.item_tokens, windows.items)
    for target_only in (False, True):
        labelled = label_mask(windows.lengths, 3, windows.items.shape[1], target_only)
        ours = summed_loss(recommender.model, tokens, labelled) / labelled.sum()
        labels = torch.cat([torch.full((len(tokens), 1), -100), tokens[:, 1:].masked_fill(~labelled, -100)], dim=1)
        reference = recommender.model(input_ids=tokens, attention_mask=(tokens != PAD).long(), labels=labels).loss
        torch.testing.assert_close(ours, reference)


# ----------------------------------------------------------------------------------------- training
def test_training_learns_the_next_item_rule(sids, trained):
    recommender, history = trained
    assert isinstance(recommender, Recommender)
    assert [e for e, _ in history] == list(range(1, LEARNER.epochs + 1))
    assert all(set(m) == {"train/loss", "valid/loss"} for _, m in history)
    assert history[-1][1]["train/loss"] < history[0][1]["train/loss"] / 3
    assert history[-1][1]["valid/loss"] < history[0][1]["valid/loss"] / 3
    evaluation = held_out(100, seed=11)
    metrics = ranking_metrics(recommender.recommend(evaluation.histories, 10), evaluation.targets, ks=(1, 5, 10))
    untrained = GPT2Recommender(dataclasses.replace(LEARNER, epochs=0), sids)
    floor = ranking_metrics(untrained.recommend(evaluation.histories, 10), evaluation.targets, ks=(1, 5, 10))
    assert metrics["recall@1"] >= 0.8  # 0.96 with this seed
    assert metrics["mrr"] > floor["mrr"] + 0.5
    assert recommender.valid_loss(evaluation) == pytest.approx(history[-1][1]["valid/loss"], rel=0.5)


def test_beam_as_wide_as_the_catalogue_ranks_as_the_exact_scores(sids, trained):
    recommender = trained[0]
    wide = GPT2Recommender(dataclasses.replace(LEARNER, beam_size=NUM_ITEMS, epochs=0), sids)
    wide.model.load_state_dict(recommender.model.state_dict())
    histories = random_histories(12, seed=5) + [np.arange(35) % NUM_ITEMS]  # ragged, one longer than 30 items
    items, beam_scores = wide.beam_search(histories)
    exact = wide.score_items(histories)  # (users, items)
    np.testing.assert_allclose(np.exp(exact.astype(np.float64)).sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(items[:, :10], np.argsort(-exact, axis=1, kind="stable")[:, :10])
    np.testing.assert_allclose(beam_scores, np.take_along_axis(exact, items, axis=1), atol=1e-4)
    assert all(sorted(row) == list(range(NUM_ITEMS)) for row in items.tolist())
    exact_mode = dataclasses.replace(wide.config, ranking="exact")
    exact_recommender = GPT2Recommender(exact_mode, sids)
    exact_recommender.model.load_state_dict(recommender.model.state_dict())
    np.testing.assert_array_equal(exact_recommender.recommend(histories, 10), items[:, :10])


def exhaustive_scores(recommender: GPT2Recommender, sids: SemanticIds, history: np.ndarray) -> np.ndarray:
    """(items,) log-likelihood of every identifier after the history, each step's softmax restricted to the
    tokens that continue the prefix to some item; one uncached forward per item, no trie."""
    tokens = Vocabulary(sids).encode(np.arange(sids.num_items))  # (items, positions)
    context = np.r_[EOS, Vocabulary(sids).encode(history[-recommender.config.max_context_items :]).ravel()]
    inputs = np.column_stack([np.tile(context, (len(tokens), 1)), tokens[:, :-1]])
    with torch.no_grad():
        logits = recommender.model(input_ids=torch.as_tensor(inputs)).logits[:, len(context) - 1 :]  # (items, positions, vocab)
    scores = np.zeros(len(tokens))
    for item, row in enumerate(tokens):
        for depth, token in enumerate(row):
            allowed = sorted({int(t[depth]) for t in tokens if tuple(t[:depth]) == tuple(row[:depth])})
            step = torch.log_softmax(logits[item, depth, allowed], dim=-1)
            scores[item] += float(step[allowed.index(int(token))])
    return scores


def test_exact_scores_equal_an_uncached_forward_per_item(sids, trained):
    recommender = trained[0]
    histories = [np.array([3, 4, 5]), np.array([17]), np.arange(33) % NUM_ITEMS]
    scores = recommender.score_items(histories)  # one padded batch, chunks of items on the cached context
    for user, history in enumerate(histories):
        np.testing.assert_allclose(scores[user], exhaustive_scores(recommender, sids, history), atol=1e-4)


def test_same_seed_gives_identical_models_and_save_load_keeps_them(sids, tmp_path):
    config = dataclasses.replace(SMALL, dropout=0.1, seed=3)
    sequences, histories = rule_sequences(30, 6, seed=2), random_histories(20, seed=4)
    first = GPT2Recommender(config, sids).fit(RecommenderInputs(sequences))
    second = GPT2Recommender(config, sids).fit(RecommenderInputs(sequences))
    for name, value in first.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[name], value, rtol=0, atol=0)
    other_seed = GPT2Recommender(dataclasses.replace(config, seed=4), sids).fit(RecommenderInputs(sequences))
    assert not torch.equal(other_seed.model.transformer.wte.weight, first.model.transformer.wte.weight)
    first.save(tmp_path)
    loaded = GPT2Recommender.load(tmp_path)
    np.testing.assert_array_equal(loaded.recommend(histories, 5), first.recommend(histories, 5))
    np.testing.assert_array_equal(loaded.score_items(histories), first.score_items(histories))
    assert loaded.config == config and loaded.num_parameters() == first.num_parameters()
    hidden, vocab, positions = 16, Vocabulary(sids).size, 1 + 31 * 3
    embeddings = vocab * hidden + positions * hidden  # token (tied with the output) and position tables
    block = 2 * 2 * hidden + (3 * hidden * hidden + 3 * hidden) + (hidden * hidden + hidden) + 2 * (4 * hidden * hidden) + 4 * hidden + hidden
    assert first.num_parameters() == embeddings + block + 2 * hidden  # + the final layer norm


def test_two_ray_workers_give_the_same_contract_and_model_as_one(sids, ray_local, tmp_path):
    """DDP over two CPU workers: same epochs and metric keys; without dropout the same weights as one process."""
    sequences, valid = rule_sequences(40, 6, seed=8), held_out(10, seed=9)
    local_epochs, ray_epochs = [], []
    local = GPT2Recommender(SMALL, sids).fit(RecommenderInputs(
        sequences, valid, on_epoch=lambda e, m: local_epochs.append((e, m))))
    training = TrainingConfig(ray=True, num_workers=2, resources_per_worker={"CPU": 0.5}, storage_path=str(tmp_path))
    distributed = GPT2Recommender(SMALL, sids).fit(RecommenderInputs(
        sequences, valid, on_epoch=lambda e, m: ray_epochs.append((e, m)), training=training))
    assert [e for e, _ in ray_epochs] == [e for e, _ in local_epochs] == [1, 2]
    for (_, ours), (_, theirs) in zip(ray_epochs, local_epochs):
        assert set(ours) == set(theirs) == {"train/loss", "valid/loss"}
        assert ours == pytest.approx(theirs, rel=1e-4)
    for name, value in local.model.state_dict().items():
        torch.testing.assert_close(distributed.model.state_dict()[name], value, rtol=1e-4, atol=1e-5)
    histories = random_histories(8, seed=6)
    np.testing.assert_allclose(distributed.score_items(histories), local.score_items(histories), atol=1e-4)


# ------------------------------------------------------------------------------------------ errors
def test_bad_inputs_fail_clearly(sids):
    recommender = GPT2Recommender(SMALL, sids)
    with pytest.raises(ValueError, match="user 1 holds item id 40"):
        recommender.recommend([np.array([1]), np.array([3, NUM_ITEMS])], k=5)
    with pytest.raises(ValueError, match="user 0 holds item id -2"):
        recommender.score_items([np.array([-2])])
    with pytest.raises(ValueError, match="history of user 0 is empty"):
        recommender.beam_search([np.array([], dtype=np.int64)])
    with pytest.raises(ValueError, match="at least one training sequence of two or more items"):
        recommender.fit(RecommenderInputs([]))
    with pytest.raises(ValueError, match="at least one training sequence of two or more items"):
        recommender.fit(RecommenderInputs([np.array([3]), np.array([5])]))
    with pytest.raises(ValueError, match="user 1 holds item id 41"):
        recommender.fit(RecommenderInputs([np.array([1, 2]), np.array([3, 41])]))
    with pytest.raises(ValueError, match="valid targets"):
        recommender.fit(RecommenderInputs([np.array([1, 2])], EvalSet([np.array([1])], np.array([NUM_ITEMS]))))
    with pytest.raises(ValueError, match="k=11 must be in \\[1, beam_size=10\\]"):
        recommender.recommend([np.array([1, 2])], k=11)
    with pytest.raises(ValueError, match="beam_size=41 is larger than the catalogue \\(40 items\\)"):
        GPT2Recommender(dataclasses.replace(SMALL, beam_size=NUM_ITEMS + 1), sids)
    exact = GPT2Recommender(dataclasses.replace(SMALL, ranking="exact"), sids)
    with pytest.raises(ValueError, match="k=41 must be in \\[1, 40\\]"):
        exact.recommend([np.array([1])], k=NUM_ITEMS + 1)
    duplicates = SemanticIds.from_codes(np.zeros((12, 2), dtype=np.int64), ("s1", "s2"), (4, 4), tie_break=False)
    with pytest.raises(ValueError, match="unique"):
        GPT2Recommender(SMALL, duplicates)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"n_embd": 0}, "recommender.n_embd"),
        ({"n_embd": 30, "n_head": 4}, "recommender.n_embd"),
        ({"n_layer": 0}, "recommender.n_layer"),
        ({"max_context_items": 0}, "recommender.max_context_items"),
        ({"beam_size": 0}, "recommender.beam_size"),
        ({"epochs": -1}, "recommender.epochs"),
        ({"dropout": 1.0}, "recommender.dropout"),
        ({"learning_rate": 0.0}, "recommender.learning_rate"),
        ({"loss": "tokens"}, "recommender.loss"),
        ({"ranking": "greedy"}, "recommender.ranking"),
        ({"precision": "fp16"}, "recommender.precision"),
        ({"device": "tpu"}, "recommender.device"),
    ],
)
def test_bad_configs_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        GPT2RecommenderConfig(**kwargs)
