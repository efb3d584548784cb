"""FusID's generative recommender: a GPT-2 decoder-only language model over semantic-ID tokens.

A playlist is one token sequence: a start token (eos, as GPT-2 uses its end-of-text token to start) and
then every track's identifier tokens, ``<eos> <c1.4><c2.9><c3.1> <c1.7><c2.2><c3.5> …``. FusID evaluates
on a playlist of length l by giving the first l−1 tracks as context when l ≤ 30 and the first 30 otherwise,
the next track being the target. Training uses the same samples: each playlist of l ≥ 2 tracks gives one
window of its first min(l, max_context_items + 1) tracks. FusID trains "a GPT-2 style decoder-only
structure on sequences of semantic IDs", so the default loss (``loss: sequence``) is GPT-2's next-token
cross-entropy over every token of the window (each track predicted from the tracks before it);
``loss: target`` scores only the target track's tokens. ``recommend`` reads the last ``max_context_items``
tracks of a history (the whole history in FusID's evaluation).

Ranking: ``beam`` (default) is a constrained beam search over the prefix trie of all identifiers with
GPT-2's key/value cache reordered for the beams; ``exact`` scores every item's identifier by teacher
forcing (``score_items``) and sorts the whole catalogue. Both score an item as the sum over its tokens of
the log-softmax restricted to the trie node's children (``raysid.recommenders.constrained``), so a beam
as wide as the catalogue gives the exact ranking. Training runs through ``raysid.distributed.run_training``
(in this process, or DDP on Ray Train workers).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from raysid.config import require
from raysid.data.dataset import EvalSet
from raysid.distributed import (
    Session,
    TrainingConfig,
    epoch_state,
    resolve_training,
    resume,
    run_training,
)
from raysid.recommenders.base import (
    ItemCatalog,
    RecommenderInputs,
    resolve_device,
    seed_everything,
    validate_histories,
)
from raysid.recommenders.constrained import (
    TokenChoices,
    beam_step,
    finished_items,
    initial_beams,
)
from raysid.recommenders.gpt2_config import GPT2RecommenderConfig
from raysid.recommenders.t5 import linear_schedule
from raysid.semantic_ids.table import SemanticIds
from raysid.semantic_ids.trie import PrefixTrie
from raysid.semantic_ids.vocab import EOS, PAD, Vocabulary

START = EOS  # the token every playlist starts with
IGNORE = -100  # label of positions that carry no loss


# ------------------------------------------------------------------------------------------- windows
@dataclass(frozen=True)
class Windows:
    """Item windows (samples, width) int64, -1 padded on the right, and each window's length (samples,)."""

    items: torch.Tensor
    lengths: torch.Tensor

    def __len__(self) -> int:
        return len(self.lengths)

    @classmethod
    def of(cls, rows: list[np.ndarray]) -> Windows:
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        items = np.full((len(rows), int(lengths.max())), -1, dtype=np.int64)
        for i, row in enumerate(rows):
            items[i, : len(row)] = row
        return cls(torch.from_numpy(items), torch.from_numpy(lengths))

    @classmethod
    def training(cls, sequences: list[np.ndarray], max_context_items: int) -> Windows:
        """FusID's samples: the first min(l, max_context_items + 1) tracks of every playlist of l >= 2 tracks."""
        return cls.of([np.asarray(s, dtype=np.int64)[: max_context_items + 1] for s in sequences])

    @classmethod
    def evaluation(cls, valid: EvalSet, max_context_items: int) -> Windows:
        """The last max_context_items tracks of each history followed by its target."""
        rows = [np.r_[np.asarray(h, dtype=np.int64)[-max_context_items:], t] for h, t in zip(valid.histories, valid.targets)]
        return cls.of(rows)


