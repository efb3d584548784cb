"""k-means tokenizer: one faiss k-means codebook over the concatenated modalities (3MToken's k-means(1024)).

An item's identifier is the index of the centroid nearest to its concatenated features [x_1; …; x_M]; decode
returns that centroid split back into the modalities (3MToken App. C: "we use a corresponding cluster
centroid as a reconstructed vector").

This module also holds what the k-means family (``residual_kmeans``, ``talkplay``) and the feature-free
baselines (``random_ids``, ``external``) share: choosing modalities, stacking features, faiss k-means,
nearest-centroid assignment and the residual k-means core that ``KMeansTokenizer`` is the one-level case of.

Where the papers are silent:
- ``normalize`` L2-normalises each modality separately before concatenation, so that every modality has
  the same weight; reconstructions are then of the normalised features.
- Centroids start from k-means++ seeding: with faiss's default (k training points drawn at random), 37 of 40
  seeds merged two of 6 well-separated clusters. k-means++ costs about 7 Lloyd iterations (40k points of
  128 dims, K=1024, one thread: +1.2 s).
- faiss subsamples the training set to 256 points per centroid (its default) when it has more.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from raysid.config import ConfigError, require
from raysid.tokenizers.base import (
    TokenizerCapabilities,
    TokenizerInputs,
    check_encode_inputs,
    check_fit_inputs,
    read_meta,
    saved_inputs,
    write_meta,
)
from raysid.tokenizers.clustering import kmeans_centroids

_ASSIGN_BATCH = 4096  # rows per distance matrix in nearest_centroid


@dataclass(frozen=True)
class KMeansConfig:
    """Hyperparameters of the k-means tokenizer; defaults follow 3MToken's k-means(1024) baseline."""

    codebook_size: int = 1024  # K: centroids
    niter: int = 25  # Lloyd iterations of faiss k-means
    normalize: bool = False  # L2-normalise each modality before concatenating
    modalities: tuple[str, ...] = ()  # modalities to concatenate, in this order; () = all, in the features' order
    seed: int = 0  # faiss k-means initialisation

    tiny: ClassVar[dict[str, Any]] = {"codebook_size": 16}  # a fit of seconds on a tiny catalog (contract tests)

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", tuple(self.modalities))
        where = "tokenizer"
        require(self.codebook_size >= 1, f"{where}.codebook_size", f"must be >= 1, got {self.codebook_size}")
        require(self.niter >= 1, f"{where}.niter", f"must be >= 1, got {self.niter}")
        check_modality_names(self.modalities, f"{where}.modalities")

    def capabilities(self) -> TokenizerCapabilities:
        """Features in, centroids out: reconstructs its inputs, quantizes them, seeded, in process."""
        return TokenizerCapabilities()


def check_modality_names(modalities: tuple[str, ...], where: str) -> None:
    """ConfigError unless ``modalities`` are distinct non-empty strings."""
    ok = all(isinstance(name, str) and name for name in modalities)
    require(ok and len(set(modalities)) == len(modalities), where, f"expected distinct names, got {modalities}")


def select_modalities(features: Mapping[str, np.ndarray], wanted: tuple[str, ...]) -> tuple[str, ...]:
    """``wanted`` if every name is a modality of ``features`` (all of them, in order, when empty)."""
    unknown = [name for name in wanted if name not in features]
    if unknown:
        raise ConfigError(
            f"tokenizer.modalities: unknown modalit{'ies' if len(unknown) > 1 else 'y'} "
            f"{', '.join(map(repr, unknown))}; available modalities are: {', '.join(map(repr, features))}"
        )
    return tuple(wanted) or tuple(features)


def encode_rows(features: Mapping[str, np.ndarray], input_dims: Mapping[str, int]) -> int:
    """Check the fitted modalities of ``features`` (others are ignored) as ``check_encode_inputs``; row count."""
    missing = [name for name in input_dims if name not in features]
    if missing:
        raise ValueError(f"features: missing modalities {missing}; the tokenizer was fit on {list(input_dims)}")
    return check_encode_inputs({name: features[name] for name in input_dims}, input_dims)


