"""Content retrieval by hierarchical token matching (3MToken, Table 1 and Appendix C).

Given a query track, rank the other tracks by how well their semantic IDs match and check whether
the top k are relevant (same curated playlist, same listening session). 3MToken's matching is
hierarchical: level 2 counts only where level 1 matches, level 3 only where levels 1 and 2 match,
so the score of a pair is the length of the common prefix of their code rows (0..positions).

Such a score ranks coarsely: with L levels there are only L + 1 distinct scores, so many candidates
tie. Ties are broken by one seeded random permutation of the corpus (the same for every query), so a
run is reproducible and ties are not resolved in favour of low item ids; in expectation over seeds
the metrics equal those of a uniformly random order within each tie group. A metric that depends on
the order within a tie group moves with the seed: report it over several seeds.

``codes`` is (items, positions) int with item ids as rows; ``items`` selects the query/corpus items.
The codes form one hierarchy. 3MToken has one RQ-VAE per modality and adds the per-modality scores
with equal weights; for such block-wise IDs, sum ``hierarchical_match_scores`` over column blocks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

MAX_CHUNK_CELLS = 1 << 22  # query x corpus cells scored and ranked at once (~100 MB scratch at peak)
MAX_PAIR_BATCH = 1 << 24  # co-occurrence pairs expanded at once (~130 MB as int64 keys)


def hierarchical_match_scores(
    codes_query: np.ndarray, codes_corpus: np.ndarray, blocks: Sequence[int] | None = None
) -> np.ndarray:
    """Length of the common code prefix of every (query, corpus) pair: (queries, corpus) int32.

    ``blocks`` gives each position's block (e.g. one per modality: ``[0, 0, 0, 1, 1, 1]``); the score is then
    the sum over blocks of each block's common prefix, as 3MToken sums its per-modality matches. None = one
    block (the whole identifier is one hierarchy).
    """
    codes_query, codes_corpus = _codes(codes_query, "codes_query"), _codes(codes_corpus, "codes_corpus")
    if codes_query.shape[1] != codes_corpus.shape[1]:
        raise ValueError(
            f"codes_query has {codes_query.shape[1]} positions but codes_corpus has {codes_corpus.shape[1]}"
        )
    scores = np.empty((codes_query.shape[0], codes_corpus.shape[0]), dtype=np.int32)
    for start, stop, chunk in _score_chunks(codes_query, codes_corpus, blocks):
        scores[start:stop] = chunk
    return scores


def prefix_top_k(codes: np.ndarray, items: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """For each of ``items``, the ids of the k other ``items`` that match it best: (items, min(k, n-1)).

    Ranked by prefix-match length descending, ties broken by the seeded permutation (module docstring).
    """
    codes, items = _codes(codes, "codes"), _items(items)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ranked = np.empty((items.size, min(k, max(items.size - 1, 0))), dtype=np.int64)
    if ranked.size == 0:
        return ranked
    for start, stop, top in _ranked_chunks(codes[items], np.arange(items.size), ranked.shape[1], seed):
        ranked[start:stop] = items[top]
    return ranked


def retrieval_metric_names(ks: tuple[int, ...] = (5, 10, 20, 50)) -> set[str]:
    """The keys ``retrieval_metrics`` returns for cut-offs ``ks``."""
    return {f"retrieval/{name}@{k}" for k in ks for name in ("precision", "recall", "hit")} | {"retrieval/queries"}


def retrieval_metrics(
    codes: np.ndarray,
    items: np.ndarray,
    relevant: Sequence[np.ndarray],
    ks: tuple[int, ...] = (5, 10, 20, 50),
    seed: int = 0,
    blocks: Sequence[int] | None = None,
) -> dict[str, float]:
    """Precision@k, Recall@k and Hit@k of prefix-match retrieval among ``items``, averaged over queries.

    Every item of ``items`` queries the others (itself excluded); ``relevant[i]`` holds the item ids
    relevant to ``items[i]``. Relevant ids outside ``items`` and the query itself cannot be retrieved
    and are dropped; queries left with no relevant item are skipped. Precision@k divides by k even
    when fewer than k candidates exist; Recall@k divides by the query's number of relevant items.
    Returns ``retrieval/precision@k``, ``retrieval/recall@k``, ``retrieval/hit@k`` (NaN with no
    query) and ``retrieval/queries``, the number of queries averaged over.
    """
    codes, items = _codes(codes, "codes"), _items(items)
    if len(relevant) != items.size:
        raise ValueError(f"relevant has {len(relevant)} entries but items has {items.size} (one per item)")
    if not ks or any(int(k) < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty tuple of integers >= 1, got {ks}")
    query_rows, relevant_cols = _relevant_pairs(items, relevant)  # positions in items
    num_relevant = np.bincount(query_rows, minlength=items.size)
    queries = np.flatnonzero(num_relevant)
    depth = min(max(ks), items.size - 1)
    hits = np.zeros((queries.size, max(depth, 1)), dtype=np.int64)  # cumulative hits at each depth
    if depth > 0:
        for start, stop, top in _ranked_chunks(codes[items], queries, depth, seed, blocks):
            low = np.searchsorted(query_rows, queries[start], side="left")  # query_rows is sorted
            high = np.searchsorted(query_rows, queries[stop - 1], side="right")
            mask = np.zeros((stop - start, items.size), dtype=bool)  # (chunk, n) relevance
            mask[np.searchsorted(queries[start:stop], query_rows[low:high]), relevant_cols[low:high]] = True
            hits[start:stop] = np.cumsum(np.take_along_axis(mask, top, axis=1), axis=1)
    return _average(hits, num_relevant[queries], ks, depth)


def cooccurrence_relevance(sequences: Sequence[np.ndarray], items: np.ndarray) -> list[np.ndarray]:
    """For each of ``items``, the sorted ids of the other ``items`` that share a sequence with it.

    Sequence entries outside ``items`` are ignored. Pairs are expanded one batch of sequences at a
    time and deduplicated as sorted int64 keys, so memory follows the number of related pairs.
    """
    items = _items(items)
    n = max(items.size, 1)  # key base: keys are a * n + b
    order = np.argsort(items)
    sorted_items = items[order]
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if len(sequences) else lengths
    seq_ids = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    ranks, found = _lookup(sorted_items, flat)  # ranks index sorted_items
    memberships = _sorted_unique(seq_ids[found] * n + ranks[found])  # sorted by sequence, then rank
    keys = _pair_keys(memberships // n, memberships % n, n)  # sorted: by owner rank, then other rank
    owner, other = keys // n, keys % n
    groups = np.split(sorted_items[other], np.cumsum(np.bincount(owner, minlength=items.size))[:-1])
    rank_of_item = np.empty(items.size, dtype=np.int64)
    rank_of_item[order] = np.arange(items.size)
    return [groups[r] for r in rank_of_item]


def _pair_keys(seq_ids: np.ndarray, ranks: np.ndarray, n: int) -> np.ndarray:
    """Sorted unique keys a * n + b of every pair a != b of ranks sharing a sequence id (input sorted)."""
    if seq_ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, seq_ids[1:] != seq_ids[:-1]])
    sizes = np.diff(np.r_[starts, seq_ids.size])  # members per sequence
    cost = np.cumsum(sizes**2) - sizes**2  # pairs expanded before each sequence
    batch_of_seq = cost // MAX_PAIR_BATCH
    bounds = np.r_[np.flatnonzero(np.r_[True, batch_of_seq[1:] != batch_of_seq[:-1]]), sizes.size]
    keys = [_expand_pairs(ranks, starts[a:b], sizes[a:b], n) for a, b in zip(bounds[:-1], bounds[1:])]
    return _sorted_unique(np.concatenate([_sorted_unique(k) for k in keys]))


def _expand_pairs(ranks: np.ndarray, starts: np.ndarray, sizes: np.ndarray, n: int) -> np.ndarray:
    """Keys a * n + b of all ordered pairs a != b within each group ranks[start:start+size]."""
    member = _members(starts, sizes)  # every member index, group after group
    group_size = np.repeat(sizes, sizes)  # per member, the size of its group
    group_start = np.repeat(starts, sizes)
    left = np.repeat(member, group_size)  # each member once per partner
    offsets = np.arange(left.size) - np.repeat(np.cumsum(group_size) - group_size, group_size)
    right = np.repeat(group_start, group_size) + offsets
    a, b = ranks[left], ranks[right]
    return (a * n + b)[a != b]


def _members(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Indices start..start+size-1 of every group, concatenated."""
    return np.repeat(starts, sizes) + np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def _average(hits: np.ndarray, num_relevant: np.ndarray, ks: tuple[int, ...], depth: int) -> dict[str, float]:
    """Mean precision/recall/hit at each k from cumulative hits (queries, depth) per query."""
    metrics: dict[str, float] = {}
    for k in ks:
        found = hits[:, min(k, depth) - 1] if depth > 0 else np.zeros(hits.shape[0], dtype=np.int64)
        metrics[f"retrieval/precision@{k}"] = _mean(found / k)
        metrics[f"retrieval/recall@{k}"] = _mean(found / np.maximum(num_relevant, 1))
        metrics[f"retrieval/hit@{k}"] = _mean((found > 0).astype(np.float64))
    metrics["retrieval/queries"] = int(hits.shape[0])
    return metrics


