"""SASRec on a tiny catalogue with a learnable rule: item i is followed by (i + 1) mod 30, with noise;
semantic-ID and attribute item representations; training on played/skipped feedback of the radio catalog,
stratified AUC, two Ray Train workers against one process, resume, and bad input."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
import torch

from raysid.config import ConfigError, build
from raysid.data.catalog import CatalogConfig, SkipConfig, generate_catalog
from raysid.data.dataset import EvalSet
from raysid.data.splits import FeedbackSet, SplitConfig, make_feedback_splits
from raysid.distributed import Session, TrainingConfig
from raysid.features.collaborative import collaborative_embeddings
from raysid.metrics.auc import evaluate_feedback
from raysid.recommenders.base import Recommender, RecommenderInputs, resolve_device, validate_histories
from raysid.recommenders.sasrec import (
    SASRec,
    SASRecConfig,
    SASRecRecommenderConfig,
    SASRecTraining,
    training_data,
)
from raysid.semantic_ids.table import SemanticIds
from raysid.tokenizers.base import TokenizerInputs
from raysid.tokenizers.random_ids import RandomConfig, RandomTokenizer

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
    model.fit(RecommenderInputs(
        train, valid=held_out(50, seed=2), on_epoch=lambda epoch, metrics: reports.append((epoch, metrics))))
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
    first = SASRec(config, NUM_ITEMS).fit(RecommenderInputs(train[:50])).item_embeddings()
    again = SASRec(config, NUM_ITEMS).fit(RecommenderInputs(train[:50])).item_embeddings()
    other = SASRec(SASRecConfig(epochs=1, device="cpu", seed=1), NUM_ITEMS).fit(RecommenderInputs(
        train[:50])).item_embeddings()
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
        ({"patience": -1}, "collaborative.patience"),
        ({"stop_mode": "up"}, "collaborative.stop_mode"),
        ({"stop_metric": ""}, "collaborative.stop_metric"),
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


# --- item representations: semantic IDs and attribute components ----------------------------------

ARTIST = np.arange(NUM_ITEMS) // 3  # 10 "artists" of 3 consecutive items
GENRE = np.arange(NUM_ITEMS) // 10  # 3 "genres"


def v0_identifiers(num_items: int = NUM_ITEMS, sizes: tuple[int, ...] = (6, 5)) -> SemanticIds:
    """'v0' identifiers: the random tokenizer's codes plus the tie-break digit."""
    tokenizer = RandomTokenizer(RandomConfig(codebook_sizes=sizes, seed=3))
    tokenizer.fit(TokenizerInputs(None, np.arange(num_items), num_items=num_items))
    return SemanticIds.from_codes(tokenizer.encode(), tokenizer.position_names, tokenizer.codebook_sizes)


def network_parameters(h: int, layers: int, max_length: int) -> int:
    """Position table + per block (attention in/out projections, two feed-forward layers of width h, two
    layer norms) + the final layer norm, counted by hand."""
    block = (3 * h * h + 3 * h) + (h * h + h) + 2 * (h * h + h) + 2 * 2 * h
    return max_length * h + layers * block + 2 * h


def test_sid_item_is_the_sum_of_its_code_and_attribute_embeddings_in_and_out() -> None:
    sids = v0_identifiers()
    config = SASRecConfig(item_representation="sid", components=("artist",), device="cpu")
    model = SASRec(config, NUM_ITEMS, sids=sids, attributes={"artist": ARTIST, "unused": GENRE})
    tables = [t.weight.detach().numpy() for t in model.model.code_embeddings]
    artist = model.model.attribute_embeddings["artist"].weight.detach().numpy()
    expected = sum(tables[p][sids.codes[:, p]] for p in range(sids.num_positions)) + artist[ARTIST]  # (items, h)
    np.testing.assert_allclose(model.item_embeddings(), expected, rtol=1e-6, atol=1e-7)
    inputs = model.model.item_vectors(torch.arange(1, NUM_ITEMS + 1)).detach().numpy()  # the input side
    np.testing.assert_allclose(inputs, expected, rtol=1e-6, atol=1e-7)
    histories = held_out(6, seed=7).histories
    scores = model.score_items(histories, [np.arange(NUM_ITEMS)] * len(histories))  # output side: <h, e_j>
    ranked = model.recommend(histories, 5)
    np.testing.assert_array_equal(np.stack([np.argsort(-s, kind="stable")[:5] for s in scores]), ranked)


def test_parameter_counts_by_hand() -> None:
    sids, h = v0_identifiers(), 32
    network = network_parameters(h, layers=2, max_length=50)
    baseline = SASRec(SASRecConfig(device="cpu"), NUM_ITEMS)
    assert baseline.parameter_counts() == {"item": (NUM_ITEMS + 1) * h, "other": network, "total": (NUM_ITEMS + 1) * h + network}
    semantic = SASRec(SASRecConfig(item_representation="sid", device="cpu"), NUM_ITEMS, sids=sids)
    assert semantic.parameter_counts()["item"] == sum(sids.codebook_sizes) * h  # k per position, no item table
    decomposed = SASRecRecommenderConfig(item_representation="sid", components=("artist", "genre"), device="cpu")
    model = SASRec(decomposed, NUM_ITEMS, sids=sids, attributes={"artist": ARTIST, "genre": GENRE})
    assert model.parameter_counts() == {
        "item": (sum(sids.codebook_sizes) + 10 + 3) * h,
        "other": network + 2 * h,  # + the played/skipped input embedding
        "total": model.num_parameters(),
    }


@pytest.fixture(scope="module")
def trained_sid(train: list[np.ndarray]) -> SASRec:
    model = SASRec(dataclasses.replace(FAST, item_representation="sid", components=("genre",)), NUM_ITEMS,
                   sids=v0_identifiers(), attributes={"genre": GENRE})
    return model.fit(RecommenderInputs(train))


def test_sid_representation_learns_the_rule(trained_sid: SASRec) -> None:
    assert hit_rate_at_1(trained_sid, held_out(100, seed=1)) > 0.5  # chance: 1/30; 30 items share 6 + 5 codes


def test_sid_save_load_round_trip(trained_sid: SASRec, tmp_path) -> None:
    trained_sid.save(tmp_path / "sid.pt")
    loaded = SASRec.load(tmp_path / "sid.pt")
    histories = held_out(20, seed=5).histories
    np.testing.assert_array_equal(loaded.recommend(histories, 10), trained_sid.recommend(histories, 10))
    np.testing.assert_array_equal(loaded.sids.codes, trained_sid.sids.codes)
    assert loaded.config == trained_sid.config and loaded.parameter_counts() == trained_sid.parameter_counts()


# --- played / skipped feedback on the radio catalog -------------------------------------------------

RADIO = CatalogConfig(
    num_tracks=200, num_playlists=400, num_genres=3, subgenres_per_genre=2, num_artists=30, max_length=20,
    skips=SkipConfig(enabled=True, misfit_skip_prob=0.9, fit_skip_prob=0.05, appeal=0.5), seed=0,
)
FEEDBACK = SASRecRecommenderConfig(hidden_size=16, num_layers=1, max_length=20, epochs=10, batch_size=64,
                                   learning_rate=1e-2, dropout=0.1, device="cpu")


@pytest.fixture(scope="module")
def radio():
    return make_feedback_splits(generate_catalog(RADIO), SplitConfig(feedback_period=4))


@pytest.fixture(scope="module")
def trained_radio(radio):
    model = SASRec(FEEDBACK, RADIO.num_tracks)
    before = evaluate_feedback(model, radio.test, ks=(10,))
    reports: list[tuple[int, dict[str, float]]] = []
    model.fit(RecommenderInputs(
        radio.train, valid=radio.valid, feedback=radio.train_feedback, on_epoch=lambda e, m: reports.append((e, m))))
    return model, before, reports


def brute_force_stratified_auc(scores: list[np.ndarray], labels: list[np.ndarray]) -> float:
    """Mean over sessions with both classes of the share of (played, skipped) pairs ordered right (ties 1/2)."""
    per_session = []
    for score, label in zip(scores, labels):
        pairs = list(itertools.product(score[label == 1], score[label == 0]))
        if pairs:
            per_session.append(np.mean([1.0 if p > s else 0.5 if p == s else 0.0 for p, s in pairs]))
    return float(np.mean(per_session))


