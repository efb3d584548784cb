"""Codebook usage/entropy, reconstruction and retrieval metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from raysid.metrics import retrieval
from raysid.metrics.codebook import (
    level_entropy,
    level_usage,
    normalised_level_entropy,
    usage_histograms,
)
from raysid.metrics.reconstruction import reconstruction_metrics, row_cosine
from raysid.metrics.retrieval import (
    cooccurrence_relevance,
    hierarchical_match_scores,
    prefix_top_k,
    retrieval_metrics,
)

# Four items, three positions with K = (2, 2, 3). Column counts: [2, 2], [4, 0], [1, 1, 2].
CODES = np.array([[0, 0, 0], [0, 0, 1], [1, 0, 2], [1, 0, 2]], dtype=np.int64)
SIZES = (2, 2, 3)


# --- codebook usage and entropy -------------------------------------------------------------------


def test_level_usage_counts_items_per_code_including_unused_codes():
    usage = level_usage(CODES, SIZES)
    assert [u.tolist() for u in usage] == [[2, 2], [4, 0], [1, 1, 2]]
    assert [u.tolist() for u in level_usage(CODES, 3)] == [[2, 2, 0], [4, 0, 0], [1, 1, 2]]


def test_level_entropy_in_bits_and_normalised():
    # [2, 2] -> 1 bit; [4, 0] -> 0; [1, 1, 2] -> 2 * (1/4 * 2) + 1/2 * 1 = 1.5 bits.
    assert level_entropy(CODES, SIZES).tolist() == pytest.approx([1.0, 0.0, 1.5])
    expected = [1.0, 0.0, 1.5 / math.log2(3)]
    assert level_entropy(CODES, SIZES, normalised=True).tolist() == pytest.approx(expected)
    assert normalised_level_entropy(CODES, SIZES).tolist() == pytest.approx(expected)


def test_level_entropy_edge_cases():
    single = np.zeros((3, 1), dtype=np.int64)
    assert level_entropy(single, 1).tolist() == [0.0]
    assert normalised_level_entropy(single, 1).tolist() == [0.0]  # K = 1: no spread to measure
    assert np.isnan(level_entropy(np.zeros((0, 2), dtype=np.int64), 4)).all()


def test_usage_rejects_codes_outside_the_codebook():
    with pytest.raises(ValueError, match=r"position 2 must lie in \[0, 2\)"):
        level_usage(CODES, 2)


def test_usage_histograms_long_format_train_vs_test():
    frame = usage_histograms(CODES, SIZES, train_items=np.array([0, 1]), test_items=np.array([2, 3]))
    assert frame.columns == ["position", "code", "train_count", "test_count"]
    assert all(dtype == pl.Int64 for dtype in frame.dtypes)
    assert frame.rows() == [
        (0, 0, 2, 0), (0, 1, 0, 2),
        (1, 0, 2, 2), (1, 1, 0, 0),
        (2, 0, 1, 0), (2, 1, 1, 0), (2, 2, 0, 2),
    ]  # fmt: skip


# --- reconstruction -------------------------------------------------------------------------------

ORIGINAL = {
    "text": np.array([[1.0, 0.0], [0.0, 2.0]]),
    "audio": np.array([[1.0, 1.0], [0.0, 0.0], [3.0, 4.0]]),
    "lyrics": np.ones((3, 2)),  # not reconstructed: skipped
}
RECONSTRUCTED = {
    "text": np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32),
    "audio": np.array([[1.0, -1.0], [1.0, 0.0], [3.0, 4.0]]),
    "fused": np.zeros((3, 4)),  # not an input modality: ignored
}


def test_reconstruction_metrics_by_hand_with_a_zero_row():
    metrics = reconstruction_metrics(ORIGINAL, RECONSTRUCTED)
    # text: squared errors 0, 0, 0, 1 -> 1/4; both rows point the same way -> cosine 1.
    # audio: squared errors (0 + 4) + (1 + 0) + 0 over 6 elements -> 5/6; cosines 0 (orthogonal),
    # 0 (zero original row, counted), 1 -> 1/3.
    assert metrics == pytest.approx(
        {
            "recon/audio/mse": 5 / 6,
            "recon/audio/cosine": 1 / 3,
            "recon/text/mse": 0.25,
            "recon/text/cosine": 1.0,
            "recon/mse": (5 / 6 + 0.25) / 2,
            "recon/cosine": (1 / 3 + 1.0) / 2,
        }
    )
    assert all(isinstance(value, float) for value in metrics.values())


def test_reconstruction_metrics_on_selected_items():
    metrics = reconstruction_metrics(ORIGINAL, RECONSTRUCTED, items=np.array([1]))
    assert metrics["recon/text/mse"] == pytest.approx(0.5)  # (0 + 1) / 2
    assert metrics["recon/audio/mse"] == pytest.approx(0.5)  # (1 + 0) / 2
    assert metrics["recon/audio/cosine"] == 0.0  # zero row


def test_row_cosine_zero_norm_on_either_side_is_zero():
    a = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    b = np.array([[1.0, 0.0], [0.0, 0.0], [-1.0, 0.0]])
    assert row_cosine(a, b).tolist() == [0.0, 0.0, -1.0]


def test_reconstruction_metrics_without_common_modalities_is_empty():
    assert reconstruction_metrics(ORIGINAL, {"fused": np.zeros((3, 4))}) == {}


def test_reconstruction_shape_mismatch_names_modality_and_shapes():
    with pytest.raises(ValueError, match=r"'audio'.*\(3, 2\).*\(3, 3\)"):
        reconstruction_metrics(ORIGINAL, {"audio": np.zeros((3, 3))})


# --- hierarchical matching ------------------------------------------------------------------------

# Rows A..D. A and C share levels 1 and 3 but not 2: only level 1 counts. A and D share levels 2 and 3
# but not level 1: nothing counts.
MATCH_CODES = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 2], [1, 1, 2]], dtype=np.int64)
MATCH_EXPECTED = [[3, 2, 1, 0], [2, 3, 1, 0], [1, 1, 3, 0], [0, 0, 0, 3]]


def test_hierarchical_match_scores_are_common_prefix_lengths():
    assert hierarchical_match_scores(MATCH_CODES, MATCH_CODES).tolist() == MATCH_EXPECTED
    assert hierarchical_match_scores(MATCH_CODES[2:], MATCH_CODES).tolist() == MATCH_EXPECTED[2:]


def test_hierarchical_match_scores_in_chunks_of_one_query(monkeypatch):
    monkeypatch.setattr(retrieval, "MAX_CHUNK_CELLS", 4)  # 4 cells / 4 corpus rows = 1 query per chunk
    assert hierarchical_match_scores(MATCH_CODES, MATCH_CODES).tolist() == MATCH_EXPECTED


def test_hierarchical_match_scores_rejects_bad_codes():
    with pytest.raises(ValueError, match="3 positions but codes_corpus has 2"):
        hierarchical_match_scores(MATCH_CODES, MATCH_CODES[:, :2])
    with pytest.raises(ValueError, match="codes_query must be a 2-D integer matrix"):
        hierarchical_match_scores(MATCH_CODES.astype(float), MATCH_CODES)


# --- retrieval ------------------------------------------------------------------------------------

# Item ids 10..14 are rows 10..14 of a larger code table. From item 10 the other scores are
# 14: 3, 11: 2, 12: 1, 13: 0 and from item 14 they are 10: 3, 11: 2, 12: 1, 13: 0: no ties.
RETRIEVAL_CODES = np.zeros((16, 3), dtype=np.int64)
RETRIEVAL_CODES[10:15] = [[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 0]]
ITEMS = np.array([10, 11, 12, 13, 14])
RELEVANT = [
    np.array([11, 13]),  # query 10: ranking 14, 11, 12, 13
    np.array([11, 99]),  # query 11: only itself and an id outside the items -> skipped
    np.array([], dtype=np.int64),
    np.array([], dtype=np.int64),
    np.array([12, 12]),  # query 14: ranking 10, 11, 12, 13; duplicates count once
]


def test_prefix_top_k_ranks_by_prefix_length():
    ranked = prefix_top_k(RETRIEVAL_CODES, ITEMS, k=4)
    assert ranked[0].tolist() == [14, 11, 12, 13]
    assert ranked[4].tolist() == [10, 11, 12, 13]
    assert prefix_top_k(RETRIEVAL_CODES, ITEMS, k=9).shape == (5, 4)  # only 4 others exist


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_retrieval_metrics_by_hand_without_ties(seed):
    metrics = retrieval_metrics(RETRIEVAL_CODES, ITEMS, RELEVANT, ks=(1, 2, 3, 10), seed=seed)
    # Query 10 (2 relevant) hits at ranks 2 and 4; query 14 (1 relevant) at rank 3.
    assert metrics == pytest.approx(
        {
            "retrieval/precision@1": 0.0, "retrieval/recall@1": 0.0, "retrieval/hit@1": 0.0,
            "retrieval/precision@2": (1 / 2 + 0) / 2, "retrieval/recall@2": (1 / 2 + 0) / 2,
            "retrieval/hit@2": 0.5,
            "retrieval/precision@3": (1 / 3 + 1 / 3) / 2, "retrieval/recall@3": (1 / 2 + 1) / 2,
            "retrieval/hit@3": 1.0,
            # Fewer than 10 candidates: everything is retrieved, precision still divides by 10.
            "retrieval/precision@10": (2 / 10 + 1 / 10) / 2, "retrieval/recall@10": 1.0,
            "retrieval/hit@10": 1.0,
            "retrieval/queries": 2,
        }
    )  # fmt: skip


def test_tie_break_seed_changes_the_ranking_but_not_this_metric():
    # Items 1 and 2 both match item 0 on every level; both are relevant to it.
    codes = np.array([[0, 0], [0, 0], [0, 0], [1, 1]], dtype=np.int64)
    items = np.arange(4)
    relevant = [np.array([1, 2])] + [np.array([], dtype=np.int64)] * 3
    firsts = {int(prefix_top_k(codes, items, k=1, seed=seed)[0, 0]) for seed in range(20)}
    assert firsts == {1, 2}  # the seed decides which tied item comes first
    results = [retrieval_metrics(codes, items, relevant, ks=(1, 2), seed=seed) for seed in range(20)]
    expected = {
        "retrieval/precision@1": 1.0, "retrieval/recall@1": 0.5, "retrieval/hit@1": 1.0,
        "retrieval/precision@2": 1.0, "retrieval/recall@2": 1.0, "retrieval/hit@2": 1.0,
        "retrieval/queries": 1,
    }  # fmt: skip
    assert all(result == pytest.approx(expected) for result in results)


def test_retrieval_metrics_in_small_chunks_match(monkeypatch):
    expected = retrieval_metrics(RETRIEVAL_CODES, ITEMS, RELEVANT, ks=(1, 2, 3))
    monkeypatch.setattr(retrieval, "MAX_CHUNK_CELLS", 5)  # one query per chunk
    assert retrieval_metrics(RETRIEVAL_CODES, ITEMS, RELEVANT, ks=(1, 2, 3)) == expected


def test_retrieval_metrics_without_queries_is_nan():
    metrics = retrieval_metrics(RETRIEVAL_CODES, ITEMS, [np.array([], dtype=np.int64)] * 5, ks=(5,))
    assert metrics["retrieval/queries"] == 0
    assert math.isnan(metrics["retrieval/hit@5"])


def test_retrieval_metrics_errors():
    with pytest.raises(ValueError, match="relevant has 2 entries but items has 5"):
        retrieval_metrics(RETRIEVAL_CODES, ITEMS, RELEVANT[:2])
    with pytest.raises(ValueError, match="items must be distinct"):
        retrieval_metrics(RETRIEVAL_CODES, np.array([10, 10]), RELEVANT[:2])
    with pytest.raises(ValueError, match="ks must be"):
        retrieval_metrics(RETRIEVAL_CODES, ITEMS, RELEVANT, ks=(0, 5))


# --- co-occurrence relevance ----------------------------------------------------------------------

PLAYLISTS = [np.array([10, 11, 12]), np.array([12, 13, 12]), np.array([14, 10, 99])]


def test_cooccurrence_relevance_from_three_playlists():
    # 99 is not among the items; 15 is in no playlist; 12 repeated in a playlist counts once.
    items = np.array([13, 10, 11, 12, 14, 15])
    relevance = cooccurrence_relevance(PLAYLISTS, items)
    assert [r.tolist() for r in relevance] == [[12], [11, 12, 14], [10, 12], [10, 11, 13], [10], []]


def test_cooccurrence_relevance_in_small_batches(monkeypatch):
    monkeypatch.setattr(retrieval, "MAX_PAIR_BATCH", 4)  # one playlist per batch
    relevance = cooccurrence_relevance(PLAYLISTS, np.array([10, 11, 12, 13, 14]))
    assert [r.tolist() for r in relevance] == [[11, 12, 14], [10, 12], [10, 11, 13], [12], [10]]


def test_cooccurrence_relevance_feeds_retrieval_metrics():
    items = np.array([10, 11, 12, 13, 14])
    relevance = cooccurrence_relevance(PLAYLISTS, items)
    metrics = retrieval_metrics(RETRIEVAL_CODES, items, relevance, ks=(4,))
    # Every query retrieves all 4 others at k = 4, so recall and hit are 1 and precision is |rel| / 4.
    assert metrics["retrieval/recall@4"] == 1.0
    assert metrics["retrieval/hit@4"] == 1.0
    assert metrics["retrieval/precision@4"] == pytest.approx((3 + 2 + 3 + 1 + 1) / 4 / 5)


def test_block_scores_sum_each_blocks_common_prefix():
    """3MToken sums per-modality matches: blocks [0, 0, 1, 1] restart the prefix at position 2."""
    from raysid.metrics.retrieval import hierarchical_match_scores
    from raysid.quality import position_blocks

    query = np.array([[1, 2, 3, 4]])
    corpus = np.array([[1, 2, 3, 4], [9, 2, 3, 4], [1, 9, 3, 4], [9, 9, 3, 9]])
    assert hierarchical_match_scores(query, corpus).tolist() == [[4, 0, 1, 0]]
    assert hierarchical_match_scores(query, corpus, [0, 0, 1, 1]).tolist() == [[2 + 2, 0 + 2, 1 + 2, 0 + 1]]
    assert position_blocks(("s1", "s2", "text1", "text2", "audio1")) == [0, 0, 1, 1, 2]
    assert position_blocks(("rq1", "rq2", "rq3")) == [0, 0, 0]
    with pytest.raises(ValueError, match="one block per position"):
        hierarchical_match_scores(query, corpus, [0, 1])
