"""FusID's hyperparameters (config section ``tokenizer`` with ``kind: fusid``), beside ``fusid.py``.

Torch-free, so a study parses without importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from raysid.config import require
from raysid.devices import check_device
from raysid.tokenizers.base import TokenizerCapabilities


@dataclass(frozen=True)
class FusIDConfig:
    """Hyperparameters of FusID; defaults follow the paper's implementation details where it gives them."""

    hidden_dim: int = 2048  # width of the projection head's hidden layer (paper: 3072 -> 2048)
    num_subembeddings: int = 5  # n: sub-embeddings, i.e. code positions
    subembedding_dim: int = 128  # d: width of each sub-embedding e_i
    codebook_size: int = 1024  # K: k-means centroids per sub-embedding
    contrastive_loss: bool = True  # train with L_cont (eq. 1)
    regularizer: bool = True  # train with α·(L_cov + L_var) (eqs. 2-3); false = Table 1's ablation
    alpha: float = 0.2  # α: weight of the regulariser
    gamma: float = 1.0  # γ: target standard deviation of every fused dimension (eq. 3)
    margin: float = 1.0  # m: negatives are pushed to distance >= m (mse: = m); not given, 1 is eq. 1's target
    contrastive_form: Literal["margin", "mse"] = "margin"  # negatives: max(0, m - D)^2 or (m - D)^2 (eq. 1)
    distance: Literal["euclidean", "rms"] = "rms"  # D / sqrt(n*d) (default, see above) or the paper's Euclidean D
    window: int = 5  # co-occurrence window in playlist positions (not given in the paper)
    positive_quantile: float = 0.9  # normalised co-occurrence at or above this quantile -> positive pair
    negative_quantile: float = 0.1  # at or below this quantile (or never co-occurring) -> negative pair
    pairs_per_epoch: int = 20000  # pairs drawn per epoch, half positive and half negative
    epochs: int = 30  # passes, each over a fresh draw of pairs
    batch_size: int = 128  # pairs per Adam step (paper: 128)
    learning_rate: float = 5e-4  # Adam (paper: 5e-4)
    niter: int = 25  # k-means iterations per sub-embedding
    modalities: tuple[str, ...] = ()  # modalities to fuse, in this order; empty = all given to fit
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:N"
    seed: int = 0  # weights, pair sampling, k-means

    tiny: ClassVar[dict[str, Any]] = {  # a fit of seconds on a tiny catalog (contract tests)
        "hidden_dim": 32, "num_subembeddings": 2, "subembedding_dim": 8, "codebook_size": 8, "epochs": 2,
        "pairs_per_epoch": 500}

    def capabilities(self) -> TokenizerCapabilities:
        """Features in, a product-quantized fused embedding out (no reconstruction of the modalities); the
        contrastive loss mines pairs from the training sequences; f_θ trains on Ray Train when asked."""
        return TokenizerCapabilities(needs_sequences=self.contrastive_loss, reconstructs_inputs=False,
                                     trains_on_ray=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", tuple(self.modalities))
        where = "tokenizer"
        for name in ("hidden_dim", "num_subembeddings", "subembedding_dim", "window", "pairs_per_epoch"):
            value = getattr(self, name)
            require(value >= 1, f"{where}.{name}", f"must be >= 1, got {value}")
        size = self.codebook_size
        require(size >= 1, f"{where}.codebook_size", f"codebook size must be >= 1, got {size}")
        require(
            self.contrastive_loss or self.regularizer,
            f"{where}.contrastive_loss",
            "contrastive_loss and regularizer are both false; FusID needs at least one loss to train",
        )
        require(self.alpha >= 0, f"{where}.alpha", f"must be >= 0, got {self.alpha}")
        require(self.gamma > 0, f"{where}.gamma", f"must be > 0, got {self.gamma}")
        require(self.margin > 0, f"{where}.margin", f"must be > 0, got {self.margin}")
        forms = ("margin", "mse")
        require(self.contrastive_form in forms, f"{where}.contrastive_form", f"expected one of {forms}")
        distances = ("euclidean", "rms")
        require(self.distance in distances, f"{where}.distance", f"expected one of {distances}")
        low, high = self.negative_quantile, self.positive_quantile
        require(0 <= high <= 1, f"{where}.positive_quantile", f"must lie in [0, 1], got {high}")
        require(
            0 <= low < high,
            f"{where}.negative_quantile",
            f"must lie in [0, positive_quantile={high}), got {low}",
        )
        for name in ("epochs", "batch_size", "niter"):
            value = getattr(self, name)
            require(value >= 1, f"{where}.{name}", f"must be >= 1, got {value}")
        require(self.learning_rate > 0, f"{where}.learning_rate", f"must be > 0, got {self.learning_rate}")
        for name in self.modalities:
            require(isinstance(name, str), f"{where}.modalities", f"expected modality names, got {name!r}")
            require(self.modalities.count(name) == 1, f"{where}.modalities", f"{name!r} is listed more than once")
        check_device(self.device, f"{where}.device")