def feature_rows(features: Mapping[str, np.ndarray]) -> int:
    """The row count (items) all modalities of ``features`` share; ValueError when none is given or they differ."""
    rows = {name: len(matrix) for name, matrix in features.items()}
    if len(set(rows.values())) != 1:
        raise ValueError(f"features: expected modalities with the same number of rows (items), got {rows or 'none'}")
    return next(iter(rows.values()))


def stack_features(
    features: Mapping[str, np.ndarray], modalities: tuple[str, ...], normalize: bool, rows: np.ndarray | None = None
) -> np.ndarray:
    """[x_1; …; x_M] of ``rows`` (all when None): (n, Σ dim_m) float32, each x_m L2-normalised if asked."""
    parts = []
    for name in modalities:
        x = np.asarray(features[name] if rows is None else features[name][rows], dtype=np.float32)
        if normalize:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        parts.append(x)
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


def split_columns(matrix: np.ndarray, input_dims: Mapping[str, int]) -> dict[str, np.ndarray]:
    """(n, Σ dim_m) -> modality -> (n, dim_m) float32, in the order of ``input_dims``."""
    bounds = np.cumsum(list(input_dims.values()))[:-1]
    parts = np.split(np.asarray(matrix, dtype=np.float32), bounds, axis=1)
    return {name: np.ascontiguousarray(part) for name, part in zip(input_dims, parts)}


