"""MusicRec's shared–specific semantic tokenizer (musicrec.txt eqs. 2–12), generalised to M modalities.

Per-modality MLP encoders x_m -> z_m ∈ R^d; a linear projection of [z_1; …; z_M] gives the joint latent
z ∈ R^{M·d}; a shared residual quantizer (L_e levels) quantizes z; its last residual is split into M chunks
of d, each quantized by that modality's own residual quantizer (L_c levels); ẑ_m = shared chunk m +
specific sum (eq. 6) is decoded back to x_m by a per-modality MLP. An item's identifier is its L_e shared
codes followed, per modality, by its L_c specific codes.

Where the paper is silent:
- τ (InfoNCE temperature) is not given in the paper; 0.1 is our default.
- Eq. 10 compares ẑ ∈ R^{M·d} with z_cf ∈ R^{d_cf} by cosine similarity; the paper leaves the dimension
  mismatch implicit. We pass ẑ through a learned linear map R^{M·d} -> R^{d_cf} (``cf_head``) before
  normalising. L_relation (eq. 11) compares within-batch similarity matrices, so it uses ẑ directly.
- Eq. 9 writes squared L2 norms; like TIGER/LETTER code we use the per-element MSE for reconstruction,
  while the RQ loss (eq. 8) sums over dimensions and averages over the batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raysid.devices import resolve_device
from raysid.distributed import Session, epoch_state, resolve_training, resume, run_training, unwrap
from raysid.tokenizers.base import (
    TokenizerInputs,
    check_encode_inputs,
    check_fit_inputs,
    load_weights,
    read_meta,
    save_weights,
    saved_inputs,
    write_meta,
)
from raysid.tokenizers.musicrec_config import MusicRecConfig
from raysid.tokenizers.quantizers import ResidualQuantizer

_EVAL_BATCH = 4096  # rows per forward pass in encode/decode


def _mlp(widths: list[int]) -> nn.Sequential:
    """Linear+ReLU stack through ``widths``; no activation after the last Linear."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class QuantizedLatent(NamedTuple):
    """The quantization of a batch of joint latents z (batch, M·d)."""

    zhat: torch.Tensor  # (batch, M*d) [ẑ_1; …; ẑ_M], straight-through w.r.t. z
    codes: torch.Tensor  # (batch, L_e + M*L_c) int64
    loss: torch.Tensor  # scalar L_RQ^e + Σ_m L_RQ^m
    specific_inputs: list[torch.Tensor]  # M × (batch, d): chunks of the last shared residual r_{L_e}


