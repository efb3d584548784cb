"""SASRec (Kang & McAuley 2018): a causal self-attention encoder over item-id sequences.

Items are embedded (id + 1; row 0 is padding), summed with a learned position embedding, passed through
pre-norm causal Transformer blocks and a final layer norm. The score of item j after position t is the
dot product of the hidden state at t with item j's input embedding (shared input/output embeddings).
Training is next-item cross-entropy over the full catalogue at every position. MusicRec takes the learned
32-d item embeddings as its collaborative (CF) signal; see ``raysid.features.collaborative``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raysid.config import require
from raysid.data.dataset import EvalSet
from raysid.recommenders.base import OnEpoch, resolve_device, seed_everything, validate_histories

PAD = 0  # padding index of the internal item embedding; item id i is stored at row i + 1
IGNORE = -100  # target value of padded positions, skipped by the loss


@dataclass(frozen=True)
class SASRecConfig:
    """SASRec hyperparameters; config section ``collaborative``."""

    hidden_size: int = 32  # d: item/position embedding and hidden size (MusicRec's d_cf = 32)
    num_layers: int = 2  # number of self-attention blocks
    num_heads: int = 2  # attention heads per block; must divide hidden_size
    max_length: int = 50  # n: sequences are truncated to their last max_length items
    dropout: float = 0.2  # dropout on embeddings, attention and feed-forward outputs
    epochs: int = 20  # passes over the training sequences
    batch_size: int = 128  # sequences per optimisation step (and per recommend batch)
    learning_rate: float = 1e-3  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 autocast is used only on CUDA
    seed: int = 0  # seeds initialisation, dropout and batch order

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "max_length", "epochs", "batch_size"):
            require(getattr(self, name) > 0, f"collaborative.{name}", f"must be positive, got {getattr(self, name)}")
        require(
            self.hidden_size % self.num_heads == 0,
            "collaborative.hidden_size",
            f"{self.hidden_size} is not divisible by num_heads={self.num_heads}",
        )
        require(0.0 <= self.dropout < 1.0, "collaborative.dropout", f"must be in [0, 1), got {self.dropout}")
        require(self.learning_rate > 0, "collaborative.learning_rate", f"must be positive, got {self.learning_rate}")
        require(self.weight_decay >= 0, "collaborative.weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(
            self.precision in ("fp32", "bf16"),
            "collaborative.precision",
            f"got {self.precision!r}; valid choices are: 'fp32', 'bf16'",
        )


class SASRecModel(nn.Module):
    """Embeddings, causal pre-norm Transformer blocks and a final layer norm."""

    def __init__(self, config: SASRecConfig, num_items: int) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.item_embedding = nn.Embedding(num_items + 1, config.hidden_size, padding_idx=PAD)
        self.position_embedding = nn.Embedding(config.max_length, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)
        block = nn.TransformerEncoderLayer(
            d_model=config.hidden_size,
            nhead=config.num_heads,
            dim_feedforward=config.hidden_size,  # SASRec's point-wise feed-forward keeps width d
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(
            block, config.num_layers, norm=nn.LayerNorm(config.hidden_size), enable_nested_tensor=False
        )
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)
        with torch.no_grad():
            self.item_embedding.weight[PAD].zero_()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """(batch, seq) left-padded internal ids -> (batch, seq, hidden) hidden states."""
        positions = torch.arange(inputs.shape[1], device=inputs.device)  # (seq,)
        x = self.item_embedding(inputs) + self.position_embedding(positions)  # (batch, seq, hidden)
        x = self.dropout(x) * (inputs != PAD).unsqueeze(-1)  # padded positions stay zero
        return self.blocks(x, mask=self.attention_mask(inputs))

    def attention_mask(self, inputs: torch.Tensor) -> torch.Tensor:
        """(batch * heads, seq, seq) bool, True = blocked: future positions and padded keys.

        Every position may attend to itself, so rows of padded positions never become all -inf (NaN).
        """
        seq = inputs.shape[1]
        future = torch.ones(seq, seq, dtype=torch.bool, device=inputs.device).triu(1)  # (seq, seq)
        padded_keys = (inputs == PAD).unsqueeze(1)  # (batch, 1, seq)
        itself = torch.eye(seq, dtype=torch.bool, device=inputs.device)  # (seq, seq)
        blocked = (future | padded_keys) & ~itself  # (batch, seq, seq)
        return blocked.repeat_interleave(self.num_heads, dim=0)

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., hidden) -> (..., num_items) dot products with every item's embedding."""
        return hidden @ self.item_embedding.weight[1:].T


def left_pad(sequences: list[np.ndarray], length: int, pad: int) -> torch.Tensor:
    """(len(sequences), length) int64: the last ``length`` values of each sequence, left-padded."""
    out = np.full((len(sequences), length), pad, dtype=np.int64)
    for row, values in enumerate(sequences):
        values = np.asarray(values, dtype=np.int64)[-length:]
        if len(values):
            out[row, length - len(values) :] = values
    return torch.from_numpy(out)


