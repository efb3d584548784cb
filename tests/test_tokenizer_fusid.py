"""FusID tokenizer: co-occurrence mining, fusion network losses and product quantization on a tiny catalog."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from raysid.config import ConfigError, build
from raysid.tokenizers import Tokenizer, TokenizerInputs
from raysid.tokenizers.fusid import (
    FusIDConfig,
    FusIDTokenizer,
    PairSampler,
    contrastive_loss,
    cooccurrence,
    covariance_loss,
)

torch.set_num_threads(1)

NUM_ITEMS, NUM_CLUSTERS = 300, 6
DIMS = {"text": 16, "audio": 8}
TRAIN = np.arange(240)
TINY = FusIDConfig(
    hidden_dim=32, num_subembeddings=3, subembedding_dim=8, codebook_size=8, pairs_per_epoch=2000, epochs=5,
    batch_size=64, learning_rate=1e-3, niter=10, device="cpu", distance="euclidean",
)


@pytest.fixture(scope="module")
def catalog() -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """Standardised clustered features and playlists of 8 items drawn within one cluster."""
    rng = np.random.default_rng(0)
    labels = rng.integers(NUM_CLUSTERS, size=NUM_ITEMS)
    features = {}
    for name, dim in DIMS.items():
        x = 2.0 * rng.normal(size=(NUM_CLUSTERS, dim))[labels] + 0.5 * rng.normal(size=(NUM_ITEMS, dim))
        features[name] = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    members = [np.flatnonzero(labels == c) for c in range(NUM_CLUSTERS)]
    sequences = [rng.choice(members[c], size=8) for c in rng.integers(NUM_CLUSTERS, size=200)]
    return features, sequences


@pytest.fixture(scope="module")
def fitted(catalog) -> FusIDTokenizer:
    features, sequences = catalog
    return FusIDTokenizer(TINY).fit(TokenizerInputs(features, TRAIN, sequences=sequences))


def _block_correlation(fused: np.ndarray, num_subembeddings: int) -> float:
    """Eq. 2 on standardised columns: cross-sub-embedding correlation, blind to the embeddings' scale."""
    z = (fused - fused.mean(0)) / (fused.std(0) + 1e-8)
    return float(covariance_loss(torch.from_numpy(z), num_subembeddings))


# --- co-occurrence mining ---------------------------------------------------------------------------

HAND_SEQUENCES = [np.array([0, 1, 2]), np.array([1, 0]), np.array([3, 4]), np.array([2, 2, 3])]
HAND_TRAIN = np.array([0, 1, 2, 3])  # item 4 is not a train item


def test_cooccurrence_counts_adjacent_pairs_by_hand():
    cooc = cooccurrence(HAND_SEQUENCES, HAND_TRAIN, num_items=5, window=1)
    # adjacent pairs: (0,1) (1,2) | (1,0) | (3,4) not train | (2,2) same item, (2,3)
    assert cooc.pairs.tolist() == [[0, 1], [1, 2], [2, 3]]
    assert cooc.counts.tolist() == [2, 1, 1]
    assert cooc.frequency.tolist() == [2, 2, 3, 2, 0]  # occurrences of each train item
    np.testing.assert_allclose(cooc.scores, [2 / np.sqrt(2 * 2), 1 / np.sqrt(2 * 3), 1 / np.sqrt(3 * 2)])


def test_cooccurrence_window_two_adds_pairs_two_apart():
    cooc = cooccurrence(HAND_SEQUENCES, HAND_TRAIN, num_items=5, window=2)
    # offset 2 adds (0,2) from [0,1,2] and a second (2,3) from [2,2,3]
    assert cooc.pairs.tolist() == [[0, 1], [0, 2], [1, 2], [2, 3]]
    assert cooc.counts.tolist() == [2, 1, 1, 2]


def test_pair_sampler_positives_are_high_scores_and_negatives_the_rest():
    cooc = cooccurrence(HAND_SEQUENCES, HAND_TRAIN, num_items=5, window=1)
    sampler = PairSampler(cooc, HAND_TRAIN, positive_quantile=0.9, negative_quantile=0.1)
    assert sampler.positives.tolist() == [[0, 1]]  # score 1.0; the others score 1/sqrt(6)
    negatives = sampler.negatives(np.random.default_rng(0), 300)
    seen = {tuple(sorted(pair)) for pair in negatives.tolist()}
    # never co-occurring pairs and the low-score pairs (1,2), (2,3); never the positive, item 4 or (i, i)
    assert seen == {(0, 2), (0, 3), (1, 2), (1, 3), (2, 3)}
    pairs, labels = sampler.sample(np.random.default_rng(0), 11)
    assert pairs.shape == (11, 2) and labels.sum() == 6
    assert all(sorted(pair) == [0, 1] for pair in pairs[labels == 1].tolist())


def test_pair_sampler_is_seeded():
    cooc = cooccurrence(HAND_SEQUENCES, HAND_TRAIN, num_items=5, window=1)
    sampler = PairSampler(cooc, HAND_TRAIN, 0.9, 0.1)
    first = sampler.sample(np.random.default_rng(3), 50)
    again = sampler.sample(np.random.default_rng(3), 50)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])


