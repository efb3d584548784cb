"""SASRec's hyperparameters, beside ``sasrec.py``: the ``collaborative`` section (``SASRecConfig``) and SASRec as a
recommender (``SASRecRecommenderConfig``). Torch-free, so a study parses without importing torch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from raysid.config import require
from raysid.recommenders.base import RecommenderCapabilities


@dataclass(frozen=True)
class SASRecConfig:
    """SASRec hyperparameters; config section ``collaborative`` (``SASRecRecommenderConfig``: ``recommender``)."""

    section: ClassVar[str] = "collaborative"  # names the keys in error messages

    hidden_size: int = 32  # h: item/position embedding and hidden size (MusicRec's d_cf = 32)
    num_layers: int = 2  # number of self-attention blocks
    num_heads: int = 2  # attention heads per block; must divide hidden_size
    max_length: int = 50  # sequences are truncated to their last max_length items
    dropout: float = 0.2  # dropout on embeddings, attention and feed-forward outputs
    epochs: int = 20  # passes over the training sequences
    batch_size: int = 128  # sequences per optimisation step (and per inference batch)
    learning_rate: float = 1e-3  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    item_representation: Literal["id", "sid"] = "id"  # per-item embedding, or sum of semantic-ID code embeddings
    components: tuple[str, ...] = ()  # item attributes whose embeddings are added, e.g. ("artist", "genre")
    loss: Literal["cross_entropy", "bce"] = "cross_entropy"  # next-item softmax, or played/skipped BCE
    negative_samples: int = 1  # random catalogue items labelled 0 per position (loss "bce")
    feedback_inputs: bool = False  # add a learned played/skipped embedding to every history item
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 autocast is used only on CUDA
    seed: int = 0  # seeds initialisation, dropout, batch order and negative samples
    patience: int = 0  # stop after this many epochs without a better stop_metric and restore the best epoch; 0 = off
    stop_metric: str = "valid/ndcg@10"  # epoch metric early stopping watches (an epoch_eval's, or valid/loss, valid/auc)
    stop_mode: Literal["max", "min"] = "max"  # "max": larger stop_metric is better; "min": smaller
    # Architecture and samples: the defaults are the SASRec paper's (Kang & McAuley 2018, and its code);
    # RecBole 1.2.1's SASRec is samples "prefixes", norm "post", activation "gelu", feed_forward_dropout
    # false, init_std 0.02, layer_norm_eps 1e-12, position_alignment "first".
    samples: Literal["window", "prefixes"] = "window"  # window: each sequence's last max_length + 1 items, loss at every position (SASRec paper); prefixes: every prefix, loss at its last position (RecBole)
    norm: Literal["pre", "post"] = "pre"  # pre: x + Dropout(f(LayerNorm(x))), a final LayerNorm (SASRec paper); post: LayerNorm(x + Dropout(f(x))), a LayerNorm of the input embeddings (RecBole)
    activation: Literal["relu", "gelu"] = "relu"  # feed-forward activation: ReLU (SASRec paper), GELU (RecBole's hidden_act)
    feed_forward_dropout: bool = True  # dropout between the two feed-forward layers (SASRec paper's code); RecBole has none
    init_std: float | None = None  # None: embeddings N(0, 0.02²), linear layers torch's defaults; a number: every embedding and linear weight N(0, init_std²), biases 0 (RecBole's initializer_range 0.02)
    layer_norm_eps: float = 1e-5  # LayerNorm epsilon (torch's default; RecBole's 1e-12)
    position_alignment: Literal["last", "first"] = "last"  # last: the newest item takes position max_length - 1 (left-padded windows, SASRec paper's code); first: the window's oldest item takes position 0 (RecBole's right-padded sequences)

    def __post_init__(self) -> None:
        object.__setattr__(self, "components", tuple(self.components))
        where = self.section
        for name in ("hidden_size", "num_layers", "num_heads", "max_length", "epochs", "batch_size"):
            require(getattr(self, name) > 0, f"{where}.{name}", f"must be positive, got {getattr(self, name)}")
        require(
            self.hidden_size % self.num_heads == 0,
            f"{where}.hidden_size", f"{self.hidden_size} is not divisible by num_heads={self.num_heads}",
        )
        require(0.0 <= self.dropout < 1.0, f"{where}.dropout", f"must be in [0, 1), got {self.dropout}")
        require(self.learning_rate > 0, f"{where}.learning_rate", f"must be positive, got {self.learning_rate}")
        require(self.weight_decay >= 0, f"{where}.weight_decay", f"must be >= 0, got {self.weight_decay}")
        for name, choices in (("item_representation", ("id", "sid")), ("loss", ("cross_entropy", "bce", "auto")),
                              ("precision", ("fp32", "bf16")), ("samples", ("window", "prefixes")),
                              ("norm", ("pre", "post")), ("activation", ("relu", "gelu")),
                              ("position_alignment", ("last", "first"))):
            value = getattr(self, name)
            require(value in choices, f"{where}.{name}",
                    f"got {value!r}; valid choices are: {', '.join(map(repr, choices))}")
        require(isinstance(self.feed_forward_dropout, bool), f"{where}.feed_forward_dropout",
                f"expected true or false, got {self.feed_forward_dropout!r}")
        require(self.init_std is None or self.init_std > 0, f"{where}.init_std",
                f"must be positive, or null for torch's default initialisation; got {self.init_std}")
        require(self.layer_norm_eps > 0, f"{where}.layer_norm_eps", f"must be positive, got {self.layer_norm_eps}")
        require(self.negative_samples >= 0, f"{where}.negative_samples", f"must be >= 0, got {self.negative_samples}")
        require(self.patience >= 0, f"{where}.patience", f"must be >= 0 (0 = no early stopping), got {self.patience}")
        require(self.stop_mode in ("max", "min"), f"{where}.stop_mode", f"got {self.stop_mode!r}; valid choices are: 'max', 'min'")
        require(isinstance(self.stop_metric, str) and bool(self.stop_metric), f"{where}.stop_metric",
                f"expected a metric name such as 'valid/ndcg@10', got {self.stop_metric!r}")
        names = self.components
        require(all(isinstance(n, str) and n for n in names) and len(set(names)) == len(names),
                f"{where}.components", f"expected distinct attribute names, got {list(names)}")

    def capabilities(self) -> RecommenderCapabilities:
        """Ranks item ids, reads semantic IDs with ``item_representation: sid`` and embeds ``components``;
        trains on and scores played/skipped feedback; reports its parameters split item / other."""
        return RecommenderCapabilities(reads_semantic_ids=self.item_representation == "sid", scores_feedback=True,
                                       item_attributes=self.components,
                                       parameter_parts=("item", "other", "total"))

    def for_data(self, has_feedback: bool) -> SASRecConfig:
        """This config with ``loss: auto`` and an unset ``feedback_inputs`` decided by the data: BCE on
        played/skipped with the feedback input embedding when the data has feedback, else cross-entropy
        without it. Values given explicitly are kept."""
        loss = self.loss if self.loss != "auto" else ("bce" if has_feedback else "cross_entropy")
        inputs = self.feedback_inputs if self.feedback_inputs is not None else has_feedback
        return dataclasses.replace(self, loss=loss, feedback_inputs=inputs)


@dataclass(frozen=True)
class SASRecRecommenderConfig(SASRecConfig):
    """SASRec as a recommender; config section ``recommender`` (kind "sasrec").

    The loss and the feedback inputs follow the trial's data by default (``for_data``): on played/skipped
    feedback, BCE against the next track's feedback with the played/skipped embedding in the input; on data
    without feedback, the next-item cross-entropy without it. A SASRec built directly (outside a trial)
    from an undecided config takes the feedback defaults.
    """

    section: ClassVar[str] = "recommender"
    tiny: ClassVar[dict[str, Any]] = {  # one epoch of seconds on a tiny catalog (contract tests)
        "hidden_size": 16, "num_layers": 1, "num_heads": 2, "max_length": 8, "epochs": 1, "device": "cpu"}

    loss: Literal["cross_entropy", "bce", "auto"] = "auto"  # auto: bce with feedback, cross_entropy without
    feedback_inputs: bool | None = None  # None: with feedback only
