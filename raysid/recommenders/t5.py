"""Generative recommendation with T5 over semantic IDs (MusicRec, after TIGER).

The encoder reads the identifiers of the last ``max_history`` items of a history followed by eos
(``<s1.1><s2.2><a.3> <s1.4>… <eos>``); the decoder generates the identifier of the next item, one token
per position. ``recommend`` runs a constrained beam search (MusicRec: beam 20) over the prefix trie of
all identifiers, so every beam is a real item: at each position every beam's logits are restricted to
its trie node's children and renormalised (log-softmax over the allowed tokens), and an item's score is
the sum of these log-probabilities. Identifiers have a fixed length, so the eos after the last position
is implied and not scored. The model is ``transformers.T5ForConditionalGeneration`` configured from the
SID vocabulary. Beam search runs it through ``BeamDecoder``, which keeps the encoder output and the
cross-attention keys and values at one row per user: all of a user's beams query them in one call. The
last position is decoded only for users with a beam at a trie node of several children.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from raysid.config import require
from raysid.distributed import Session, epoch_state, resolve_training, resume, run_training
from raysid.data.dataset import EvalSet
from raysid.recommenders.base import (
    ItemCatalog,
    RecommenderInputs,
    resolve_device,
    seed_everything,
    validate_histories,
)
from raysid.recommenders.constrained import beam_step, finished_items, initial_beams
from raysid.recommenders.t5_config import T5RecommenderConfig
from raysid.recommenders.tasks import Task, build_tasks
from raysid.semantic_ids.table import SemanticIds
from raysid.semantic_ids.trie import PrefixTrie
from raysid.semantic_ids.vocab import EOS, PAD, Vocabulary


@dataclass(frozen=True)
class Samples:
    """(history, next item) samples as windows into one flat item array, all on one device."""

    flat: torch.Tensor  # (interactions,) int64 item ids of all histories/sequences back to back
    starts: torch.Tensor  # (samples,) first flat index the history may use (its sequence's start)
    ends: torch.Tensor  # (samples,) one past the history's last flat index
    targets: torch.Tensor  # (samples,) int64 next item

    def __len__(self) -> int:
        return len(self.ends)

    @classmethod
    def from_sequences(cls, sequences: list[np.ndarray], device: torch.device) -> Samples:
        """One sample per position i >= 1 of every sequence: history sequence[:i], target sequence[i]."""
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        flat = np.concatenate(sequences).astype(np.int64)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)  # (interactions,) start of own sequence
        ends = np.flatnonzero(np.arange(len(flat)) > starts)  # every flat index but a sequence's first
        return cls._on(device, flat, starts[ends], ends, flat[ends])

    @classmethod
    def from_histories(cls, histories: list[np.ndarray], targets: np.ndarray | None, device: torch.device) -> Samples:
        """One sample per history; targets default to -1 (unknown) for recommendation."""
        lengths = np.array([len(h) for h in histories], dtype=np.int64)
        flat = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
        ends = np.cumsum(lengths)
        targets = np.full(len(histories), -1) if targets is None else np.asarray(targets, dtype=np.int64)
        return cls._on(device, flat, ends - lengths, ends, targets)

    @classmethod
    def _on(cls, device: torch.device, *arrays: np.ndarray) -> Samples:
        return cls(*(torch.as_tensor(np.asarray(a, dtype=np.int64), device=device) for a in arrays))

    def history_items(self, index: torch.Tensor, max_history: int) -> torch.Tensor:
        """(batch, max_history) item ids of the last max_history items of samples ``index``, -1 padded in front."""
        ends = self.ends[index]
        positions = ends[:, None] - max_history + torch.arange(max_history, device=ends.device)  # (batch, max_history)
        real = positions >= self.starts[index][:, None]
        return torch.where(real, self.flat[positions.clamp(min=0)], -1)


class T5Recommender:
    """T5 encoder-decoder trained to generate the next item's semantic ID; constrained beam search to rank."""

    name = "t5"

    def __init__(self, config: T5RecommenderConfig, sids: SemanticIds) -> None:
        if not sids.is_unique():
            raise ValueError("T5Recommender needs unique identifiers; build SemanticIds with tie_break=True")
        if config.beam_size > sids.num_items:
            raise ValueError(
                f"recommender.beam_size={config.beam_size} is larger than the catalogue ({sids.num_items} items); "
                f"use beam_size <= {sids.num_items}"
            )
        self.config = config
        self.sids = sids
        self.vocab = Vocabulary(sids)
        self.device = resolve_device(config.device)
        item_tokens = torch.as_tensor(self.vocab.encode(np.arange(sids.num_items)))  # (items, positions)
        pad_row = torch.full((1, sids.num_positions), PAD, dtype=torch.int64)
        self.item_tokens = torch.cat([item_tokens, pad_row]).to(self.device)  # (items + 1, positions); -1 -> pads
        self.trie = PrefixTrie(item_tokens.numpy()).to(self.device)
        self.ranking_task, self.tasks, self.num_task_tokens = build_tasks(config.tasks, sids.position_names, self.vocab.size)
        seed_everything(config.seed)
        self.model = T5ForConditionalGeneration(self._t5_config()).to(self.device)

    @property
    def num_items(self) -> int:
        return self.sids.num_items

    def _t5_config(self) -> T5Config:
        c = self.config
        return T5Config(
            vocab_size=self.vocab.size + self.num_task_tokens,
            d_model=c.d_model,
            d_kv=c.d_kv,
            d_ff=c.d_ff,
            num_layers=c.num_layers,
            num_decoder_layers=c.num_layers,
            num_heads=c.num_heads,
            dropout_rate=c.dropout,
            feed_forward_proj="relu",
            pad_token_id=PAD,
            eos_token_id=EOS,
            decoder_start_token_id=PAD,
        )

    # ----------------------------------------------------------------------------------------- inputs
    def encoder_inputs(self, items: torch.Tensor, task: Task | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask (batch, tokens) of history items (batch, max_history), -1 = none.

        Each item contributes the task's source columns of its identifier (default: the ranking task, all of
        them). Histories are left-padded (T5's relative positions make the offset irrelevant) and end with the
        task token (when there are several tasks) and eos; leading columns that are padding in every row are
        dropped.
        """
        task = task or self.ranking_task
        rows = self.item_tokens[torch.where(items < 0, self.num_items, items)]  # (batch, H, positions)
        tokens = rows[:, :, list(task.source)].flatten(1)  # (batch, H*source)
        tail = [EOS] if task.token is None else [task.token, EOS]
        tail_tokens = torch.tensor(tail, dtype=torch.int64, device=items.device).expand(len(items), -1)
        tokens = torch.cat([tokens, tail_tokens], dim=1)  # (batch, H*source + tail)
        mask = tokens != PAD
        first = int(mask.any(dim=0).nonzero()[0])
        return tokens[:, first:], mask[:, first:]

    def decoder_labels(self, targets: torch.Tensor, task: Task | None = None) -> torch.Tensor:
        """(batch, target columns + 1) token ids of the target items' identifiers (the task's columns) and eos."""
        task = task or self.ranking_task
        eos = torch.full((len(targets), 1), EOS, dtype=torch.int64, device=targets.device)
        return torch.cat([self.item_tokens[targets][:, list(task.target)], eos], dim=1)

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA when precision is "bf16"; a no-op otherwise."""
        enabled = self.config.precision == "bf16" and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def batch_loss(
        self, samples: Samples, index: torch.Tensor, model: nn.Module | None = None, task: Task | None = None
    ) -> torch.Tensor:
        """Teacher-forced mean cross-entropy per label token (identifier tokens and eos) of samples ``index``
        for ``task`` (default: the ranking task); ``model`` is the T5 to run (default: ``self.model``; a DDP
        wrapper of it while training)."""
        model, task = self.model if model is None else model, task or self.ranking_task
        targets = samples.targets[index]
        history = targets[:, None] if task.item_input else samples.history_items(index, self.config.max_history)
        input_ids, mask = self.encoder_inputs(history, task)
        labels = self.decoder_labels(targets, task)  # (batch, target columns + 1)
        start = torch.full((len(labels), 1), PAD, dtype=torch.int64, device=labels.device)
        decoder_input_ids = torch.cat([start, labels[:, :-1]], dim=1)  # shifted right
        with self._autocast():
            logits = model(input_ids=input_ids, attention_mask=mask, decoder_input_ids=decoder_input_ids).logits
        return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten())  # logits: (batch, positions+1, vocab)

    # ---------------------------------------------------------------------------------------- training
    @classmethod
    def from_catalog(cls, config: T5RecommenderConfig, catalog: ItemCatalog) -> T5Recommender:
        """A T5 sized by the catalogue's semantic-ID vocabulary."""
        require(catalog.sids is not None, "recommender", "kind 't5' ranks semantic IDs: the catalogue needs sids")
        return cls(config, catalog.sids)

    def fit(self, inputs: RecommenderInputs) -> T5Recommender:
        """Train from the current weights, in this process or on Ray Train workers as ``inputs.training`` says.

        Sequences shorter than two items carry no sample and are skipped. ``inputs.epoch_eval(recommender)``
        runs on rank 0 after every epoch (for example validation ranking) and its metrics join the epoch's report.
        """
        valid, epoch_eval = inputs.valid, inputs.epoch_eval
        sequences = [np.asarray(s, dtype=np.int64) for s in inputs.sequences if len(s) >= 2]
        if not sequences:
            raise ValueError("T5Recommender needs at least one training sequence of two or more items")
        validate_histories(sequences, self.num_items)
        if valid is not None:
            self._valid_samples(valid)  # fail here, not on a worker
        loop = T5Training(self, sequences, valid, epoch_eval)
        state = run_training(loop, resolve_training(inputs.training, self.config.device), inputs.on_epoch, name="t5")
        self.model.load_state_dict(state["model"])
        self.model.eval()
        return self

    def to(self, device: torch.device) -> T5Recommender:
        """Move the model, the identifier table and the trie to ``device``."""
        self.device = torch.device(device)
        self.model.to(self.device)
        self.item_tokens = self.item_tokens.to(self.device)
        self.trie = self.trie.to(self.device)
        return self

    def train_epoch(self, session: Session, model: nn.Module, samples: Samples, optimizer, scheduler,
                    generator: torch.Generator) -> float:
        """One shuffled pass over this worker's shard of every batch; the mean training loss per sample."""
        model.train()
        order = torch.randperm(len(samples), generator=generator).to(self.device)
        total = 0.0
        for start in range(0, len(order), self.config.batch_size):
            index = session.shard(order[start : start + self.config.batch_size])
            loss = self.task_loss(samples, index, model, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(index)
        return session.sums({"loss": total})["loss"] / len(samples)

    def task_loss(self, samples: Samples, index: torch.Tensor, model: nn.Module, generator: torch.Generator) -> torch.Tensor:
        """A batch's training loss: the ranking task's (when trained) plus one auxiliary task drawn from the seed."""
        ranking = [task for task in self.tasks if task.name == "mmg"]
        auxiliary = [task for task in self.tasks if task.name != "mmg"]
        loss = self.batch_loss(samples, index, model, ranking[0]) if ranking else 0.0
        if auxiliary:
            task = auxiliary[int(torch.randint(len(auxiliary), (1,), generator=generator))]
            loss = loss + self.batch_loss(samples, index, model, task)
        return loss

    @torch.no_grad()
    def mean_loss(self, samples: Samples, session: Session | None = None) -> float:
        """Teacher-forced mean loss per sample, in eval mode (each worker scores its shard, then they sum)."""
        self.model.eval()
        rows = torch.arange(len(samples), device=self.device)
        rows = rows if session is None else session.shard(rows)
        total = 0.0
        for start in range(0, len(rows), self.config.eval_batch_size):
            index = rows[start : start + self.config.eval_batch_size]
            total += self.batch_loss(samples, index).item() * len(index)
        return (total if session is None else session.sums({"loss": total})["loss"]) / len(samples)

    def valid_loss(self, valid: EvalSet) -> float:
        """Teacher-forced cross-entropy per identifier token of each held-out target given its history."""
        return self.mean_loss(self._valid_samples(valid))

    def _valid_samples(self, valid: EvalSet) -> Samples:
        validate_histories(valid.histories, self.num_items)
        targets = np.asarray(valid.targets)
        if len(targets) != len(valid.histories) or ((targets < 0) | (targets >= self.num_items)).any():
            raise ValueError(f"valid targets must be one id in [0, {self.num_items}) per history")
        return Samples.from_histories(valid.histories, targets, self.device)

    # ---------------------------------------------------------------------------------------- ranking
    def recommend(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        """(users, k) int64 item ids, best first, from constrained beam search; needs 1 <= k <= beam_size."""
        if not 1 <= k <= self.config.beam_size:
            raise ValueError(f"k={k} must be in [1, beam_size={self.config.beam_size}]")
        items, _ = self.beam_search(histories)
        return items[:, :k]

    @torch.inference_mode()
    def beam_search(self, histories: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(users, beam_size) int64 items and float32 log-probabilities of the beams, best first."""
        validate_histories(histories, self.num_items)
        self.model.eval()
        samples = Samples.from_histories(histories, None, self.device)
        items = np.empty((len(histories), self.config.beam_size), dtype=np.int64)
        scores = np.empty((len(histories), self.config.beam_size), dtype=np.float32)
        for start in range(0, len(histories), self.config.eval_batch_size):
            index = torch.arange(start, min(start + self.config.eval_batch_size, len(histories)), device=self.device)
            input_ids, mask = self.encoder_inputs(samples.history_items(index, self.config.max_history))
            with self._autocast():
                batch_items, batch_scores = self._beam_search_batch(input_ids, mask)
            items[start : start + len(index)] = batch_items.cpu().numpy()
            scores[start : start + len(index)] = batch_scores.cpu().numpy()
        return items, scores

    def _beam_search_batch(self, input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Constrained beam search for one batch of encoder inputs (users, tokens); see the module docstring."""
        users, beams, device = len(input_ids), self.config.beam_size, input_ids.device
        decoder = BeamDecoder(self.model, input_ids, mask, self.trie.depth)
        user_of_beam = torch.arange(users, device=device).repeat_interleave(beams)  # (users*beams,)
        logits = decoder.step(torch.full((users,), PAD, device=device))[user_of_beam]  # start token once per user
        decoder.reorder(user_of_beam)
        scores, nodes = initial_beams(users, beams, device)
        for depth in range(self.trie.depth):
            scores, tokens, nodes, parents = beam_step(logits, scores, nodes, depth, self.trie)
            if depth + 2 < self.trie.depth:
                decoder.reorder(parents)
                logits = decoder.step(tokens)  # (users*beams, vocab)
            elif depth + 1 < self.trie.depth:
                logits = self._last_logits(decoder, tokens, nodes, parents)
        return finished_items(scores, nodes, self.trie), scores

    def _last_logits(
        self, decoder: BeamDecoder, tokens: torch.Tensor, nodes: torch.Tensor, parents: torch.Tensor
    ) -> torch.Tensor:
        """(users*beams, vocab) logits for the last position, decoded only for the users with a beam at a node of
        several children: a node's only child has probability 1 (log-probability 0) whatever the logits, so the
        others get zeros. With a tie-break digit most last nodes have one child and most users are skipped."""
        beams = self.config.beam_size
        branching = self.trie.children(self.trie.depth - 1, nodes)[2].sum(dim=1) > 1  # (users*beams,)
        users = branching.view(-1, beams).any(dim=1).nonzero().squeeze(1)
        rows = (users[:, None] * beams + torch.arange(beams, device=users.device)).flatten()  # their beams
        logits = torch.zeros(len(tokens), self.model.config.vocab_size, device=tokens.device)
        if len(users):
            decoder.keep_users(users)
            decoder.reorder(parents[rows])
            logits[rows] = decoder.step(tokens[rows])
        return logits

    # ------------------------------------------------------------------------------------- persistence
    def num_parameters(self) -> int:
        """Number of trainable parameters (the tied embedding / output matrix counted once)."""
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def parameter_counts(self) -> dict[str, int]:
        """{"total": trainable parameters}."""
        return {"total": self.num_parameters()}

    def save(self, folder: str | Path) -> None:
        """Write ``t5_config.json``, the semantic IDs and ``t5_weights.pt`` (readable with weights_only=True)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "t5_config.json").write_text(json.dumps(dataclasses.asdict(self.config), indent=2))
        self.sids.save(folder)
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        torch.save(state, folder / "t5_weights.pt")

    @classmethod
    def load(cls, folder: str | Path, device: str | None = None) -> T5Recommender:
        """Rebuild a saved recommender; ``device`` overrides the saved config's device when given."""
        folder = Path(folder)
        config = T5RecommenderConfig(**json.loads((folder / "t5_config.json").read_text()))
        if device is not None:
            config = dataclasses.replace(config, device=device)
        recommender = cls(config, SemanticIds.load(folder))
        state = torch.load(folder / "t5_weights.pt", map_location="cpu", weights_only=True)
        recommender.model.load_state_dict(state)
        recommender.model.eval()
        return recommender


class BeamDecoder:
    """T5 run with the model's own modules and weights for beam search: encode once, then decode one token
    per step for several rows (beams) per user. Eval mode (no dropout); the same layer norms, projections,
    feed-forward blocks and relative position bias as ``T5ForConditionalGeneration``, equal up to float
    rounding (the attention sums run in a different order).

    The work is shaped for beams: the encoder's token-wise layers run on the real tokens only, not the
    padding; the encoder side stays at one row per user, each layer's cross-attention keys and values
    projected once, (users, heads, src, d_kv), and all of a user's rows query them in one attention call,
    (users, heads, rows per user, d_kv), instead of copies per beam; the self-attention keys and values, a
    few positions long, are cached per row and follow ``reorder``.
    """

    def __init__(self, model: T5ForConditionalGeneration, input_ids: torch.Tensor, mask: torch.Tensor,
                 positions: int) -> None:
        """Encode ``input_ids`` (users, src) with attention ``mask`` (users, src); at most ``positions`` steps."""
        self.model, self.decoder, self.heads = model, model.decoder, model.config.num_heads
        mask = mask.bool()
        encoded = self._encode(input_ids, mask)  # (users, src, d_model)
        self.source_mask = mask[:, None, None, :]  # (users, 1, 1, src): True at real tokens
        crosses = [block.layer[1].EncDecAttention for block in self.decoder.block]
        self.cross = [(self._split(a.k(encoded)), self._split(a.v(encoded))) for a in crosses]  # per layer
        self.bias = self.decoder.block[0].layer[0].SelfAttention.compute_bias(positions, positions)  # (1, heads, p, p)
        self.cache: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer (rows, heads, positions, d_kv)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n, heads*d_kv) -> (batch, heads, n, d_kv)."""
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def _encode(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(users, src, d_model) encoder output, zero at padding; hidden states are (real tokens, d_model)."""
        encoder, src = self.model.encoder, input_ids.shape[1]
        bias = encoder.block[0].layer[0].SelfAttention.compute_bias(src, src)  # (1, heads, src, src)
        bias = bias.masked_fill(~mask[:, None, None, :], torch.finfo(torch.bfloat16).min)  # finite in fp32 and bf16
        hidden = encoder.embed_tokens(input_ids[mask])  # (tokens, d_model)
        for block in encoder.block:
            sublayer = block.layer[0]
            attention, normed = sublayer.SelfAttention, sublayer.layer_norm(hidden)
            heads = [self._split(_padded(p(normed), mask)) for p in (attention.q, attention.k, attention.v)]
            out = F.scaled_dot_product_attention(*heads, attn_mask=bias, scale=1.0)  # (users, heads, src, d_kv)
            hidden = hidden + attention.o(out.transpose(1, 2)[mask].flatten(1))  # T5 does not scale q.k
            hidden = block.layer[1](hidden)  # feed-forward, residual included
        return _padded(encoder.final_layer_norm(hidden), mask)

    def _self_attend(self, layer: int, hidden: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """Self-attention output (rows, 1, d_model) of the new position over each row's positions so far, and
        the layer's keys and values (rows, heads, positions, d_kv) with it. A few positions: sums, no matmul."""
        sublayer = self.decoder.block[layer].layer[0]
        attention, normed = sublayer.SelfAttention, sublayer.layer_norm(hidden)
        keys, values = self._split(attention.k(normed)), self._split(attention.v(normed))  # (rows, heads, 1, d_kv)
        if self.cache:
            keys, values = (torch.cat(pair, dim=2) for pair in zip(self.cache[layer], (keys, values)))
        scores = (self._split(attention.q(normed)) * keys).sum(dim=-1) + bias  # (rows, heads, positions)
        out = (scores.softmax(dim=-1)[..., None] * values).sum(dim=2)  # (rows, heads, d_kv)
        return attention.o(out.flatten(1))[:, None], (keys, values)

    def _cross_attend(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        """Cross-attention output (rows, 1, d_model); all rows of a user query its encoder output in one call."""
        sublayer = self.decoder.block[layer].layer[1]
        normed = sublayer.layer_norm(hidden).view(len(self.source_mask), -1, hidden.shape[-1])  # (users, per user, d)
        queries = self._split(sublayer.EncDecAttention.q(normed))  # (users, heads, rows per user, d_kv)
        out = F.scaled_dot_product_attention(queries, *self.cross[layer], attn_mask=self.source_mask, scale=1.0)
        return sublayer.EncDecAttention.o(out.transpose(1, 2).flatten(2)).view_as(hidden)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row, ``tokens`` (users * rows per user,); return the rows' (rows, vocab) logits."""
        position = self.cache[0][0].shape[2] if self.cache else 0
        bias = self.bias[:, :, position, : position + 1]  # (1, heads, position + 1)
        hidden = self.decoder.embed_tokens(tokens)[:, None]  # (rows, 1, d_model)
        cache = []
        for layer, block in enumerate(self.decoder.block):
            attended, keys_values = self._self_attend(layer, hidden, bias)
            cache.append(keys_values)
            hidden = hidden + attended
            hidden = hidden + self._cross_attend(layer, hidden)
            hidden = block.layer[2](hidden)  # feed-forward, residual included
        self.cache = cache
        hidden = self.decoder.final_layer_norm(hidden[:, 0])  # (rows, d_model)
        if self.model.config.scale_decoder_outputs:
            hidden = hidden * self.model.config.d_model**-0.5
        return self.model.lm_head(hidden).float()

    def keep_users(self, users: torch.Tensor) -> None:
        """Keep the encoder side of ``users`` (sorted ids) only; reorder the cache to their rows next."""
        self.cross = [(keys[users], values[users]) for keys, values in self.cross]
        self.source_mask = self.source_mask[users]

    def reorder(self, rows: torch.Tensor) -> None:
        """Make row i's self-attention cache a copy of row ``rows[i]``'s (beams chosen, or copied from users)."""
        self.cache = [(keys[rows], values[rows]) for keys, values in self.cache]


def _padded(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(users, src, dim) zeros with the rows of ``x`` (real tokens, dim) where ``mask`` (users, src) is True."""
    out = x.new_zeros(*mask.shape, x.shape[-1])
    out[mask] = x
    return out


EpochEval = Callable[["T5Recommender"], dict[str, float]]


@dataclass
class T5Training:
    """The T5 training loop for ``raysid.distributed.run_training``: AdamW, linear warmup/decay, DDP shards."""

    recommender: T5Recommender  # sent to the workers; each moves it to its device
    sequences: list[np.ndarray]
    valid: EvalSet | None
    epoch_eval: EpochEval | None

    def __call__(self, session: Session) -> None:
        recommender, config = self.recommender.to(session.device), self.recommender.config
        seed_everything(config.seed)
        samples = Samples.from_sequences(self.sequences, session.device)
        valid = recommender._valid_samples(self.valid) if self.valid is not None else None
        model = session.wrap(recommender.model)
        steps = config.epochs * math.ceil(len(samples) / config.batch_size)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(steps, config.warmup_ratio))
        generator = torch.Generator().manual_seed(config.seed)
        last = resume(session, recommender.model, [optimizer, scheduler], generator)
        for epoch in range(1 if last is None else last + 1, config.epochs + 1):
            metrics = {"train/loss": recommender.train_epoch(session, model, samples, optimizer, scheduler, generator)}
            if valid is not None:
                metrics["valid/loss"] = recommender.mean_loss(valid, session)
            if self.epoch_eval is not None and session.is_main:
                metrics.update(self.epoch_eval(recommender))
            session.report(epoch, metrics, epoch_state(recommender.model, [optimizer, scheduler], generator, epoch))
        if config.epochs == 0:
            session.report(0, {}, epoch_state(recommender.model, [optimizer, scheduler], generator, 0))


def linear_schedule(total_steps: int, warmup_ratio: float):
    """LambdaLR factor: linear warmup over warmup_ratio of the steps, then linear decay to 0."""
    warmup = math.ceil(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor
