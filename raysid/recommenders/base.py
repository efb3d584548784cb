"""The one recommender contract every model follows, plus small helpers they share.

Every recommender (SASRec, T5, GPT-2, popularity) is fitted on training sequences of item ids and
returns ranked item ids for histories, so the metrics never ask which model they have.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from raysid.devices import resolve_device, seed_everything  # noqa: F401  (re-exported for the models)

if TYPE_CHECKING:
    from raysid.data.dataset import EvalSet
    from raysid.data.splits import FeedbackSet
    from raysid.training_config import TrainingConfig
    from raysid.semantic_ids.table import SemanticIds

OnEpoch = Callable[[int, dict[str, float]], None]
"""Called after each epoch with (epoch starting at 1, metrics such as {"train/loss": 0.7})."""
EpochEval = Callable[[Any], dict[str, float]]
"""Called with the recommender after each epoch; its metrics (e.g. validation ranking) join the epoch's report."""


@dataclass(frozen=True)
class RecommenderCapabilities:
    """What a recommender needs and offers, declared by its config (``config.capabilities()``); evaluation
    reads these instead of asking which model it has, and the contract tests check each one."""

    reads_semantic_ids: bool = True  # ranks through the semantic-ID table (the trial needs a tokenizer)
    scores_feedback: bool = False  # trains on and scores played/skipped feedback: the stratified AUC on feedback data
    item_attributes: tuple[str, ...] = ()  # item columns it embeds, from the dataset's items frame
    epoch_ranking: bool = True  # calls ``epoch_eval`` after every epoch (evaluation.epoch_users, ASHA)
    reports_epochs: bool = True  # calls ``on_epoch`` after every epoch (a model without training has none)
    seeded: bool = True  # the trial's seed replaces ``config.seed``
    trains_on_ray: bool = True  # fit runs its training loop on Ray Train workers when ``training.ray``
    parameter_parts: tuple[str, ...] = ("total",)  # what parameter_counts() returns; () for a model without any


@dataclass(frozen=True)
class ItemCatalog:
    """What a recommender is built on: the catalogue's size, its semantic IDs and its item attributes."""

    sids: SemanticIds | None  # unique identifiers of every item (None: a trial without a tokenizer)
    num_items: int  # items 0..num_items-1
    attributes: Mapping[str, np.ndarray] | None = None  # item column -> (num_items,) values (``item_attributes``)
    has_feedback: bool = False  # the sequences carry played/skipped feedback (defaults may follow it)

    def __post_init__(self) -> None:
        if self.num_items < 1:
            raise ValueError(f"num_items: must be positive, got {self.num_items}")
        if self.sids is not None and self.sids.num_items != self.num_items:
            raise ValueError(f"num_items: {self.num_items} disagrees with the semantic-ID table's {self.sids.num_items} items")


@dataclass(frozen=True)
class RecommenderInputs:
    """Everything ``Recommender.fit`` may learn from or report to; what a model does not declare is None."""

    sequences: list[np.ndarray]  # ordered training sequences of item ids
    valid: EvalSet | FeedbackSet | None = None  # held-out users for per-epoch validation metrics
    feedback: list[np.ndarray] | None = None  # one 0/1 array per training sequence (``scores_feedback``)
    training: TrainingConfig | None = None  # where it trains (``trains_on_ray``); None: in process, config's device
    on_epoch: OnEpoch | None = None  # progress after every epoch (``reports_epochs``)
    epoch_eval: EpochEval | None = None  # extra metrics after every epoch (``epoch_ranking``)


@runtime_checkable
class Recommender(Protocol):
    """A sequential recommender: fit on item-id sequences, then rank the catalogue for histories.

    Every kind is built as ``cls.from_catalog(config, ItemCatalog(...))``; its config declares
    ``capabilities()``.
    """

    name: str

    @classmethod
    def from_catalog(cls, config: Any, catalog: ItemCatalog) -> Recommender:
        """The model of ``config`` for ``catalog``, untrained."""
        ...

    def fit(self, inputs: RecommenderInputs) -> Recommender:
        """Train on ``inputs.sequences``; report per-epoch metrics through ``inputs.on_epoch``."""
        ...

    def recommend(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        """(users, k) int64 item ids, best first; -1 marks an empty slot."""
        ...

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters, one count per name of ``parameter_parts`` (e.g. ``total``, ``item``)."""
        ...


def validate_histories(histories: list[np.ndarray], num_items: int) -> None:
    """Raise ValueError naming the first user whose history is empty or holds an id outside [0, num_items)."""
    for user, history in enumerate(histories):
        items = np.asarray(history)
        if items.size == 0:
            raise ValueError(f"history of user {user} is empty; every history needs at least one item")
        if not np.issubdtype(items.dtype, np.integer):
            raise ValueError(f"history of user {user} has dtype {items.dtype}; item ids must be integers")
        bad = (items < 0) | (items >= num_items)
        if bad.any():
            item = int(items[np.argmax(bad)])
            raise ValueError(
                f"history of user {user} holds item id {item}, outside the catalogue [0, {num_items})"
            )
