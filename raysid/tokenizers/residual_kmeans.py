"""Residual k-means tokenizer: the quantization of RQ-VAE without the network, over the concatenated modalities.

Level 1 clusters x = [x_1; …; x_M] into K_1 centroids; level l clusters the residual r_{l-1} = x − Σ_{j<l} c_j
left by the levels above it. The identifier is the L centroid indices; decode sums the chosen centroids and
splits the sum back into the modalities. Level l's k-means is seeded with ``seed + l - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from raysid.config import require
from raysid.tokenizers.base import TokenizerCapabilities
from raysid.tokenizers.kmeans import ConcatenatedKMeans, check_modality_names


@dataclass(frozen=True)
class ResidualKMeansConfig:
    """Hyperparameters of the residual k-means tokenizer."""

    codebook_sizes: tuple[int, ...] = (256, 256, 256)  # K_l per level; L = len(codebook_sizes)
    niter: int = 25  # Lloyd iterations of each level's faiss k-means
    normalize: bool = False  # L2-normalise each modality before concatenating
    modalities: tuple[str, ...] = ()  # modalities to concatenate, in this order; () = all, in the features' order
    seed: int = 0  # level l's k-means uses seed + l - 1

    tiny: ClassVar[dict[str, Any]] = {"codebook_sizes": [8, 8]}  # a fit of seconds on a tiny catalog (contract tests)

    def __post_init__(self) -> None:
        object.__setattr__(self, "codebook_sizes", tuple(self.codebook_sizes))
        object.__setattr__(self, "modalities", tuple(self.modalities))
        where = "tokenizer"
        sizes = self.codebook_sizes
        require(len(sizes) >= 1, f"{where}.codebook_sizes", "need at least one level")
        require(all(size >= 1 for size in sizes), f"{where}.codebook_sizes", f"sizes must be >= 1, got {sizes}")
        require(self.niter >= 1, f"{where}.niter", f"must be >= 1, got {self.niter}")
        check_modality_names(self.modalities, f"{where}.modalities")

    def capabilities(self) -> TokenizerCapabilities:
        """Features in, summed centroids out: reconstructs its inputs, quantizes them, seeded, in process."""
        return TokenizerCapabilities()


class ResidualKMeansTokenizer(ConcatenatedKMeans):
    """L levels of k-means on successive residuals; positions ("rk1", …, "rkL")."""

    config_class = ResidualKMeansConfig
    position_prefix = "rk"

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return self.config.codebook_sizes