def window_tokens(item_tokens: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """(batch, 1 + width*positions) start token then identifier tokens of ``items`` (batch, width), -1 -> PAD.

    ``item_tokens`` is (num_items + 1, positions) with a last row of PAD for the -1 slots.
    """
    tokens = item_tokens[torch.where(items < 0, len(item_tokens) - 1, items)].flatten(1)
    start = torch.full((len(items), 1), START, dtype=torch.int64, device=items.device)
    return torch.cat([start, tokens], dim=1)


def label_mask(lengths: torch.Tensor, positions: int, width: int, target_only: bool) -> torch.Tensor:
    """(batch, width*positions) which next-token labels count: every real token, or the last item's only."""
    item_of_label = torch.arange(width * positions, device=lengths.device) // positions  # (width*positions,)
    if target_only:
        return item_of_label[None, :] == (lengths - 1)[:, None]
    return item_of_label[None, :] < lengths[:, None]


def summed_loss(model: torch.nn.Module, tokens: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """Sum of the next-token cross-entropies at the ``labelled`` (batch, T-1) positions of ``tokens`` (batch, T)."""
    inputs = tokens[:, :-1]
    logits = model(input_ids=inputs, attention_mask=(inputs != PAD).long(), use_cache=False).logits
    labels = tokens[:, 1:].masked_fill(~labelled, IGNORE)
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")


def batch_tensors(item_tokens: torch.Tensor, windows: Windows, rows: torch.Tensor, target_only: bool,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens (batch, T) and labelled positions (batch, T-1) of windows ``rows``, trimmed to the longest."""
    lengths = windows.lengths[rows]
    width = int(lengths.max())
    tokens = window_tokens(item_tokens, windows.items[rows, :width]).to(device)
    return tokens, label_mask(lengths, item_tokens.shape[1], width, target_only).to(device)


@torch.no_grad()
def target_loss(session: Session, model: torch.nn.Module, item_tokens: torch.Tensor, windows: Windows,
                batch_size: int) -> float:
    """Mean cross-entropy per token of each window's last (target) item; each worker scores its shard."""
    model.eval()
    totals = {"loss": 0.0, "tokens": 0.0}
    for rows in session.shard(torch.arange(len(windows))).split(batch_size):
        tokens, labelled = batch_tensors(item_tokens, windows, rows, True, session.device)
        with session.autocast():
            totals["loss"] += float(summed_loss(model, tokens, labelled))
        totals["tokens"] += float(labelled.sum())
    totals = session.sums(totals)
    return totals["loss"] / totals["tokens"]


# ------------------------------------------------------------------------------------------ training
EpochEval = Callable[["GPT2Recommender"], dict[str, float]]
"""Run on rank 0 after every epoch with the recommender being trained (e.g. validation ranking metrics)."""


@dataclass
class GPT2Training:
    """The training loop for ``run_training``: every worker draws the same global order of windows and
    trains its shard of each global batch; the loss is scaled so that DDP's gradient average equals the
    mean over the global batch's label tokens (as on one worker). The recommender travels to the workers;
    without Ray it is trained in place."""

    recommender: GPT2Recommender
    train: Windows
    valid: Windows | None
    epoch_eval: EpochEval | None

    def __call__(self, session: Session) -> None:
        recommender, config = self.recommender.to(session.device), self.recommender.config
        seed_everything(config.seed + session.rank)  # dropout differs between workers, not between runs
        model = session.wrap(recommender.model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        steps = config.epochs * math.ceil(len(self.train) / config.batch_size)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(steps, config.warmup_ratio))
        generator = torch.Generator().manual_seed(config.seed)
        last = resume(session, recommender.model, [optimizer, scheduler], generator)
        for epoch in range(1 if last is None else last + 1, config.epochs + 1):
            metrics = {"train/loss": self._train_epoch(session, model, optimizer, scheduler, generator)}
            if self.valid is not None:
                metrics["valid/loss"] = target_loss(session, model, recommender.item_tokens, self.valid, config.eval_batch_size)
            if self.epoch_eval is not None and session.is_main:
                recommender.model.eval()
                metrics.update(self.epoch_eval(recommender))
            session.report(epoch, metrics, epoch_state(recommender.model, [optimizer, scheduler], generator, epoch))

    def _train_epoch(self, session: Session, model, optimizer, scheduler, generator: torch.Generator) -> float:
        """One shuffled pass over the windows; the epoch's mean loss per label token (over all workers)."""
        model.train()
        order = torch.randperm(len(self.train), generator=generator)
        config, item_tokens = self.recommender.config, self.recommender.item_tokens
        positions = item_tokens.shape[1]
        labels = self.train.lengths * positions if config.loss == "sequence" else torch.full_like(self.train.lengths, positions)
        totals = {"loss": 0.0, "tokens": 0.0}
        for batch in order.split(config.batch_size):
            rows, weight = session.shard(batch), 1.0
            if len(rows) == 0:  # more workers than windows in this batch: run one window with no weight
                rows, weight = batch[:1], 0.0
            tokens, labelled = batch_tensors(item_tokens, self.train, rows, config.loss == "target", session.device)
            with session.autocast():
                loss_sum = summed_loss(model, tokens, labelled) * weight
            global_tokens = float(labels[batch].sum())
            optimizer.zero_grad(set_to_none=True)
            (loss_sum * session.world_size / global_tokens).backward()  # DDP averages over the workers
            optimizer.step()
            scheduler.step()
            totals["loss"] += float(loss_sum.detach())
            totals["tokens"] += float(labelled.sum()) * weight
        totals = session.sums(totals)
        return totals["loss"] / totals["tokens"]


# --------------------------------------------------------------------------------------- recommender
class GPT2Recommender:
    """GPT-2 over semantic-ID tokens (FusID): fit through Ray Train, rank by constrained beam or exact scores."""

    name = "gpt2"

    def __init__(self, config: GPT2RecommenderConfig, sids: SemanticIds) -> None:
        if not sids.is_unique():
            raise ValueError("GPT2Recommender needs unique identifiers; build SemanticIds with tie_break=True")
        if config.beam_size > sids.num_items:
            raise ValueError(
                f"recommender.beam_size={config.beam_size} is larger than the catalogue ({sids.num_items} items); "
                f"use beam_size <= {sids.num_items}"
            )
        self.config, self.sids = config, sids
        self.vocab = Vocabulary(sids)
        self.device = resolve_device(config.device)
        item_tokens = torch.as_tensor(self.vocab.encode(np.arange(sids.num_items)))  # (items, positions)
        pad_row = torch.full((1, sids.num_positions), PAD, dtype=torch.int64)
        self.item_tokens = torch.cat([item_tokens, pad_row])  # (items + 1, positions), CPU
        self.trie = PrefixTrie(item_tokens.numpy()).to(self.device)
        self.choices = TokenChoices(self.trie, item_tokens)
        seed_everything(config.seed)
        self.model = GPT2LMHeadModel(self._gpt2_config()).to(self.device)

    @property
    def num_items(self) -> int:
        return self.sids.num_items

    @property
    def positions(self) -> int:
        return self.sids.num_positions

    def _gpt2_config(self) -> GPT2Config:
        c = self.config
        return GPT2Config(
            vocab_size=self.vocab.size,
            n_positions=1 + (c.max_context_items + 1) * self.positions,  # start token + context + target
            n_embd=c.n_embd,
            n_layer=c.n_layer,
            n_head=c.n_head,
            n_inner=c.n_inner or None,
            resid_pdrop=c.dropout,
            embd_pdrop=c.dropout,
            attn_pdrop=c.dropout,
            bos_token_id=START,
            eos_token_id=EOS,
            pad_token_id=PAD,
        )

    def _autocast(self) -> contextlib.AbstractContextManager:
        enabled = self.config.precision == "bf16" and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    # ------------------------------------------------------------------------------------------- fit
    @classmethod
    def from_catalog(cls, config: GPT2RecommenderConfig, catalog: ItemCatalog) -> GPT2Recommender:
        """A GPT-2 sized by the catalogue's semantic-ID vocabulary."""
        require(catalog.sids is not None, "recommender", "kind 'gpt2' ranks semantic IDs: the catalogue needs sids")
        return cls(config, catalog.sids)

    def fit(self, inputs: RecommenderInputs) -> GPT2Recommender:
        """Train from the current weights on ``inputs.sequences`` (those under two items are skipped), in this
        process (``inputs.training`` None: the config's device and precision) or as it says.

        ``inputs.epoch_eval(recommender)`` runs on rank 0 after every epoch and its metrics join the epoch's report.
        """
        valid, training, epoch_eval = inputs.valid, inputs.training, inputs.epoch_eval
        sequences = [np.asarray(s, dtype=np.int64) for s in inputs.sequences if len(s) >= 2]
        if not sequences:
            raise ValueError("GPT2Recommender needs at least one training sequence of two or more items")
        validate_histories(sequences, self.num_items)
        valid_windows = self._valid_windows(valid) if valid is not None else None
        if self.config.epochs == 0:
            return self
        training = resolve_training(training or TrainingConfig(precision=self.config.precision), self.config.device)
        train_windows = Windows.training(sequences, self.config.max_context_items)
        loop = GPT2Training(self, train_windows, valid_windows, epoch_eval)
        state = run_training(loop, training, inputs.on_epoch, name="gpt2")
        self.model.load_state_dict(state["model"])
        self.model.eval()
        return self

    def to(self, device: torch.device | str) -> GPT2Recommender:
        """Move the model, the trie and the token choices to ``device`` (identifier tokens stay on the CPU)."""
        self.device = torch.device(device)
        self.model.to(self.device)
        self.trie = self.trie.to(self.device)
        self.choices = self.choices.to(self.device)
        return self

    def _valid_windows(self, valid: EvalSet) -> Windows:
        validate_histories(valid.histories, self.num_items)
        targets = np.asarray(valid.targets)
        if len(targets) != len(valid.histories) or ((targets < 0) | (targets >= self.num_items)).any():
            raise ValueError(f"valid targets must be one id in [0, {self.num_items}) per history")
        return Windows.evaluation(valid, self.config.max_context_items)

    @torch.no_grad()
    def valid_loss(self, valid: EvalSet) -> float:
        """Teacher-forced cross-entropy per identifier token of each held-out target given its history."""
        session = Session(0, 1, self.device, self.config.precision, None)
        return target_loss(session, self.model, self.item_tokens, self._valid_windows(valid), self.config.eval_batch_size)

    # --------------------------------------------------------------------------------------- context
    def _context(self, histories: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Left-padded start + last max_context_items identifiers of each history: tokens, attention mask and
        position ids, each (users, T)."""
        windows = Windows.of([np.asarray(h, dtype=np.int64)[-self.config.max_context_items :] for h in histories])
        tokens = window_tokens(self.item_tokens, windows.items)  # (users, T), right-padded
        real = tokens != PAD
        shift = (~real).sum(dim=1, keepdim=True)  # pads of each row, moved to the front
        columns = (torch.arange(tokens.shape[1])[None, :] - shift) % tokens.shape[1]
        tokens, real = tokens.gather(1, columns), real.gather(1, columns)
        positions = (real.long().cumsum(dim=1) - 1).clamp(min=0)
        return tokens.to(self.device), real.long().to(self.device), positions.to(self.device)

    def _encode_context(self, histories: list[np.ndarray]):
        """Run the contexts once: next-token logits (users, vocab), the key/value cache, mask and next position."""
        tokens, mask, positions = self._context(histories)
        with self._autocast():
            out = self.model(input_ids=tokens, attention_mask=mask, position_ids=positions, use_cache=True)
        return out.logits[:, -1].float(), out.past_key_values, mask, positions[:, -1] + 1

    # --------------------------------------------------------------------------------------- ranking
    def recommend(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        """(users, k) int64 item ids, best first, by ``config.ranking``: beam (k <= beam_size) or exact."""
        if self.config.ranking == "exact":
            if not 1 <= k <= self.num_items:
                raise ValueError(f"k={k} must be in [1, {self.num_items}] (the catalogue)")
            scores = self.score_items(histories)
            return np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int64)
        if not 1 <= k <= self.config.beam_size:
            raise ValueError(f"k={k} must be in [1, beam_size={self.config.beam_size}]")
        return self.beam_search(histories)[0][:, :k]

    @torch.no_grad()
    def beam_search(self, histories: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(users, beam_size) int64 items and float32 log-probabilities of the beams, best first."""
        validate_histories(histories, self.num_items)
        self.model.eval()
        items = np.empty((len(histories), self.config.beam_size), dtype=np.int64)
        scores = np.empty((len(histories), self.config.beam_size), dtype=np.float32)
        for start in range(0, len(histories), self.config.eval_batch_size):
            batch = histories[start : start + self.config.eval_batch_size]
            batch_items, batch_scores = self._beam_search_batch(batch)
            items[start : start + len(batch)] = batch_items.cpu().numpy()
            scores[start : start + len(batch)] = batch_scores.cpu().numpy()
        return items, scores

    def _beam_search_batch(self, histories: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Constrained beam search for one batch: one context pass, then one cached token per beam and depth."""
        users, beams = len(histories), self.config.beam_size
        logits, cache, mask, position = self._encode_context(histories)
        expand = torch.arange(users, device=self.device).repeat_interleave(beams)  # (users*beams,)
        cache.reorder_cache(expand)
        logits, mask, position = logits[expand], mask[expand], position[expand]
        scores, nodes = initial_beams(users, beams, self.device)
        scores, tokens, nodes, parents = beam_step(logits, scores, nodes, 0, self.trie)
        for depth in range(1, self.trie.depth):
            cache.reorder_cache(parents)  # beams of one user share mask and positions: only the cache moves
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            with self._autocast():
                out = self.model(input_ids=tokens[:, None], attention_mask=mask, position_ids=position[:, None],
                                 past_key_values=cache, use_cache=True)
            scores, tokens, nodes, parents = beam_step(out.logits[:, -1], scores, nodes, depth, self.trie)
            position = position + 1
        return finished_items(scores, nodes, self.trie), scores

    @torch.no_grad()
    def score_items(self, histories: list[np.ndarray]) -> np.ndarray:
        """(users, num_items) float32 exact log-probability of every item's identifier given each history
        (the trie-renormalised probabilities beam search uses; each row's probabilities sum to 1)."""
        validate_histories(histories, self.num_items)
        self.model.eval()
        out = np.empty((len(histories), self.num_items), dtype=np.float32)
        for start in range(0, len(histories), self.config.eval_batch_size):
            batch = histories[start : start + self.config.eval_batch_size]
            out[start : start + len(batch)] = self._score_batch(batch).cpu().numpy()
        return out

    def _score_batch(self, histories: list[np.ndarray]) -> torch.Tensor:
        """(users, num_items) scores: the first token from the context's logits, the others by teacher
        forcing every identifier (all but its last token) on a copy of the context cache, a chunk of items at once."""
        users, all_items = len(histories), torch.arange(self.num_items, device=self.device)
        logits, cache, mask, position = self._encode_context(histories)
        scores = self.choices.log_probs(logits[:, None, :].expand(users, self.num_items, -1), 0, all_items)
        if self.positions == 1:
            return scores
        item_tokens = self.item_tokens[:-1, :-1].to(self.device)  # (items, positions - 1) teacher-forced inputs
        chunk = max(1, self.config.score_rows // users)
        for items in all_items.split(chunk):
            chunk_cache = copy.deepcopy(cache)
            chunk_cache.batch_repeat_interleave(len(items))  # row = user * len(items) + item
            steps = self.positions - 1
            inputs = item_tokens[items].repeat(users, 1)  # (users*chunk, steps)
            chunk_mask = torch.cat([mask.repeat_interleave(len(items), 0), mask.new_ones(len(inputs), steps)], dim=1)
            chunk_positions = position.repeat_interleave(len(items))[:, None] + torch.arange(steps, device=self.device)
            with self._autocast():
                step_logits = self.model(input_ids=inputs, attention_mask=chunk_mask, position_ids=chunk_positions,
                                         past_key_values=chunk_cache, use_cache=True).logits
            step_logits = step_logits.view(users, len(items), steps, -1)  # (users, chunk, steps, vocab)
            for depth in range(1, self.positions):
                scores[:, items] += self.choices.log_probs(step_logits[:, :, depth - 1], depth, items)
        return scores

    # ----------------------------------------------------------------------------------- persistence
    def num_parameters(self) -> int:
        """Number of trainable parameters (the tied embedding / output matrix counted once)."""
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def parameter_counts(self) -> dict[str, int]:
        """{"total": trainable parameters}."""
        return {"total": self.num_parameters()}

    def save(self, folder: str | Path) -> None:
        """Write ``gpt2_config.json``, the semantic IDs and ``gpt2_weights.pt`` (readable with weights_only=True)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "gpt2_config.json").write_text(json.dumps(dataclasses.asdict(self.config), indent=2))
        self.sids.save(folder)
        torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, folder / "gpt2_weights.pt")

    @classmethod
    def load(cls, folder: str | Path, device: str | None = None) -> GPT2Recommender:
        """Rebuild a saved recommender; ``device`` overrides the saved config's device when given."""
        folder = Path(folder)
        config = GPT2RecommenderConfig(**json.loads((folder / "gpt2_config.json").read_text()))
        if device is not None:
            config = dataclasses.replace(config, device=device)
        recommender = cls(config, SemanticIds.load(folder))
        state = torch.load(folder / "gpt2_weights.pt", map_location="cpu", weights_only=True)
        recommender.model.load_state_dict(state)
        recommender.model.eval()
        return recommender
