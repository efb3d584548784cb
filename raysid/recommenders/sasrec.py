"""SASRec (Kang & McAuley 2018) with the item representations of Semantic IDs for Music Recommendation.

An item's embedding is
- ``item_representation: id``: a learned embedding per item (the baseline; MusicRec's 32-d collaborative
  embeddings are these rows, see ``raysid.features.collaborative``), or
- ``item_representation: sid``: the sum of the item's semantic-ID code embeddings, one table of k_p rows per
  identifier position p (the n codes and the tie-break digit, if the table has one). 'v0' random and 'v1'
  trained identifiers are used alike: the model only sees the ``SemanticIds`` table it is given,
plus, for each name in ``components``, a learned embedding of that item attribute (the paper's "song
decomposition": artist and genre). Input and output share the composed embedding (as SASRec shares its item
embeddings): the score of item j after position t is <h_t, e_j>. With ``feedback_inputs`` each history item
also carries a learned played/skipped embedding.

Losses (``loss``):
- ``cross_entropy``: next-item softmax over the full catalogue at every position whose next item was played.
- ``bce``: sigmoid(<h_t, e_next>) against the next item's feedback, 1 played / 0 skipped (real negatives as
  targets, Mei et al. 2024, the model the semantic-ID paper builds on), plus ``negative_samples`` random
  catalogue items per position labelled 0 (SASRec's original loss). Without feedback every item is played.

Training runs through ``raysid.distributed.run_training``: in this process by default, or as DDP on Ray Train
workers; every worker draws the same global batch order from the seeded generator and trains its shard, and
the loss is scaled so that DDP's gradient average equals the gradient of the global batch's mean loss.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raysid.config import require
from raysid.data.dataset import EvalSet
from raysid.data.splits import FeedbackSet, validate_feedback
from raysid.distributed import (
    Session,
    TrainingConfig,
    epoch_state,
    resolve_training,
    resume,
    run_training,
)
from raysid.metrics.auc import session_auc
from raysid.recommenders.base import (
    ItemCatalog,
    RecommenderInputs,
    resolve_device,
    seed_everything,
    validate_histories,
)
from raysid.recommenders.sasrec_config import SASRecConfig, SASRecRecommenderConfig
from raysid.semantic_ids.table import SemanticIds

PAD = 0  # padding row of the internal item ids; item id i is internal id i + 1
IGNORE = -100  # target of positions that predict nothing
PLAYED, SKIPPED = 1, 0  # feedback values (Dataset.feedback)


class SASRecModel(nn.Module):
    """Composed item embeddings and causal Transformer blocks: pre-norm with a final layer norm (the SASRec
    paper), or post-norm after a layer norm of the input embeddings (RecBole); ``config.norm`` says which.

    ``codes`` (num_items, positions) and ``attributes`` {name: (num_items,)} are int64 tensors in item-id order.
    """

    def __init__(self, config: SASRecConfig, num_items: int, codes: torch.Tensor | None = None,
                 codebook_sizes: tuple[int, ...] = (), attributes: Mapping[str, torch.Tensor] | None = None):
        super().__init__()
        hidden, attributes = config.hidden_size, dict(attributes or {})
        self.num_heads, self.num_items, self.representation = config.num_heads, num_items, config.item_representation
        if self.representation == "id":
            self.item_embedding = nn.Embedding(num_items + 1, hidden, padding_idx=PAD)
        else:
            self.code_embeddings = nn.ModuleList(nn.Embedding(size, hidden) for size in codebook_sizes)
            self.register_buffer("codes", _with_padding_row(codes), persistent=False)  # (items + 1, positions)
        self.position_embedding = nn.Embedding(config.max_length, hidden)
        self.position_alignment = config.position_alignment
        self.dropout = nn.Dropout(config.dropout)
        self.input_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps) if config.norm == "post" else None
        self.blocks = transformer_blocks(config)
        self.attribute_embeddings = nn.ModuleDict(
            {name: nn.Embedding(int(values.max()) + 1, hidden) for name, values in attributes.items()}
        )
        for name, values in attributes.items():
            self.register_buffer(f"attribute_{name}", _with_padding_row(values), persistent=False)  # (items + 1,)
        self.feedback_embedding = nn.Embedding(2, hidden) if config.feedback_inputs else None
        self._initialise(config.init_std)

    def _initialise(self, std: float | None) -> None:
        """N(0, 0.02²) for every embedding table and torch's defaults for the blocks (``std`` None), or, as
        RecBole's ``_init_weights``, N(0, std²) for every embedding and linear weight (each block drawn on its
        own) and zero biases. The id table's padding row stays zero."""
        tables = [self.item_embedding] if self.representation == "id" else list(self.code_embeddings)
        tables += [self.position_embedding, *self.attribute_embeddings.values()]
        tables += [self.feedback_embedding] if self.feedback_embedding is not None else []
        for table in tables:
            nn.init.normal_(table.weight, std=0.02 if std is None else std)
        if std is not None:
            _normal_linear_weights(self.blocks, std)
        if self.representation == "id":
            with torch.no_grad():
                self.item_embedding.weight[PAD].zero_()

    def item_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """(...) internal ids -> (..., hidden) composed item embeddings (padding is masked by the caller)."""
        if self.representation == "id":
            vectors = self.item_embedding(ids)
        else:
            codes = self.codes[ids]  # (..., positions)
            vectors = sum(table(codes[..., p]) for p, table in enumerate(self.code_embeddings))
        for name, table in self.attribute_embeddings.items():
            vectors = vectors + table(getattr(self, f"attribute_{name}")[ids])
        return vectors

    def output_table(self) -> torch.Tensor:
        """(num_items, hidden) every item's composed embedding in item-id order, the same as the input's."""
        if self.representation == "id" and not self.attribute_embeddings:
            return self.item_embedding.weight[1:]
        return self.item_vectors(torch.arange(1, self.num_items + 1, device=self.position_embedding.weight.device))

    def forward(self, inputs: torch.Tensor, feedback: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, seq) left-padded internal ids and their feedback (1 played / 0 skipped; None = all played)
        -> (batch, seq, hidden) hidden states and the (num_items, hidden) output item table."""
        x = self.item_vectors(inputs) + self.position_embedding(self.positions(inputs))  # (batch, seq, hidden)
        if self.feedback_embedding is not None:
            x = x + self.feedback_embedding(torch.full_like(inputs, PLAYED) if feedback is None else feedback)
        if self.input_norm is not None:
            x = self.input_norm(x)  # post-norm (RecBole): the input embeddings are normalised before dropout
        x = self.dropout(x) * (inputs != PAD).unsqueeze(-1)  # padded positions stay zero
        return self.blocks(x, mask=self.attention_mask(inputs)), self.output_table()

    def positions(self, inputs: torch.Tensor) -> torch.Tensor:
        """Position ids of (batch, seq) left-padded inputs: (seq,) 0..seq-1, the newest item at seq - 1 ("last");
        or (batch, seq) counted from each row's oldest item, padding at 0 ("first", RecBole's numbering)."""
        positions = torch.arange(inputs.shape[1], device=inputs.device)  # (seq,)
        if self.position_alignment == "last":
            return positions
        padding = (inputs == PAD).sum(dim=1, keepdim=True)  # (batch, 1) left padding of each row
        return (positions - padding).clamp(min=0)  # (batch, seq)

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


def transformer_blocks(config: SASRecConfig) -> nn.TransformerEncoder:
    """``num_layers`` causal self-attention blocks of width h, ordered as ``config.norm`` says; pre-norm ends
    with a layer norm of the last block's output (post-norm's last operation already is one)."""
    hidden = config.hidden_size
    block = nn.TransformerEncoderLayer(
        d_model=hidden,
        nhead=config.num_heads,
        dim_feedforward=hidden,  # SASRec's point-wise feed-forward keeps width h
        dropout=config.dropout,
        activation=config.activation,
        layer_norm_eps=config.layer_norm_eps,
        batch_first=True,
        norm_first=config.norm == "pre",
    )
    if not config.feed_forward_dropout:
        block.dropout = nn.Identity()  # the dropout between linear1 and linear2 (RecBole's FeedForward has none)
    final = nn.LayerNorm(hidden, eps=config.layer_norm_eps) if config.norm == "pre" else None
    return nn.TransformerEncoder(block, config.num_layers, norm=final, enable_nested_tensor=False)


def _normal_linear_weights(blocks: nn.Module, std: float) -> None:
    """N(0, std²) for every linear weight of ``blocks`` (attention's packed query/key/value projection
    included) and zero biases, module by module, so that no two blocks start alike."""
    for module in blocks.modules():
        if isinstance(module, nn.MultiheadAttention):
            nn.init.normal_(module.in_proj_weight, std=std)
            nn.init.zeros_(module.in_proj_bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)


def _with_padding_row(values: torch.Tensor) -> torch.Tensor:
    """Prepend a zero row so that internal id i + 1 indexes item i."""
    return torch.cat([torch.zeros_like(values[:1]), values])


def left_pad(sequences: list[np.ndarray], length: int, pad: int) -> torch.Tensor:
    """(len(sequences), length) int64: the last ``length`` values of each sequence, left-padded."""
    out = np.full((len(sequences), length), pad, dtype=np.int64)
    for row, values in enumerate(sequences):
        values = np.asarray(values, dtype=np.int64)[-length:]
        if len(values):
            out[row, length - len(values) :] = values
    return torch.from_numpy(out)


@dataclass(frozen=True)
class TrainingData:
    """Next-item training samples, each tensor (samples, max_length): one window of each sequence's last
    max_length + 1 items ("window"), or one per prefix ("prefixes")."""

    inputs: torch.Tensor  # int64 internal ids (item id + 1), PAD on the left
    input_feedback: torch.Tensor  # int64 feedback of each input item (PLAYED at padding)
    targets: torch.Tensor  # int64 next item id, IGNORE where the position predicts nothing
    labels: torch.Tensor  # float32 next item's feedback

    def __len__(self) -> int:
        return len(self.inputs)


def training_data(sequences: list[np.ndarray], feedback: list[np.ndarray], max_length: int, loss: str,
                  samples: str = "window") -> TrainingData:
    """Samples of every sequence of two or more items; "cross_entropy" predicts only played next items.

    "window": one sample per sequence, its last max_length + 1 items, a target at every position (the
    SASRec paper). "prefixes": one sample per prefix s[:t+1] (t >= 1) of each sequence, its last
    max_length + 1 items, the target at the last position only (RecBole: n - 1 samples for n items).
    Samples without any target (every next item skipped, under "cross_entropy") are dropped.
    """
    kept = [i for i, s in enumerate(sequences) if len(s) >= 2]
    items = [np.asarray(sequences[i], dtype=np.int64) for i in kept]
    labels = [np.asarray(feedback[i], dtype=np.int64) for i in kept]
    if samples == "prefixes":
        items, labels = _prefixes(items, max_length), _prefixes(labels, max_length)
    else:
        items, labels = [s[-(max_length + 1) :] for s in items], [f[-(max_length + 1) :] for f in labels]
    targets = left_pad([w[1:] for w in items], max_length, IGNORE)
    if samples == "prefixes":
        targets[:, :-1] = IGNORE  # a prefix predicts its last item only
    next_feedback = left_pad([f[1:] for f in labels], max_length, PLAYED)
    if loss == "cross_entropy":
        targets[next_feedback == SKIPPED] = IGNORE
    rows = (targets != IGNORE).any(dim=1)
    return TrainingData(
        inputs=left_pad([w[:-1] + 1 for w in items], max_length, PAD)[rows],
        input_feedback=left_pad([f[:-1] for f in labels], max_length, PLAYED)[rows],
        targets=targets[rows],
        labels=next_feedback[rows].float(),
    )


def _prefixes(arrays: list[np.ndarray], max_length: int) -> list[np.ndarray]:
    """The last max_length + 1 values of every prefix a[:t+1], t = 1..len(a) - 1, of each array, in order."""
    return [a[max(0, end - max_length - 1) : end] for a in arrays for end in range(2, len(a) + 1)]


def global_batches(order: torch.Tensor, batch_size: int, world_size: int) -> list[torch.Tensor]:
    """Split ``order`` into batches; with several workers a last batch smaller than the world joins the one before."""
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) < world_size:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


EpochEval = Callable[["SASRec"], dict[str, float]]


class SASRec:
    """SASRec behind the ``Recommender`` contract; ``score_items`` feeds the stratified AUC."""

    name = "sasrec"

    def __init__(self, config: SASRecConfig, num_items: int, sids: SemanticIds | None = None,
                 attributes: Mapping[str, np.ndarray] | None = None) -> None:
        """``sids`` (item_representation "sid") must cover the catalogue; ``attributes`` maps every name in
        ``config.components`` to a (num_items,) array of non-negative integer values (a Polars frame of item
        columns works too)."""
        require(num_items > 0, "num_items", f"must be positive, got {num_items}")
        config = config.for_data(has_feedback=True)  # a trial decides "auto" from its data first (evaluation.build)
        self.config = config
        self.num_items = num_items
        self.sids = _check_sids(config, num_items, sids)
        self.attributes = _check_attributes(config, num_items, attributes)
        self.device = resolve_device(config.device)
        seed_everything(config.seed)
        codes = torch.tensor(self.sids.codes) if self.sids is not None else None
        sizes = self.sids.codebook_sizes if self.sids is not None else ()
        tensors = {name: torch.tensor(values) for name, values in self.attributes.items()}
        self.model = SASRecModel(config, num_items, codes, sizes, tensors).to(self.device)

    def to(self, device: torch.device | str) -> SASRec:
        """Move the model (and its identifier and attribute tables) to ``device``."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    # ---------------------------------------------------------------------------------------- training

    @classmethod
    def from_catalog(cls, config: SASRecConfig, catalog: ItemCatalog) -> SASRec:
        """SASRec over the catalogue: its loss and feedback inputs follow the data (``for_data``), the
        identifier table is used with ``item_representation: sid``, the attributes feed ``components``."""
        config = config.for_data(has_feedback=catalog.has_feedback)
        sids = catalog.sids if config.item_representation == "sid" else None
        return cls(config, catalog.num_items, sids=sids, attributes=catalog.attributes)

    def fit(self, inputs: RecommenderInputs) -> SASRec:
        """Train from the current weights, in this process or on Ray Train workers as ``inputs.training`` says.

        ``inputs.feedback``: one 0/1 array per training sequence, aligned with it (1 played, 0 skipped);
        without it every track counts as played. ``inputs.valid``: an EvalSet reports ``valid/loss``
        (cross-entropy of the held-out item), a FeedbackSet ``valid/auc`` and ``valid/auc_sessions`` after every
        epoch. ``inputs.epoch_eval(recommender)`` runs on rank 0 after every epoch and its metrics join the report.
        Sequences shorter than two items carry no pair and are skipped. With ``config.patience`` > 0, training
        stops after that many epochs without a better ``config.stop_metric`` (one of the reported metrics) and
        the best epoch's weights are restored; without it, the last epoch's weights are kept.
        """
        train_sequences, valid, feedback, epoch_eval = inputs.sequences, inputs.valid, inputs.feedback, inputs.epoch_eval
        _check_sequences(train_sequences, self.num_items)
        if feedback is None:
            feedback = [np.full(len(s), PLAYED, dtype=np.int8) for s in train_sequences]
        validate_feedback(train_sequences, feedback, "feedback")
        config = self.config
        data = training_data(train_sequences, feedback, config.max_length, config.loss, config.samples)
        if not len(data):
            raise ValueError("SASRec needs at least one training sequence of two or more items "
                             "(with a played next item under loss 'cross_entropy')")
        if config.loss == "bce" and config.negative_samples == 0 and bool((data.labels[data.targets != IGNORE] == 1).all()):
            raise ValueError(f"{config.section}.negative_samples: loss 'bce' without skipped tracks needs "
                             "negative_samples >= 1 (every label is 'played')")
        if valid is not None:
            self._check_valid(valid)
        _check_stop_metric(config, valid, epoch_eval)
        run = resolve_training(inputs.training or TrainingConfig(precision=config.precision), config.device)
        state = run_training(SASRecTraining(self, data, valid, epoch_eval), run, inputs.on_epoch, name="sasrec")
        best = state.get("early_stopping", {}).get("best_model")  # None without early stopping (or no finite value)
        self.model.load_state_dict(best if best is not None else state["model"])
        self.model.eval()
        return self

    def train_epoch(self, session: Session, model: nn.Module, data: TrainingData, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator) -> float:
        """One shuffled pass over this worker's shard of every global batch; the mean loss per prediction."""
        model.train()
        order = torch.randperm(len(data), generator=generator)
        total, count = 0.0, 0
        for batch in global_batches(order, self.config.batch_size, session.world_size):
            negatives = self._draw_negatives(len(batch), generator)
            local = session.shard(torch.arange(len(batch)))
            predictions = int((data.targets[batch] != IGNORE).sum())  # over the whole global batch
            with session.autocast():
                loss, positions = self.batch_loss(model, data, batch[local], None if negatives is None else negatives[local])
            scaled = loss * (positions * session.world_size / predictions)  # DDP averages: mean over the global batch
            optimizer.zero_grad(set_to_none=True)
            scaled.backward()
            optimizer.step()
            total, count = total + loss.item() * positions, count + positions
        sums = session.sums({"loss": total, "positions": float(count)})
        return sums["loss"] / sums["positions"]

    def _draw_negatives(self, rows: int, generator: torch.Generator) -> torch.Tensor | None:
        """(rows, max_length, negative_samples) random item ids for loss "bce", the same on every worker."""
        if self.config.loss != "bce" or self.config.negative_samples == 0:
            return None
        shape = (rows, self.config.max_length, self.config.negative_samples)
        return torch.randint(self.num_items, shape, generator=generator)

    def batch_loss(self, model: nn.Module, data: TrainingData, rows: torch.Tensor,
                   negatives: torch.Tensor | None) -> tuple[torch.Tensor, int]:
        """Mean loss per predicted position of ``rows`` and the number of those positions."""
        device = self.device
        inputs, input_feedback = data.inputs[rows].to(device), data.input_feedback[rows].to(device)  # (batch, seq)
        targets, labels = data.targets[rows].to(device), data.labels[rows].to(device)  # (batch, seq)
        hidden, table = model(inputs, input_feedback)  # (batch, seq, hidden), (items, hidden)
        real = targets != IGNORE  # (batch, seq)
        states, positions = hidden[real], int(real.sum())  # (positions, hidden)
        if self.config.loss == "cross_entropy":
            return F.cross_entropy((states @ table.T).float(), targets[real]), positions
        logits = (states * table[targets[real]]).sum(-1).float()  # (positions,)
        total = F.binary_cross_entropy_with_logits(logits, labels[real], reduction="sum")
        if negatives is not None:
            sampled = negatives.to(device)[real]  # (positions, negative_samples)
            sampled_logits = (states.unsqueeze(1) * table[sampled]).sum(-1).float()  # (positions, negative_samples)
            keep = sampled != targets[real].unsqueeze(1)  # a sample that is the next item is no negative
            losses = F.binary_cross_entropy_with_logits(sampled_logits, torch.zeros_like(sampled_logits), reduction="none")
            total = total + (losses * keep).sum()
        return total / positions, positions

    def validate(self, valid: EvalSet | FeedbackSet | None, session: Session | None = None) -> dict[str, float]:
        """The epoch's validation metrics (see ``fit``); each worker scores its shard, then they sum."""
        if valid is None:
            return {}
        if isinstance(valid, FeedbackSet):
            return self._valid_auc(valid, session)
        return {"valid/loss": self.valid_loss(valid, session)}

    @torch.no_grad()
    def valid_loss(self, valid: EvalSet, session: Session | None = None) -> float:
        """Mean cross-entropy of each held-out target given its history (full-catalogue softmax)."""
        rows = _rows(len(valid), session)
        targets = torch.as_tensor(np.asarray(valid.targets, dtype=np.int64)[rows])
        total = 0.0
        for start, hidden, table in self._last_hidden([valid.histories[i] for i in rows]):
            batch_targets = targets[start : start + len(hidden)].to(hidden.device)
            total += F.cross_entropy(hidden @ table.T, batch_targets, reduction="sum").item()
        return (total if session is None else session.sums({"loss": total})["loss"]) / len(valid)

    def _valid_auc(self, valid: FeedbackSet, session: Session | None) -> dict[str, float]:
        """Mean per-session AUC over the sessions with both a played and a skipped track."""
        rows = _rows(len(valid), session)
        histories, items = [valid.histories[i] for i in rows], [valid.items[i] for i in rows]
        scores = self.score_items(histories, items, [valid.history_feedback[i] for i in rows])
        aucs = np.array([session_auc(s, valid.feedback[i]) for s, i in zip(scores, rows)], dtype=np.float64)
        counted = ~np.isnan(aucs)
        sums = {"auc": float(aucs[counted].sum()), "sessions": float(counted.sum())}
        sums = sums if session is None else session.sums(sums)
        return {"valid/auc": sums["auc"] / max(sums["sessions"], 1.0), "valid/auc_sessions": sums["sessions"]}

    # ---------------------------------------------------------------------------------------- inference

    @torch.no_grad()
    def recommend(self, histories: list[np.ndarray], k: int, history_feedback: list[np.ndarray] | None = None) -> np.ndarray:
        """(users, k) int64 item ids ranked by full-catalogue score, best first; -1 beyond the catalogue."""
        require(k > 0, "k", f"must be positive, got {k}")
        self._check_histories(histories, history_feedback)
        ranked = np.full((len(histories), k), -1, dtype=np.int64)
        top = min(k, self.num_items)
        for start, hidden, table in self._last_hidden(histories, history_feedback):
            ranked[start : start + len(hidden), :top] = (hidden @ table.T).topk(top, dim=-1).indices.cpu().numpy()
        return ranked

    @torch.no_grad()
    def score_items(self, histories: list[np.ndarray], items: list[np.ndarray],
                    history_feedback: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Scores <h, e_j> of each ``items[i]`` (any number of item ids) after ``histories[i]``: (len(items[i]),)
        float32 per history, all from the same input (the stratified AUC's evaluation period)."""
        self._check_histories(histories, history_feedback)
        if len(items) != len(histories):
            raise ValueError(f"got {len(items)} item lists for {len(histories)} histories; need one per history")
        _check_items(items, self.num_items)
        scores = []
        for start, hidden, table in self._last_hidden(histories, history_feedback):
            for row, state in enumerate(hidden):
                chosen = torch.tensor(np.asarray(items[start + row]), dtype=torch.int64, device=table.device)
                scores.append((table[chosen] @ state).cpu().numpy())
        return scores

    def _last_hidden(self, histories: list[np.ndarray],
                     history_feedback: list[np.ndarray] | None = None) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """Yield (first row, (batch, hidden) fp32 state after each history's last item, (num_items, hidden) table)."""
        self.model.eval()
        size, length = self.config.batch_size, self.config.max_length
        for start in range(0, len(histories), size):
            chunk = [np.asarray(h, dtype=np.int64) + 1 for h in histories[start : start + size]]
            inputs = left_pad(chunk, length, PAD).to(self.device)  # (batch, seq)
            feedback = None
            if history_feedback is not None:
                feedback = left_pad(history_feedback[start : start + size], length, PLAYED).to(self.device)
            with self._autocast():
                hidden, table = self.model(inputs, feedback)
            yield start, hidden[:, -1].float(), table.float()

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA when precision is "bf16"; a no-op otherwise."""
        enabled = self.config.precision == "bf16" and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    # ---------------------------------------------------------------------------------------- checks

    def _check_histories(self, histories: list[np.ndarray], history_feedback: list[np.ndarray] | None) -> None:
        validate_histories(histories, self.num_items)
        if history_feedback is not None:
            validate_feedback(histories, history_feedback, "history_feedback")

    def _check_valid(self, valid: EvalSet | FeedbackSet) -> None:
        """Fail before training (not on a worker) when the validation set does not fit the catalogue."""
        if not len(valid):
            raise ValueError("the validation set is empty")
        if isinstance(valid, FeedbackSet):
            self._check_histories(valid.histories, valid.history_feedback)
            _check_items(valid.items, self.num_items)
            validate_feedback(valid.items, valid.feedback, "valid feedback")
            if not any((f == PLAYED).any() and (f == SKIPPED).any() for f in valid.feedback):
                raise ValueError("valid FeedbackSet: no session has both a played and a skipped track")
            return
        validate_histories(valid.histories, self.num_items)
        targets = np.asarray(valid.targets)
        if len(targets) != len(valid.histories) or ((targets < 0) | (targets >= self.num_items)).any():
            raise ValueError(f"valid targets must be one id in [0, {self.num_items}) per history")

    # ---------------------------------------------------------------------------------------- model facts

    def item_embeddings(self) -> np.ndarray:
        """(num_items, hidden_size) float32 composed item embeddings in item-id order."""
        with torch.no_grad():
            return self.model.output_table().detach().float().cpu().numpy().copy()

    def num_parameters(self) -> int:
        """Number of trainable parameters (the paper's model size)."""
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters: ``item`` (id table or code tables, plus attribute tables), ``other``, ``total``."""
        model = self.model
        tables = [model.item_embedding] if model.representation == "id" else list(model.code_embeddings)
        tables += list(model.attribute_embeddings.values())
        item = sum(p.numel() for table in tables for p in table.parameters() if p.requires_grad)
        total = self.num_parameters()
        return {"item": item, "other": total - item, "total": total}

    def save(self, path: str | Path) -> None:
        """Write config, catalogue size, identifier/attribute tables and weights, readable with ``weights_only=True``."""
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        sids = None
        if self.sids is not None:
            sids = {"codes": torch.from_numpy(self.sids.codes), "position_names": list(self.sids.position_names),
                    "codebook_sizes": list(self.sids.codebook_sizes)}
        payload = {
            "config": dataclasses.asdict(self.config), "section": self.config.section, "num_items": self.num_items,
            "state_dict": state, "sids": sids,
            "attributes": {name: torch.from_numpy(values) for name, values in self.attributes.items()},
        }
        torch.save(payload, Path(path))

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> SASRec:
        """Rebuild a saved SASRec; ``device`` overrides the saved config's device when given."""
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        config_class = SASRecRecommenderConfig if payload.get("section") == "recommender" else SASRecConfig
        config = config_class(**payload["config"])
        if device is not None:
            config = dataclasses.replace(config, device=device)
        saved = payload.get("sids")
        sids = None if saved is None else SemanticIds(saved["codes"].numpy(), saved["position_names"], saved["codebook_sizes"])
        attributes = {name: values.numpy() for name, values in payload.get("attributes", {}).items()}
        recommender = cls(config, payload["num_items"], sids=sids, attributes=attributes)
        recommender.model.load_state_dict(payload["state_dict"])
        recommender.model.eval()
        return recommender


@dataclass
class SASRecTraining:
    """The SASRec training loop for ``raysid.distributed.run_training``: AdamW, DDP shards, per-epoch state."""

    recommender: SASRec  # sent to the workers; each moves it to its device
    data: TrainingData
    valid: EvalSet | FeedbackSet | None
    epoch_eval: EpochEval | None

    def __call__(self, session: Session) -> None:
        recommender, config = self.recommender.to(session.device), self.recommender.config
        seed_everything(config.seed)
        model = session.wrap(recommender.model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        generator = torch.Generator().manual_seed(config.seed)
        last = resume(session, recommender.model, [optimizer], generator)
        if last is not None:
            torch.set_rng_state(session.restore()["torch_rng"])  # dropout continues where it stopped
        stopping = EarlyStopping.of(config, session.restore())
        for epoch in range(1 if last is None else last + 1, config.epochs + 1):
            metrics = {"train/loss": recommender.train_epoch(session, model, self.data, optimizer, generator)}
            metrics.update(recommender.validate(self.valid, session))
            if self.epoch_eval is not None and session.is_main:
                metrics.update(self.epoch_eval(recommender))
            stop = stopping is not None and stopping.update(epoch, metrics, recommender.model, session)
            extra = {} if stopping is None else {"early_stopping": stopping.state()}
            state = epoch_state(recommender.model, [optimizer], generator, epoch, torch_rng=torch.get_rng_state(), **extra)
            session.report(epoch, metrics, state)
            if stop:
                break


@dataclass
class EarlyStopping:
    """The best ``stop_metric`` so far, its epoch and weights (on the CPU), and the epochs since it.

    An epoch is better only when strictly better (a tie keeps the earlier epoch); a NaN is never better.
    Rank 0's value decides on every worker (an ``epoch_eval`` metric exists only there).
    """

    metric: str
    mode: str
    patience: int
    best_value: float = math.nan
    best_epoch: int = 0
    best_model: dict | None = None
    stale: int = 0  # epochs since the best one

    @classmethod
    def of(cls, config: SASRecConfig, restored: dict | None) -> EarlyStopping | None:
        """None when ``config.patience`` is 0; the resumed run's state when there is one."""
        if not config.patience:
            return None
        saved = (restored or {}).get("early_stopping", {})
        return cls(config.stop_metric, config.stop_mode, config.patience, **saved)

    def update(self, epoch: int, metrics: dict[str, float], model: nn.Module, session: Session) -> bool:
        """Record this epoch; True when training should stop (``patience`` epochs without a better value)."""
        if session.is_main and self.metric not in metrics:
            raise ValueError(f"early stopping: metric {self.metric!r} is not reported; the epoch reports "
                             f"{', '.join(sorted(metrics))}")
        value = float(session.broadcast(torch.tensor([metrics.get(self.metric, 0.0)], dtype=torch.float64))[0])
        better = math.isnan(self.best_value) or (value > self.best_value if self.mode == "max" else value < self.best_value)
        if better and not math.isnan(value):
            self.best_value, self.best_epoch, self.stale = value, epoch, 0
            self.best_model = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
        else:
            self.stale += 1
        return self.stale >= self.patience

    def state(self) -> dict:
        return {"best_value": self.best_value, "best_epoch": self.best_epoch, "best_model": self.best_model,
                "stale": self.stale}


def _check_stop_metric(config: SASRecConfig, valid: EvalSet | FeedbackSet | None, epoch_eval: EpochEval | None) -> None:
    """Fail before training when early stopping watches a metric no epoch will report."""
    if not config.patience or epoch_eval is not None:
        return  # an epoch_eval's metrics are known only once it runs; update() checks them
    reported = {"train/loss"} | ({"valid/auc", "valid/auc_sessions"} if isinstance(valid, FeedbackSet)
                                 else {"valid/loss"} if valid is not None else set())
    if config.stop_metric not in reported:
        raise ValueError(
            f"{config.section}.stop_metric: {config.stop_metric!r} is not reported by any epoch (reported: "
            f"{', '.join(sorted(reported))}); ranking metrics such as valid/ndcg@10 need an epoch_eval "
            "(a trial's evaluation.epoch_users > 0)")


def _rows(count: int, session: Session | None) -> list[int]:
    """This worker's share of ``count`` evaluation rows (all of them without a session)."""
    rows = torch.arange(count)
    return (rows if session is None else session.shard(rows)).tolist()


def _check_sequences(sequences: list[np.ndarray], num_items: int) -> None:
    """Raise ValueError naming the first training sequence that holds a non-integer or unknown item id."""
    _check_ids(sequences, num_items, "training sequence {} has", "training sequence {} holds")


def _check_items(items: list[np.ndarray], num_items: int) -> None:
    """Raise ValueError naming the first session whose candidate items are not integer ids of the catalogue."""
    _check_ids(items, num_items, "items of session {} have", "items of session {} hold")


def _check_ids(arrays: list[np.ndarray], num_items: int, has: str, holds: str) -> None:
    """Raise ValueError (``has``/``holds`` name the array) for the first non-integer or out-of-catalogue ids."""
    for index, values in enumerate(arrays):
        values = np.asarray(values)
        if values.size and not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"{has.format(index)} dtype {values.dtype}; item ids must be integers")
        bad = (values < 0) | (values >= num_items)
        if bad.any():
            raise ValueError(
                f"{holds.format(index)} item id {int(values[np.argmax(bad)])}, outside the catalogue [0, {num_items})"
            )


def _check_sids(config: SASRecConfig, num_items: int, sids: SemanticIds | None) -> SemanticIds | None:
    """The identifier table for item_representation "sid" (None for "id"); it must cover the catalogue."""
    if config.item_representation != "sid":
        return None
    if sids is None:
        raise ValueError(f"{config.section}.item_representation: 'sid' needs a SemanticIds table (sids=...)")
    if not isinstance(sids, SemanticIds):
        raise TypeError(f"sids must be a SemanticIds table, got {type(sids).__name__}")
    if sids.num_items != num_items:
        raise ValueError(
            f"the semantic-ID table covers {sids.num_items} items but the catalogue has {num_items}; "
            "every item needs an identifier"
        )
    return sids


def _check_attributes(config: SASRecConfig, num_items: int, attributes: Mapping | None) -> dict[str, np.ndarray]:
    """{component: (num_items,) int64 values >= 0} for every name in ``config.components``."""
    result: dict[str, np.ndarray] = {}
    available = list(attributes.columns if hasattr(attributes, "columns") else (attributes or {}))
    for name in config.components:
        if name not in available:
            raise ValueError(
                f"{config.section}.components: {name!r} needs an item attribute of that name; got {available}"
            )
        values = np.asarray(attributes[name])
        if values.shape != (num_items,) or not np.issubdtype(values.dtype, np.integer) or (values < 0).any():
            raise ValueError(
                f"item attribute {name!r} must be {num_items} integers >= 0 (one per item), got {values.dtype} "
                f"{values.shape}" + (f" with minimum {values.min()}" if values.size and np.issubdtype(values.dtype, np.number) else "")
            )
        result[name] = values.astype(np.int64)
    return result