def nearest_centroid(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the L2-nearest centroid (k, dim) of each row of points (n, dim): (n,) int64."""
    norms = (centroids.astype(np.float32) ** 2).sum(1)  # (k,)
    codes = [
        np.argmin(norms[None, :] - 2 * points[start : start + _ASSIGN_BATCH] @ centroids.T, axis=1)
        for start in range(0, len(points), _ASSIGN_BATCH)
    ]  # ||x||² is the same for every centroid, so it is left out
    return np.concatenate(codes).astype(np.int64) if codes else np.zeros(0, np.int64)


def check_codes(codes: np.ndarray, codebook_sizes: tuple[int, ...]) -> np.ndarray:
    """``codes`` as (items, positions) int64, or ValueError when the shape or a value is outside its codebook."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != len(codebook_sizes) or not np.issubdtype(codes.dtype, np.integer):
        expected = f"(items, {len(codebook_sizes)})"
        raise ValueError(f"codes: expected integers of shape {expected}, got {codes.dtype} {codes.shape}")
    bad = (codes < 0) | (codes >= np.asarray(codebook_sizes))
    if bad.any():
        item, position = map(int, np.argwhere(bad)[0])
        raise ValueError(
            f"codes: item {item} has code {codes[item, position]} at position {position}, "
            f"outside [0, {codebook_sizes[position]})"
        )
    return codes.astype(np.int64, copy=False)


class ConcatenatedKMeans:
    """Residual k-means over the concatenated modalities: level l clusters what levels < l left over.

    The shared core of ``KMeansTokenizer`` (one level) and ``ResidualKMeansTokenizer``; a subclass sets
    ``config_class``, ``position_prefix`` and ``codebook_sizes``. Its config has ``niter``, ``normalize``,
    ``modalities`` and ``seed``.
    """

    config_class: type  # set by subclasses
    position_prefix: str

    def __init__(self, config: Any):
        self.config = config
        self.modalities: tuple[str, ...] = ()  # set at fit
        self.input_dims: dict[str, int] = {}
        self.codebooks: list[np.ndarray] = []  # per level (K_l, Σ dim_m) float32

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def position_names(self) -> tuple[str, ...]:
        """("{prefix}1", …, "{prefix}L")."""
        return tuple(f"{self.position_prefix}{level}" for level in range(1, len(self.codebook_sizes) + 1))

    def fit(self, inputs: TokenizerInputs) -> ConcatenatedKMeans:
        """k-means of the train rows level by level (seed + level).

        ``inputs.on_epoch`` is called once, with the train reconstruction MSE as ``tokenizer/loss``.
        """
        check_fit_inputs(inputs)
        features, train_items, on_epoch = inputs.features, inputs.train_items, inputs.on_epoch
        self.modalities = select_modalities(features, self.config.modalities)
        self.input_dims = {name: int(features[name].shape[1]) for name in self.modalities}
        residual = stack_features(features, self.modalities, self.config.normalize, np.asarray(train_items))
        self.codebooks = []
        for level, size in enumerate(self.codebook_sizes):
            centroids = kmeans_centroids(residual, size, self.config.niter, self.config.seed + level, plus_plus=True)
            residual = residual - centroids[nearest_centroid(residual, centroids)]
            self.codebooks.append(centroids)
        if on_epoch is not None:
            on_epoch(0, {"tokenizer/loss": float(np.mean(residual**2))})
        return self

    def encode(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Codes of every row: (items, levels) int64, nearest centroid of each level's residual."""
        self._check_fitted()
        encode_rows(features, self.input_dims)
        residual = stack_features(features, self.modalities, self.config.normalize)  # (items, Σ dim_m)
        codes = []
        for centroids in self.codebooks:
            codes.append(nearest_centroid(residual, centroids))
            residual = residual - centroids[codes[-1]]
        return np.stack(codes, axis=1)

    def decode(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        """Sum of the chosen centroids of every level, split back into the modalities: modality -> (items, dim)."""
        return split_columns(self.latent_from_codes(codes), self.input_dims)

    def quantized_latent(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """(items, Σ dim_m) float32: the stacked features minus the residual the last level leaves."""
        self._check_fitted()
        encode_rows(features, self.input_dims)
        stacked = stack_features(features, self.modalities, self.config.normalize)  # (items, Σ dim_m)
        residual = stacked
        for centroids in self.codebooks:
            residual = residual - centroids[nearest_centroid(residual, centroids)]
        return stacked - residual

    def latent_from_codes(self, codes: np.ndarray) -> np.ndarray:
        """(items, Σ dim_m) float32: the sum of every level's chosen centroid."""
        self._check_fitted()
        codes = check_codes(codes, self.codebook_sizes)
        total = np.zeros((len(codes), sum(self.input_dims.values())), np.float32)
        for level, centroids in enumerate(self.codebooks):
            total += centroids[codes[:, level]]
        return total

    def _check_fitted(self) -> None:
        if not self.codebooks:
            raise RuntimeError(f"{type(self).__name__}: call fit or load first")

    def save(self, folder: Path) -> None:
        """Write ``tokenizer.json`` (config, modalities, input dims) and ``codebooks.npz`` (one array per level)."""
        self._check_fitted()
        folder = write_meta(folder, self.config, modalities=list(self.modalities), input_dims=self.input_dims)
        np.savez(folder / "codebooks.npz", *self.codebooks)

    @classmethod
    def load(cls, folder: Path) -> ConcatenatedKMeans:
        """Rebuild a tokenizer written by ``save``."""
        config, meta = read_meta(folder, cls.config_class)
        tokenizer = cls(config)
        tokenizer.modalities, tokenizer.input_dims = saved_inputs(meta)
        with np.load(Path(folder) / "codebooks.npz") as arrays:
            tokenizer.codebooks = [arrays[f"arr_{level}"] for level in range(len(arrays.files))]
        return tokenizer


class KMeansTokenizer(ConcatenatedKMeans):
    """One k-means codebook of ``codebook_size`` centroids over the concatenated modalities; positions ("km1",)."""

    config_class = KMeansConfig
    position_prefix = "km"

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return (self.config.codebook_size,)
