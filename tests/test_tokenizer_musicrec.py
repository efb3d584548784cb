"""MusicRec tokenizer and the shared residual quantizer, on a tiny clustered 3-modality catalog."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from raysid.config import ConfigError, build
from raysid.tokenizers import TOKENIZERS, Tokenizer, TokenizerInputs, get_tokenizer
from raysid.tokenizers.musicrec import MusicRecConfig, MusicRecTokenizer
from raysid.tokenizers.musicrec import build_network
from raysid.tokenizers.quantizers import ResidualQuantizer

torch.set_num_threads(1)

NUM_ITEMS, NUM_CLUSTERS = 300, 6
DIMS = {"text": 16, "audio": 8, "image": 12}
TRAIN = np.arange(240)
TINY = MusicRecConfig(
    latent_dim=8, hidden_dims=(32,), codebook_size=16, epochs=20, batch_size=64, learning_rate=3e-3, device="cpu"
)


@pytest.fixture(scope="module")
def catalog() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Standardised features with cluster structure in every modality, and CF embeddings of the clusters."""
    rng = np.random.default_rng(0)
    labels = rng.integers(NUM_CLUSTERS, size=NUM_ITEMS)
    features = {}
    for name, dim in DIMS.items():
        x = 2.0 * rng.normal(size=(NUM_CLUSTERS, dim))[labels] + 0.5 * rng.normal(size=(NUM_ITEMS, dim))
        features[name] = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    collaborative = rng.normal(size=(NUM_CLUSTERS, 8))[labels] + 0.3 * rng.normal(size=(NUM_ITEMS, 8))
    return features, collaborative.astype(np.float32)


@pytest.fixture(scope="module")
def fitted(catalog) -> MusicRecTokenizer:
    features, collaborative = catalog
    return MusicRecTokenizer(TINY).fit(TokenizerInputs(features, TRAIN, collaborative=collaborative))


def test_encode_shape_dtype_and_codes_inside_codebooks(catalog, fitted):
    codes = fitted.encode(catalog[0])
    assert isinstance(fitted, Tokenizer)
    assert codes.shape == (NUM_ITEMS, 2 + 3 * 2) and codes.dtype == np.int64
    assert fitted.codebook_sizes == (16,) * 8
    assert (codes >= 0).all() and (codes < np.array(fitted.codebook_sizes)).all()


def test_position_names_shared_then_each_modality():
    tokenizer = MusicRecTokenizer(dataclasses.replace(TINY, epochs=1))
    with pytest.raises(RuntimeError, match="fit or load"):
        tokenizer.position_names
    features = {"text": np.zeros((4, 3), np.float32), "audio": np.ones((4, 2), np.float32)}
    tokenizer.fit(TokenizerInputs(features, np.arange(4)))
    assert tokenizer.position_names == ("s1", "s2", "text1", "text2", "audio1", "audio2")


def test_same_seed_same_codes_and_other_seed_differs(catalog):
    features, collaborative = catalog
    config = dataclasses.replace(TINY, epochs=3)
    first = MusicRecTokenizer(config).fit(TokenizerInputs(features, TRAIN, collaborative=collaborative)).encode(features)
    again = MusicRecTokenizer(config).fit(TokenizerInputs(features, TRAIN, collaborative=collaborative)).encode(features)
    other = MusicRecTokenizer(dataclasses.replace(config, seed=1)).fit(TokenizerInputs(
        features, TRAIN, collaborative=collaborative)).encode(features)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_save_load_round_trip(catalog, fitted, tmp_path):
    fitted.save(tmp_path / "tok")
    loaded = MusicRecTokenizer.load(tmp_path / "tok")
    codes = fitted.encode(catalog[0])
    np.testing.assert_array_equal(loaded.encode(catalog[0]), codes)
    assert loaded.position_names == fitted.position_names and loaded.config == fitted.config
    original, restored = fitted.decode(codes), loaded.decode(codes)
    for name in DIMS:
        np.testing.assert_array_equal(restored[name], original[name])


def test_reconstruction_well_below_feature_variance(catalog, fitted):
    features = catalog[0]
    reconstruction = fitted.decode(fitted.encode(features))
    for name, x in features.items():
        assert reconstruction[name].shape == x.shape and reconstruction[name].dtype == np.float32
        assert ((reconstruction[name] - x) ** 2).mean() < 0.4 * x.var()  # standardised: var 1


@pytest.mark.parametrize("shared, specific", [(1, 3), (3, 1), (0, 2)])
def test_shared_specific_split_sets_identifier_length(catalog, shared, specific):
    config = dataclasses.replace(TINY, epochs=1, shared_levels=shared, specific_levels=specific)
    tokenizer = MusicRecTokenizer(config).fit(TokenizerInputs(catalog[0], TRAIN))
    assert tokenizer.encode(catalog[0]).shape == (NUM_ITEMS, shared + len(DIMS) * specific)
    assert len(tokenizer.position_names) == len(tokenizer.codebook_sizes) == shared + len(DIMS) * specific


def test_kmeans_init_replaces_every_random_codeword(catalog):
    # lr so small that training cannot move a codeword: any change comes from the k-means init.
    config = dataclasses.replace(TINY, epochs=1, learning_rate=1e-9, reset_dead_codes=False)
    initial = build_network(config, list(DIMS.values()), None)
    fitted = MusicRecTokenizer(config).fit(TokenizerInputs(catalog[0], TRAIN)).network
    pairs = [(initial.shared, fitted.shared), *zip(initial.specific, fitted.specific)]
    for before, after in pairs:
        moved = (after.codebooks.detach() - before.codebooks.detach()).abs().amax(dim=2)  # (levels, K)
        assert (moved > 1e-4).all()


