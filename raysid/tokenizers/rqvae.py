"""RQ-VAE tokenizer (TIGER; 3MToken §2 and appendix B) over the concatenation of the chosen modalities.

An encoder f_θ (Linear→BatchNorm→ReLU per hidden width, then Linear to d_z) maps x to z_e ∈ R^{d_z}; L
codebooks of sizes K_1..K_L quantize it residually (k_l = argmin_k ||r_{l-1} - e_k||², r_0 = z_e,
r_l = r_{l-1} - e_{k_l}); a mirrored decoder g_φ reconstructs x̂ = g_φ(Σ_l e_{k_l}). The loss is
reconstruction + Σ_l (||sg[r_{l-1}] - e_{k_l}||² + β||r_{l-1} - sg[e_{k_l}]||²). Codebooks start from
k-means on the first batch; codes unused during an epoch are re-seeded to live residuals. An item's
identifier is (k_1, …, k_L), one position per level named "rq1", "rq2", …

The network ``RQVAE`` and the tokenizer ``RQVAETokenizer`` are reused by ``per_modality.py`` (3MToken: one
RQ-VAE per modality) and ``vqvae.py`` (the single-codebook VQ-VAE ablation); they differ only in which
modalities each network sees and in their codebooks.

Where we differ from or fill in the paper:
- Defaults are sized for a laptop: 50 epochs, batch 256, lr 1e-3 (3MToken: 150 epochs, batch 512, lr 1e-4).
  The optimiser is AdamW with its default weight decay, as in 3MToken.
- The reconstruction term is the per-element MSE (as in TIGER/LETTER code); the quantizer terms sum over d_z
  and average over the batch.
- A last training batch of a single row joins the previous batch (BatchNorm needs two rows).
- ``collaborative`` is ignored: 3MToken's consumption modality (TC) is one of the feature matrices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raysid.config import ConfigError
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
from raysid.distributed import Session, epoch_state, resolve_training, resume, run_training, unwrap
from raysid.tokenizers.musicrec import resolve_device
from raysid.tokenizers.quantizers import ResidualQuantizer
from raysid.tokenizers.rqvae_config import RQVAEConfig

_EVAL_BATCH = 4096  # rows per forward pass in encode/decode


def _mlp(widths: list[int]) -> nn.Sequential:
    """Linear→BatchNorm1d→ReLU through ``widths``; the last Linear has no normalisation or activation."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(widths) - 2:
            layers.extend([nn.BatchNorm1d(fan_out), nn.ReLU()])
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    """One RQ-VAE: encoder x (batch, input_dim) -> z_e (batch, d_z), residual quantizer, mirrored decoder."""

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
        codebook_sizes: Sequence[int],
        commitment_weight: float,
    ):
        super().__init__()
        self.encoder = _mlp([input_dim, *hidden_dims, latent_dim])
        self.quantizer = ResidualQuantizer(len(codebook_sizes), tuple(codebook_sizes), latent_dim, commitment_weight)
        self.decoder = _mlp([latent_dim, *reversed(hidden_dims), input_dim])

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The training step's forward (what DDP wraps): ``losses``."""
        return self.losses(x)

    def losses(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Loss terms {"loss", "recon", "rq"} of a batch x (batch, input_dim), and its codes (batch, L)."""
        quantized = self.quantizer(self.encoder(x))
        recon = F.mse_loss(self.decoder(quantized.quantized), x)
        return {"loss": recon + quantized.loss, "recon": recon, "rq": quantized.loss}, quantized.codes

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Codes (batch, L) int64 of x (batch, input_dim)."""
        return self.quantizer(self.encoder(x)).codes

    def reconstruct(self, codes: torch.Tensor) -> torch.Tensor:
        """x̂ = g_φ(Σ_l e_{k_l}): codes (batch, L) -> (batch, input_dim)."""
        return self.decoder(self.quantizer.decode(codes))


def build_networks(config: Any, input_dims: Sequence[int]) -> nn.ModuleList:
    """One RQ-VAE per input width, weights drawn from ``config.seed`` without touching the global torch RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return nn.ModuleList(
            RQVAE(dim, config.hidden_dims, config.latent_dim, config.codebook_sizes, config.commitment_weight)
            for dim in input_dims
        )


def select_modalities(features: Mapping[str, np.ndarray], wanted: tuple[str, ...]) -> tuple[str, ...]:
    """``wanted`` in its order, or every modality of ``features`` in their order when ``wanted`` is empty.

    Raises ConfigError naming an unknown modality and the available ones.
    """
    unknown = [name for name in wanted if name not in features]
    if unknown:
        raise ConfigError(
            f"tokenizer.modalities: unknown modality {unknown[0]!r}; available modalities are: {', '.join(features)}"
        )
    return tuple(wanted) or tuple(features)


def _batches(order: torch.Tensor, batch_size: int, min_rows: int = 2) -> list[torch.Tensor]:
    """``order`` cut into batches; a last batch under ``min_rows`` rows joins the previous one (BatchNorm needs
    two rows per worker's shard)."""
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) < min_rows:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def _group_array(features: Mapping[str, np.ndarray], group: tuple[str, ...], rows: Any) -> np.ndarray:
    """Rows ``rows`` of the group's modalities, concatenated: (rows, Σ dims) float32."""
    return np.concatenate([np.asarray(features[name][rows], dtype=np.float32) for name in group], axis=1)


@dataclass
class RQVAETraining:
    """The RQ-VAE training loop for ``raysid.distributed.run_training``: one network per input group.

    Every worker draws the same global order and trains its shard of each batch (DDP averages the
    gradients; BatchNorm uses each shard's statistics, rank 0's running statistics are kept). The k-means
    initialisation sees the whole first batch on every worker; dead-code resets use usage summed over the
    workers; rank 0's codebooks are then copied to all.
    """

    config: Any  # RQVAEConfig or a subclass / VQVAEConfig
    inputs: list[np.ndarray]  # per group (train items, Σ dims) float32
    names: list[str]  # per-group metric prefixes when there are several groups, else []

    def __call__(self, session: Session) -> None:
        config = self.config
        xs = [torch.as_tensor(x, device=session.device) for x in self.inputs]
        networks = build_networks(config, [x.shape[1] for x in xs]).to(session.device)
        wrapped = [session.wrap(network) for network in networks]
        optimizers = [torch.optim.AdamW(network.parameters(), lr=config.learning_rate) for network in networks]
        generator = torch.Generator().manual_seed(config.seed)
        last = resume(session, networks, optimizers, generator)
        for epoch in range(0 if last is None else last + 1, config.epochs):
            order = torch.randperm(len(xs[0]), generator=generator).to(session.device)
            if epoch == 0:
                self._init_codebooks(networks, [x[order[: config.batch_size]] for x in xs])
                session.sync(networks)
            metrics = self._train_epoch(session, wrapped, xs, order, optimizers, generator)
            session.report(epoch, metrics, epoch_state(networks, optimizers, generator, epoch))

    @torch.no_grad()
    def _init_codebooks(self, networks: nn.ModuleList, first_batches: list[torch.Tensor]) -> None:
        """k-means on the first batch's latents (batch statistics, as in training), level by level."""
        for g, (network, x) in enumerate(zip(networks.train(), first_batches)):
            network.quantizer.init_kmeans(network.encoder(x), self.config.seed + 1000 * g)

    def _train_epoch(self, session: Session, wrapped: list[nn.Module], xs: list[torch.Tensor], order: torch.Tensor,
                     optimizers: list[torch.optim.Optimizer], generator: torch.Generator) -> dict[str, float]:
        """One pass of every network over the train rows in ``order``; the epoch's mean loss terms."""
        totals: dict[str, float] = {}  # summed over networks, plus "{group}/{term}" when there are several
        for g, (model, x, optimizer) in enumerate(zip(wrapped, xs, optimizers)):
            network = unwrap(model).train()
            quantizer = network.quantizer
            usage = torch.zeros((quantizer.num_levels, quantizer.codebook_size), dtype=torch.long)  # (L, K_max)
            for batch in _batches(order, self.config.batch_size, 2 * session.world_size):
                rows = session.shard(batch)
                with session.autocast():
                    terms, codes = model(x[rows])
                optimizer.zero_grad()
                terms["loss"].backward()
                optimizer.step()
                usage += quantizer.count_usage(codes.cpu())
                for name, value in terms.items():
                    weighted = float(value.detach()) * len(rows)
                    totals[name] = totals.get(name, 0.0) + weighted
                    if self.names:
                        key = f"{self.names[g]}/{name}"
                        totals[key] = totals.get(key, 0.0) + weighted
            if self.config.reset_dead_codes:
                _reset_dead_codes(network, x, session.all_reduce(usage), generator, self.config.batch_size)
                session.sync(network)
        return {f"tokenizer/{name}": total / len(order) for name, total in session.sums(totals).items()}


@torch.no_grad()
def _reset_dead_codes(network: RQVAE, x: torch.Tensor, usage: torch.Tensor, generator: torch.Generator,
                      batch_size: int) -> None:
    """Re-seed the network's codes unused this epoch to residuals of a random sample of train rows."""
    size = min(len(x), max(batch_size, network.quantizer.codebook_size))
    sample = torch.randperm(len(x), generator=generator)[:size].to(x.device)
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    network.quantizer.reset_dead_codes(network.encoder(x[sample]), usage, seed)


class RQVAETokenizer:
    """RQ-VAE over the concatenated modalities, behind the ``Tokenizer`` contract (``raysid.tokenizers.base``).

    Subclasses change ``config_class``, ``position_prefix`` and ``_groups`` (which modalities each network sees).
    """

    config_class: ClassVar[type] = RQVAEConfig
    position_prefix: ClassVar[str] = "rq"

    def __init__(self, config: Any):
        self.config = config
        self.modalities: tuple[str, ...] = ()  # set at fit
        self.input_dims: dict[str, int] = {}  # modality -> feature width, in ``modalities`` order
        self.networks: nn.ModuleList | None = None  # one RQVAE per group
        self.device = resolve_device(config.device)

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """K_l of each level."""
        return tuple(self.config.codebook_sizes)

    @property
    def position_names(self) -> tuple[str, ...]:
        """("rq1", …, "rq{L}")."""
        return tuple(f"{self.position_prefix}{level}" for level in range(1, len(self.config.codebook_sizes) + 1))

    def _groups(self) -> list[tuple[str, ...]]:
        """The modalities each network sees, concatenated: here one network over all of them."""
        return [self._fitted_modalities()]

    def _fitted_modalities(self) -> tuple[str, ...]:
        if not self.modalities:
            raise RuntimeError(f"{type(self).__name__}: modalities are known after fit or load")
        return self.modalities

    def fit(self, inputs: TokenizerInputs) -> RQVAETokenizer:
        """Train on the rows ``inputs.train_items`` with AdamW, in this process or on Ray Train workers as
        ``inputs.training`` says."""
        config, features = self.config, inputs.features
        if not features:
            raise ValueError("features: expected at least one modality, got none")
        selected = {name: features[name] for name in select_modalities(features, config.modalities)}
        check_fit_inputs(replace(inputs, features=selected))
        rows = np.asarray(inputs.train_items, dtype=np.int64)
        if len(rows) < 2:
            raise ValueError(f"train_items: BatchNorm needs at least 2 training rows, got {len(rows)}")
        self.modalities = tuple(selected)
        self.input_dims = {name: int(matrix.shape[1]) for name, matrix in selected.items()}
        groups = self._groups()
        arrays = [_group_array(selected, group, rows) for group in groups]  # per group (n, Σ dims)
        names = ["+".join(group) for group in groups] if len(groups) > 1 else []
        loop = RQVAETraining(config, arrays, names)
        training = resolve_training(inputs.training, config.device)
        state = run_training(loop, training, inputs.on_epoch, name=type(self).__name__)
        networks = build_networks(config, [x.shape[1] for x in arrays])
        networks.load_state_dict(state["model"])
        self.networks = networks.to(self.device)
        return self

    def _group_input(self, features: Mapping[str, np.ndarray], group: tuple[str, ...], rows: Any) -> torch.Tensor:
        """Rows ``rows`` of the group's modalities, concatenated: (rows, Σ dims) float32 on the device."""
        return torch.as_tensor(_group_array(features, group, rows), device=self.device)

    def _networks(self) -> nn.ModuleList:
        if self.networks is None:
            raise RuntimeError(f"{type(self).__name__}: call fit or load first")
        return self.networks

    @torch.no_grad()
    def encode(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Identifiers of all rows: (items, positions) int64, the groups' codes side by side.

        ``features`` may hold more modalities than were tokenized; those are ignored.
        """
        networks = self._networks().eval()
        selected = {name: features[name] for name in self.modalities if name in features}
        num_items = check_encode_inputs(selected, self.input_dims)
        codes = []
        for start in range(0, num_items, _EVAL_BATCH):
            rows = slice(start, start + _EVAL_BATCH)
            groups = zip(networks, self._groups())
            parts = [network.codes(self._group_input(selected, group, rows)) for network, group in groups]
            codes.append(torch.cat(parts, dim=1).cpu())
        if not codes:
            return np.zeros((0, len(self.codebook_sizes)), np.int64)
        return torch.cat(codes).numpy().astype(np.int64)

    @torch.no_grad()
    def quantized_latent(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """(items, groups·d_z) float32: each network's quantized encoding Σ_l e_{k_l}, groups side by side."""
        networks = self._networks().eval()
        selected = {name: features[name] for name in self.modalities if name in features}
        num_items = check_encode_inputs(selected, self.input_dims)
        latents = []
        for start in range(0, num_items, _EVAL_BATCH):
            rows = slice(start, start + _EVAL_BATCH)
            groups = zip(networks, self._groups())
            parts = [network.quantizer(network.encoder(self._group_input(selected, group, rows))).quantized
                     for network, group in groups]
            latents.append(torch.cat(parts, dim=1).cpu())
        return torch.cat(latents).numpy() if latents else np.zeros((0, len(networks) * self.config.latent_dim), np.float32)

    @torch.no_grad()
    def latent_from_codes(self, codes: np.ndarray) -> np.ndarray:
        """(items, groups·d_z) float32: each network's codewords summed over its levels, groups side by side."""
        networks = self._networks()
        codes = torch.as_tensor(self._check_codes(codes), dtype=torch.long, device=self.device)
        levels = len(self.config.codebook_sizes)
        parts = [network.quantizer.decode(codes[:, g * levels : (g + 1) * levels]) for g, network in enumerate(networks)]
        return torch.cat(parts, dim=1).cpu().numpy()

    def _check_codes(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)
        sizes = np.asarray(self.codebook_sizes)
        if codes.ndim != 2 or codes.shape[1] != len(sizes):
            raise ValueError(f"codes: expected shape (items, {len(sizes)}), got {codes.shape}")
        if codes.size and ((codes < 0).any() or (codes >= sizes[None, :]).any()):
            raise ValueError(f"codes: position p must lie in [0, codebook_sizes[p]), sizes {self.codebook_sizes}")
        return codes

    @torch.no_grad()
    def decode(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        """Reconstructions x̂_m (items, dim_m) float32 of every tokenized modality from identifiers."""
        networks = self._networks().eval()
        codes = self._check_codes(codes)
        levels = len(self.config.codebook_sizes)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.modalities}
        for start in range(0, len(codes), _EVAL_BATCH):
            batch = torch.as_tensor(codes[start : start + _EVAL_BATCH], dtype=torch.long, device=self.device)
            for g, (network, group) in enumerate(zip(networks, self._groups())):
                reconstruction = network.reconstruct(batch[:, g * levels : (g + 1) * levels])  # (batch, Σ dims)
                chunks = reconstruction.split([self.input_dims[name] for name in group], dim=1)
                for name, chunk in zip(group, chunks):
                    parts[name].append(chunk.cpu().numpy())
        return {
            name: np.concatenate(part) if part else np.zeros((0, self.input_dims[name]), np.float32)
            for name, part in parts.items()
        }

    def save(self, folder: Path) -> None:
        """Write ``tokenizer.json`` (config, modalities, input dims) and ``model.pt`` (state dict)."""
        meta = {"modalities": list(self.modalities), "input_dims": self.input_dims}
        save_weights(self._networks(), write_meta(folder, self.config, **meta))

    @classmethod
    def load(cls, folder: Path) -> RQVAETokenizer:
        """Rebuild a tokenizer written by ``save``."""
        config, meta = read_meta(folder, cls.config_class)
        tokenizer = cls(config)
        tokenizer.modalities, tokenizer.input_dims = saved_inputs(meta)
        group_dims = [sum(tokenizer.input_dims[name] for name in group) for group in tokenizer._groups()]
        networks = build_networks(config, group_dims).to(tokenizer.device)
        tokenizer.networks = load_weights(networks, folder, tokenizer.device)
        return tokenizer