def test_feedback_training_separates_played_from_skipped(trained_radio, radio) -> None:
    model, before, reports = trained_radio
    after = evaluate_feedback(model, radio.test, ks=(10,))
    assert abs(before["auc"] - 0.5) < 0.1  # untrained: chance
    assert after["auc"] > 0.62 and after["auc"] > before["auc"] + 0.1
    assert after["hr@10"] > before["hr@10"] + 0.05  # the next played track, full-catalogue ranking
    scores = model.score_items(radio.test.histories, radio.test.items, radio.test.history_feedback)
    assert after["auc"] == pytest.approx(brute_force_stratified_auc(scores, radio.test.feedback), abs=1e-12)
    assert after["auc_sessions"] == sum(1 for f in radio.test.feedback if 0 < f.sum() < len(f))
    assert after["auc_sessions/len_3-5"] + after["auc_sessions/len_6-10"] + after["auc_sessions/len_11-inf"] == after["auc_sessions"]
    assert [e for e, _ in reports] == list(range(1, FEEDBACK.epochs + 1))
    assert all(set(m) == {"train/loss", "valid/auc", "valid/auc_sessions"} for _, m in reports)
    assert reports[-1][1]["valid/auc"] > reports[0][1]["valid/auc"] + 0.1
    assert reports[-1][1]["train/loss"] < reports[0][1]["train/loss"]


def test_history_feedback_reaches_the_model(trained_radio, radio) -> None:
    model, _, _ = trained_radio
    histories, items = radio.test.histories[:10], radio.test.items[:10]
    played = model.score_items(histories, items, [np.ones(len(h), np.int8) for h in histories])
    skipped = model.score_items(histories, items, [np.zeros(len(h), np.int8) for h in histories])
    assert not all(np.allclose(a, b) for a, b in zip(played, skipped))
    np.testing.assert_array_equal(np.concatenate(model.score_items(histories, items)), np.concatenate(played))


def test_bce_targets_skips_and_cross_entropy_ignores_them() -> None:
    sequences, feedback = [np.array([0, 1, 2, 3])], [np.array([1, 0, 1, 0], np.int8)]
    bce = training_data(sequences, feedback, max_length=4, loss="bce")
    assert bce.inputs.tolist() == [[0, 1, 2, 3]] and bce.input_feedback.tolist() == [[1, 1, 0, 1]]
    assert bce.targets.tolist() == [[-100, 1, 2, 3]] and bce.labels.tolist() == [[1.0, 0.0, 1.0, 0.0]]
    cross_entropy = training_data(sequences, feedback, max_length=4, loss="cross_entropy")
    assert cross_entropy.targets.tolist() == [[-100, -100, 2, -100]]


# --- Ray Train: two workers against one process; resume ---------------------------------------------

TINY = dataclasses.replace(FEEDBACK, hidden_size=8, epochs=2, batch_size=32, dropout=0.0, negative_samples=2)


def test_two_ray_workers_match_one_process(ray_local, radio, tmp_path) -> None:
    """Without dropout, DDP over two shards of each global batch follows the same trajectory as one process."""
    train, feedback = radio.train[:101], radio.train_feedback[:101]  # an odd count: shards of unequal size
    local_reports, ray_reports = [], []
    local = SASRec(TINY, RADIO.num_tracks).fit(RecommenderInputs(
        train, radio.valid, on_epoch=lambda e, m: local_reports.append((e, m)), feedback=feedback))
    config = TrainingConfig(ray=True, num_workers=2, resources_per_worker={"CPU": 0.5}, storage_path=str(tmp_path))
    distributed = SASRec(TINY, RADIO.num_tracks).fit(RecommenderInputs(
        train, radio.valid, on_epoch=lambda e, m: ray_reports.append((e, m)), training=config, feedback=feedback))
    assert [e for e, _ in ray_reports] == [e for e, _ in local_reports] == [1, 2]
    for (_, ours), (_, theirs) in zip(ray_reports, local_reports):
        assert set(ours) == set(theirs) == {"train/loss", "valid/auc", "valid/auc_sessions"}
        assert ours["valid/auc_sessions"] == theirs["valid/auc_sessions"]
        assert ours["train/loss"] == pytest.approx(theirs["train/loss"], rel=1e-4)
    h = TINY.hidden_size
    for name, value in local.model.state_dict().items():
        theirs = distributed.model.state_dict()[name]
        if name.endswith("in_proj_bias"):  # the key bias has a zero gradient; Adam turns float noise into steps
            value, theirs = torch.cat([value[:h], value[2 * h :]]), torch.cat([theirs[:h], theirs[2 * h :]])
        torch.testing.assert_close(theirs, value, rtol=1e-4, atol=1e-5)
    assert evaluate_feedback(distributed, radio.test)["auc"] == pytest.approx(evaluate_feedback(local, radio.test)["auc"], abs=0.02)


