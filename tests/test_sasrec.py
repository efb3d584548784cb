"""SASRec on a tiny catalogue with a learnable rule: item i is followed by (i + 1) mod 30, with noise;
semantic-ID and attribute item representations; training on played/skipped feedback of the radio catalog,
stratified AUC, two Ray Train workers against one process, resume, and bad input."""

from __future__ import annotations

import dataclasses
import itertools

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
from raysid.recommenders.base import Recommender, resolve_device, validate_histories
from raysid.recommenders.sasrec import (
    SASRec,
    SASRecConfig,
    SASRecRecommenderConfig,
    SASRecTraining,
    training_data,
)
from raysid.semantic_ids.table import SemanticIds
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
    features = {"x": np.zeros((num_items, 2), np.float32)}
    tokenizer = RandomTokenizer(RandomConfig(codebook_sizes=sizes, seed=3)).fit(features, np.arange(num_items))
    return SemanticIds.from_codes(tokenizer.encode(features), tokenizer.position_names, tokenizer.codebook_sizes)


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
    return model.fit(train)


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
    model.fit(radio.train, valid=radio.valid, feedback=radio.train_feedback, on_epoch=lambda e, m: reports.append((e, m)))
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
    local = SASRec(TINY, RADIO.num_tracks).fit(train, radio.valid, lambda e, m: local_reports.append((e, m)),
                                                feedback=feedback)
    config = TrainingConfig(ray=True, num_workers=2, resources_per_worker={"CPU": 0.5}, storage_path=str(tmp_path))
    distributed = SASRec(TINY, RADIO.num_tracks).fit(train, radio.valid, lambda e, m: ray_reports.append((e, m)),
                                                      training=config, feedback=feedback)
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
    whole = SASRec(config, RADIO.num_tracks).fit(train, feedback=feedback)
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
    model = SASRec(config, NUM_ITEMS).fit(train[:40], epoch_eval=scripted, on_epoch=lambda e, m: reports.append(e))
    assert reports == [1, 2, 3, 4]  # epoch 3 ties (not better), epoch 4 is worse: two epochs after the best
    assert_weights(model, scripted.weights[1])  # the weights after epoch 2


def test_without_patience_every_epoch_runs_and_the_last_weights_stay(train) -> None:
    scripted = Scripted([0.5, 0.1, 0.1])
    model = SASRec(dataclasses.replace(FAST, epochs=3), NUM_ITEMS).fit(train[:40], epoch_eval=scripted)
    assert len(scripted.weights) == 3
    assert_weights(model, scripted.weights[-1])


def test_early_stopping_on_valid_loss_follows_the_mode(train) -> None:
    def losses(mode: str) -> list[float]:
        config = dataclasses.replace(FAST, epochs=3, patience=1, stop_metric="valid/loss", stop_mode=mode)
        reports = []
        SASRec(config, NUM_ITEMS).fit(train[:40], valid=held_out(20, seed=2), on_epoch=lambda e, m: reports.append(m))
        return [m["valid/loss"] for m in reports]

    smaller_is_better = losses("min")
    first_worse = next((i + 2 for i, (a, b) in enumerate(zip(smaller_is_better, smaller_is_better[1:])) if b >= a), 3)
    assert len(smaller_is_better) == first_worse and smaller_is_better[1] < smaller_is_better[0]
    assert losses("max") == smaller_is_better[:2]  # a falling loss is no improvement under "max": stop at epoch 2


def test_a_stop_metric_no_epoch_reports_fails_before_training(train) -> None:
    config = dataclasses.replace(FAST, patience=1)
    with pytest.raises(ValueError, match=r"collaborative.stop_metric: 'valid/ndcg@10' is not reported .*valid/loss"):
        SASRec(config, NUM_ITEMS).fit(train[:40], valid=held_out(20, seed=2))


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
        model.fit(train[:5], feedback=feedback)
    with pytest.raises(ValueError, match="feedback: 4 feedback arrays for 5 sequences"):
        model.fit(train[:5], feedback=feedback[:4])
    with pytest.raises(ValueError, match=f"training sequence 1 holds item id {NUM_ITEMS}, outside the catalogue"):
        model.fit([np.array([1, 2]), np.array([3, NUM_ITEMS])])
    with pytest.raises(ValueError, match="at least one training sequence of two or more items"):
        model.fit([])
    bce = SASRec(SASRecRecommenderConfig(negative_samples=0, epochs=1, device="cpu"), NUM_ITEMS)
    with pytest.raises(ValueError, match="recommender.negative_samples: loss 'bce' without skipped tracks"):
        bce.fit(train[:5])
    with pytest.raises(ValueError, match="the validation set is empty"):
        model.fit(train[:5], valid=EvalSet([], np.zeros(0, np.int64)))
    one_class = FeedbackSet([np.array([1])], [np.array([1])], [np.array([2, 3])], [np.array([1, 1])])
    with pytest.raises(ValueError, match="no session has both a played and a skipped track"):
        model.fit(train[:5], valid=one_class)


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