def test_no_cooccurring_train_pair_is_an_error():
    with pytest.raises(ValueError, match="co-occur"):
        PairSampler(cooccurrence([np.array([0]), np.array([1])], np.array([0, 1]), 2, 5), np.array([0, 1]), 0.9, 0.1)


# --- losses -------------------------------------------------------------------------------------------


def test_contrastive_loss_margin_and_mse_forms():
    first = torch.zeros(3, 2)
    second = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.3, 0.4]])  # D = 5, 0.5, 0.5
    labels = torch.tensor([1.0, 0.0, 0.0])
    # positive: D² = 25; negatives at D = 0.5 < m = 1: (1 - 0.5)² each
    assert float(contrastive_loss(first, second, labels, 1.0, "margin")) == pytest.approx((25 + 0.25 + 0.25) / 3)
    far = torch.tensor([[3.0, 4.0]]).repeat(3, 1)  # negatives at D = 5 > m
    assert float(contrastive_loss(first, far, torch.zeros(3), 1.0, "margin")) == pytest.approx(0.0)
    assert float(contrastive_loss(first, far, torch.zeros(3), 1.0, "mse")) == pytest.approx((1 - 5) ** 2)  # eq. 1
    # "rms": D / sqrt(n*d) = 5 / sqrt(2) for the positive
    assert float(contrastive_loss(first, far, torch.ones(3), 1.0, "margin", "rms")) == pytest.approx(25 / 2)


def test_covariance_loss_sees_only_cross_block_covariance():
    x = torch.randn(4096, 4, generator=torch.Generator().manual_seed(0))
    correlated_within = torch.cat([x[:, :2], x[:, :2]], dim=1)[:, [0, 2, 1, 3]]  # e_1 = (a, a), e_2 = (b, b)
    correlated_across = torch.cat([x[:, :2], x[:, :2]], dim=1)  # e_1 = (a, b) = e_2
    assert float(covariance_loss(correlated_within, 2)) < 0.01
    assert float(covariance_loss(correlated_across, 2)) == pytest.approx(1.0, abs=0.1)  # ‖I‖²_F / d = 2 / 2


# --- the tokenizer ------------------------------------------------------------------------------------


def test_encode_shapes_codes_in_range_and_names(catalog, fitted):
    features = catalog[0]
    codes = fitted.encode(features)
    assert isinstance(fitted, Tokenizer)
    assert codes.shape == (NUM_ITEMS, 3) and codes.dtype == np.int64
    assert fitted.codebook_sizes == (8, 8, 8) and fitted.position_names == ("p1", "p2", "p3")
    assert (codes >= 0).all() and (codes < 8).all()
    assert fitted.embed(features).shape == (NUM_ITEMS, 3 * 8)
    assert len(np.unique(codes[TRAIN, 0])) == 8  # k-means on the train items uses every centroid


def test_codes_are_nearest_centroids_and_decode_returns_them(catalog, fitted):
    features = catalog[0]
    codes, fused = fitted.encode(features), fitted.embed(features)
    centroids = fitted.network.centroids.numpy()  # (n, K, d)
    for i in range(3):
        sub = fused[:, i * 8 : (i + 1) * 8]  # (items, d)
        distances = ((sub[:, None, :] - centroids[i][None]) ** 2).sum(-1)  # (items, K)
        np.testing.assert_array_equal(codes[:, i], distances.argmin(1))
    decoded = fitted.decode(codes)
    assert set(decoded) == {"fused"} and decoded["fused"].shape == (NUM_ITEMS, 24)
    assert decoded["fused"].dtype == np.float32
    np.testing.assert_array_equal(decoded["fused"][:, 8:16], centroids[1][codes[:, 1]])
    with pytest.raises(ValueError, match="values must lie"):
        fitted.decode(codes + 8)


def test_same_seed_same_codes_and_other_seed_differs(catalog):
    features, sequences = catalog
    config = dataclasses.replace(TINY, epochs=2)
    first = FusIDTokenizer(config).fit(TokenizerInputs(features, TRAIN, sequences=sequences)).encode(features)
    again = FusIDTokenizer(config).fit(TokenizerInputs(features, TRAIN, sequences=sequences)).encode(features)
    other = FusIDTokenizer(dataclasses.replace(config, seed=1)).fit(TokenizerInputs(features, TRAIN, sequences=sequences))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other.encode(features))


def test_save_load_round_trip(catalog, fitted, tmp_path):
    features = catalog[0]
    fitted.save(tmp_path / "tok")
    loaded = FusIDTokenizer.load(tmp_path / "tok")
    codes = fitted.encode(features)
    np.testing.assert_array_equal(loaded.encode(features), codes)
    np.testing.assert_array_equal(loaded.embed(features), fitted.embed(features))
    np.testing.assert_array_equal(loaded.decode(codes)["fused"], fitted.decode(codes)["fused"])
    assert loaded.config == fitted.config and loaded.position_names == fitted.position_names


