"""RQ-VAE, 3MToken (per-modality RQ-VAE) and VQ-VAE tokenizers, and per-level codebook sizes in the quantizer.

The classes are imported from their modules, so these tests do not depend on the tokenizer registry.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from raysid.config import ConfigError, build, to_dict
from raysid.tokenizers.base import Tokenizer, TokenizerInputs
from raysid.tokenizers.per_modality import PerModalityConfig, PerModalityTokenizer
from raysid.tokenizers.quantizers import ResidualQuantizer
from raysid.tokenizers.rqvae import RQVAEConfig, RQVAETokenizer
from raysid.tokenizers.vqvae import VQVAEConfig, VQVAETokenizer

torch.set_num_threads(1)

NUM_ITEMS, NUM_CLUSTERS = 300, 6
DIMS = {"text": 16, "audio": 8, "image": 12}
TRAIN = np.arange(240)
SIZES = (4, 8, 16)  # per-level K_l, distinct so that a level capped at another's size would show
SMALL = dict(hidden_dims=(32, 16), latent_dim=8, epochs=20, batch_size=64, learning_rate=3e-3, device="cpu")
TINY = {
    "rqvae": (RQVAETokenizer, RQVAEConfig(codebook_sizes=SIZES, **SMALL)),
    "per_modality": (PerModalityTokenizer, PerModalityConfig(codebook_sizes=SIZES, **SMALL)),
    "vqvae": (VQVAETokenizer, VQVAEConfig(codebook_size=32, **SMALL)),
}
EXPECTED_SIZES = {"rqvae": SIZES, "per_modality": SIZES * 3, "vqvae": (32,)}
KINDS = list(TINY)


@pytest.fixture(scope="module")
def features() -> dict[str, np.ndarray]:
    """Standardised features (variance 1 per column) with cluster structure in every modality."""
    rng = np.random.default_rng(0)
    labels = rng.integers(NUM_CLUSTERS, size=NUM_ITEMS)
    features = {}
    for name, dim in DIMS.items():
        x = 2.0 * rng.normal(size=(NUM_CLUSTERS, dim))[labels] + 0.5 * rng.normal(size=(NUM_ITEMS, dim))
        features[name] = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    return features


@pytest.fixture(scope="module")
def fitted(features) -> dict[str, RQVAETokenizer]:
    return {kind: cls(config).fit(TokenizerInputs(features, TRAIN)) for kind, (cls, config) in TINY.items()}


@pytest.mark.parametrize("kind", KINDS)
def test_encode_shape_dtype_and_codes_inside_per_level_codebooks(features, fitted, kind):
    tokenizer = fitted[kind]
    codes = tokenizer.encode(features)
    assert isinstance(tokenizer, Tokenizer)
    assert tokenizer.codebook_sizes == EXPECTED_SIZES[kind]
    assert codes.shape == (NUM_ITEMS, len(EXPECTED_SIZES[kind])) and codes.dtype == np.int64
    assert (codes >= 0).all() and (codes < np.array(EXPECTED_SIZES[kind])).all()


def test_per_level_sizes_respected_and_each_level_used(features, fitted):
    codes = fitted["rqvae"].encode(features)
    distinct = [len(np.unique(codes[:, level])) for level in range(3)]
    assert distinct[0] <= 4 and distinct[2] > 8  # the last level is not capped by the smaller ones
    quantizer = fitted["rqvae"].networks[0].quantizer
    assert quantizer.codebook_sizes == SIZES and quantizer.codebooks.shape == (3, 16, 8)
    padding = torch.cat([quantizer.codebooks[0, 4:], quantizer.codebooks[1, 8:]]).detach()
    assert torch.equal(padding, torch.zeros_like(padding))  # never chosen, trained or re-seeded


def test_position_names():
    assert RQVAETokenizer(TINY["rqvae"][1]).position_names == ("rq1", "rq2", "rq3")
    assert VQVAETokenizer(TINY["vqvae"][1]).position_names == ("vq1",)
    tokenizer = PerModalityTokenizer(dataclasses.replace(TINY["per_modality"][1], epochs=1))
    with pytest.raises(RuntimeError, match="fit or load"):
        tokenizer.position_names
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    tokenizer.fit(TokenizerInputs({"text": x, "audio": x[:, :2]}, np.arange(8)))
    assert tokenizer.position_names == ("text1", "text2", "text3", "audio1", "audio2", "audio3")


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_codes_and_other_seed_differs(features, kind):
    cls, config = TINY[kind]
    config = dataclasses.replace(config, epochs=3)
    first = cls(config).fit(TokenizerInputs(features, TRAIN)).encode(features)
    again = cls(config).fit(TokenizerInputs(features, TRAIN)).encode(features)
    other = cls(dataclasses.replace(config, seed=1)).fit(TokenizerInputs(features, TRAIN)).encode(features)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(features, fitted, kind, tmp_path):
    tokenizer = fitted[kind]
    tokenizer.save(tmp_path / "tok")
    loaded = type(tokenizer).load(tmp_path / "tok")
    codes = tokenizer.encode(features)
    np.testing.assert_array_equal(loaded.encode(features), codes)
    assert loaded.config == tokenizer.config and loaded.position_names == tokenizer.position_names
    original, restored = tokenizer.decode(codes), loaded.decode(codes)
    for name in DIMS:
        np.testing.assert_array_equal(restored[name], original[name])


@pytest.mark.parametrize("kind", KINDS)
def test_reconstruction_below_feature_variance(features, fitted, kind):
    reconstruction = fitted[kind].decode(fitted[kind].encode(features))
    assert list(reconstruction) == list(DIMS)
    for name, x in features.items():
        assert reconstruction[name].shape == x.shape and reconstruction[name].dtype == np.float32
        assert ((reconstruction[name] - x) ** 2).mean() < 0.4 * x.var()  # standardised: var 1


@pytest.mark.parametrize("kind", KINDS)
def test_encoder_and_decoder_use_batchnorm(fitted, kind):
    for network in fitted[kind].networks:
        for half in (network.encoder, network.decoder):
            kinds = [type(layer) for layer in half]
            assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 2 + [nn.Linear]


def test_per_modality_networks_and_decoding_from_own_codes(features, fitted):
    tokenizer = fitted["per_modality"]
    assert [net.encoder[0].in_features for net in tokenizer.networks] == list(DIMS.values())
    codes = tokenizer.encode(features)
    changed = codes.copy()
    changed[:, 3:6] = (changed[:, 3:6] + 1) % np.array(SIZES)  # the audio codes only
    before, after = tokenizer.decode(codes), tokenizer.decode(changed)
    np.testing.assert_array_equal(after["text"], before["text"])
    np.testing.assert_array_equal(after["image"], before["image"])
    assert not np.allclose(after["audio"], before["audio"])


def test_rqvae_concatenates_modalities_into_one_network(fitted):
    (network,) = fitted["rqvae"].networks
    assert network.encoder[0].in_features == network.decoder[-1].out_features == sum(DIMS.values())


@pytest.mark.parametrize("kind", KINDS)
def test_modality_subset_in_config_order(features, kind):
    cls, config = TINY[kind]
    tokenizer = cls(dataclasses.replace(config, modalities=("image", "text"), epochs=1)).fit(TokenizerInputs(
        features, TRAIN))
    assert tokenizer.modalities == ("image", "text")
    codes = tokenizer.encode(features)  # the unused audio matrix is ignored
    assert list(tokenizer.decode(codes)) == ["image", "text"]
    if kind == "per_modality":
        assert tokenizer.position_names[0] == "image1" and codes.shape[1] == 6


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_modality_names_it_and_the_available_ones(features, kind):
    cls, config = TINY[kind]
    tokenizer = cls(dataclasses.replace(config, modalities=("text", "lyrics")))
    with pytest.raises(ConfigError, match=r"tokenizer\.modalities.*'lyrics'.*text, audio, image"):
        tokenizer.fit(TokenizerInputs(features, TRAIN))


def test_on_epoch_reports_loss_terms(features):
    history: list[dict[str, float]] = []
    cls, config = TINY["per_modality"]
    cls(dataclasses.replace(config, epochs=2)).fit(TokenizerInputs(
        features, TRAIN, on_epoch=lambda epoch, m: history.append(m)))
    assert len(history) == 2
    assert {"tokenizer/loss", "tokenizer/recon", "tokenizer/rq", "tokenizer/audio/recon"} <= set(history[0])
    total = sum(history[0][f"tokenizer/{name}/loss"] for name in DIMS)
    assert history[0]["tokenizer/loss"] == pytest.approx(total)


def test_single_row_last_batch_and_too_few_rows(features):
    cls, config = TINY["rqvae"]
    tokenizer = cls(dataclasses.replace(config, epochs=1))
    tokenizer.fit(TokenizerInputs(features, np.arange(65)))  # batches of 64 + 1: the lone row joins the first batch
    with pytest.raises(ValueError, match="at least 2 training rows"):
        tokenizer.fit(TokenizerInputs(features, np.arange(1)))


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"tokenizer\.codebook_sizes: codebook size must be >= 1"):
        RQVAEConfig(codebook_sizes=(32, 0, 128))
    with pytest.raises(ConfigError, match=r"tokenizer\.codebook_sizes: codebook size must be >= 1"):
        PerModalityConfig(codebook_sizes=(0,))
    with pytest.raises(ConfigError, match=r"tokenizer\.codebook_size: codebook size must be >= 1"):
        VQVAEConfig(codebook_size=0)
    with pytest.raises(ConfigError, match=r"tokenizer\.codebook_sizes: at least one level"):
        RQVAEConfig(codebook_sizes=())
    with pytest.raises(ConfigError, match=r"tokenizer\.modalities"):
        RQVAEConfig(modalities=("text", "text"))
    with pytest.raises(ConfigError, match=r"tokenizer\.batch_size.*BatchNorm"):
        VQVAEConfig(batch_size=1)
    with pytest.raises(ConfigError, match=r"tokenizer\.latent_dim"):
        PerModalityConfig(latent_dim=0)
    with pytest.raises(ConfigError, match=r"tokenizer\.device"):
        RQVAEConfig(device="tpu")


def test_defaults_follow_3mtoken_and_configs_build_from_yaml():
    rq, vq = RQVAEConfig(), VQVAEConfig()
    architecture = (rq.hidden_dims, rq.latent_dim, rq.codebook_sizes, rq.commitment_weight)
    assert architecture == ((512, 256, 128), 32, (32, 64, 128), 0.25)
    assert PerModalityConfig() == PerModalityConfig(**to_dict(rq))
    assert vq.codebook_size == 1024 and vq.codebook_sizes == (1024,)
    assert VQVAETokenizer(vq).codebook_sizes == (1024,)
    built = build(PerModalityConfig, {"codebook_sizes": [8, 16], "modalities": ["text"], "learning_rate": "1e-4"})
    assert built.codebook_sizes == (8, 16) and built.modalities == ("text",) and built.learning_rate == 1e-4
    assert build(VQVAEConfig, to_dict(vq)) == vq
    with pytest.raises(ConfigError, match="unknown key 'codebook_sizes'"):
        build(VQVAEConfig, {"codebook_sizes": [8]})


def test_quantizer_per_level_sizes_never_choose_padding():
    quantizer = ResidualQuantizer(num_levels=2, codebook_size=(2, 4), dim=2)
    assert quantizer.codebook_sizes == (2, 4) and quantizer.codebooks.shape == (2, 4, 2)
    with torch.no_grad():
        quantizer.codebooks[0, :2] = torch.tensor([[5.0, 5.0], [-5.0, -5.0]])
    x = torch.zeros(3, 2)  # the zero padding rows of level 0 would be nearest if they counted
    assert (quantizer(x).codes[:, 0] < 2).all()
    assert quantizer.count_usage(quantizer(x).codes).shape == (2, 4)


def test_quantizer_per_level_kmeans_and_resets_leave_padding():
    torch.manual_seed(0)
    quantizer = ResidualQuantizer(num_levels=2, codebook_size=(3, 6), dim=2)
    x = torch.randn(40, 2)
    quantizer.init_kmeans(x, seed=0)
    assert torch.equal(quantizer.codebooks[0, 3:].detach(), torch.zeros(3, 2))
    usage = torch.zeros((2, 6), dtype=torch.long)
    assert quantizer.reset_dead_codes(x, usage, seed=0) == 3 + 6  # only real codes are dead
    assert torch.equal(quantizer.codebooks[0, 3:].detach(), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="bad quantizer shape"):
        ResidualQuantizer(num_levels=2, codebook_size=(4,), dim=2)
    with pytest.raises(ValueError, match="bad quantizer shape"):
        ResidualQuantizer(num_levels=2, codebook_size=(4, 0), dim=2)