def training_pairs(sequences: list[np.ndarray], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (internal ids) and next-item targets, each (sequences, max_length), from the last
    max_length + 1 items of every sequence of two or more items."""
    windows = [np.asarray(s, dtype=np.int64)[-(max_length + 1) :] for s in sequences if len(s) >= 2]
    inputs = left_pad([w[:-1] + 1 for w in windows], max_length, PAD)
    targets = left_pad([w[1:] for w in windows], max_length, IGNORE)
    return inputs, targets


class SASRec:
    """SASRec behind the ``Recommender`` contract; ``item_embeddings()`` gives the CF embeddings."""

    name = "sasrec"

    def __init__(self, config: SASRecConfig, num_items: int) -> None:
        require(num_items > 0, "num_items", f"must be positive, got {num_items}")
        self.config = config
        self.num_items = num_items
        self.device = resolve_device(config.device)
        seed_everything(config.seed)
        self.model = SASRecModel(config, num_items).to(self.device)

    def fit(
        self,
        train_sequences: list[np.ndarray],
        valid: EvalSet | None = None,
        on_epoch: OnEpoch | None = None,
    ) -> SASRec:
        """Train from the current weights; sequences shorter than two items carry no pair and are skipped."""
        sequences = [s for s in train_sequences if len(s) >= 2]
        if not sequences:
            raise ValueError("SASRec needs at least one training sequence of two or more items")
        validate_histories(sequences, self.num_items)
        if valid is not None:
            self._validate_eval_set(valid)
        seed_everything(self.config.seed)
        inputs, targets = training_pairs(sequences, self.config.max_length)
        optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=self.config.learning_rate, weight_decay=self.config.weight_decay
        )
        generator = torch.Generator().manual_seed(self.config.seed)
        for epoch in range(1, self.config.epochs + 1):
            metrics = {"train/loss": self._train_epoch(inputs, targets, optimizer, generator)}
            if valid is not None:
                metrics["valid/loss"] = self.valid_loss(valid)
            if on_epoch is not None:
                on_epoch(epoch, metrics)
        self.model.eval()
        return self

    def _train_epoch(
        self, inputs: torch.Tensor, targets: torch.Tensor, optimizer: torch.optim.Optimizer, generator: torch.Generator
    ) -> float:
        """One shuffled pass; returns the mean cross-entropy per predicted position."""
        self.model.train()
        order = torch.randperm(len(inputs), generator=generator)
        total, count = 0.0, 0
        for start in range(0, len(order), self.config.batch_size):
            batch = order[start : start + self.config.batch_size]
            x, y = inputs[batch].to(self.device), targets[batch].to(self.device)  # (batch, seq)
            with self._autocast():
                hidden = self.model(x)  # (batch, seq, hidden)
                real = y != IGNORE  # (batch, seq)
                logits = self.model.scores(hidden[real])  # (positions, num_items)
                loss = F.cross_entropy(logits.float(), y[real])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            positions = int(real.sum())
            total, count = total + loss.item() * positions, count + positions
        return total / count

    @torch.no_grad()
    def valid_loss(self, valid: EvalSet) -> float:
        """Mean cross-entropy of each held-out target given its history (last position only)."""
        self.model.eval()
        total = 0.0
        targets = torch.as_tensor(np.asarray(valid.targets, dtype=np.int64))
        for start, scores in self._last_scores(valid.histories):
            batch_targets = targets[start : start + len(scores)].to(self.device)
            total += F.cross_entropy(scores, batch_targets, reduction="sum").item()
        return total / len(valid)

    @torch.no_grad()
    def recommend(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        """(users, k) int64 item ids ranked by full-catalogue score, best first; -1 beyond the catalogue."""
        require(k > 0, "k", f"must be positive, got {k}")
        validate_histories(histories, self.num_items)
        self.model.eval()
        ranked = np.full((len(histories), k), -1, dtype=np.int64)
        top = min(k, self.num_items)
        for start, scores in self._last_scores(histories):
            ranked[start : start + len(scores), :top] = scores.topk(top, dim=-1).indices.cpu().numpy()
        return ranked

    def _last_scores(self, histories: list[np.ndarray]):
        """Yield (first user index, (batch, num_items) fp32 scores after each history's last item)."""
        for start in range(0, len(histories), self.config.batch_size):
            chunk = [np.asarray(h, dtype=np.int64) + 1 for h in histories[start : start + self.config.batch_size]]
            inputs = left_pad(chunk, self.config.max_length, PAD).to(self.device)  # (batch, seq)
            with self._autocast():
                hidden = self.model(inputs)[:, -1]  # (batch, hidden)
                scores = self.model.scores(hidden)  # (batch, num_items)
            yield start, scores.float()

    def _validate_eval_set(self, valid: EvalSet) -> None:
        validate_histories(valid.histories, self.num_items)
        targets = np.asarray(valid.targets)
        if len(targets) != len(valid.histories) or ((targets < 0) | (targets >= self.num_items)).any():
            raise ValueError(f"valid targets must be one id in [0, {self.num_items}) per history")

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA when precision is "bf16"; a no-op otherwise."""
        enabled = self.config.precision == "bf16" and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def item_embeddings(self) -> np.ndarray:
        """(num_items, hidden_size) float32 learned item embeddings in item-id order."""
        return self.model.item_embedding.weight[1:].detach().float().cpu().numpy().copy()

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def save(self, path: str | Path) -> None:
        """Write config, catalogue size and weights to one file readable with ``weights_only=True``."""
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        payload = {"config": dataclasses.asdict(self.config), "num_items": self.num_items, "state_dict": state}
        torch.save(payload, Path(path))

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> SASRec:
        """Rebuild a saved SASRec; ``device`` overrides the saved config's device when given."""
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        config = SASRecConfig(**payload["config"])
        if device is not None:
            config = dataclasses.replace(config, device=device)
        recommender = cls(config, payload["num_items"])
        recommender.model.load_state_dict(payload["state_dict"])
        recommender.model.eval()
        return recommender
