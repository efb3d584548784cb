"""Full-ranking metrics for next-item recommendation with one relevant item per user.

MusicRec reports HR@K and NDCG@K (K = 5, 10) over the full item ranking; FusID reports MRR and
Recall@K. With a single relevant item per user these reduce to functions of its 1-based rank r:
HR@K = Recall@K = [r <= K], NDCG@K = [r <= K] / log2(r + 1) (the ideal DCG is 1), MRR = 1 / r.
An item absent from the list (r = 0 here) scores 0 on every metric.
"""

from __future__ import annotations

import numpy as np

EMPTY_SLOT = -1  # marks an unused position at the end of a ranked list


def _validate(ranked: np.ndarray, targets: np.ndarray, ks: tuple[int, ...] = ()) -> None:
    """Raise ValueError naming the problem and the shapes unless the inputs fit together."""
    shapes = f"ranked shape {ranked.shape}, targets shape {targets.shape}"
    if ranked.ndim != 2:
        raise ValueError(f"ranked must be 2-D (users, n), got {ranked.ndim}-D; {shapes}")
    if targets.ndim != 1:
        raise ValueError(f"targets must be 1-D (users,), got {targets.ndim}-D; {shapes}")
    if ranked.shape[0] != targets.shape[0]:
        raise ValueError(f"ranked has {ranked.shape[0]} users but targets has {targets.shape[0]}; {shapes}")
    if ranked.shape[0] == 0 or ranked.shape[1] == 0:
        raise ValueError(f"ranked is empty: need at least one user and one column; {shapes}")
    for k in ks:
        if not 1 <= k <= ranked.shape[1]:
            raise ValueError(f"k={k} must be in [1, {ranked.shape[1]}] (columns of ranked); {shapes}")


def hits_by_rank(ranked: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based rank of each user's target in its ranked list, 0 where absent; shape (users,).

    Empty slots (-1) never match. If an item appears twice, its first position counts.
    """
    ranked, targets = np.asarray(ranked), np.asarray(targets)
    _validate(ranked, targets)
    matches = (ranked == targets[:, None]) & (ranked != EMPTY_SLOT)  # (users, n)
    found = matches.any(axis=1)
    first = matches.argmax(axis=1)  # first True column, 0 when none
    return np.where(found, first + 1, 0).astype(np.int64)


def ranking_metrics(
    ranked: np.ndarray, targets: np.ndarray, ks: tuple[int, ...] = (5, 10)
) -> dict[str, float]:
    """HR@k, NDCG@k, Recall@k for each k and MRR over the whole list, averaged over users.

    ``ranked`` is (users, n) int item ids best first (-1 = empty slot); ``targets`` is (users,),
    one relevant item per user. Returns Python floats keyed ``hr@k``, ``ndcg@k``, ``recall@k``, ``mrr``.
    """
    ranked, targets = np.asarray(ranked), np.asarray(targets)
    _validate(ranked, targets, tuple(ks))
    ranks = hits_by_rank(ranked, targets)  # (users,), 0 = absent
    found = ranks > 0
    safe = np.where(found, ranks, 1)  # avoid division by zero where absent
    gain = np.where(found, 1.0 / np.log2(safe + 1.0), 0.0)
    metrics: dict[str, float] = {}
    for k in ks:
        in_top = found & (ranks <= k)
        metrics[f"hr@{k}"] = float(in_top.mean())
        metrics[f"ndcg@{k}"] = float(np.where(in_top, gain, 0.0).mean())
        metrics[f"recall@{k}"] = metrics[f"hr@{k}"]
    metrics["mrr"] = float(np.where(found, 1.0 / safe, 0.0).mean())
    return metrics
