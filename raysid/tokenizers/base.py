"""The contract every tokenizer follows, and the input checks they share.

A tokenizer turns per-modality item feature matrices into semantic IDs: one integer code per position,
each position with its own codebook and token prefix. Rows of every matrix are item ids.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from raysid.config import build, to_dict

if TYPE_CHECKING:
    import torch

    from raysid.training_config import TrainingConfig

OnEpoch = Callable[[int, dict[str, float]], None]
"""Called after each training epoch with (epoch, {"tokenizer/loss": ..., ...})."""


@dataclass(frozen=True)
class TokenizerCapabilities:
    """What a tokenizer needs and offers, declared by its config (``config.capabilities()``); the pipeline
    reads these instead of asking which tokenizer it has, and the contract tests check each one."""

    needs_features: bool = True  # fit and encode read the feature matrices (False: they get none)
    needs_sequences: bool = False  # fit mines the training sequences (FusID's co-occurrence pairs)
    uses_collaborative: bool = False  # fit learns from CF embeddings (the pipeline trains the collaborative stage)
    reads_dataset_identifiers: bool = False  # fit reads the identifier table imported with the dataset
    input_file: str = ""  # a file fit reads; its content joins the tokenizer stage's key
    reconstructs_inputs: bool = True  # decode rebuilds every fitted modality (else it returns none of them)
    quantizer: bool = True  # codes index codebooks of a latent space (the ``Quantizer`` methods)
    seeded: bool = True  # the trial's seed replaces ``config.seed``; another seed gives other identifiers
    trains_on_ray: bool = False  # fit runs its training loop on Ray Train workers when ``training.ray``


@dataclass(frozen=True)
class TokenizerInputs:
    """Everything ``Tokenizer.fit`` may learn from; what a tokenizer does not declare a need for is None."""

    features: Mapping[str, np.ndarray] | None  # modality -> (items, dim) float32 for every item; None: no features
    train_items: np.ndarray  # (train,) sorted item ids the tokenizer fits on
    sequences: list[np.ndarray] | None = None  # training sequences of item ids (``needs_sequences``)
    collaborative: np.ndarray | None = None  # (items, d_cf) CF embeddings of every item (``uses_collaborative``)
    training: TrainingConfig | None = None  # where a neural tokenizer trains (``trains_on_ray``); None: in process
    on_epoch: OnEpoch | None = None  # progress after every training epoch
    num_items: int | None = None  # catalogue size; None: the features' row count
    identifiers: Path | None = None  # the dataset's identifier table (``reads_dataset_identifiers``)

    @property
    def items(self) -> int:
        """The catalogue size: ``num_items``, else the features' row count."""
        if self.num_items is not None:
            return self.num_items
        if not self.features:
            raise ValueError("features: expected at least one modality, got none")
        return len(next(iter(self.features.values())))


