"""Co-occurrence modality: word2vec-style item embeddings from training sequences (FusID's playlist modality).

Each track is a "word" and each training playlist a "document" (FusID §3, after TalkPlay): skip-gram with
negative sampling (Mikolov et al. 2013). Every (center, context) pair within ``window`` positions of each
other is a positive; ``negatives`` items drawn from the unigram distribution raised to 0.75 are negatives;
the loss is -log σ(u_c·v_o) - Σ_n log σ(-u_c·v_n). Frequent items are subsampled per epoch with word2vec's
keep probability (√(t/f) + t/f). The item embedding is the center ("input") table, 128-d as in FusID.

The loop runs through ``raysid.distributed.run_training``: every worker draws the same seeded pair order
and negatives and trains its shard of each global batch (DDP averages the gradients).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raysid.distributed import (
    Session,
    TrainingConfig,
    epoch_state,
    resolve_training,
    resume,
    run_training,
    unwrap,
)
from raysid.features.cooccurrence_config import CooccurrenceConfig


class SkipGram(nn.Module):
    """Center and context tables; the center table is the item embedding."""

    def __init__(self, num_items: int, dim: int, generator: torch.Generator) -> None:
        super().__init__()
        self.center = nn.Embedding(num_items, dim)
        self.context = nn.Embedding(num_items, dim)
        with torch.no_grad():  # word2vec's initialisation: small uniform centers, zero contexts
            self.center.weight.uniform_(-0.5 / dim, 0.5 / dim, generator=generator)
            self.context.weight.zero_()

    def forward(self, center: torch.Tensor, context: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        """(batch,), (batch,), (batch, negatives) item ids -> mean negative-sampling loss."""
        u = self.center(center)  # (batch, dim)
        positive = (u * self.context(context)).sum(-1)  # (batch,)
        negative = torch.einsum("bd,bkd->bk", u, self.context(negative))  # (batch, negatives)
        return -(F.logsigmoid(positive) + F.logsigmoid(-negative).sum(-1)).mean()


def skipgram_pairs(sequences: list[np.ndarray], window: int) -> np.ndarray:
    """(pairs, 2) int64 (center, context) for every two positions at most ``window`` apart, both directions."""
    pairs = []
    for sequence in sequences:
        sequence = np.asarray(sequence, dtype=np.int64)
        for offset in range(1, min(window, len(sequence) - 1) + 1):
            left, right = sequence[:-offset], sequence[offset:]
            pairs.append(np.stack([left, right], axis=1))
            pairs.append(np.stack([right, left], axis=1))
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)


@dataclass
class SkipGramTraining:
    """The SGNS loop for ``run_training``; its state holds the center table as ``embeddings``."""

    config: CooccurrenceConfig
    pairs: np.ndarray  # (pairs, 2) int64
    counts: np.ndarray  # (num_items,) occurrences in the training sequences

    def __call__(self, session: Session) -> None:
        config = self.config
        generator = torch.Generator().manual_seed(config.seed)
        model = SkipGram(len(self.counts), config.dim, generator)
        wrapped = session.wrap(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        last = resume(session, model, [optimizer], generator)
        pairs = torch.as_tensor(self.pairs)
        keep = torch.as_tensor(_keep_probability(self.counts, config.subsample))  # (num_items,)
        noise = torch.as_tensor(_noise_distribution(self.counts))  # (num_items,)
        for epoch in range(0 if last is None else last + 1, config.epochs):
            kept = pairs[torch.rand(len(pairs), generator=generator) < keep[pairs[:, 0]]]
            order = kept[torch.randperm(len(kept), generator=generator)]
            totals = {"loss": 0.0, "pairs": 0.0}
            for start in range(0, len(order), config.batch_size):
                batch = order[start:start + config.batch_size]
                negatives = torch.multinomial(noise, len(batch) * config.negatives, replacement=True, generator=generator)
                rows = session.shard(torch.arange(len(batch)))
                with session.autocast():
                    loss = wrapped(batch[rows, 0].to(session.device), batch[rows, 1].to(session.device),
                                   negatives.view(len(batch), -1)[rows].to(session.device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                totals["loss"] += float(loss.detach()) * len(rows)
                totals["pairs"] += float(len(rows))
            summed = session.sums(totals)
            metrics = {"cooccurrence/loss": summed["loss"] / max(summed["pairs"], 1.0), "cooccurrence/pairs": summed["pairs"]}
            state = epoch_state(model, [optimizer], generator, epoch,
                                embeddings=unwrap(model).center.weight.detach().cpu().clone())
            session.report(epoch, metrics, state)


def _keep_probability(counts: np.ndarray, threshold: float) -> np.ndarray:
    """word2vec's subsampling: keep an occurrence of an item with frequency f with p = √(t/f) + t/f (≤ 1)."""
    if threshold <= 0:
        return np.ones(len(counts), dtype=np.float32)
    frequency = counts / max(counts.sum(), 1)
    ratio = np.divide(threshold, frequency, out=np.full(len(counts), np.inf), where=frequency > 0)
    return np.minimum(1.0, np.sqrt(ratio) + ratio).astype(np.float32)


def _noise_distribution(counts: np.ndarray) -> np.ndarray:
    """Unigram^0.75 over items (items never seen are never drawn)."""
    weights = counts.astype(np.float64) ** 0.75
    return (weights / weights.sum()).astype(np.float32)


def cooccurrence_embeddings(train_sequences: list[np.ndarray], num_items: int, config: CooccurrenceConfig = CooccurrenceConfig(),
                            training: TrainingConfig | None = None, on_epoch=None) -> np.ndarray:
    """(num_items, config.dim) float32 SGNS item embeddings learned from ``train_sequences`` only.

    Items that occur in no training pair keep their small random initial rows (no co-occurrence signal).
    """
    counts = np.bincount(np.concatenate(train_sequences).astype(np.int64), minlength=num_items) if train_sequences \
        else np.zeros(num_items, dtype=np.int64)
    pairs = skipgram_pairs(train_sequences, config.window)
    if not len(pairs):
        raise ValueError("cooccurrence: the training sequences hold no pair of items (every sequence is shorter than 2)")
    loop = SkipGramTraining(config, pairs, counts)
    state = run_training(loop, resolve_training(training, config.device), on_epoch, name="cooccurrence")
    return state["embeddings"].numpy().astype(np.float32)