def test_resume_from_an_epoch_state_continues_exactly(radio) -> None:
    config = dataclasses.replace(TINY, dropout=0.2)  # dropout draws must resume too
    train, feedback = radio.train[:60], radio.train_feedback[:60]
    whole = SASRec(config, RADIO.num_tracks).fit(RecommenderInputs(train, feedback=feedback))
    first = SASRec(dataclasses.replace(config, epochs=1), RADIO.num_tracks)
    data = training_data(train, feedback, config.max_length, config.loss)
    session = Session(0, 1, torch.device("cpu"), "fp32", None)
    SASRecTraining(first, data, None, None)(session)
    resumed = Session(0, 1, torch.device("cpu"), "fp32", session.state)
    SASRecTraining(SASRec(config, RADIO.num_tracks), data, None, None)(resumed)
    assert [e for e, _ in resumed.reports] == [2]
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.state["model"][name], value, rtol=0, atol=0)


# --- early stopping -----------------------------------------------------------------------------------


class Scripted:
    """An epoch_eval reporting the given valid/ndcg@10 values in turn, keeping each epoch's weights."""

    def __init__(self, values: list[float]):
        self.values, self.weights = list(values), []

    def __call__(self, recommender: SASRec) -> dict[str, float]:
        self.weights.append({k: v.clone() for k, v in recommender.model.state_dict().items()})
        return {"valid/ndcg@10": self.values[len(self.weights) - 1]}


def assert_weights(model: SASRec, expected: dict[str, torch.Tensor]) -> None:
    for name, value in model.model.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0)


def test_patience_stops_after_epochs_without_a_better_value_and_restores_the_best(train) -> None:
    scripted, reports = Scripted([0.1, 0.3, 0.3, 0.2, 0.5, 0.6]), []
    config = dataclasses.replace(FAST, epochs=6, patience=2)
    model = SASRec(config, NUM_ITEMS).fit(RecommenderInputs(
        train[:40], epoch_eval=scripted, on_epoch=lambda e, m: reports.append(e)))
    assert reports == [1, 2, 3, 4]  # epoch 3 ties (not better), epoch 4 is worse: two epochs after the best
    assert_weights(model, scripted.weights[1])  # the weights after epoch 2


def test_without_patience_every_epoch_runs_and_the_last_weights_stay(train) -> None:
    scripted = Scripted([0.5, 0.1, 0.1])
    model = SASRec(dataclasses.replace(FAST, epochs=3), NUM_ITEMS).fit(RecommenderInputs(train[:40], epoch_eval=scripted))
    assert len(scripted.weights) == 3
    assert_weights(model, scripted.weights[-1])


def test_early_stopping_on_valid_loss_follows_the_mode(train) -> None:
    def losses(mode: str) -> list[float]:
        config = dataclasses.replace(FAST, epochs=3, patience=1, stop_metric="valid/loss", stop_mode=mode)
        reports = []
        SASRec(config, NUM_ITEMS).fit(RecommenderInputs(
            train[:40], valid=held_out(20, seed=2), on_epoch=lambda e, m: reports.append(m)))
        return [m["valid/loss"] for m in reports]

    smaller_is_better = losses("min")
    first_worse = next((i + 2 for i, (a, b) in enumerate(zip(smaller_is_better, smaller_is_better[1:])) if b >= a), 3)
    assert len(smaller_is_better) == first_worse and smaller_is_better[1] < smaller_is_better[0]
    assert losses("max") == smaller_is_better[:2]  # a falling loss is no improvement under "max": stop at epoch 2


def test_a_stop_metric_no_epoch_reports_fails_before_training(train) -> None:
    config = dataclasses.replace(FAST, patience=1)
    with pytest.raises(ValueError, match=r"collaborative.stop_metric: 'valid/ndcg@10' is not reported .*valid/loss"):
        SASRec(config, NUM_ITEMS).fit(RecommenderInputs(train[:40], valid=held_out(20, seed=2)))


def test_resumed_run_keeps_the_early_stopping_state(train) -> None:
    config = dataclasses.replace(FAST, epochs=2, patience=2)
    data = training_data(train[:40], [np.ones(len(s), dtype=np.int8) for s in train[:40]], config.max_length, config.loss)
    first = Session(0, 1, torch.device("cpu"), "fp32", None)
    SASRecTraining(SASRec(config, NUM_ITEMS), data, None, Scripted([0.4, 0.2]))(first)
    assert (first.state["early_stopping"]["best_epoch"], first.state["early_stopping"]["stale"]) == (1, 1)
    resumed = Session(0, 1, torch.device("cpu"), "fp32", first.state)
    SASRecTraining(SASRec(dataclasses.replace(config, epochs=5), NUM_ITEMS), data, None, Scripted([0.3, 0.9]))(resumed)
    assert [e for e, _ in resumed.reports] == [3]  # epoch 3 is the second without a better value than epoch 1's


