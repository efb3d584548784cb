"""Baseline tokenizers (k-means, residual k-means, TalkPlay, random 'v0', external table) on a tiny catalog."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from raysid.config import ConfigError, build
from raysid.semantic_ids.table import SemanticIds
from raysid.tokenizers.base import Tokenizer, TokenizerInputs
from raysid.tokenizers.external import ExternalConfig, ExternalTokenizer
from raysid.tokenizers.kmeans import KMeansConfig, KMeansTokenizer
from raysid.tokenizers.random_ids import RandomConfig, RandomTokenizer
from raysid.tokenizers.residual_kmeans import ResidualKMeansConfig, ResidualKMeansTokenizer
from raysid.tokenizers.talkplay import TalkPlayConfig, TalkPlayTokenizer

NUM_ITEMS, NUM_CLUSTERS = 240, 6
DIMS = {"text": 16, "audio": 8}
TRAIN = np.arange(200)
KINDS = ["kmeans", "residual_kmeans", "talkplay", "random", "external"]


@pytest.fixture(scope="module")
def catalog() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Features of well-separated clusters (spread over both modalities) and each item's cluster."""
    rng = np.random.default_rng(0)
    labels = np.arange(NUM_ITEMS) % NUM_CLUSTERS
    centers = 10.0 * rng.normal(size=(NUM_CLUSTERS, sum(DIMS.values())))
    x = (centers[labels] + 0.3 * rng.normal(size=(NUM_ITEMS, sum(DIMS.values())))).astype(np.float32)
    return {"text": x[:, :16].copy(), "audio": x[:, 16:].copy()}, labels