def _mean(values: np.ndarray) -> float:
    """Mean as a Python float, NaN for no values (without numpy's empty-mean warning)."""
    return float(values.mean()) if values.size else float("nan")


def _ranked_chunks(
    codes: np.ndarray, queries: np.ndarray, depth: int, seed: int, blocks: Sequence[int] | None = None
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Per chunk of ``queries`` (row positions in codes), the top ``depth`` other rows best first."""
    n = codes.shape[0]
    tiebreak = np.random.default_rng(seed).permutation(n).astype(np.int64)  # higher wins a tie
    for start, stop, scores in _score_chunks(codes[queries], codes, blocks):
        keys = scores.astype(np.int64) * n + tiebreak  # (chunk, n): unique per row, score first
        keys[np.arange(stop - start), queries[start:stop]] = -1  # the query itself ranks last
        top = np.argpartition(-keys, depth - 1, axis=1)[:, :depth]  # best ``depth``, unordered
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)
        yield start, stop, np.take_along_axis(top, order, axis=1)


def _score_chunks(
    query: np.ndarray, corpus: np.ndarray, blocks: Sequence[int] | None = None
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Prefix-match scores for successive row chunks of ``query``: (start, stop, (chunk, corpus) int32)."""
    blocks = np.zeros(query.shape[1], dtype=np.int64) if blocks is None else np.asarray(blocks)
    if blocks.shape != (query.shape[1],):
        raise ValueError(f"blocks must give one block per position ({query.shape[1]}), got {blocks.tolist()}")
    starts = np.r_[True, blocks[1:] != blocks[:-1]]  # a new block restarts the prefix
    chunk = max(1, MAX_CHUNK_CELLS // max(corpus.shape[0], 1))
    for start in range(0, query.shape[0], chunk):
        block = query[start : start + chunk]
        alive = np.ones((block.shape[0], corpus.shape[0]), dtype=bool)  # prefix still matching
        scores = np.zeros(alive.shape, dtype=np.int32)
        for position in range(query.shape[1]):
            if starts[position]:
                alive[:] = True
            alive &= block[:, position, None] == corpus[None, :, position]
            scores += alive
        yield start, start + block.shape[0], scores


def _relevant_pairs(items: np.ndarray, relevant: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Unique (query position, relevant position) pairs within ``items``, self pairs dropped, sorted."""
    order = np.argsort(items)
    lengths = np.array([len(r) for r in relevant], dtype=np.int64)
    flat = np.concatenate([np.asarray(r, dtype=np.int64) for r in relevant]) if len(relevant) else lengths
    rows = np.repeat(np.arange(items.size, dtype=np.int64), lengths)
    ranks, found = _lookup(items[order], flat)
    rows, cols = rows[found], order[ranks[found]]
    keys = _sorted_unique(rows * items.size + cols)
    rows, cols = keys // max(items.size, 1), keys % max(items.size, 1)
    return rows[rows != cols], cols[rows != cols]


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a plain sort: numpy 2's hash-based ``np.unique`` is slower on int64 keys)."""
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if values.size else values


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each id in ``sorted_ids`` (clipped) and whether it is there at all."""
    ranks = np.clip(np.searchsorted(sorted_ids, ids), 0, max(sorted_ids.size - 1, 0))
    found = sorted_ids[ranks] == ids if sorted_ids.size else np.zeros(ids.shape, dtype=bool)
    return ranks, found


def _codes(codes: np.ndarray, name: str) -> np.ndarray:
    """Check that ``codes`` is a 2-D integer matrix."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
        message = f"{name} must be a 2-D integer matrix (items, positions), got {codes.dtype} {codes.shape}"
        raise ValueError(message)
    return codes


def _items(items: np.ndarray) -> np.ndarray:
    """Check that ``items`` is a 1-D array of distinct integer ids."""
    items = np.asarray(items)
    if items.ndim != 1 or (items.size and not np.issubdtype(items.dtype, np.integer)):
        raise ValueError(f"items must be a 1-D array of integer ids, got {items.dtype} {items.shape}")
    items = items.astype(np.int64)
    if np.unique(items).size != items.size:
        raise ValueError(f"items must be distinct, got {items.size - np.unique(items).size} duplicate ids")
    return items