# --- bad input ----------------------------------------------------------------------------------------


def test_bad_training_input_names_the_sequence(train) -> None:
    model = SASRec(dataclasses.replace(FAST, epochs=1), NUM_ITEMS)
    feedback = [np.ones(len(s), np.int8) for s in train[:5]]
    feedback[3] = feedback[3][:-1]
    with pytest.raises(ValueError, match=r"feedback: sequence 3 has 20 items but feedback of shape \(19,\)"):
        model.fit(RecommenderInputs(train[:5], feedback=feedback))
    with pytest.raises(ValueError, match="feedback: 4 feedback arrays for 5 sequences"):
        model.fit(RecommenderInputs(train[:5], feedback=feedback[:4]))
    with pytest.raises(ValueError, match=f"training sequence 1 holds item id {NUM_ITEMS}, outside the catalogue"):
        model.fit(RecommenderInputs([np.array([1, 2]), np.array([3, NUM_ITEMS])]))
    with pytest.raises(ValueError, match="at least one training sequence of two or more items"):
        model.fit(RecommenderInputs([]))
    bce = SASRec(SASRecRecommenderConfig(negative_samples=0, epochs=1, device="cpu"), NUM_ITEMS)
    with pytest.raises(ValueError, match="recommender.negative_samples: loss 'bce' without skipped tracks"):
        bce.fit(RecommenderInputs(train[:5]))
    with pytest.raises(ValueError, match="the validation set is empty"):
        model.fit(RecommenderInputs(train[:5], valid=EvalSet([], np.zeros(0, np.int64))))
    one_class = FeedbackSet([np.array([1])], [np.array([1])], [np.array([2, 3])], [np.array([1, 1])])
    with pytest.raises(ValueError, match="no session has both a played and a skipped track"):
        model.fit(RecommenderInputs(train[:5], valid=one_class))


def test_identifier_tables_must_cover_the_catalogue() -> None:
    sid = SASRecConfig(item_representation="sid", device="cpu")
    with pytest.raises(ValueError, match="covers 25 items but the catalogue has 30"):
        SASRec(sid, NUM_ITEMS, sids=v0_identifiers(25))
    with pytest.raises(ValueError, match="collaborative.item_representation: 'sid' needs a SemanticIds table"):
        SASRec(sid, NUM_ITEMS)
    with pytest.raises(ValueError, match=r"components: 'genre' needs an item attribute of that name; got \['artist'\]"):
        SASRec(SASRecConfig(components=("genre",), device="cpu"), NUM_ITEMS, attributes={"artist": ARTIST})
    with pytest.raises(ValueError, match="item attribute 'artist' must be 30 integers >= 0"):
        SASRec(SASRecConfig(components=("artist",), device="cpu"), NUM_ITEMS, attributes={"artist": ARTIST[:-1]})
    with pytest.raises(ConfigError, match="collaborative.item_representation: collaborative embeddings are one"):
        collaborative_embeddings([np.array([0, 1])], NUM_ITEMS, sid)


def test_scoring_unknown_items_names_the_session(trained) -> None:
    model, _, _ = trained
    with pytest.raises(ValueError, match=f"items of session 1 hold item id {NUM_ITEMS}"):
        model.score_items([np.array([0]), np.array([1])], [np.array([2]), np.array([3, NUM_ITEMS])])
    with pytest.raises(ValueError, match="history_feedback: sequence 0 has 2 items"):
        model.recommend([np.array([0, 1])], 3, history_feedback=[np.array([1])])


