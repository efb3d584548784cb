"""Every registered tokenizer passes the same contract, and honours the capabilities its config declares.

The cases come from the registry alone (each config's ``tiny`` setting): a tokenizer added with one file and
one registry line is checked here with no other edit. Shapes, codebooks, seeds, save/load, what ``decode``
returns, the quantizer round trip (the latent rebuilt from the codes is the quantized latent), and each
declared need: features, sequences, collaborative embeddings, the dataset's identifier table, Ray Train.
"""

import json

import numpy as np
import pytest
import torch

from raysid.config import build
from raysid.distributed import TrainingConfig
from raysid.tokenizers import TOKENIZERS, Quantizer, Tokenizer, TokenizerCapabilities, TokenizerInputs

torch.set_num_threads(1)

NUM_ITEMS, TRAIN = 160, np.arange(0, 140)
DIMS = {"text": 12, "audio": 8, "tags": 10}
KINDS = sorted(TOKENIZERS)


def capabilities(kind):
    return config_of(kind).capabilities()


def config_of(kind, seed=0):
    spec = TOKENIZERS[kind]
    return build(spec.config, dict(spec.config.tiny, seed=seed), f"tokenizer({kind})")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three standardised modalities with shared cluster structure, training sequences, CF embeddings of the
    clusters and an identifier table in the import format."""
    rng = np.random.default_rng(0)
    clusters = rng.integers(0, 8, NUM_ITEMS)
    centers = rng.normal(size=(8, 6))
    features = {}
    for name, dim in DIMS.items():
        x = centers[clusters] @ rng.normal(size=(6, dim)) + 0.3 * rng.normal(size=(NUM_ITEMS, dim))
        features[name] = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    sequences = [rng.permutation(np.flatnonzero(clusters == c))[:10] for c in range(8) for _ in range(4)]
    collaborative = (rng.normal(size=(8, 8))[clusters] + 0.3 * rng.normal(size=(NUM_ITEMS, 8))).astype(np.float32)
    table = tmp_path_factory.mktemp("ids") / "identifiers.json"
    table.write_text(json.dumps({str(i): [f"<a_{i % 7}>", f"<b_{i // 7}>"] for i in range(NUM_ITEMS)}))
    return {"features": features, "sequences": sequences, "collaborative": collaborative, "identifiers": table}


def inputs(kind, data, **changes):
    """What the pipeline gives ``kind``: each input only when its config declares a need for it."""
    declared = capabilities(kind)
    given = {
        "features": data["features"] if declared.needs_features else None,
        "sequences": data["sequences"] if declared.needs_sequences else None,
        "collaborative": data["collaborative"] if declared.uses_collaborative else None,
        "identifiers": data["identifiers"] if declared.reads_dataset_identifiers else None,
    }
    return TokenizerInputs(train_items=TRAIN, num_items=NUM_ITEMS, **(given | changes))


def fit(kind, data, seed=0, **changes):
    return TOKENIZERS[kind].build(config_of(kind, seed)).fit(inputs(kind, data, **changes))


def test_every_registered_kind_builds_from_its_config_and_declares_capabilities():
    for kind, spec in TOKENIZERS.items():
        assert isinstance(capabilities(kind), TokenizerCapabilities), kind
        built = spec.build(config_of(kind))
        assert type(built) is spec.model_class() and built.config == config_of(kind), kind


@pytest.mark.parametrize("kind", KINDS)
def test_contract(kind, data, tmp_path):
    given = inputs(kind, data).features
    tokenizer = fit(kind, data)
    assert isinstance(tokenizer, Tokenizer)
    codes = tokenizer.encode(given)
    assert codes.dtype == np.int64 and codes.shape == (NUM_ITEMS, len(tokenizer.position_names))
    assert len(tokenizer.codebook_sizes) == len(tokenizer.position_names) == len(set(tokenizer.position_names))
    assert ((codes >= 0) & (codes < np.array(tokenizer.codebook_sizes))).all()
    np.testing.assert_array_equal(fit(kind, data).encode(given), codes)  # same seed, same identifiers

    tokenizer.save(tmp_path / "saved")
    loaded = type(tokenizer).load(tmp_path / "saved")
    np.testing.assert_array_equal(loaded.encode(given), codes)
    decoded, decoded_loaded = tokenizer.decode(codes), loaded.decode(codes)
    assert decoded.keys() == decoded_loaded.keys()
    for name in decoded:
        assert decoded[name].dtype == np.float32 and decoded[name].shape[0] == NUM_ITEMS
        np.testing.assert_allclose(decoded[name], decoded_loaded[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_decode_returns_the_fitted_modalities_only_when_it_reconstructs_them(kind, data):
    """decode(encode(x)) rebuilds every fitted modality at its shape, closer than the mean (variance 1), or
    claims none of them."""
    tokenizer = fit(kind, data)
    given = inputs(kind, data).features
    decoded = tokenizer.decode(tokenizer.encode(given))
    if not capabilities(kind).reconstructs_inputs:
        assert not decoded.keys() & DIMS.keys()
        return
    assert list(decoded) == list(DIMS)  # the fitted modalities (all of them by default), in order
    for name, x in given.items():
        assert decoded[name].shape == x.shape
        assert float(np.mean((decoded[name] - x) ** 2)) < 0.9 * float(x.var())


@pytest.mark.parametrize("kind", [kind for kind in KINDS if capabilities(kind).quantizer])
def test_quantizers_rebuild_the_quantized_latent_from_the_codes(kind, data):
    tokenizer = fit(kind, data)
    assert isinstance(tokenizer, Quantizer)
    features = data["features"]
    quantized = tokenizer.quantized_latent(features)
    rebuilt = tokenizer.latent_from_codes(tokenizer.encode(features))
    assert quantized.ndim == 2 and quantized.shape[0] == NUM_ITEMS and quantized.shape[1] >= 1
    assert rebuilt.shape == quantized.shape and rebuilt.dtype == np.float32
    np.testing.assert_allclose(rebuilt, quantized, rtol=1e-4, atol=1e-5)
    assert np.abs(quantized).max() > 0


@pytest.mark.parametrize("kind", KINDS)
def test_features_are_needed_only_where_declared(kind, data):
    if capabilities(kind).needs_features:
        with pytest.raises(ValueError, match="features"):
            fit(kind, data, features=None)
        return
    tokenizer = fit(kind, data)  # no features at all: the catalogue size is all it gets
    np.testing.assert_array_equal(tokenizer.encode(None), tokenizer.encode(data["features"]))
    assert tokenizer.decode(tokenizer.encode(None)) == {}


@pytest.mark.parametrize("kind", KINDS)
def test_sequences_are_needed_only_where_declared(kind, data):
    if capabilities(kind).needs_sequences:
        with pytest.raises(ValueError, match="sequences"):
            fit(kind, data, sequences=None)
        return
    given = inputs(kind, data).features
    np.testing.assert_array_equal(fit(kind, data, sequences=data["sequences"]).encode(given), fit(kind, data).encode(given))


@pytest.mark.parametrize("kind", KINDS)
def test_collaborative_embeddings_change_the_result_only_where_declared(kind, data):
    """A tokenizer that uses CF embeddings learns something else from other ones; any other ignores them."""
    def result(collaborative):
        tokenizer = fit(kind, data, collaborative=collaborative)
        given = inputs(kind, data).features
        return tokenizer.quantized_latent(given) if capabilities(kind).quantizer else tokenizer.encode(given)

    other = np.random.default_rng(9).normal(size=data["collaborative"].shape).astype(np.float32)
    if capabilities(kind).uses_collaborative:
        assert not np.allclose(result(data["collaborative"]), result(other))
    else:
        np.testing.assert_array_equal(result(other), result(None))


@pytest.mark.parametrize("kind", KINDS)
def test_the_seed_matters_only_where_declared(kind, data):
    given = inputs(kind, data).features
    first, second = fit(kind, data, seed=0).encode(given), fit(kind, data, seed=1).encode(given)
    assert np.array_equal(first, second) != capabilities(kind).seeded


@pytest.mark.parametrize("kind", [kind for kind in KINDS if capabilities(kind).reads_dataset_identifiers])
def test_the_dataset_identifier_table_is_read_where_declared(kind, data):
    codes = fit(kind, data).encode(None)
    table = json.loads(data["identifiers"].read_text())
    assert codes.tolist() == [[int(token.split("_")[1][:-1]) for token in table[str(i)]] for i in range(NUM_ITEMS)]
    with pytest.raises(ValueError, match="tokenizer.path"):
        fit(kind, data, identifiers=None)


@pytest.mark.parametrize("kind", [kind for kind in KINDS if not capabilities(kind).trains_on_ray])
def test_tokenizers_not_on_ray_train_ignore_the_training_section(kind, data):
    given = inputs(kind, data).features
    elsewhere = TrainingConfig(ray=True, num_workers=2)  # would need a Ray cluster if it were used
    np.testing.assert_array_equal(fit(kind, data, training=elsewhere).encode(given), fit(kind, data).encode(given))


@pytest.mark.slow
@pytest.mark.parametrize("kind", [kind for kind in KINDS if capabilities(kind).trains_on_ray])
def test_tokenizers_on_ray_train_run_there(kind, data, ray_local, tmp_path):
    """One Ray Train worker runs the same loop as this process: the same identifiers, epoch reports on the way."""
    epochs = []
    training = TrainingConfig(ray=True, num_workers=1, resources_per_worker={"CPU": 0.5}, storage_path=str(tmp_path))
    on_ray = fit(kind, data, training=training, on_epoch=lambda epoch, metrics: epochs.append(epoch))
    given = inputs(kind, data).features
    assert epochs and len(epochs) == config_of(kind).epochs
    np.testing.assert_array_equal(on_ray.encode(given), fit(kind, data).encode(given))
