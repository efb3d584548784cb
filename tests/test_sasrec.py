"""SASRec on a tiny catalogue with a learnable rule: item i is followed by (i + 1) mod 30, with noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raysid.config import ConfigError, build
from raysid.data.dataset import EvalSet
from raysid.features.collaborative import collaborative_embeddings
from raysid.recommenders.base import Recommender, resolve_device, validate_histories
from raysid.recommenders.sasrec import SASRec, SASRecConfig

torch.set_num_threads(1)

NUM_ITEMS = 30
FAST = SASRecConfig(epochs=10, batch_size=64, learning_rate=5e-3, device="cpu")


def rule_sequences(count: int, length: int, noise: float, seed: int) -> list[np.ndarray]:
    """Sequences that step i -> (i + 1) mod NUM_ITEMS, jumping to a random item with probability noise."""
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(count):
        items = [int(rng.integers(NUM_ITEMS))]
        for _ in range(length - 1):
            jump = rng.random() < noise
            items.append(int(rng.integers(NUM_ITEMS)) if jump else (items[-1] + 1) % NUM_ITEMS)
        sequences.append(np.array(items, dtype=np.int64))
    return sequences


def held_out(count: int, seed: int) -> EvalSet:
    """Clean histories of 3..11 consecutive items and their true next item."""
    rng = np.random.default_rng(seed)
    histories = [(rng.integers(NUM_ITEMS) + np.arange(rng.integers(3, 12))) % NUM_ITEMS for _ in range(count)]
    targets = np.array([(h[-1] + 1) % NUM_ITEMS for h in histories], dtype=np.int64)
    return EvalSet(histories=[h.astype(np.int64) for h in histories], targets=targets)


def hit_rate_at_1(model: SASRec, data: EvalSet) -> float:
    return float((model.recommend(data.histories, 1)[:, 0] == data.targets).mean())


@pytest.fixture(scope="module")
def train() -> list[np.ndarray]:
    return rule_sequences(200, 20, noise=0.1, seed=0)


@pytest.fixture(scope="module")
def trained(train: list[np.ndarray]) -> tuple[SASRec, float, list[tuple[int, dict[str, float]]]]:
    """A model trained once for the module, its HR@1 before training and the per-epoch reports."""
    model = SASRec(FAST, NUM_ITEMS)
    before = hit_rate_at_1(model, held_out(100, seed=1))
    reports: list[tuple[int, dict[str, float]]] = []
    model.fit(train, valid=held_out(50, seed=2), on_epoch=lambda epoch, metrics: reports.append((epoch, metrics)))
    return model, before, reports


def test_learns_the_sequential_rule(trained) -> None:
    model, before, _ = trained
    after = hit_rate_at_1(model, held_out(100, seed=1))
    assert after > 0.8
    assert after > before + 0.5


def test_on_epoch_reports_train_and_valid_loss(trained) -> None:
    _, _, reports = trained
    assert [epoch for epoch, _ in reports] == list(range(1, FAST.epochs + 1))
    assert all(set(metrics) == {"train/loss", "valid/loss"} for _, metrics in reports)
    assert reports[-1][1]["train/loss"] < reports[0][1]["train/loss"]
    assert reports[-1][1]["valid/loss"] < reports[0][1]["valid/loss"]


def test_recommend_shape_dtype_and_range(trained) -> None:
    model, _, _ = trained
    histories = held_out(7, seed=3).histories + [np.arange(100, dtype=np.int64) % NUM_ITEMS]  # longer than max_length
    ranked = model.recommend(histories, k=5)
    assert ranked.shape == (8, 5) and ranked.dtype == np.int64
    assert ((ranked >= 0) & (ranked < NUM_ITEMS)).all()
    assert all(len(set(row)) == 5 for row in ranked)
    assert isinstance(model, Recommender) and model.name == "sasrec"


def test_recommend_beyond_catalogue_fills_minus_one(trained) -> None:
    model, _, _ = trained
    ranked = model.recommend([np.array([0, 1])], k=NUM_ITEMS + 3)
    assert sorted(ranked[0, :NUM_ITEMS]) == list(range(NUM_ITEMS))
    assert (ranked[0, NUM_ITEMS:] == -1).all()


def test_recommendations_do_not_depend_on_batch(trained) -> None:
    model, _, _ = trained
    histories = held_out(20, seed=4).histories
    together = model.recommend(histories, k=3)
    alone = np.concatenate([model.recommend([h], k=3) for h in histories[:3]])
    np.testing.assert_array_equal(together[:3], alone)


def test_same_seed_same_embeddings_other_seed_differs(train) -> None:
    config = SASRecConfig(epochs=1, device="cpu")
    first = SASRec(config, NUM_ITEMS).fit(train[:50]).item_embeddings()
    again = SASRec(config, NUM_ITEMS).fit(train[:50]).item_embeddings()
    other = SASRec(SASRecConfig(epochs=1, device="cpu", seed=1), NUM_ITEMS).fit(train[:50]).item_embeddings()
    assert first.shape == (NUM_ITEMS, 32) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_save_load_round_trip(trained, tmp_path) -> None:
    model, _, _ = trained
    model.save(tmp_path / "sasrec.pt")
    loaded = SASRec.load(tmp_path / "sasrec.pt")
    histories = held_out(20, seed=5).histories
    np.testing.assert_array_equal(loaded.recommend(histories, 10), model.recommend(histories, 10))
    np.testing.assert_array_equal(loaded.item_embeddings(), model.item_embeddings())
    assert loaded.config == model.config and loaded.num_parameters() == model.num_parameters() > 0


@pytest.mark.parametrize(
    ("histories", "message"),
    [
        ([np.array([1, 2]), np.array([3, NUM_ITEMS])], f"user 1 holds item id {NUM_ITEMS}"),
        ([np.array([-1])], "user 0 holds item id -1"),
        ([np.array([1]), np.array([2]), np.array([], dtype=np.int64)], "user 2 is empty"),
    ],
)
def test_bad_histories_raise_naming_user_and_item(trained, histories, message) -> None:
    model, _, _ = trained
    with pytest.raises(ValueError, match=message):
        model.recommend(histories, k=5)
    with pytest.raises(ValueError, match=message):
        validate_histories(histories, NUM_ITEMS)


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"hidden_size": 30, "num_heads": 4}, "collaborative.hidden_size"),
        ({"num_layers": 0}, "collaborative.num_layers"),
        ({"max_length": -1}, "collaborative.max_length"),
        ({"dropout": 1.0}, "collaborative.dropout"),
        ({"learning_rate": 0.0}, "collaborative.learning_rate"),
        ({"precision": "fp16"}, "collaborative.precision"),
    ],
)
def test_bad_config_names_the_field(fields, key) -> None:
    with pytest.raises(ConfigError, match=key):
        build(SASRecConfig, fields, "collaborative")


def test_cuda_without_gpu_is_a_clear_error() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_collaborative_embeddings_keep_unseen_rows_initial(train) -> None:
    config = SASRecConfig(epochs=1, device="cpu")
    num_items = NUM_ITEMS + 2  # ids 30 and 31 never occur in training
    initial = SASRec(config, num_items).item_embeddings()
    embeddings = collaborative_embeddings(train[:50], num_items, config)
    assert embeddings.shape == (num_items, 32) and embeddings.dtype == np.float32
    np.testing.assert_array_equal(embeddings[NUM_ITEMS:], initial[NUM_ITEMS:])
    assert not np.allclose(embeddings[:NUM_ITEMS], initial[:NUM_ITEMS])