def table_of(codes: np.ndarray) -> dict[str, list[str]]:
    """An identifier table in the external format, one separator style per position."""
    return {str(i): [f"<a_{a}>", f"<b.{b}>", f"<c-{c}>"] for i, (a, b, c) in enumerate(codes.tolist())}


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def table_path(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A valid external table of the catalog and its codes."""
    codes = np.random.default_rng(1).integers(0, [5, 7, 3], size=(NUM_ITEMS, 3))
    return write_json(tmp_path_factory.mktemp("external") / "ids.json", table_of(codes)), codes


def make(kind: str, seed: int, table: Path) -> Tokenizer:
    """An unfitted tokenizer of ``kind`` with a small config."""
    configs = {
        "kmeans": (KMeansTokenizer, KMeansConfig(codebook_size=16, seed=seed)),
        "residual_kmeans": (ResidualKMeansTokenizer, ResidualKMeansConfig(codebook_sizes=(8, 8, 4), seed=seed)),
        "talkplay": (TalkPlayTokenizer, TalkPlayConfig(codebook_size=16, seed=seed)),
        "random": (RandomTokenizer, RandomConfig(codebook_sizes=(8, 8, 8, 8), seed=seed)),
        "external": (ExternalTokenizer, ExternalConfig(path=str(table), seed=seed)),
    }
    cls, config = configs[kind]
    return cls(config)


def inputs(tokenizer: Tokenizer, features: dict[str, np.ndarray], train: np.ndarray = TRAIN) -> TokenizerInputs:
    """What the pipeline gives ``tokenizer``: the features only when its config declares it reads them."""
    reads = tokenizer.config.capabilities().needs_features
    return TokenizerInputs(features if reads else None, train, num_items=len(next(iter(features.values()))))


def fit(tokenizer: Tokenizer, features: dict[str, np.ndarray], train: np.ndarray = TRAIN) -> Tokenizer:
    return tokenizer.fit(inputs(tokenizer, features, train))


@pytest.mark.parametrize("kind", KINDS)
def test_contract_shapes_codebooks_and_save_load(kind, catalog, table_path, tmp_path):
    features, _ = catalog
    tokenizer = make(kind, 0, table_path[0])
    given = inputs(tokenizer, features).features  # None for the kinds that read no features
    codes = fit(tokenizer, features).encode(given)
    assert isinstance(tokenizer, Tokenizer)
    assert codes.shape == (NUM_ITEMS, len(tokenizer.codebook_sizes)) and codes.dtype == np.int64
    assert (codes >= 0).all() and (codes < np.array(tokenizer.codebook_sizes)).all()
    SemanticIds.from_codes(codes, tokenizer.position_names, tokenizer.codebook_sizes)  # names distinct and usable
    decoded = tokenizer.decode(codes)
    assert list(decoded) == (list(DIMS) if given else [])
    for name, dim in DIMS.items() if given else ():
        assert decoded[name].shape == (NUM_ITEMS, dim) and decoded[name].dtype == np.float32

    tokenizer.save(tmp_path / "tok")
    loaded = type(tokenizer).load(tmp_path / "tok")
    assert loaded.config == tokenizer.config
    assert loaded.position_names == tokenizer.position_names and loaded.codebook_sizes == tokenizer.codebook_sizes
    np.testing.assert_array_equal(loaded.encode(given), codes)
    for name in decoded:
        np.testing.assert_array_equal(loaded.decode(codes)[name], decoded[name])


@pytest.mark.parametrize("kind", ["kmeans", "residual_kmeans", "talkplay", "random"])
def test_same_seed_same_codes_other_seed_differs(kind, catalog, table_path):
    features, _ = catalog
    first = fit(make(kind, 0, table_path[0]), features).encode(features)
    again = fit(make(kind, 0, table_path[0]), features).encode(features)
    other = fit(make(kind, 1, table_path[0]), features).encode(features)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("kind", ["kmeans", "residual_kmeans", "talkplay"])  # the kinds that read features
def test_unknown_modality_is_named_with_the_available_ones(kind, catalog, table_path):
    tokenizer = make(kind, 0, table_path[0])
    tokenizer.config = dataclasses.replace(tokenizer.config, modalities=("text", "lyrics"))
    with pytest.raises(ConfigError, match=r"unknown modality 'lyrics'; available modalities are: 'text', 'audio'"):
        fit(tokenizer, catalog[0])


@pytest.mark.parametrize(
    ("config_class", "data", "message"),
    [
        (KMeansConfig, {"codebook_size": 0}, "tokenizer.codebook_size"),
        (KMeansConfig, {"niter": 0}, "tokenizer.niter"),
        (KMeansConfig, {"modalities": ["text", "text"]}, "tokenizer.modalities"),
        (ResidualKMeansConfig, {"codebook_sizes": []}, "tokenizer.codebook_sizes"),
        (ResidualKMeansConfig, {"codebook_sizes": [8, 0]}, "tokenizer.codebook_sizes"),
        (TalkPlayConfig, {"codebook_size": -1}, "tokenizer.codebook_size"),
        (RandomConfig, {"codebook_sizes": [4, 0]}, "tokenizer.codebook_sizes"),
        (ExternalConfig, {"paths": "x.json"}, "unknown key 'paths'"),
    ],
)
def test_configs_reject_bad_values(config_class, data, message):
    with pytest.raises(ConfigError, match=message):
        build(config_class, data, "tokenizer")


def test_configs_from_yaml_lists():
    config = build(ResidualKMeansConfig, {"codebook_sizes": [4, 4], "modalities": ["audio"]}, "tokenizer")
    assert config.codebook_sizes == (4, 4) and config.modalities == ("audio",)


def test_kmeans_maps_each_cluster_to_one_code_and_decodes_to_the_nearest_centroid(catalog):
    features, labels = catalog
    tokenizer = fit(KMeansTokenizer(KMeansConfig(codebook_size=NUM_CLUSTERS)), features, TRAIN)
    codes = tokenizer.encode(features)[:, 0]
    assert tokenizer.position_names == ("km1",) and tokenizer.codebook_sizes == (NUM_CLUSTERS,)
    assert all(len(np.unique(codes[labels == cluster])) == 1 for cluster in range(NUM_CLUSTERS))
    assert len(np.unique(codes)) == NUM_CLUSTERS
    # Independent check: brute-force nearest of the centroids, read back through decode.
    table = tokenizer.decode(np.arange(NUM_CLUSTERS)[:, None])
    centroids = np.concatenate([table["text"], table["audio"]], axis=1)  # (K, 24)
    x = np.concatenate([features["text"], features["audio"]], axis=1)
    nearest = np.linalg.norm(x[:, None, :] - centroids[None], axis=2).argmin(1)
    np.testing.assert_array_equal(codes, nearest)
    decoded = tokenizer.decode(codes[:, None])
    np.testing.assert_array_equal(np.concatenate([decoded["text"], decoded["audio"]], axis=1), centroids[nearest])


def test_kmeans_normalize_and_modality_subset(catalog):
    features, _ = catalog
    unit = {name: x / np.linalg.norm(x, axis=1, keepdims=True) for name, x in features.items()}
    normalized = fit(KMeansTokenizer(KMeansConfig(codebook_size=8, normalize=True)), features, TRAIN)
    by_hand = fit(KMeansTokenizer(KMeansConfig(codebook_size=8)), unit, TRAIN)
    np.testing.assert_array_equal(normalized.encode(features), by_hand.encode(unit))
    audio = fit(KMeansTokenizer(KMeansConfig(codebook_size=8, modalities=("audio",))), features, TRAIN)
    assert list(audio.decode(audio.encode(features))) == ["audio"]  # extra modalities at encode are ignored
    with pytest.raises(ValueError, match="missing modalities"):
        audio.encode({"text": features["text"]})


def test_kmeans_with_fewer_train_items_than_centroids(catalog):
    features, _ = catalog
    tokenizer = fit(KMeansTokenizer(KMeansConfig(codebook_size=16)), features, np.arange(3))
    codes = tokenizer.encode(features)
    assert codes.shape == (NUM_ITEMS, 1) and ((codes >= 0) & (codes < 16)).all()


def test_residual_kmeans_error_decreases_with_each_level(catalog):
    features, _ = catalog
    x = np.concatenate([features["text"], features["audio"]], axis=1)
    errors, deepest = [], None
    for levels in (1, 2, 3):
        tokenizer = fit(ResidualKMeansTokenizer(ResidualKMeansConfig(codebook_sizes=(8,) * levels)), features, TRAIN)
        codes = tokenizer.encode(features)
        decoded = tokenizer.decode(codes)
        errors.append(float(np.mean((np.concatenate([decoded["text"], decoded["audio"]], axis=1) - x) ** 2)))
        deepest = codes
    assert errors[0] > errors[1] > errors[2]
    assert tokenizer.position_names == ("rk1", "rk2", "rk3")
    # One level is plain k-means, and level l does not depend on the levels below it.
    plain = fit(KMeansTokenizer(KMeansConfig(codebook_size=8)), features, TRAIN).encode(features)
    np.testing.assert_array_equal(deepest[:, :1], plain)


def test_talkplay_is_one_kmeans_per_modality(catalog):
    features, _ = catalog
    tokenizer = fit(TalkPlayTokenizer(TalkPlayConfig(codebook_size=8, seed=3)), features, TRAIN)
    codes = tokenizer.encode(features)
    assert tokenizer.position_names == ("text1", "audio1") and tokenizer.codebook_sizes == (8, 8)
    decoded = tokenizer.decode(codes)
    for m, name in enumerate(DIMS):
        alone = fit(KMeansTokenizer(KMeansConfig(codebook_size=8, modalities=(name,), seed=3)), features, TRAIN)
        np.testing.assert_array_equal(codes[:, m], alone.encode(features)[:, 0])
        np.testing.assert_array_equal(decoded[name], alone.decode(codes[:, m : m + 1])[name])
    with pytest.raises(RuntimeError, match="fit or load"):
        TalkPlayTokenizer(TalkPlayConfig()).position_names


def test_random_ids_ignore_features_and_are_uniform():
    sizes = (4, 8)
    zeros = {"text": np.zeros((4000, 2), np.float32)}
    noise = {"text": np.random.default_rng(5).normal(size=(4000, 2)).astype(np.float32)}
    tokenizer = RandomTokenizer(RandomConfig(codebook_sizes=sizes, seed=7)).fit(TokenizerInputs(
        None, np.arange(10), num_items=4000))
    codes = tokenizer.encode()  # no features: the catalogue of fit
    np.testing.assert_array_equal(codes, tokenizer.encode(zeros))
    np.testing.assert_array_equal(codes, tokenizer.encode(noise))
    refit = RandomTokenizer(RandomConfig(codebook_sizes=sizes, seed=7)).fit(TokenizerInputs(noise, np.arange(4000)))
    np.testing.assert_array_equal(codes, refit.encode(noise))
    np.testing.assert_array_equal(codes[:50], tokenizer.encode({"text": zeros["text"][:50]}))  # item i's codes fixed
    for position, size in enumerate(sizes):
        counts = np.bincount(codes[:, position], minlength=size)
        assert len(counts) == size and np.abs(counts / (4000 / size) - 1).max() < 0.25
    assert tokenizer.position_names == ("r1", "r2")
    assert tokenizer.decode(codes[:3]) == {}  # nothing to reconstruct


def test_external_table_round_trips_without_the_file(catalog, tmp_path):
    features, _ = catalog
    codes = np.random.default_rng(2).integers(0, [5, 7, 3], size=(NUM_ITEMS, 3))
    path = write_json(tmp_path / "ids.json", table_of(codes))
    tokenizer = ExternalTokenizer(ExternalConfig(path=str(path))).fit(TokenizerInputs(None, TRAIN, num_items=NUM_ITEMS))
    assert tokenizer.position_names == ("a", "b", "c")
    assert tokenizer.codebook_sizes == tuple(int(v) for v in codes.max(0) + 1)
    np.testing.assert_array_equal(tokenizer.encode(), codes)
    np.testing.assert_array_equal(tokenizer.encode(features), codes)
    tokenizer.save(tmp_path / "tok")
    path.unlink()
    np.testing.assert_array_equal(ExternalTokenizer.load(tmp_path / "tok").encode(), codes)
    with pytest.raises(ValueError, match="has 240 items, got 10 rows"):
        tokenizer.encode({name: x[:10] for name, x in features.items()})


def _valid() -> dict[str, list[str]]:
    return table_of(np.zeros((NUM_ITEMS, 3), np.int64))


def _with(**changes: object) -> dict[str, object]:
    table: dict[str, object] = dict(_valid())
    for key, value in changes.items():
        if value is None:
            del table[key.lstrip("_")]
        else:
            table[key.lstrip("_")] = value
    return table


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the file"),
        ("{not json", "not valid JSON"),
        ([["<a_1>"]], "expected a JSON object"),
        ({**_valid(), "999": ["<a_1>", "<b.1>", "<c-1>"], "x": []}, r"2 unknown item\(s\).*\[0, 240\): '999', 'x'"),
        (_with(_3=None, _4=None), "2 of the catalogue's 240 items are missing, e.g. 3, 4"),
        (_with(_5=["<a_1>", "<b.1>"]), "item 5 has 2 tokens, expected 3 like item 0"),
        (_with(_7=["<a_1>", "<b1>", "<c-1>"]), r"item 7: token '<b1>' at position 1 does not parse"),
        (_with(_9=["<a_1>", "<z_1>", "<c-1>"]), "position 1: item 9 has prefix 'z' but item 0 has 'b'"),
        ({str(i): ["<a_1>", "<a_2>"] for i in range(NUM_ITEMS)}, "must be distinct"),
    ],
)
def test_external_errors_name_the_file_and_the_problem(content, message, catalog, tmp_path):
    path = tmp_path / "ids.json"
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        write_json(path, content)
    tokenizer = ExternalTokenizer(ExternalConfig(path=str(path)))
    with pytest.raises(ValueError, match=message) as error:
        fit(tokenizer, catalog[0])
    assert str(path) in str(error.value)


def test_external_without_a_path_is_a_config_error(catalog):
    with pytest.raises(ConfigError, match="tokenizer.path"):
        fit(ExternalTokenizer(ExternalConfig()), catalog[0])