def test_on_epoch_reports_every_loss_term(catalog):
    features, sequences = catalog
    history: list[dict[str, float]] = []
    FusIDTokenizer(dataclasses.replace(TINY, epochs=2)).fit(TokenizerInputs(
        features, TRAIN, sequences=sequences, on_epoch=lambda epoch, metrics: history.append(metrics)))
    names = {f"tokenizer/{term}" for term in ("loss", "contrastive", "covariance", "variance")}
    assert len(history) == 2 and set(history[0]) == names


def test_contrastive_only_and_regularised_both_train_and_differ(catalog):
    """Table 1's ablation: both variants fit the pairs; the regulariser decorrelates the sub-embeddings."""
    features, sequences = catalog
    results = {}
    for regularizer in (True, False):
        history: list[dict[str, float]] = []
        config = dataclasses.replace(TINY, alpha=1.0, regularizer=regularizer)
        tokenizer = FusIDTokenizer(config).fit(TokenizerInputs(
            features, TRAIN, sequences=sequences, on_epoch=lambda epoch, metrics: history.append(metrics)))
        assert history[-1]["tokenizer/contrastive"] < 0.5 * history[0]["tokenizer/contrastive"]
        results[regularizer] = tokenizer.encode(features), tokenizer.embed(features)[TRAIN]
    assert not np.array_equal(results[True][0], results[False][0])
    regularised, contrastive_only = (_block_correlation(results[flag][1], 3) for flag in (True, False))
    assert regularised < 0.75 * contrastive_only  # seeds 0-5: ratios 0.22-0.60


def test_rms_distance_keeps_the_variance_the_plain_distance_lets_collapse(catalog):
    """At α = 0.2 the summed D² outweighs L_var; per-dimension D lets the regulariser hold std near γ = 1."""
    features, sequences = catalog
    stds = {}
    for distance in ("euclidean", "rms"):
        config = dataclasses.replace(TINY, distance=distance)
        tokenizer = FusIDTokenizer(config).fit(TokenizerInputs(features, TRAIN, sequences=sequences))
        stds[distance] = float(tokenizer.embed(features)[TRAIN].std(0).mean())
    assert stds["euclidean"] < 0.7 and stds["rms"] > 0.8  # seeds 0-3: 0.46-0.52 vs 0.89-0.98


def test_missing_sequences_is_an_error_unless_contrastive_loss_is_off(catalog):
    features = catalog[0]
    with pytest.raises(ValueError, match="needs the training sequences"):
        FusIDTokenizer(TINY).fit(TokenizerInputs(features, TRAIN))
    config = dataclasses.replace(TINY, contrastive_loss=False, epochs=1)
    codes = FusIDTokenizer(config).fit(TokenizerInputs(features, TRAIN)).encode(features)
    assert codes.shape == (NUM_ITEMS, 3)


def test_configured_modalities_are_the_only_ones_fused(catalog):
    features, sequences = catalog
    config = dataclasses.replace(TINY, modalities=("audio",), epochs=1)
    tokenizer = FusIDTokenizer(config).fit(TokenizerInputs(features, TRAIN, sequences=sequences))
    assert tokenizer.input_dims == {"audio": 8}
    np.testing.assert_array_equal(tokenizer.encode(features), tokenizer.encode({"audio": features["audio"]}))
    with pytest.raises(ValueError, match="missing"):
        FusIDTokenizer(dataclasses.replace(config, modalities=("lyrics",))).fit(TokenizerInputs(
            features, TRAIN, sequences=sequences))


def test_fewer_train_items_than_codebook_size(catalog):
    features, sequences = catalog
    few = np.unique(sequences[0])  # one playlist's items
    config = dataclasses.replace(TINY, codebook_size=32, epochs=1)
    codes = FusIDTokenizer(config).fit(TokenizerInputs(features, few, sequences=sequences)).encode(features)
    assert (codes >= 0).all() and (codes < 32).all()


def test_encode_before_fit_is_an_error():
    with pytest.raises(RuntimeError, match="fit or load"):
        FusIDTokenizer(TINY).encode({"text": np.zeros((2, 16), np.float32)})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"codebook_size": 0}, "tokenizer.codebook_size: codebook size must be >= 1"),
        ({"num_subembeddings": 0}, "tokenizer.num_subembeddings: must be >= 1"),
        ({"contrastive_loss": False, "regularizer": False}, "tokenizer.contrastive_loss: .*at least one loss"),
        ({"negative_quantile": 0.9, "positive_quantile": 0.5}, "tokenizer.negative_quantile"),
        ({"positive_quantile": 1.5}, "tokenizer.positive_quantile"),
        ({"window": 0}, "tokenizer.window"),
        ({"margin": 0.0}, "tokenizer.margin"),
        ({"alpha": -1.0}, "tokenizer.alpha"),
        ({"device": "tpu"}, "tokenizer.device"),
        ({"contrastive_form": "hinge"}, "tokenizer.contrastive_form"),
        ({"distance": "cosine"}, "tokenizer.distance"),
        ({"modalities": ["text", "text"]}, "tokenizer.modalities"),
        ({"codebook": 8}, "unknown key 'codebook'"),
    ],
)
def test_config_errors_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build(FusIDConfig, overrides, "tokenizer")
