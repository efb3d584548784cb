"""Modality selection and train-only standardisation."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from raysid.config import ConfigError, build
from raysid.data.dataset import Dataset
from raysid.features.modalities import FeatureConfig, build_features


def _dataset() -> Dataset:
    rng = np.random.default_rng(0)
    audio = rng.normal(5.0, 3.0, (30, 4))
    audio[20:] = 1000.0  # items outside training: must not move the statistics
    audio[:, 3] = 7.0  # a constant column
    text = rng.normal(size=(30, 6)).astype(np.float32)
    modalities = {"text": text, "audio": audio, "tags": (audio > 5).astype(np.float32)}
    return Dataset("tiny", pl.DataFrame({"item_id": np.arange(30)}), modalities, [np.arange(5)])


def test_default_takes_all_modalities_in_dataset_order() -> None:
    features = build_features(_dataset(), FeatureConfig(), np.arange(20))
    assert list(features) == ["text", "audio", "tags"]
    assert all(m.dtype == np.float32 and m.shape[0] == 30 for m in features.values())


def test_configured_order_is_kept() -> None:
    features = build_features(_dataset(), FeatureConfig(modalities=("tags", "text")), np.arange(20))
    assert list(features) == ["tags", "text"]


def test_standardised_on_train_items_only() -> None:
    dataset, train = _dataset(), np.arange(20)
    audio = build_features(dataset, FeatureConfig(modalities=("audio",)), train)["audio"]
    np.testing.assert_allclose(audio[train, :3].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(audio[train, :3].std(axis=0), 1.0, atol=1e-5)
    raw = dataset.modalities["audio"][:, 0]
    expected = (raw[25] - raw[train].mean()) / raw[train].std()
    assert audio[25, 0] == pytest.approx(expected, rel=1e-5)  # held-out item scaled with train statistics
    assert np.all(audio[:, 3] == 0.0)  # constant column: std floor, no NaN


def test_standardize_off_returns_float32_copies() -> None:
    dataset = _dataset()
    features = build_features(dataset, FeatureConfig(standardize=False), np.arange(20))
    np.testing.assert_array_equal(features["audio"], dataset.modalities["audio"].astype(np.float32))
    features["text"][0, 0] = 99.0
    assert dataset.modalities["text"][0, 0] != 99.0


def test_unknown_modality_names_it_and_the_available_ones() -> None:
    expected = "unknown modality 'lyrics'.*available modalities are: 'text', 'audio', 'tags'"
    with pytest.raises(ConfigError, match=expected):
        build_features(_dataset(), FeatureConfig(modalities=("text", "lyrics")), np.arange(20))


def test_config_from_mapping_and_duplicates_rejected() -> None:
    assert build(FeatureConfig, {"modalities": ["audio"]}, "features").modalities == ("audio",)
    with pytest.raises(ConfigError, match="features.modalities: 'audio' is listed more than once"):
        FeatureConfig(modalities=("audio", "audio"))
    with pytest.raises(ValueError, match="train_items is empty"):
        build_features(_dataset(), FeatureConfig(), np.zeros(0, dtype=np.int64))
