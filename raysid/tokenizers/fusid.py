"""FusID's modality-fused semantic IDs (fusid.txt §2): one fusion network, co-occurrence contrast, PQ.

The concatenated features [M_1; …; M_m] of an item pass through one projection head f_θ (Linear →
BatchNorm → ReLU → Linear to n·d → LayerNorm) giving the fused embedding E ∈ R^{n×d}, read as n
sub-embeddings e_1, …, e_n ∈ R^d. f_θ is trained on item pairs mined from playlist co-occurrence:
L_total = L_cont + α·(L_cov + L_var), where L_cont (eq. 1) pulls positive pairs together and pushes
negative pairs apart, L_cov (eq. 2) is the mean over the C(n, 2) block pairs i < j of ‖Cov(e_i, e_j)‖²_F / d,
and L_var (eq. 3) hinges each of the n·d dimensions' standard deviation to γ. Either part can be switched
off (``contrastive_loss`` / ``regularizer``; Table 1's ablation is ``regularizer: false``). Then product
quantization: per sub-embedding, faiss k-means with K centroids on the train items' e_i; an item's
identifier is the nearest centroid of each sub-embedding, positions ("p1", …, "pn").

Choices where the paper is silent or loose:
- Normalised co-occurrence: two train items co-occur when they sit at most ``window`` positions apart in
  a training playlist (5 by default; the paper gives no window). A pair's count c_ij (summed over all
  playlists and occurrences) is normalised as s_ij = c_ij / sqrt(f_i f_j), f_i the number of occurrences of
  item i in the training playlists (cosine normalisation; the paper only says "normalized co-occurrence").
  Positives: co-occurring pairs with s_ij at or above the ``positive_quantile`` of all co-occurring pairs'
  scores. Negatives: pairs that never co-occur, or whose s_ij is at or below the ``negative_quantile``.
- Eq. 1 reads MSE(|1 − y|, D): positives are pulled to distance 0 and negatives to distance 1. We default
  to the margin (hinge) form y·D² + (1 − y)·max(0, m − D)² of LeCun-style contrastive energy losses, which
  pushes only negatives closer than m; ``contrastive_form: mse`` gives the literal y·D² + (1 − y)·(m − D)²,
  which with m = 1 is eq. 1. The paper gives no m; 1 matches eq. 1's target. Averaged over the batch.
- Scale of D: the paper's Euclidean D sums squared differences over all n·d dimensions while L_var and
  L_cov are means, so at α = 0.2 the positives' pull outweighs L_var by a factor ~n·d. On the built-in
  synthetic catalog (2,000 tracks, n = 5, d = 128, hidden 2048, K = 64, 10 epochs) the fused embeddings
  shrink to a per-dimension std of ~0.03, L_cov becomes trivially ~0 and the regulariser changes nothing
  (conflict rate ~80% with or without it). ``distance: rms`` divides D by sqrt(n·d) (root-mean-square
  difference per dimension; the margin is in the same units): the std stays near γ and Table 1's ablation
  appears (~11% conflicts with the regulariser, ~93% without). raysid therefore defaults to ``rms``;
  ``distance: euclidean`` is the paper's D as written.
- Each epoch draws ``pairs_per_epoch`` pairs, half positive (uniform over the positive pairs, with
  replacement) and half negative (uniform over pairs of distinct train items, rejecting non-negatives).
- L_cov and L_var are computed over the fused embeddings of both sides of a batch's pairs (2·batch rows).
  Eq. 3 writes ε outside the square root; like VICReg we use sqrt(Var + ε), ε = 1e-4.
- LayerNorm normalises the whole n·d output ("projects … to an n × 128 output, followed by Layer
  Normalization"), and D is the Euclidean distance between the flattened n·d embeddings.
- With fewer train items than K, a sub-embedding's centroids are train points drawn with replacement
  plus small seeded noise (k-means needs at least K points).
- FusID does not reconstruct the input modalities: ``decode`` returns the product-quantized fused
  embedding (the concatenated centroids) under the key ``"fused"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from raysid.devices import resolve_device
from raysid.distributed import Session, resolve_training, run_training
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
from raysid.tokenizers.clustering import kmeans_centroids
from raysid.tokenizers.fusid_config import FusIDConfig

_EVAL_BATCH = 4096  # rows per forward pass in embed/encode
_EPSILON = 1e-4  # ε of eq. 3, inside the square root
_NEGATIVE_ROUNDS = 50  # rejection-sampling rounds when drawing negative pairs


# ---------------------------------------------------------------------------------------------------
# Pair mining from co-occurrence


@dataclass(frozen=True)
class CoOccurrence:
    """Counts of train-item pairs that co-occur within the window of a training playlist."""

    pairs: np.ndarray  # (pairs, 2) int64 item ids, first < second, sorted
    counts: np.ndarray  # (pairs,) int64 c_ij, summed over playlists and occurrences
    scores: np.ndarray  # (pairs,) float64 s_ij = c_ij / sqrt(f_i f_j)
    frequency: np.ndarray  # (num_items,) int64 f_i: occurrences in the playlists (0 for non-train items)


def cooccurrence(sequences: list[np.ndarray], train_items: np.ndarray, num_items: int, window: int) -> CoOccurrence:
    """Count pairs of distinct train items at most ``window`` positions apart in one of ``sequences``.

    Items outside ``train_items`` keep their positions (they still separate the items around them) but
    form no pairs and have frequency 0. Vectorised: one pass over the concatenated playlists per offset.
    """
    is_train = np.zeros(num_items, dtype=bool)
    is_train[np.asarray(train_items, dtype=np.int64)] = True
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences] or [np.zeros(0, np.int64)])
    if flat.size and (flat.min() < 0 or flat.max() >= num_items):
        raise ValueError(f"sequences: item ids must lie in [0, {num_items}), got [{flat.min()}, {flat.max()}]")
    playlist = np.repeat(np.arange(len(lengths)), lengths)  # (positions,)
    keys, counts = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for offset in range(1, window + 1):
        first, second = flat[:-offset], flat[offset:]
        keep = (playlist[:-offset] == playlist[offset:]) & is_train[first] & is_train[second] & (first != second)
        low, high = np.minimum(first[keep], second[keep]), np.maximum(first[keep], second[keep])
        offset_keys, offset_counts = np.unique(low * num_items + high, return_counts=True)
        keys.append(offset_keys)
        counts.append(offset_counts)
    unique_keys, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    pair_counts = np.bincount(inverse, weights=np.concatenate(counts), minlength=len(unique_keys)).astype(np.int64)
    frequency = np.bincount(flat[is_train[flat]], minlength=num_items).astype(np.int64)
    pairs = np.stack([unique_keys // num_items, unique_keys % num_items], axis=1)  # (pairs, 2)
    scores = pair_counts / np.sqrt(frequency[pairs[:, 0]] * frequency[pairs[:, 1]]).clip(min=1)
    return CoOccurrence(pairs, pair_counts, scores.astype(np.float64), frequency)


class PairSampler:
    """Positive pairs (high normalised co-occurrence) and negative pairs (low or none), in item ids."""

    def __init__(self, cooc: CoOccurrence, train_items: np.ndarray, positive_quantile: float, negative_quantile: float):
        if not len(cooc.scores):
            raise ValueError("FusID: no two train items co-occur within the window of a training sequence")
        high = np.quantile(cooc.scores, positive_quantile)
        low = np.quantile(cooc.scores, negative_quantile)
        self.positives = cooc.pairs[cooc.scores >= high]  # (positives, 2)
        not_negative = (cooc.scores > low) | (cooc.scores >= high)
        self.num_items = int(cooc.frequency.shape[0])
        self._blocked = np.sort(cooc.pairs[not_negative, 0] * self.num_items + cooc.pairs[not_negative, 1])
        self.train_items = np.unique(np.asarray(train_items, dtype=np.int64))

    def negatives(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` negative pairs (count, 2): distinct train items whose pair is not blocked."""
        if count == 0:
            return np.zeros((0, 2), np.int64)
        found, total = [], 0
        for _ in range(_NEGATIVE_ROUNDS):
            candidates = self.train_items[rng.integers(len(self.train_items), size=(2 * count, 2))]
            low, high = candidates.min(axis=1), candidates.max(axis=1)
            keys = low * self.num_items + high
            slot = np.searchsorted(self._blocked, keys).clip(max=max(len(self._blocked) - 1, 0))
            blocked = self._blocked[slot] == keys if len(self._blocked) else np.zeros(len(keys), bool)
            accepted = candidates[(low != high) & ~blocked]
            found.append(accepted)
            total += len(accepted)
            if total >= count:
                break
        pool = np.concatenate(found)
        if not len(pool):
            raise ValueError("FusID: no negative pairs; every pair of train items co-occurs with a high score")
        if len(pool) < count:  # very dense co-occurrence: reuse the negatives found
            pool = pool[rng.integers(len(pool), size=count)]
        return pool[:count]

    def sample(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        """``count`` shuffled pairs (count, 2), ceil(count/2) positive, and labels y (count,) float32."""
        num_positive = (count + 1) // 2
        positives = self.positives[rng.integers(len(self.positives), size=num_positive)]
        pairs = np.concatenate([positives, self.negatives(rng, count - num_positive)])
        labels = np.concatenate([np.ones(num_positive, np.float32), np.zeros(count - num_positive, np.float32)])
        order = rng.permutation(count)
        return pairs[order], labels[order]


# ---------------------------------------------------------------------------------------------------
# Network and losses


class FusionNetwork(nn.Module):
    """The projection head f_θ of §3 and the product-quantization centroids fitted after training."""

    def __init__(self, config: FusIDConfig, input_dim: int):
        super().__init__()
        n, d = config.num_subembeddings, config.subembedding_dim
        self.num_subembeddings, self.subembedding_dim = n, d
        self.head = nn.Sequential(
            nn.Linear(input_dim, config.hidden_dim),
            nn.BatchNorm1d(config.hidden_dim),
            nn.ReLU(),
            nn.Linear(config.hidden_dim, n * d),
            nn.LayerNorm(n * d),
        )
        self.register_buffer("centroids", torch.zeros(n, config.codebook_size, d))  # (n, K, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fused embedding E, flattened: x (batch, Σ dim_m) -> (batch, n*d), e_i = columns [i*d, (i+1)*d)."""
        return self.head(x)

    def nearest(self, fused: torch.Tensor) -> torch.Tensor:
        """Codes (batch, n) int64: the nearest centroid of each sub-embedding of fused (batch, n*d)."""
        subs = fused.view(len(fused), self.num_subembeddings, self.subembedding_dim).transpose(0, 1)  # (n, batch, d)
        distances = torch.cdist(subs, self.centroids)  # (n, batch, K)
        return distances.argmin(dim=2).T.contiguous()

    def reconstruct(self, codes: torch.Tensor) -> torch.Tensor:
        """Quantized fused embedding (batch, n*d): the centroid of each code, concatenated."""
        chosen = [self.centroids[i][codes[:, i]] for i in range(self.num_subembeddings)]  # n × (batch, d)
        return torch.cat(chosen, dim=1)


def build_network(config: FusIDConfig, input_dim: int) -> FusionNetwork:
    """The network with weights drawn from ``config.seed`` without touching the global torch RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return FusionNetwork(config, input_dim)


def contrastive_loss(
    first: torch.Tensor,
    second: torch.Tensor,
    labels: torch.Tensor,
    margin: float,
    form: str = "margin",
    distance: str = "euclidean",
) -> torch.Tensor:
    """Mean over pairs of y·D² + (1 − y)·max(0, m − D)² ("margin") or y·D² + (1 − y)·(m − D)² ("mse");
    first, second (batch, n*d), labels y (batch,) with 1 = positive, D the Euclidean distance ("euclidean")
    or the Euclidean distance divided by sqrt(n*d) ("rms")."""
    squared = (first - second).pow(2).sum(dim=1)  # (batch,) D²
    if distance == "rms":
        squared = squared / first.shape[1]
    gap = margin - squared.clamp_min(1e-12).sqrt()  # (batch,) m − D
    negative = gap.clamp_min(0) if form == "margin" else gap
    return (labels * squared + (1 - labels) * negative.pow(2)).mean()


def covariance_loss(fused: torch.Tensor, num_subembeddings: int) -> torch.Tensor:
    """Eq. 2: mean over sub-embedding pairs i < j of ‖Cov(e_i, e_j)‖²_F / d, fused (batch, n*d)."""
    batch, width = fused.shape
    n, d = num_subembeddings, width // num_subembeddings
    if n < 2 or batch < 2:
        return fused.new_zeros(())
    centred = fused - fused.mean(dim=0)
    covariance = centred.T @ centred / (batch - 1)  # (n*d, n*d)
    blocks = covariance.view(n, d, n, d).pow(2).sum(dim=(1, 3)) / d  # (n, n) ‖Cov(e_i, e_j)‖²_F / d
    i, j = torch.triu_indices(n, n, offset=1, device=fused.device)
    return blocks[i, j].mean()


def variance_loss(fused: torch.Tensor, gamma: float) -> torch.Tensor:
    """Eq. 3: mean over the n·d dimensions of max(0, γ − sqrt(Var + ε)), fused (batch, n*d)."""
    if len(fused) < 2:
        return fused.new_zeros(())
    return (gamma - (fused.var(dim=0) + _EPSILON).sqrt()).clamp_min(0).mean()


@dataclass
class FusIDTraining:
    """The training loop of f_θ for ``raysid.distributed.run_training`` (one process or DDP workers).

    Every worker draws the same pairs from the seeded generator and trains its shard of each batch of pairs;
    L_cov and L_var are computed over each worker's shard.
    """

    config: FusIDConfig
    features: np.ndarray  # (train items, Σ dim_m) float32
    sampler: PairSampler | None  # None: regulariser only, any pairs of train rows
    position: np.ndarray  # item id -> row of ``features`` (-1 for items outside training)

    def __call__(self, session: Session) -> None:
        config = self.config
        x = torch.as_tensor(self.features, device=session.device)
        network = build_network(config, x.shape[1]).to(session.device)
        model = session.wrap(network)
        optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
        rng = np.random.default_rng(config.seed)
        start = 0
        restored = session.restore()
        if restored is not None:
            network.load_state_dict(restored["model"])
            optimizer.load_state_dict(restored["optimizers"][0])
            rng.bit_generator.state = restored["rng"]
            start = restored["epoch"] + 1
        for epoch in range(start, config.epochs):
            pairs, labels = self._pairs(rng)
            metrics = self._train_epoch(session, model, x, pairs, labels, optimizer)
            state = {"model": network.state_dict(), "optimizers": [optimizer.state_dict()],
                     "rng": rng.bit_generator.state, "epoch": epoch}
            session.report(epoch, metrics, state)

    def _pairs(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        """This epoch's (pairs_per_epoch, 2) rows of ``features`` and their labels (None without the loss)."""
        if self.sampler is None:
            return rng.integers(len(self.features), size=(self.config.pairs_per_epoch, 2)), None
        item_pairs, labels = self.sampler.sample(rng, self.config.pairs_per_epoch)
        return self.position[item_pairs], labels

    def _train_epoch(self, session: Session, model: nn.Module, x: torch.Tensor, pairs: np.ndarray,
                     labels: np.ndarray | None, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        """One pass over ``pairs`` (count, 2) in batches; returns the epoch's mean loss terms over all workers."""
        model.train()
        pairs_t = torch.as_tensor(pairs, dtype=torch.long, device=session.device)
        labels_t = None if labels is None else torch.as_tensor(labels, device=session.device)
        totals: dict[str, float] = {}
        for start in range(0, len(pairs_t), self.config.batch_size):
            batch = session.shard(torch.arange(start, min(start + self.config.batch_size, len(pairs_t))))
            with session.autocast():
                terms = fusid_losses(model, self.config, x, pairs_t[batch], None if labels_t is None else labels_t[batch])
            optimizer.zero_grad()
            terms["loss"].backward()
            optimizer.step()
            for name, value in terms.items():
                totals[name] = totals.get(name, 0.0) + float(value.detach()) * len(batch)
        return {f"tokenizer/{name}": total / len(pairs_t) for name, total in session.sums(totals).items()}


def fusid_losses(model: nn.Module, config: FusIDConfig, x: torch.Tensor, pairs: torch.Tensor,
                 labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Loss terms of one batch: pairs (batch, 2) rows of x (train, Σ dim_m), labels (batch,) or None."""
    fused = model(x[torch.cat([pairs[:, 0], pairs[:, 1]])]).float()  # (2*batch, n*d)
    first, second = fused.split(len(pairs))
    terms = {
        "contrastive": fused.new_zeros(()),
        "covariance": covariance_loss(fused, config.num_subembeddings),
        "variance": variance_loss(fused, config.gamma),
    }
    if labels is not None:
        form, distance = config.contrastive_form, config.distance
        terms["contrastive"] = contrastive_loss(first, second, labels, config.margin, form, distance)
    loss = terms["contrastive"] if config.contrastive_loss else fused.new_zeros(())
    if config.regularizer:
        loss = loss + config.alpha * (terms["covariance"] + terms["variance"])
    return {"loss": loss, **terms}


class FusIDTokenizer:
    """FusID behind the ``Tokenizer`` contract (see ``raysid.tokenizers.base``); ``fit`` also needs sequences."""

    def __init__(self, config: FusIDConfig):
        self.config = config
        self.modalities: tuple[str, ...] = ()  # set at fit: config.modalities, or all features in order
        self.input_dims: dict[str, int] = {}
        self.network: FusionNetwork | None = None
        self.device = resolve_device(config.device)

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """K for each of the n positions."""
        return (self.config.codebook_size,) * self.config.num_subembeddings

    @property
    def position_names(self) -> tuple[str, ...]:
        """("p1", …, "pn"): one position per sub-embedding."""
        return tuple(f"p{i}" for i in range(1, self.config.num_subembeddings + 1))

    def fit(self, inputs: TokenizerInputs) -> FusIDTokenizer:
        """Train f_θ on pairs of ``inputs.train_items`` mined from ``inputs.sequences`` (training playlists of
        item ids), then fit the PQ codebooks on the train items (FusID's playlist modality, if any, is one of
        the features). ``sequences`` may be None only without the contrastive loss. f_θ trains in this process
        or on Ray Train workers as ``inputs.training`` says; the PQ k-means runs here.
        """
        num_items = check_fit_inputs(inputs)
        features, train_items, sequences = inputs.features, inputs.train_items, inputs.sequences
        config = self.config
        if config.contrastive_loss and sequences is None:
            raise ValueError("FusID mines contrastive pairs from co-occurrence and needs the training sequences")
        selected = self._select(features)
        self.input_dims = {name: int(matrix.shape[1]) for name, matrix in selected.items()}
        rows = np.unique(np.asarray(train_items, dtype=np.int64))  # (train,)
        x = np.concatenate([selected[name][rows] for name in self.modalities], axis=1).astype(np.float32)
        sampler = None
        if config.contrastive_loss:
            cooc = cooccurrence(sequences, rows, num_items, config.window)
            sampler = PairSampler(cooc, rows, config.positive_quantile, config.negative_quantile)
        position = np.full(num_items, -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))  # item id -> row of x
        loop = FusIDTraining(config, x, sampler, position)
        state = run_training(loop, resolve_training(inputs.training, config.device), inputs.on_epoch, name="fusid")
        network = build_network(config, x.shape[1])
        network.load_state_dict(state["model"])
        self.network = network.to(self.device)
        self._fit_codebooks(self._tensor(x))
        return self

    def _select(self, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The configured modalities of ``features`` (all when none configured); sets ``self.modalities``."""
        missing = [name for name in self.config.modalities if name not in features]
        if missing:
            raise ValueError(f"features: missing configured modalities {missing}; got {sorted(features)}")
        self.modalities = self.config.modalities or tuple(features)
        return {name: features[name] for name in self.modalities}

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array, dtype=np.float32), device=self.device)

    @torch.no_grad()
    def _fit_codebooks(self, x: torch.Tensor) -> None:
        """Product quantization: k-means with K centroids on each sub-embedding of the train rows' E."""
        network, config = self._network(), self.config
        fused = self._embed_rows(x)  # (train, n*d)
        d = config.subembedding_dim
        for i in range(config.num_subembeddings):
            centroids = kmeans_centroids(fused[:, i * d : (i + 1) * d], config.codebook_size, config.niter, config.seed + i)
            network.centroids[i] = torch.from_numpy(centroids).to(network.centroids)

    @torch.no_grad()
    def _embed_rows(self, x: torch.Tensor) -> np.ndarray:
        """Fused embeddings (rows, n*d) float32 of an input tensor (rows, Σ dim_m), in eval mode."""
        network = self._network().eval()
        parts = [network(x[start : start + _EVAL_BATCH]).cpu().numpy() for start in range(0, len(x), _EVAL_BATCH)]
        width = self.config.num_subembeddings * self.config.subembedding_dim
        return np.concatenate(parts) if parts else np.zeros((0, width), np.float32)

    def _network(self) -> FusionNetwork:
        if self.network is None:
            raise RuntimeError("FusIDTokenizer: call fit or load first")
        return self.network

    def embed(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Continuous fused embeddings E of all rows, flattened: (items, n*d) float32."""
        self._network()
        if self.config.modalities:  # fused a chosen subset: other modalities may be passed and are ignored
            missing = [name for name in self.modalities if name not in features]
            if missing:
                raise ValueError(f"features: missing modalities {missing} that were fused at fit")
            features = {name: features[name] for name in self.modalities}
        check_encode_inputs(features, self.input_dims)
        x = np.concatenate([features[name] for name in self.modalities], axis=1)  # (items, Σ dim_m)
        return self._embed_rows(self._tensor(x))

    @torch.no_grad()
    def encode(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Identifiers of all rows: (items, n) int64, the nearest centroid of each sub-embedding."""
        network = self._network().eval()
        fused = torch.as_tensor(self.embed(features), device=self.device)  # (items, n*d)
        starts = range(0, len(fused), _EVAL_BATCH)
        codes = [network.nearest(fused[start : start + _EVAL_BATCH]).cpu() for start in starts]
        if not codes:
            return np.zeros((0, self.config.num_subembeddings), np.int64)
        return torch.cat(codes).numpy().astype(np.int64)

    @torch.no_grad()
    def decode(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        """{"fused": (items, n*d) float32}, the product-quantized fused embedding of each identifier.

        FusID has no decoder back to the input modalities, so no per-modality reconstruction exists.
        """
        return {"fused": self.latent_from_codes(codes)}

    @torch.no_grad()
    def quantized_latent(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """(items, n*d) float32: each sub-embedding of E replaced by its nearest centroid."""
        network = self._network().eval()
        fused = torch.as_tensor(self.embed(dict(features)), device=self.device)  # (items, n*d)
        return network.reconstruct(network.nearest(fused)).cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def latent_from_codes(self, codes: np.ndarray) -> np.ndarray:
        """(items, n*d) float32: the centroid of each code, concatenated."""
        network = self._network()
        codes = np.asarray(codes)
        n, size = self.config.num_subembeddings, self.config.codebook_size
        if codes.ndim != 2 or codes.shape[1] != n:
            raise ValueError(f"codes: expected shape (items, {n}), got {codes.shape}")
        if codes.size and (codes.min() < 0 or codes.max() >= size):
            raise ValueError(f"codes: values must lie in [0, {size})")
        codes_t = torch.as_tensor(codes, dtype=torch.long, device=self.device)
        return network.reconstruct(codes_t).cpu().numpy().astype(np.float32)

    def save(self, folder: Path) -> None:
        """Write ``tokenizer.json`` (config, modalities, input dims) and ``model.pt`` (weights and centroids)."""
        meta = {"modalities": list(self.modalities), "input_dims": self.input_dims}
        save_weights(self._network(), write_meta(folder, self.config, **meta))

    @classmethod
    def load(cls, folder: Path) -> FusIDTokenizer:
        """Rebuild a tokenizer written by ``save``."""
        config, meta = read_meta(folder, FusIDConfig)
        tokenizer = cls(config)
        tokenizer.modalities, tokenizer.input_dims = saved_inputs(meta)
        network = build_network(config, sum(tokenizer.input_dims.values())).to(tokenizer.device)
        tokenizer.network = load_weights(network, folder, tokenizer.device).eval()
        return tokenizer
