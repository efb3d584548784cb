"""Collaborative (CF) item embeddings: the item embedding table of a SASRec trained on the sequences.

MusicRec aligns its tokenizer's latent to 32-d SASRec item embeddings (d_cf = 32, InfoNCE weight α).
"""

from __future__ import annotations

import numpy as np

from raysid.config import require
from raysid.distributed import TrainingConfig
from raysid.recommenders.base import RecommenderInputs
from raysid.recommenders.sasrec import SASRec, SASRecConfig


def collaborative_embeddings(
    train_sequences: list[np.ndarray], num_items: int, config: SASRecConfig, training: TrainingConfig | None = None
) -> np.ndarray:
    """(num_items, config.hidden_size) float32 item embeddings of a SASRec trained on ``train_sequences``.

    Row i belongs to item id i. Items that never occur in a training sequence of two or more items
    (shorter ones carry no next-item pair) keep their initial random rows, drawn from N(0, 0.02²) with
    ``config.seed``: they carry no collaborative signal. They are restored explicitly, because with shared
    input/output embeddings the full-catalogue softmax would otherwise push every unseen row the same
    way during training. Mask them with the training item ids where that matters. ``training`` runs the
    SASRec on Ray Train workers when it says so (default: in this process).
    """
    require(config.item_representation == "id" and not config.components, f"{config.section}.item_representation",
            "collaborative embeddings are one learned row per item: use item_representation 'id' without components")
    recommender = SASRec(config, num_items)
    initial = recommender.item_embeddings()  # (num_items, hidden)
    trained = recommender.fit(RecommenderInputs(train_sequences, training=training)).item_embeddings()  # (num_items, hidden)
    seen = np.zeros(num_items, dtype=bool)
    for sequence in train_sequences:
        if len(sequence) >= 2:
            seen[np.asarray(sequence, dtype=np.int64)] = True
    trained[~seen] = initial[~seen]
    return trained