class MusicRecNetwork(nn.Module):
    """Encoders, projection, shared and specific residual quantizers, decoders and the CF head."""

    def __init__(self, config: MusicRecConfig, input_dims: list[int], cf_dim: int | None):
        super().__init__()
        d, m = config.latent_dim, len(input_dims)
        self.latent_dim = d
        self.encoders = nn.ModuleList(_mlp([dim, *config.hidden_dims, d]) for dim in input_dims)
        self.projection = nn.Linear(m * d, m * d)  # z = Linear([z_1; …; z_M])
        self.shared = ResidualQuantizer(config.shared_levels, config.codebook_size, m * d, config.commitment_weight)
        self.specific = nn.ModuleList(
            ResidualQuantizer(config.specific_levels, config.codebook_size, d, config.commitment_weight)
            for _ in input_dims
        )
        self.decoders = nn.ModuleList(_mlp([d, *reversed(config.hidden_dims), dim]) for dim in input_dims)
        self.cf_head = nn.Linear(m * d, cf_dim) if cf_dim else None  # ẑ -> R^{d_cf} for L_align

    def latent(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """Joint latent z (batch, M*d) from the modalities' features (eq. 2 and the projection)."""
        return self.projection(torch.cat([encoder(x) for encoder, x in zip(self.encoders, xs)], dim=1))

    def quantize(self, z: torch.Tensor) -> QuantizedLatent:
        """Shared RQ on z (eq. 3), specific RQ on the split residual (eqs. 4–5), ẑ_m as in eq. 6."""
        shared = self.shared(z)
        specific_inputs = list(shared.residual.split(self.latent_dim, dim=1))  # M × (batch, d)
        outputs = [quantizer(r) for quantizer, r in zip(self.specific, specific_inputs)]
        shared_chunks = shared.quantized.detach().split(self.latent_dim, dim=1)  # M × (batch, d)
        values = torch.cat([c + o.quantized.detach() for c, o in zip(shared_chunks, outputs)], dim=1)
        zhat = values + (z - z.detach())  # (batch, M*d) value ẑ exactly, gradient identity to z
        codes = torch.cat([shared.codes, *(o.codes for o in outputs)], dim=1)
        loss = shared.loss + sum((o.loss for o in outputs), z.new_zeros(()))
        return QuantizedLatent(zhat, codes, loss, specific_inputs)

    def split_codes(self, codes: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(batch, L_e + M*L_c) -> shared codes (batch, L_e) and M × (batch, L_c)."""
        shared_levels = self.shared.num_levels
        specific_levels = self.specific[0].num_levels
        specific = codes[:, shared_levels:].split(specific_levels, dim=1) if specific_levels else []
        return codes[:, :shared_levels], list(specific) or [codes[:, :0] for _ in self.specific]

    def zhat_from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """ẑ (batch, M*d) from an identifier's codes, by the same sums as ``quantize``."""
        shared_codes, specific_codes = self.split_codes(codes)
        shared_chunks = self.shared.decode(shared_codes).split(self.latent_dim, dim=1)
        parts = [c + q.decode(s) for c, q, s in zip(shared_chunks, self.specific, specific_codes)]
        return torch.cat(parts, dim=1)

    def reconstruct(self, zhat: torch.Tensor) -> list[torch.Tensor]:
        """Per-modality decoders (eq. 7): ẑ (batch, M*d) -> M × (batch, dim_m)."""
        chunks = zhat.split(self.latent_dim, dim=1)
        return [decoder(chunk) for decoder, chunk in zip(self.decoders, chunks)]


def build_network(config: MusicRecConfig, input_dims: list[int], cf_dim: int | None) -> MusicRecNetwork:
    """The network with weights drawn from ``config.seed`` without touching the global torch RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return MusicRecNetwork(config, input_dims, cf_dim)


def alignment_loss(zhat: torch.Tensor, cf: torch.Tensor, head: nn.Module, temperature: float) -> torch.Tensor:
    """In-batch InfoNCE between normalised head(ẑ) (batch, d_cf) and normalised z_cf (eq. 10)."""
    query = F.normalize(head(zhat), dim=1)  # (batch, d_cf)
    keys = F.normalize(cf, dim=1)  # (batch, d_cf)
    logits = query @ keys.T / temperature  # (batch, batch)
    return F.cross_entropy(logits, torch.arange(len(zhat), device=zhat.device))


def relation_loss(zhat: torch.Tensor, cf: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the in-batch cosine-similarity matrices of ẑ and z_cf (eq. 11)."""
    quantized = F.normalize(zhat, dim=1)
    collaborative = F.normalize(cf, dim=1)
    return (quantized @ quantized.T - collaborative @ collaborative.T).pow(2).mean()


def _position_usage(codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """How often each code was chosen at each position: codes (batch, positions) -> (positions, N)."""
    offsets = torch.arange(codes.shape[1]) * codebook_size  # (positions,)
    counts = torch.bincount((codes + offsets[None, :]).flatten(), minlength=codes.shape[1] * codebook_size)
    return counts.view(codes.shape[1], codebook_size)


class MusicRecObjective(nn.Module):
    """The loss of eq. 12 as a module, so DDP sees one forward per step: (xs, cf) -> (terms, codes)."""

    def __init__(self, network: MusicRecNetwork, config: MusicRecConfig):
        super().__init__()
        self.network, self.config = network, config

    def forward(self, xs: list[torch.Tensor], cf: torch.Tensor | None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        network, config = self.network, self.config
        quantized = network.quantize(network.latent(xs))
        reconstructions = network.reconstruct(quantized.zhat)
        terms = {
            "recon": sum((F.mse_loss(r, x) for r, x in zip(reconstructions, xs)), xs[0].new_zeros(())),
            "rq": quantized.loss,
            "align": xs[0].new_zeros(()),
            "relation": xs[0].new_zeros(()),
        }
        if cf is not None and config.alpha > 0:
            terms["align"] = alignment_loss(quantized.zhat, cf, network.cf_head, config.temperature)
        if cf is not None and config.beta > 0:
            terms["relation"] = relation_loss(quantized.zhat, cf)
        terms["loss"] = terms["recon"] + terms["rq"] + config.alpha * terms["align"] + config.beta * terms["relation"]
        return terms, quantized.codes


@dataclass
class MusicRecTraining:
    """The MusicRec training loop for ``raysid.distributed.run_training`` (one process or DDP workers).

    Every worker draws the same global order from the seeded generator and trains its shard of each batch;
    the k-means initialisation uses the whole first batch on every worker, dead-code resets use usage summed
    over the workers, and rank 0's codebooks are then copied to all.
    """

    config: MusicRecConfig
    features: list[np.ndarray]  # M × (train items, dim_m) float32
    collaborative: np.ndarray | None  # (train items, d_cf) or None

    def __call__(self, session: Session) -> None:
        config = self.config
        xs = [torch.as_tensor(x, device=session.device) for x in self.features]
        cf = None if self.collaborative is None else torch.as_tensor(self.collaborative, device=session.device)
        cf_dim = None if cf is None else cf.shape[1]
        network = build_network(config, [x.shape[1] for x in xs], cf_dim).to(session.device)
        objective = session.wrap(MusicRecObjective(network, config))
        optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
        generator = torch.Generator().manual_seed(config.seed)
        last = resume(session, network, [optimizer], generator)
        for epoch in range(0 if last is None else last + 1, config.epochs):
            order = torch.randperm(len(xs[0]), generator=generator).to(session.device)
            if epoch == 0:
                _init_codebooks(network, [x[order[: config.batch_size]] for x in xs], config.seed)
                session.sync(network)
            metrics = self._train_epoch(session, objective, xs, cf, order, optimizer, generator)
            session.report(epoch, metrics, epoch_state(network, [optimizer], generator, epoch))

    def _train_epoch(self, session, objective, xs, cf, order, optimizer, generator) -> dict[str, float]:
        """One pass over the train rows in ``order``; returns the epoch's mean loss terms over all workers."""
        config, network = self.config, unwrap(objective).network
        objective.train()
        totals: dict[str, float] = {}
        usage = torch.zeros((_identifier_length(network), config.codebook_size), dtype=torch.long)
        for start in range(0, len(order), config.batch_size):
            batch = session.shard(order[start : start + config.batch_size])
            with session.autocast():
                terms, codes = objective([x[batch] for x in xs], None if cf is None else cf[batch])
            optimizer.zero_grad()
            terms["loss"].backward()
            optimizer.step()
            usage += _position_usage(codes.cpu(), config.codebook_size)
            for name, value in terms.items():
                totals[name] = totals.get(name, 0.0) + float(value.detach()) * len(batch)
        if config.reset_dead_codes:
            _reset_dead_codes(network, xs, session.all_reduce(usage), generator, config)
            session.sync(network)
        return {f"tokenizer/{name}": total / len(order) for name, total in session.sums(totals).items()}


def _identifier_length(network: MusicRecNetwork) -> int:
    """Number of codebooks = identifier length L_e + M·L_c."""
    return network.shared.num_levels + len(network.specific) * network.specific[0].num_levels


@torch.no_grad()
def _init_codebooks(network: MusicRecNetwork, xs: list[torch.Tensor], seed: int) -> None:
    """k-means on the first batch: shared levels on z, then each modality's levels on its residual chunk."""
    z = network.latent(xs)  # (batch, M*d)
    network.shared.init_kmeans(z, seed)
    chunks = network.shared(z).residual.split(network.latent_dim, dim=1)
    for m, (quantizer, chunk) in enumerate(zip(network.specific, chunks)):
        quantizer.init_kmeans(chunk, seed + 1000 * (m + 1))


@torch.no_grad()
def _reset_dead_codes(network: MusicRecNetwork, xs: list[torch.Tensor], usage: torch.Tensor,
                      generator: torch.Generator, config: MusicRecConfig) -> None:
    """Re-seed codes unused this epoch to residuals of a random sample of train rows."""
    size = min(len(xs[0]), max(config.batch_size, config.codebook_size))
    sample = torch.randperm(len(xs[0]), generator=generator)[:size].to(xs[0].device)
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    z = network.latent([x[sample] for x in xs])  # (size, M*d)
    shared_levels, specific_levels = config.shared_levels, config.specific_levels
    network.shared.reset_dead_codes(z, usage[:shared_levels], seed)
    chunks = network.shared(z).residual.split(network.latent_dim, dim=1)  # M × (size, d)
    for m, (quantizer, chunk) in enumerate(zip(network.specific, chunks)):
        counts = usage[shared_levels + m * specific_levels : shared_levels + (m + 1) * specific_levels]
        quantizer.reset_dead_codes(chunk, counts, seed + m + 1)


class MusicRecTokenizer:
    """MusicRec tokenizer behind the ``Tokenizer`` contract (see ``raysid.tokenizers.base``)."""

    def __init__(self, config: MusicRecConfig):
        self.config = config
        self.modalities: tuple[str, ...] = ()  # set at fit, in the features' order
        self.input_dims: dict[str, int] = {}
        self.cf_dim: int | None = None
        self.network: MusicRecNetwork | None = None
        self.device = resolve_device(config.device)

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """N for each of the L_e + M·L_c positions."""
        return (self.config.codebook_size,) * len(self.position_names)

    @property
    def position_names(self) -> tuple[str, ...]:
        """("s1", …, "s{L_e}") then, per modality, ("{modality}1", …, "{modality}{L_c}")."""
        if not self.modalities:
            raise RuntimeError("MusicRecTokenizer: position names are known after fit or load")
        shared = tuple(f"s{level}" for level in range(1, self.config.shared_levels + 1))
        levels = range(1, self.config.specific_levels + 1)
        return shared + tuple(f"{name}{level}" for name in self.modalities for level in levels)

    def fit(self, inputs: TokenizerInputs) -> MusicRecTokenizer:
        """Train on the rows ``inputs.train_items`` with Adam (see the module docstring for the loss), in this
        process or on Ray Train workers as ``inputs.training`` says."""
        check_fit_inputs(inputs)
        features, train_items, collaborative = inputs.features, inputs.train_items, inputs.collaborative
        config = self.config
        self.modalities = tuple(features)
        self.input_dims = {name: int(matrix.shape[1]) for name, matrix in features.items()}
        use_cf = collaborative is not None and (config.alpha > 0 or config.beta > 0)
        self.cf_dim = int(collaborative.shape[1]) if use_cf else None
        rows = np.asarray(train_items, dtype=np.int64)
        loop = MusicRecTraining(
            config, [np.asarray(features[name][rows], np.float32) for name in self.modalities],
            np.asarray(collaborative[rows], np.float32) if use_cf else None,
        )
        state = run_training(loop, resolve_training(inputs.training, config.device), inputs.on_epoch, name="musicrec")
        network = build_network(config, list(self.input_dims.values()), self.cf_dim)
        network.load_state_dict(state["model"])
        self.network = network.to(self.device)
        return self

    def _identifier_length(self) -> int:
        """Number of codebooks = identifier length L_e + M·L_c."""
        return self.config.shared_levels + len(self.modalities) * self.config.specific_levels

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array, dtype=np.float32), device=self.device)

    def _network(self) -> MusicRecNetwork:
        if self.network is None:
            raise RuntimeError("MusicRecTokenizer: call fit or load first")
        return self.network

    @torch.no_grad()
    def encode(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Identifiers of all rows: (items, L_e + M·L_c) int64, shared codes first then per modality."""
        network = self._network().eval()
        num_items = check_encode_inputs(features, self.input_dims)
        codes = []
        for start in range(0, num_items, _EVAL_BATCH):
            xs = [self._tensor(features[name][start : start + _EVAL_BATCH]) for name in self.modalities]
            codes.append(network.quantize(network.latent(xs)).codes.cpu())
        if not codes:
            return np.zeros((0, self._identifier_length()), np.int64)
        return torch.cat(codes).numpy().astype(np.int64)

    @torch.no_grad()
    def quantized_latent(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """ẑ (items, M·d) float32 of every row: shared chunk plus specific sum per modality (eq. 6)."""
        network = self._network().eval()
        num_items = check_encode_inputs(features, self.input_dims)
        latents = []
        for start in range(0, num_items, _EVAL_BATCH):
            xs = [self._tensor(features[name][start : start + _EVAL_BATCH]) for name in self.modalities]
            latents.append(network.quantize(network.latent(xs)).zhat.cpu())
        return torch.cat(latents).numpy() if latents else np.zeros((0, len(self.modalities) * self.config.latent_dim), np.float32)

    @torch.no_grad()
    def latent_from_codes(self, codes: np.ndarray) -> np.ndarray:
        """ẑ (items, M·d) float32 rebuilt from identifiers by the same sums (``zhat_from_codes``)."""
        batch = torch.as_tensor(self._check_codes(codes), dtype=torch.long, device=self.device)
        return self._network().zhat_from_codes(batch).cpu().numpy()

    def _check_codes(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self._identifier_length():
            raise ValueError(f"codes: expected shape (items, {self._identifier_length()}), got {codes.shape}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.config.codebook_size):
            raise ValueError(f"codes: values must lie in [0, {self.config.codebook_size})")
        return codes

    @torch.no_grad()
    def decode(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        """Per-modality reconstructions x̂_m (items, dim_m) float32 of identifiers (items, positions)."""
        network = self._network().eval()
        codes = self._check_codes(codes)
        parts: list[list[np.ndarray]] = [[] for _ in self.modalities]
        for start in range(0, len(codes), _EVAL_BATCH):
            batch = torch.as_tensor(codes[start : start + _EVAL_BATCH], dtype=torch.long, device=self.device)
            for part, x in zip(parts, network.reconstruct(network.zhat_from_codes(batch))):
                part.append(x.cpu().numpy())
        return {
            name: np.concatenate(part) if part else np.zeros((0, self.input_dims[name]), np.float32)
            for name, part in zip(self.modalities, parts)
        }

    def save(self, folder: Path) -> None:
        """Write ``tokenizer.json`` (config, modalities, input dims, CF dim) and ``model.pt`` (state dict)."""
        meta = {"modalities": list(self.modalities), "input_dims": self.input_dims, "cf_dim": self.cf_dim}
        save_weights(self._network(), write_meta(folder, self.config, **meta))

    @classmethod
    def load(cls, folder: Path) -> MusicRecTokenizer:
        """Rebuild a tokenizer written by ``save``."""
        config, meta = read_meta(folder, MusicRecConfig)
        tokenizer = cls(config)
        tokenizer.modalities, tokenizer.input_dims = saved_inputs(meta)
        tokenizer.cf_dim = meta["cf_dim"]
        network = build_network(config, list(tokenizer.input_dims.values()), tokenizer.cf_dim).to(tokenizer.device)
        tokenizer.network = load_weights(network, folder, tokenizer.device)
        return tokenizer
