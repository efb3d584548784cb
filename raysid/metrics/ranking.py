"""Full-ranking metrics for next-item recommendation with one relevant item per user.

MusicRec reports HR@K and NDCG@K (K = 5, 10) over the full item ranking; FusID reports MRR and
Recall@K (K = 1, 5, 10, 20). With a single relevant item per user these reduce to functions of its
1-based rank r:

- HR@K = [r <= K] (a hit in the top K);
- Recall@K = |relevant ∩ top K| / |relevant|, which with one relevant item is [r <= K] = HR@K;
- NDCG@K = [r <= K] / log2(r + 1) (the ideal DCG is 1);
- MRR = 1 / r, the reciprocal rank over the whole list given (a list of n items is MRR@n).

An item absent from the list (r = 0 here) scores 0 on every metric. Every metric is the mean over users.
``ranks_from_scores`` gives r over the whole catalogue from exact scores (users, items), so MRR and
Recall@K need no materialised ranking: ``metrics_from_ranks`` computes them from r alone.
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
    return metrics_from_ranks(hits_by_rank(ranked, targets), ks)


def metrics_from_ranks(ranks: np.ndarray, ks: tuple[int, ...] = (5, 10)) -> dict[str, float]:
    """``ranking_metrics`` from each user's 1-based target rank (users,), 0 where the target is absent."""
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or len(ranks) == 0 or not np.issubdtype(ranks.dtype, np.integer) or (ranks < 0).any():
        raise ValueError(f"ranks must be a non-empty 1-D array of integers >= 0, got {ranks.dtype} shape {ranks.shape}")
    for k in ks:
        if k < 1:
            raise ValueError(f"k={k} must be a positive integer")
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


def ranking_metric_names(ks: tuple[int, ...]) -> set[str]:
    """The keys ``ranking_metrics`` returns for cut-offs ``ks``."""
    return {f"{name}@{k}" for k in ks for name in ("hr", "ndcg", "recall")} | {"mrr"}


def mrr(ranked: np.ndarray, targets: np.ndarray) -> float:
    """Mean reciprocal rank of each user's target in its ranked list (users, n); 0 where it is absent."""
    return ranking_metrics(ranked, targets, ks=())["mrr"]


def recall_at_k(ranked: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Mean over users of |relevant ∩ top k| / |relevant|; one target per user makes it HR@k."""
    return ranking_metrics(ranked, targets, ks=(k,))[f"recall@{k}"]


def ranks_from_scores(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(users,) int64 1-based rank of each target among all items by ``scores`` (users, items), higher first.

    Ties are broken by the lower item id, as a stable sort of the negated scores would rank them.
    """
    scores, targets = np.asarray(scores), np.asarray(targets)
    if scores.ndim != 2 or targets.ndim != 1 or len(scores) != len(targets) or scores.shape[1] == 0:
        raise ValueError(f"need scores (users, items) and targets (users,); got shapes {scores.shape} and {targets.shape}")
    if not np.issubdtype(targets.dtype, np.integer) or ((targets < 0) | (targets >= scores.shape[1])).any():
        raise ValueError(f"targets must be item ids in [0, {scores.shape[1]}); scores shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"scores hold NaN; scores shape {scores.shape}")
    own = np.take_along_axis(scores, targets[:, None], axis=1)  # (users, 1)
    lower_id = np.arange(scores.shape[1])[None, :] < targets[:, None]  # (users, items)
    ahead = (scores > own) | ((scores == own) & lower_id)
    return (ahead.sum(axis=1) + 1).astype(np.int64)
