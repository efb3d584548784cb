"""Every registered tokenizer passes the same contract: shapes, codebooks, seeds, save/load, decode error."""

import json

import numpy as np
import pytest
import torch

from raysid.config import build
from raysid.tokenizers import TOKENIZERS

torch.set_num_threads(1)

NEURAL = {"epochs": 15, "batch_size": 32, "learning_rate": 3e-3}  # ~70 optimiser steps on 140 training items
SMALL = {  # a few seconds each; a new tokenizer must add its entry here
    "musicrec": {"latent_dim": 8, "hidden_dims": [32], "codebook_size": 8, "shared_levels": 1, "specific_levels": 1, **NEURAL},
    "rqvae": {"latent_dim": 8, "hidden_dims": [32], "codebook_sizes": [8, 8], **NEURAL},
    "per_modality": {"latent_dim": 8, "hidden_dims": [32], "codebook_sizes": [8, 8], **NEURAL},
    "vqvae": {"latent_dim": 8, "hidden_dims": [32], "codebook_size": 16, **NEURAL},
    "kmeans": {"codebook_size": 16},
    "residual_kmeans": {"codebook_sizes": [8, 8]},
    "talkplay": {"codebook_size": 8},
    "random": {"codebook_sizes": [8, 8, 8]},
    "external": {},
    "fusid": {"hidden_dim": 32, "num_subembeddings": 2, "subembedding_dim": 8, "codebook_size": 8, "epochs": 2, "pairs_per_epoch": 500},
}
RECONSTRUCTS_INPUTS = {"musicrec", "rqvae", "per_modality", "vqvae", "kmeans", "residual_kmeans", "talkplay"}
NUM_ITEMS = 160


@pytest.fixture(scope="module")
def data():
    """Three standardised modalities with shared cluster structure, training items and sequences."""
    rng = np.random.default_rng(0)
    clusters = rng.integers(0, 8, NUM_ITEMS)
    centers = rng.normal(size=(8, 6))
    features = {}
    for name, dim in (("text", 12), ("audio", 8), ("tags", 10)):
        x = centers[clusters] @ rng.normal(size=(6, dim)) + 0.3 * rng.normal(size=(NUM_ITEMS, dim))
        features[name] = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    sequences = [rng.permutation(np.flatnonzero(clusters == c))[:10] for c in range(8) for _ in range(4)]
    return features, np.arange(0, NUM_ITEMS - 20), sequences


def make(kind, tmp_path, seed=0):
    config_class, tokenizer_class = TOKENIZERS[kind]
    overrides = dict(SMALL[kind], seed=seed)
    if kind == "external":
        table = {str(i): [f"<a_{i % 7}>", f"<b_{i // 7}>"] for i in range(NUM_ITEMS)}
        (tmp_path / "ids.json").write_text(json.dumps(table))
        overrides["path"] = str(tmp_path / "ids.json")
    return tokenizer_class(build(config_class, overrides, f"tokenizer({kind})"))


def fit(tokenizer, data):
    features, train_items, sequences = data
    extra = {"sequences": sequences} if getattr(tokenizer, "needs_sequences", False) else {}
    return tokenizer.fit(features, train_items, **extra)


def test_every_registered_tokenizer_has_a_contract_case():
    assert set(TOKENIZERS) <= set(SMALL)


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
def test_contract(kind, data, tmp_path):
    features = data[0]
    tokenizer = fit(make(kind, tmp_path), data)
    codes = tokenizer.encode(features)
    assert codes.dtype == np.int64 and codes.shape == (NUM_ITEMS, len(tokenizer.position_names))
    assert len(tokenizer.codebook_sizes) == len(tokenizer.position_names) == len(set(tokenizer.position_names))
    assert ((codes >= 0) & (codes < np.array(tokenizer.codebook_sizes))).all()

    again = fit(make(kind, tmp_path), data).encode(features)
    np.testing.assert_array_equal(codes, again)  # same seed, same identifiers

    tokenizer.save(tmp_path / "saved")
    loaded = type(tokenizer).load(tmp_path / "saved")
    np.testing.assert_array_equal(loaded.encode(features), codes)
    decoded, decoded_loaded = tokenizer.decode(codes), loaded.decode(codes)
    assert decoded.keys() == decoded_loaded.keys() and decoded
    for name in decoded:
        np.testing.assert_allclose(decoded[name], decoded_loaded[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(RECONSTRUCTS_INPUTS))
def test_decode_of_encode_is_closer_than_the_mean(kind, data, tmp_path):
    """decode(encode(x)) has a smaller error than predicting every feature's mean (variance 1 here)."""
    features = data[0]
    tokenizer = fit(make(kind, tmp_path), data)
    decoded = tokenizer.decode(tokenizer.encode(features))
    for name, x in features.items():
        assert name in decoded and decoded[name].shape == x.shape
        assert float(np.mean((decoded[name] - x) ** 2)) < 0.9 * float(x.var())


@pytest.mark.parametrize("kind", sorted(set(TOKENIZERS) - {"external"}))
def test_another_seed_gives_other_identifiers(kind, data, tmp_path):
    first = fit(make(kind, tmp_path, seed=0), data).encode(data[0])
    second = fit(make(kind, tmp_path, seed=1), data).encode(data[0])
    assert not np.array_equal(first, second)
