"""Quantizer layers shared by the tokenizers.

``ResidualQuantizer`` is the residual quantization of RQ-VAE (TIGER) and of MusicRec eqs. 3–5 and 8: level l
picks the codeword nearest to the residual left by levels < l. Codebooks are initialised by k-means on the
first batch (3MToken/TIGER practice) and unused codes can be re-seeded to live residuals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from raysid.tokenizers.clustering import kmeans_centroids


class QuantizerOutput(NamedTuple):
    """What a quantizer returns for a batch x of shape (batch, dim)."""

    quantized: torch.Tensor  # (batch, dim) sum of the chosen codewords; gradient passes straight through to x
    codes: torch.Tensor  # (batch, levels) int64
    loss: torch.Tensor  # scalar: Σ_levels ||sg[r]-e||² + μ||r-sg[e]||², averaged over the batch
    residual: torch.Tensor  # (batch, dim) x minus the quantized sum, differentiable w.r.t. x (MusicRec's r_L)


class ResidualQuantizer(nn.Module):
    """``num_levels`` codebooks in R^dim, applied to successive residuals.

    ``codebook_size`` is one K for every level, or a tuple of per-level sizes K_l (3MToken's (32, 64, 128)).
    The codebooks are stored as one (L, K_max, dim) tensor; rows K_l.. of level l are padding that is never
    chosen, trained or re-seeded, and stays zero.
    """

    def __init__(self, num_levels: int, codebook_size: int | Sequence[int], dim: int, commitment_weight: float = 0.25):
        super().__init__()
        if isinstance(codebook_size, int):
            sizes, widest = (codebook_size,) * max(num_levels, 0), codebook_size
        else:
            sizes = tuple(int(size) for size in codebook_size)
            widest = max(sizes, default=1)
        sizes_ok = len(sizes) == num_levels and widest >= 1 and all(size >= 1 for size in sizes)
        if num_levels < 0 or not sizes_ok or dim < 1:
            raise ValueError(f"bad quantizer shape: levels={num_levels}, codebook_size={codebook_size}, dim={dim}")
        self.num_levels = num_levels
        self.codebook_sizes: tuple[int, ...] = sizes  # K_l per level
        self.codebook_size = widest  # K_max: width of the codebooks tensor (K itself when all levels share it)
        self.dim = dim
        self.commitment_weight = commitment_weight  # μ (β in 3MToken)
        # Random start (scaled by 1/K_l, padding zeroed), replaced by init_kmeans before training.
        scale = torch.tensor(sizes, dtype=torch.float32).view(num_levels, 1, 1)  # (L, 1, 1)
        codebooks = torch.randn(num_levels, widest, dim) / scale  # (L, K_max, dim)
        for level, size in enumerate(sizes):
            codebooks[level, size:] = 0.0
        self.codebooks = nn.Parameter(codebooks)

    def nearest(self, residual: torch.Tensor, level: int) -> torch.Tensor:
        """Index of the codeword of ``level`` nearest (L2) to each row of ``residual``: (batch,) int64."""
        codebook = self.codebooks[level, : self.codebook_sizes[level]].detach()  # (K_l, dim)
        distances = (
            residual.detach().pow(2).sum(1, keepdim=True)
            - 2 * residual.detach() @ codebook.T
            + codebook.pow(2).sum(1)[None, :]
        )  # (batch, K_l)
        return distances.argmin(dim=1)

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        """Quantize x (batch, dim) level by level (eq. 3) with the RQ loss of eq. 8."""
        residual = x  # r_0
        quantized = torch.zeros_like(x)  # (batch, dim) Σ e_{c_l}
        loss = x.new_zeros(())
        codes = []
        for level in range(self.num_levels):
            code = self.nearest(residual, level)  # (batch,)
            codeword = self.codebooks[level][code]  # (batch, dim)
            codebook_term = (residual.detach() - codeword).pow(2).sum(1).mean()
            commitment_term = (residual - codeword.detach()).pow(2).sum(1).mean()
            loss = loss + codebook_term + self.commitment_weight * commitment_term
            quantized = quantized + codeword.detach()
            residual = residual - codeword.detach()  # r_l = r_{l-1} - e_{c_l}
            codes.append(code)
        codes_tensor = torch.stack(codes, 1) if codes else x.new_zeros((x.shape[0], 0), dtype=torch.long)
        straight_through = quantized + (x - x.detach())  # value: the codewords' sum exactly; gradient: identity
        return QuantizerOutput(straight_through, codes_tensor, loss, residual)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of the selected codewords: codes (batch, levels) -> (batch, dim)."""
        quantized = self.codebooks.new_zeros((codes.shape[0], self.dim))
        for level in range(self.num_levels):
            quantized = quantized + self.codebooks[level][codes[:, level]].detach()
        return quantized

    def count_usage(self, codes: torch.Tensor) -> torch.Tensor:
        """How often each code was chosen: codes (batch, levels) -> (levels, K_max) int64 (padding counts 0)."""
        usage = [torch.bincount(codes[:, level], minlength=self.codebook_size) for level in range(self.num_levels)]
        return torch.stack(usage) if usage else torch.zeros((0, self.codebook_size), dtype=torch.long)

    @torch.no_grad()
    def init_kmeans(self, x: torch.Tensor, seed: int) -> None:
        """Set each level's codebook to k-means centroids of that level's residuals of x (batch, dim).

        With fewer points than codes, codewords are points drawn with replacement plus small seeded noise.
        """
        residual = x.detach()
        for level in range(self.num_levels):
            size = self.codebook_sizes[level]
            centroids = kmeans_centroids(residual.cpu().numpy(), size, 20, seed + level)  # (K_l, dim)
            self.codebooks[level, :size] = torch.from_numpy(centroids).to(self.codebooks)
            residual = residual - self.codebooks[level][self.nearest(residual, level)]

    @torch.no_grad()
    def reset_dead_codes(self, x: torch.Tensor, usage: torch.Tensor, seed: int = 0) -> int:
        """Re-seed codes never used (``usage`` (levels, ≥K_l) == 0) to randomly chosen residuals of x (batch, dim).

        Levels are processed in order, so a level's residuals reflect the resets of the levels above it.
        Returns the number of codes re-seeded.
        """
        generator = torch.Generator().manual_seed(seed)
        residual = x.detach()
        reset = 0
        for level in range(self.num_levels):
            used = usage[level, : self.codebook_sizes[level]]  # (K_l,) padding is never dead
            dead = (used == 0).nonzero().flatten().to(self.codebooks.device)  # (n_dead,)
            if len(dead) and len(residual):
                rows = torch.randint(len(residual), (len(dead),), generator=generator).to(residual.device)
                self.codebooks[level][dead] = residual[rows]
                reset += len(dead)
            residual = residual - self.codebooks[level][self.nearest(residual, level)]
        return reset