@pytest.mark.parametrize(
    ("cls", "fields", "key"),
    [
        (SASRecRecommenderConfig, {"item_representation": "sids"}, "recommender.item_representation: got 'sids'"),
        (SASRecRecommenderConfig, {"loss": "hinge"}, "recommender.loss"),
        (SASRecRecommenderConfig, {"negative_samples": -1}, "recommender.negative_samples"),
        (SASRecConfig, {"components": ["artist", "artist"]}, "collaborative.components"),
    ],
)
def test_bad_representation_config_names_the_field(cls, fields, key) -> None:
    with pytest.raises(ConfigError, match=key):
        build(cls, fields, cls.section)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"samples": "suffixes"}, "collaborative.samples: got 'suffixes'; valid choices are: 'window', 'prefixes'"),
        ({"norm": "middle"}, "collaborative.norm: got 'middle'; valid choices are: 'pre', 'post'"),
        ({"activation": "tanh"}, "collaborative.activation: got 'tanh'; valid choices are: 'relu', 'gelu'"),
        ({"feed_forward_dropout": "no"}, "collaborative.feed_forward_dropout: expected true or false"),
        ({"init_std": 0}, "collaborative.init_std: must be positive, or null"),
        ({"layer_norm_eps": -1e-12}, "collaborative.layer_norm_eps: must be positive"),
        ({"position_alignment": "middle"}, "collaborative.position_alignment: got 'middle'"),
    ],
)
def test_bad_architecture_option_names_the_key(fields, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build(SASRecConfig, fields, SASRecConfig.section)


# --- architecture and samples: the SASRec paper's defaults, RecBole's as options ---------------------

# At main (a78c724), before these options existed, the default model below trained to these values:
# (initial weights' sum and sum of squares, the three epochs' losses, trained weights' sum and sum of squares),
# the attention key bias left out (its gradient is zero, so Adam moves it by float noise alone). On the
# machine they were taken on (Intel Xeon, torch 2.13.0+cpu, one thread) the state-dict sha256 digests were
# identical to main's as well (cross_entropy: b9a832c4… initial, a9e32979… trained; bce: 748408ab…, efa476b0…);
# the test allows 1e-6 relative because other CPUs' kernels round differently.
BEFORE_THE_OPTIONS = {
    "cross_entropy": ((131.8401814796913, 323.3864113223746),
                      [3.6989781340614694, 3.680103376654328, 3.674573790831644],
                      (131.92471786030364, 323.4095474349169)),
    "bce": ((131.53218564736983, 323.41544825285405),
            [2.0326909737508805, 1.9885166666546805, 1.940464928111092],
            (131.0990177402491, 323.5733568615947)),
}


def weight_statistics(model: SASRec) -> tuple[float, float]:
    """Sum and sum of squares of every weight but the attention biases, in float64."""
    state = [v.double() for k, v in model.model.state_dict().items() if not k.endswith("in_proj_bias")]
    return float(sum(v.sum() for v in state)), float(sum(v.pow(2).sum() for v in state))


@pytest.mark.parametrize("loss", ["cross_entropy", "bce"])
def test_default_model_trains_as_before_the_options(loss) -> None:
    """Same seed, default architecture: the same initial weights, losses and trained weights as at main."""
    rng = np.random.default_rng(7)
    sequences = [rng.integers(0, 40, size=int(rng.integers(2, 30))) for _ in range(60)]
    feedback = [(rng.random(len(s)) < 0.8).astype(np.int8) for s in sequences]
    config = SASRecConfig(epochs=3, batch_size=16, max_length=12, device="cpu", seed=3)
    if loss == "bce":
        config = dataclasses.replace(config, loss="bce", negative_samples=2, feedback_inputs=True)
    initial, epoch_losses, trained = BEFORE_THE_OPTIONS[loss]
    model, losses = SASRec(config, 40), []
    assert weight_statistics(model) == pytest.approx(initial, rel=1e-6)
    model.fit(RecommenderInputs(sequences, on_epoch=lambda e, m: losses.append(m["train/loss"]),
                                feedback=feedback if loss == "bce" else None))
    assert losses == pytest.approx(epoch_losses, rel=1e-6)
    assert weight_statistics(model) == pytest.approx(trained, rel=1e-6)


def layer_norm(x: torch.Tensor, norm: torch.nn.LayerNorm | None, eps: float) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis; without ``norm``, weight 1 and bias 0."""
    mean, variance = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    normalised = (x - mean) / torch.sqrt(variance + eps)
    return normalised if norm is None else normalised * norm.weight + norm.bias


def attention(x: torch.Tensor, layer, allowed: torch.Tensor, heads: int) -> torch.Tensor:
    """Causal multi-head self-attention written out: (batch, seq, h) -> (batch, seq, h)."""
    batch, seq, hidden = x.shape
    q, k, v = (x @ w.T + b for w, b in zip(layer.self_attn.in_proj_weight.chunk(3), layer.self_attn.in_proj_bias.chunk(3)))
    split = lambda t: t.view(batch, seq, heads, hidden // heads).transpose(1, 2)  # noqa: E731  (batch, heads, seq, d)
    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(hidden // heads)
    weights = scores.masked_fill(~allowed.unsqueeze(1), float("-inf")).softmax(-1)
    context = (weights @ split(v)).transpose(1, 2).reshape(batch, seq, hidden)
    return context @ layer.self_attn.out_proj.weight.T + layer.self_attn.out_proj.bias


def hand_forward(model, config: SASRecConfig, inputs: torch.Tensor) -> torch.Tensor:
    """SASRec's forward from its parameters alone: pre-norm x + f(LN(x)) and a final LN, or post-norm
    LN(x + f(x)) after an LN of the input embeddings; positions counted from the newest or the oldest item."""
    eps, seq = config.layer_norm_eps, inputs.shape[1]
    real = inputs != 0  # (batch, seq)
    positions = torch.arange(seq).expand_as(inputs)
    if config.position_alignment == "first":
        positions = (positions - (~real).sum(1, keepdim=True)).clamp(min=0)
    x = model.item_embedding.weight[inputs] + model.position_embedding.weight[positions]
    if config.norm == "post":
        x = layer_norm(x, model.input_norm, eps)
    x = x * real.unsqueeze(-1)
    allowed = (torch.ones(seq, seq, dtype=torch.bool).tril() & real.unsqueeze(1)) | torch.eye(seq, dtype=torch.bool)
    act = torch.relu if config.activation == "relu" else lambda t: t * 0.5 * (1 + torch.erf(t / math.sqrt(2)))
    for layer in model.blocks.layers:
        feed_forward = lambda t: act(t @ layer.linear1.weight.T + layer.linear1.bias) @ layer.linear2.weight.T + layer.linear2.bias  # noqa: E731
        if config.norm == "pre":
            x = x + attention(layer_norm(x, layer.norm1, eps), layer, allowed, config.num_heads)
            x = x + feed_forward(layer_norm(x, layer.norm2, eps))
        else:
            x = layer_norm(x + attention(x, layer, allowed, config.num_heads), layer.norm1, eps)
            x = layer_norm(x + feed_forward(x), layer.norm2, eps)
    return layer_norm(x, model.blocks.norm, eps) if config.norm == "pre" else x


ARCHITECTURES = {
    "paper": SASRecConfig(hidden_size=8, num_layers=2, max_length=6, device="cpu"),
    "recbole": SASRecConfig(hidden_size=8, num_layers=2, max_length=6, device="cpu", norm="post", activation="gelu",
                            layer_norm_eps=0.5, position_alignment="first", feed_forward_dropout=False, init_std=0.02),
}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_layer_order_matches_a_hand_built_computation(name) -> None:
    config = ARCHITECTURES[name]
    model = SASRec(config, 12).model.eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():  # layer norms that are not the identity, weights of any scale
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    inputs = torch.tensor([[0, 0, 3, 7, 1, 12], [5, 2, 9, 9, 4, 6], [0, 0, 0, 0, 0, 8]])  # left-padded internal ids
    with torch.no_grad():
        hidden, _ = model(inputs)
        expected = hand_forward(model, config, inputs)
        other = hand_forward(model, dataclasses.replace(config, norm="pre" if config.norm == "post" else "post"), inputs)
    real = inputs != 0
    torch.testing.assert_close(hidden[real], expected[real], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(hidden[real], other[real], atol=1e-2)  # the other layer order gives other states


def test_first_position_alignment_makes_padding_irrelevant() -> None:
    """Counted from the oldest item, a history's states do not depend on how much padding precedes it;
    counted from the newest (the default), the positions, and so the states, do."""
    history = torch.tensor([[4, 9, 2]])
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.int64), history], dim=1)
    for alignment, same in (("first", True), ("last", False)):
        config = SASRecConfig(hidden_size=8, max_length=6, device="cpu", position_alignment=alignment)
        model = SASRec(config, 10).model.eval()
        with torch.no_grad():
            short, long = model(history)[0][0], model(padded)[0][0, 3:]
        assert torch.allclose(short, long, atol=1e-6) == same, alignment


@pytest.mark.parametrize("inside", [True, False])
def test_feed_forward_dropout_acts_between_the_two_layers_only_when_asked(inside) -> None:
    """In training, the second feed-forward layer reads act(linear1(x)) itself without the inner dropout
    (RecBole), and a copy with some units zeroed and the rest scaled by 1/(1 - p) with it."""
    config = SASRecConfig(hidden_size=64, num_layers=1, max_length=6, dropout=0.5, device="cpu", feed_forward_dropout=inside)
    model = SASRec(config, 10).model.train()
    layer, seen = model.blocks.layers[0], {}
    layer.linear1.register_forward_hook(lambda module, args, output: seen.update(inner=torch.relu(output)))
    layer.linear2.register_forward_hook(lambda module, args, output: seen.update(read=args[0]))
    torch.manual_seed(0)
    model(torch.tensor([[1, 2, 3, 4, 5, 6]] * 4))
    if inside:
        kept = seen["read"] != 0
        assert (seen["inner"][~kept] != 0).any()  # units dropped
        torch.testing.assert_close(seen["read"][kept], seen["inner"][kept] / 0.5)
    else:
        torch.testing.assert_close(seen["read"], seen["inner"], rtol=0, atol=0)


def test_init_std_draws_every_weight_from_one_normal_and_zeroes_the_biases() -> None:
    model = SASRec(SASRecConfig(hidden_size=64, num_layers=2, device="cpu", init_std=0.05), 500).model
    linear = [model.blocks.layers[i].self_attn.in_proj_weight for i in range(2)]
    linear += [model.blocks.layers[i].linear1.weight for i in range(2)]
    for weight in (*linear, model.item_embedding.weight[1:], model.blocks.layers[0].self_attn.out_proj.weight):
        weight = weight.detach()
        assert float(weight.std()) == pytest.approx(0.05, rel=0.1) and abs(float(weight.mean())) < 0.01
    assert not torch.equal(linear[0], linear[1])  # each block drawn on its own
    biases = [p for name, p in model.blocks.named_parameters() if name.endswith("bias") and "norm" not in name]
    assert len(biases) == 8 and all(not b.any() for b in biases)
    assert not model.item_embedding.weight[0].any()  # the padding row
    default = SASRec(SASRecConfig(hidden_size=64, num_layers=2, device="cpu"), 500).model
    in_proj = default.blocks.layers[0].self_attn.in_proj_weight  # torch's Xavier-uniform: std sqrt(2 / (64 + 192))
    assert float(in_proj.std()) == pytest.approx(math.sqrt(2 / 256), rel=0.1)


def test_prefix_samples_counted_by_hand() -> None:
    """Every prefix of each sequence, its last max_length + 1 items, the target at the last position only:
    n - 1 samples for n items (RecBole's count), a skipped next item dropped under cross-entropy."""
    sequences = [np.array([10, 11, 12, 13]), np.array([20, 21]), np.array([30])]
    played = [np.ones(len(s), np.int8) for s in sequences]
    data = training_data(sequences, played, max_length=2, loss="cross_entropy", samples="prefixes")
    assert len(data) == (4 - 1) + (2 - 1)
    assert data.inputs.tolist() == [[0, 11], [11, 12], [12, 13], [0, 21]]  # internal ids: item + 1
    assert data.targets.tolist() == [[-100, 11], [-100, 12], [-100, 13], [-100, 21]]
    feedback = [np.array([1, 1, 0, 1], np.int8), np.array([1, 1], np.int8), np.array([1], np.int8)]
    skipped = training_data(sequences, feedback, max_length=2, loss="cross_entropy", samples="prefixes")
    assert skipped.targets[:, -1].tolist() == [11, 13, 21]  # the prefix whose next item (12) was skipped is gone
    bce = training_data(sequences, feedback, max_length=2, loss="bce", samples="prefixes")
    assert bce.labels[:, -1].tolist() == [1.0, 0.0, 1.0, 1.0] and bce.input_feedback.tolist()[2] == [1, 0]
    window = training_data(sequences, played, max_length=2, loss="cross_entropy")
    assert window.targets.tolist() == [[12, 13], [-100, 21]]  # one window each, every position a target


def test_recbole_architecture_learns_the_rule(train) -> None:
    config = dataclasses.replace(FAST, epochs=4, samples="prefixes", norm="post", activation="gelu",
                                 feed_forward_dropout=False, init_std=0.02, layer_norm_eps=1e-12,
                                 position_alignment="first")
    model = SASRec(config, NUM_ITEMS)
    before = hit_rate_at_1(model, held_out(100, seed=1))
    model.fit(RecommenderInputs(train[:100]))
    assert hit_rate_at_1(model, held_out(100, seed=1)) > before + 0.5