@runtime_checkable
class Tokenizer(Protocol):
    """Fit on the train items' inputs, then map every item to a row of codes and back.

    A tokenizer is built as ``cls(config)``; its config declares ``capabilities()``.
    """

    config: Any

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """Size of the codebook of each code position, in order."""
        ...

    @property
    def position_names(self) -> tuple[str, ...]:
        """Token prefix of each code position, e.g. ("s1", "s2", "text1", "audio1")."""
        ...

    def fit(self, inputs: TokenizerInputs) -> Tokenizer:
        """Train on rows ``inputs.train_items`` of ``inputs.features`` (and whatever else the config's
        capabilities declare it uses)."""
        ...

    def encode(self, features: Mapping[str, np.ndarray] | None) -> np.ndarray:
        """Codes of every row: (items, positions) int64, each code in [0, codebook_sizes[position]); a
        tokenizer that needs no features takes None and codes the catalogue it was fitted on."""
        ...

    def decode(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        """Reconstruction of each fitted modality from codes: modality -> (items, dim) float32 (``{}`` or a
        fused embedding under its own name when ``reconstructs_inputs`` is False)."""
        ...

    def save(self, folder: Path) -> None:
        """Write everything ``load`` needs into ``folder``."""
        ...

    @classmethod
    def load(cls, folder: Path) -> Tokenizer:
        """Rebuild a fitted tokenizer written by ``save``."""
        ...


@runtime_checkable
class Quantizer(Tokenizer, Protocol):
    """A tokenizer whose codes index codebooks of a latent space (``capabilities().quantizer``): the latent
    rebuilt from an item's codes is the quantized latent its encoding chose (vector-quantize-pytorch's
    round trip)."""

    def quantized_latent(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """(items, latent dim) float32: each row's latent after quantization, as ``encode`` computes it."""
        ...

    def latent_from_codes(self, codes: np.ndarray) -> np.ndarray:
        """(items, latent dim) float32 rebuilt from the codes alone (sum or concatenation of codewords)."""
        ...


def check_fit_inputs(inputs: TokenizerInputs, needs_features: bool = True) -> int:
    """Validate a ``Tokenizer.fit`` input; return the number of items.

    Raises ValueError naming the problem: no modality, a matrix that is not 2-D or finite, matrices with
    different row counts, an empty or out-of-range ``train_items``, or ``collaborative`` with the wrong rows.
    A tokenizer that needs no features may get none: the catalogue size is then ``inputs.num_items``.
    """
    features, train_items, collaborative = inputs.features, inputs.train_items, inputs.collaborative
    if not needs_features and features is None and inputs.num_items is not None:
        num_items = inputs.num_items
    else:
        if not features:
            raise ValueError("features: expected at least one modality, got none")
        rows = {name: _check_matrix(f"features[{name!r}]", matrix) for name, matrix in features.items()}
        if len(set(rows.values())) > 1:
            raise ValueError(f"features: modalities have different numbers of rows (items): {rows}")
        num_items = next(iter(rows.values()))
    train_items = np.asarray(train_items)
    if train_items.ndim != 1 or not np.issubdtype(train_items.dtype, np.integer):
        raise ValueError(f"train_items: expected a 1-D integer array, got {train_items.dtype} {train_items.shape}")
    if train_items.size < 1:
        raise ValueError("train_items: no training rows; every modality needs at least one")
    if train_items.min() < 0 or train_items.max() >= num_items:
        low, high = train_items.min(), train_items.max()
        raise ValueError(f"train_items: ids must lie in [0, {num_items}), got values in [{low}, {high}]")
    if collaborative is not None:
        cf_rows = _check_matrix("collaborative", collaborative)
        if cf_rows != num_items:
            raise ValueError(f"collaborative: expected {num_items} rows (one per item), got {cf_rows}")
    return num_items


def check_encode_inputs(features: Mapping[str, np.ndarray], input_dims: Mapping[str, int]) -> int:
    """Validate features passed to encode against the modalities and dims seen at fit; return the row count."""
    if set(features) != set(input_dims):
        raise ValueError(f"features: expected modalities {sorted(input_dims)}, got {sorted(features)}")
    rows = {}
    for name, dim in input_dims.items():
        rows[name] = _check_matrix(f"features[{name!r}]", features[name])
        if features[name].shape[1] != dim:
            raise ValueError(f"features[{name!r}]: expected {dim} columns as at fit, got {features[name].shape[1]}")
    if len(set(rows.values())) > 1:
        raise ValueError(f"features: modalities have different numbers of rows (items): {rows}")
    return next(iter(rows.values()))


def _check_matrix(where: str, matrix: np.ndarray) -> int:
    """Check a 2-D finite numeric matrix with at least one column; return its row count."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[1] < 1:
        raise ValueError(f"{where}: expected a 2-D (items, dim) matrix, got shape {matrix.shape}")
    if not np.issubdtype(matrix.dtype, np.number):
        raise ValueError(f"{where}: expected numbers, got dtype {matrix.dtype}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{where}: contains NaN or infinite values")
    return matrix.shape[0]


def write_meta(folder: Path, config: Any, **meta: Any) -> Path:
    """Create ``folder`` and write ``tokenizer.json`` with the config and ``meta``; return the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps({"config": to_dict(config), **meta}, indent=2))
    return folder


def read_meta(folder: Path, config_class: type) -> tuple[Any, dict[str, Any]]:
    """The config and the rest of ``tokenizer.json`` written by ``write_meta``."""
    meta = json.loads((Path(folder) / "tokenizer.json").read_text())
    return build(config_class, meta.pop("config"), "tokenizer"), meta


def saved_inputs(meta: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, int]]:
    """(modalities, input dims) recorded at fit, as ``write_meta`` stored them."""
    modalities = tuple(meta["modalities"])
    return modalities, {name: int(meta["input_dims"][name]) for name in modalities}


def save_weights(module: torch.nn.Module, folder: Path) -> None:
    import torch

    torch.save(module.state_dict(), Path(folder) / "model.pt")


def load_weights(module: torch.nn.Module, folder: Path, device: torch.device) -> torch.nn.Module:
    """Load ``model.pt`` into ``module`` with ``weights_only=True`` (no code runs from the file)."""
    import torch

    module.load_state_dict(torch.load(Path(folder) / "model.pt", map_location=device, weights_only=True))
    return module
