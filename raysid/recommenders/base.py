"""The one recommender contract every model follows, plus small helpers they share.

Every recommender (SASRec, T5, GPT-2, popularity) is fitted on training sequences of item ids and
returns ranked item ids for histories, so the metrics never ask which model they have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from raysid.devices import resolve_device, seed_everything  # noqa: F401  (re-exported for the models)

if TYPE_CHECKING:
    from raysid.data.dataset import EvalSet

OnEpoch = Callable[[int, dict[str, float]], None]
"""Called after each epoch with (epoch starting at 1, metrics such as {"train/loss": 0.7})."""


@runtime_checkable
class Recommender(Protocol):
    """A sequential recommender: fit on item-id sequences, then rank the catalogue for histories."""

    name: str

    def fit(
        self,
        train_sequences: list[np.ndarray],
        valid: EvalSet | None = None,
        on_epoch: OnEpoch | None = None,
    ) -> Recommender:
        """Train on ordered item-id sequences; report per-epoch metrics through ``on_epoch``."""
        ...

    def recommend(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        """(users, k) int64 item ids, best first; -1 marks an empty slot."""
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