def test_alignment_loss_falls_with_collaborative_embeddings(catalog):
    features, collaborative = catalog
    history: list[dict[str, float]] = []
    config = dataclasses.replace(TINY, epochs=8, alpha=1.0, beta=0.1)
    MusicRecTokenizer(config).fit(TokenizerInputs(
        features, TRAIN, collaborative=collaborative, on_epoch=lambda epoch, m: history.append(m)))
    names = {f"tokenizer/{term}" for term in ("loss", "recon", "rq", "align", "relation")}
    assert len(history) == 8 and set(history[0]) == names
    assert history[-1]["tokenizer/align"] < 0.8 * history[0]["tokenizer/align"]
    assert history[-1]["tokenizer/relation"] < history[0]["tokenizer/relation"]


def test_collaborative_terms_skipped_without_cf(catalog):
    history: list[dict[str, float]] = []
    tokenizer = MusicRecTokenizer(dataclasses.replace(TINY, epochs=1))
    tokenizer.fit(TokenizerInputs(catalog[0], TRAIN, collaborative=None, on_epoch=lambda epoch, m: history.append(m)))
    assert history[0]["tokenizer/align"] == history[0]["tokenizer/relation"] == 0.0
    assert tokenizer.network.cf_head is None


def test_fit_rejects_bad_inputs(catalog):
    features, collaborative = catalog
    tokenizer = MusicRecTokenizer(TINY)
    with pytest.raises(ValueError, match="train_items"):
        tokenizer.fit(TokenizerInputs(features, np.array([], dtype=np.int64)))
    with pytest.raises(ValueError, match="collaborative"):
        tokenizer.fit(TokenizerInputs(features, TRAIN, collaborative=collaborative[:10]))
    with pytest.raises(ValueError, match="different numbers of rows"):
        tokenizer.fit(TokenizerInputs({**features, "audio": features["audio"][:100]}, TRAIN))


def test_quantizer_decode_equals_quantized_in_eval():
    torch.manual_seed(0)
    quantizer = ResidualQuantizer(num_levels=3, codebook_size=8, dim=4).eval()
    x = torch.randn(50, 4)
    quantizer.init_kmeans(x, seed=0)
    out = quantizer(x)
    assert out.codes.shape == (50, 3) and out.codes.dtype == torch.int64
    assert torch.equal(quantizer.decode(out.codes), out.quantized)
    assert torch.allclose(out.residual, x - out.quantized, atol=1e-6)


def test_quantizer_straight_through_gradient_reaches_input():
    torch.manual_seed(0)
    quantizer = ResidualQuantizer(num_levels=2, codebook_size=4, dim=3)
    x = torch.randn(10, 3, requires_grad=True)
    quantizer(x).quantized.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_quantizer_loss_matches_equation_8_by_hand():
    quantizer = ResidualQuantizer(num_levels=2, codebook_size=2, dim=2, commitment_weight=0.25)
    with torch.no_grad():
        quantizer.codebooks.copy_(torch.tensor([[[0.0, 0.0], [1.0, 1.0]], [[0.1, 0.1], [0.0, 0.2]]]))
    x = torch.tensor([[0.9, 1.2], [0.1, -0.1]])
    out = quantizer(x)
    # Level 1: codes (1, 0), r - e = (-0.1, 0.2) and (0.1, -0.1); level 2 on those residuals: codes (1, 0),
    # r - e = (-0.1, 0.0) and (0.0, -0.2). Each level adds (1 + μ) ||r - e||², averaged over the batch.
    assert out.codes.tolist() == [[1, 1], [0, 0]]
    level1 = ((0.01 + 0.04) + (0.01 + 0.01)) / 2
    level2 = ((0.01 + 0.0) + (0.0 + 0.04)) / 2
    assert out.loss.item() == pytest.approx(1.25 * (level1 + level2), rel=1e-5)


def test_quantizer_kmeans_fallback_with_fewer_points_than_codes():
    quantizer = ResidualQuantizer(num_levels=1, codebook_size=16, dim=3)
    points = torch.randn(5, 3)
    quantizer.init_kmeans(points, seed=0)
    nearest = torch.cdist(quantizer.codebooks[0].detach(), points).min(dim=1).values  # (16,)
    assert (nearest < 0.01).all()


def test_quantizer_reset_dead_codes_reseeds_only_unused():
    torch.manual_seed(0)
    quantizer = ResidualQuantizer(num_levels=1, codebook_size=4, dim=2)
    before = quantizer.codebooks.detach().clone()
    usage = torch.tensor([[3, 0, 1, 0]])
    x = torch.randn(20, 2)
    assert quantizer.reset_dead_codes(x, usage, seed=0) == 2
    after = quantizer.codebooks.detach()
    assert torch.equal(after[0, [0, 2]], before[0, [0, 2]])
    for row in after[0, [1, 3]]:
        assert (x == row).all(dim=1).any()  # re-seeded to one of the inputs


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"tokenizer\.codebook_size.*>= 1"):
        MusicRecConfig(codebook_size=0)
    with pytest.raises(ConfigError, match=r"tokenizer\.alpha"):
        MusicRecConfig(alpha=-0.1)
    with pytest.raises(ConfigError, match=r"tokenizer\.shared_levels"):
        MusicRecConfig(shared_levels=0, specific_levels=0)
    assert build(MusicRecConfig, {"hidden_dims": [64, 32], "alpha": "1e-3"}).hidden_dims == (64, 32)


def test_registry_lists_valid_names():
    spec = get_tokenizer("musicrec")
    assert spec == TOKENIZERS["musicrec"] and (spec.config, spec.model_class()) == (MusicRecConfig, MusicRecTokenizer)
    with pytest.raises(ConfigError, match="unknown tokenizer 'nope'; valid kinds are: .*kmeans, musicrec, per_modality"):
        get_tokenizer("nope")
