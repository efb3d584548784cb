"""TalkPlay's tokenizer (FusID's baseline): an independent k-means per modality, one token per modality.

Modality m is clustered on its own into K centroids; an item's identifier is (c_1, …, c_M), the index of the
centroid nearest to x_m for every modality, with positions named "{modality}1" ("text1", "audio1", …).
decode returns each modality's chosen centroid.

Where the papers are silent: every modality's k-means uses the same ``seed`` (the data differ), so each
position equals a ``KMeansTokenizer`` run on that modality alone; ``normalize`` L2-normalises each modality.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from raysid.config import require
from raysid.tokenizers.base import (
    TokenizerCapabilities,
    TokenizerInputs,
    check_fit_inputs,
    read_meta,
    saved_inputs,
    write_meta,
)
from raysid.tokenizers.kmeans import (
    check_codes,
    check_modality_names,
    encode_rows,
    kmeans_centroids,
    nearest_centroid,
    select_modalities,
    stack_features,
)


@dataclass(frozen=True)
class TalkPlayConfig:
    """Hyperparameters of the TalkPlay tokenizer."""

    codebook_size: int = 1024  # K: centroids per modality
    niter: int = 25  # Lloyd iterations of each faiss k-means
    normalize: bool = False  # L2-normalise each modality before clustering it
    modalities: tuple[str, ...] = ()  # one position per modality, in this order; () = all, in the features' order
    seed: int = 0  # every modality's k-means initialisation

    tiny: ClassVar[dict[str, Any]] = {"codebook_size": 8}  # a fit of seconds on a tiny catalog (contract tests)

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", tuple(self.modalities))
        where = "tokenizer"
        require(self.codebook_size >= 1, f"{where}.codebook_size", f"must be >= 1, got {self.codebook_size}")
        require(self.niter >= 1, f"{where}.niter", f"must be >= 1, got {self.niter}")
        check_modality_names(self.modalities, f"{where}.modalities")

    def capabilities(self) -> TokenizerCapabilities:
        """Features in, one centroid per modality out: reconstructs its inputs, quantizes them, seeded."""
        return TokenizerCapabilities()


class TalkPlayTokenizer:
    """One k-means codebook per modality behind the ``Tokenizer`` contract (see ``raysid.tokenizers.base``)."""

    def __init__(self, config: TalkPlayConfig):
        self.config = config
        self.modalities: tuple[str, ...] = ()  # set at fit
        self.input_dims: dict[str, int] = {}
        self.codebooks: dict[str, np.ndarray] = {}  # modality -> (K, dim_m) float32

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """K for each modality's position."""
        return (self.config.codebook_size,) * len(self.position_names)

    @property
    def position_names(self) -> tuple[str, ...]:
        """("{modality}1", …) in the order of the modalities."""
        if not self.modalities:
            raise RuntimeError("TalkPlayTokenizer: position names are known after fit or load")
        return tuple(f"{name}1" for name in self.modalities)

    def fit(self, inputs: TokenizerInputs) -> TalkPlayTokenizer:
        """k-means of each modality's train rows.

        ``inputs.on_epoch`` is called once, with the train reconstruction MSE summed over modalities as
        ``tokenizer/loss``.
        """
        check_fit_inputs(inputs)
        features, on_epoch = inputs.features, inputs.on_epoch
        config, rows = self.config, np.asarray(inputs.train_items)
        self.modalities = select_modalities(features, config.modalities)
        self.input_dims = {name: int(features[name].shape[1]) for name in self.modalities}
        self.codebooks, loss = {}, 0.0
        for name in self.modalities:
            x = stack_features(features, (name,), config.normalize, rows)  # (n, dim_m)
            centroids = kmeans_centroids(x, config.codebook_size, config.niter, config.seed, plus_plus=True)
            self.codebooks[name] = centroids
            loss += float(np.mean((x - centroids[nearest_centroid(x, centroids)]) ** 2))
        if on_epoch is not None:
            on_epoch(0, {"tokenizer/loss": loss})
        return self

    def encode(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Codes of every row: (items, modalities) int64, the nearest centroid of each modality."""
        self._check_fitted()
        encode_rows(features, self.input_dims)
        codes = [
            nearest_centroid(stack_features(features, (name,), self.config.normalize), self.codebooks[name])
            for name in self.modalities
        ]
        return np.stack(codes, axis=1)

    def decode(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        """Each modality's chosen centroid: modality -> (items, dim_m) float32."""
        self._check_fitted()
        codes = check_codes(codes, self.codebook_sizes)
        return {name: self.codebooks[name][codes[:, m]] for m, name in enumerate(self.modalities)}

    def quantized_latent(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """(items, Σ dim_m) float32: each modality's nearest centroid, side by side."""
        self._check_fitted()
        encode_rows(features, self.input_dims)
        parts = []
        for name in self.modalities:
            x, centroids = stack_features(features, (name,), self.config.normalize), self.codebooks[name]
            parts.append(centroids[nearest_centroid(x, centroids)])
        return np.concatenate(parts, axis=1)

    def latent_from_codes(self, codes: np.ndarray) -> np.ndarray:
        """(items, Σ dim_m) float32: the decoded centroids side by side."""
        return np.concatenate(list(self.decode(codes).values()), axis=1)

    def _check_fitted(self) -> None:
        if not self.codebooks:
            raise RuntimeError("TalkPlayTokenizer: call fit or load first")

    def save(self, folder: Path) -> None:
        """Write ``tokenizer.json`` (config, modalities, input dims) and ``codebooks.npz`` (one array per modality)."""
        self._check_fitted()
        folder = write_meta(folder, self.config, modalities=list(self.modalities), input_dims=self.input_dims)
        np.savez(folder / "codebooks.npz", *(self.codebooks[name] for name in self.modalities))

    @classmethod
    def load(cls, folder: Path) -> TalkPlayTokenizer:
        """Rebuild a tokenizer written by ``save``."""
        config, meta = read_meta(folder, TalkPlayConfig)
        tokenizer = cls(config)
        tokenizer.modalities, tokenizer.input_dims = saved_inputs(meta)
        with np.load(Path(folder) / "codebooks.npz") as arrays:
            tokenizer.codebooks = {name: arrays[f"arr_{m}"] for m, name in enumerate(tokenizer.modalities)}
        return tokenizer
