"""The decoding benchmark on a tiny catalog: transformers generation with prefix_allowed_tokens_fn and
raysid's vectorised trie beam search rank identically (speed is only printed)."""

from __future__ import annotations

import numpy as np
import torch
from typer.testing import CliRunner

from cli.main import app
from raysid.bench.decoding import (
    allowed_tokens_table,
    benchmark_model,
    compare_decoders,
    format_rows,
    tie_explained,
)
from raysid.recommenders.exact import exact_topk
from raysid.semantic_ids.vocab import EOS

torch.set_num_threads(1)


def test_allowed_tokens_table_by_hand():
    table = allowed_tokens_table(np.array([[2, 5, 7], [2, 6, 7], [3, 5, 8]]))
    assert table[()] == [2, 3] and table[(2,)] == [5, 6] and table[(3,)] == [5]
    assert table[(2, 5)] == [7] and table[(3, 5)] == [8] and table[(2, 6, 7)] == [EOS]
    assert len(table) == 1 + 2 + 3 + 3


def test_transformers_generate_ranks_exactly_like_raysid_beam_search():
    recommender, histories = benchmark_model(120, beam_size=8, codebook_size=4, levels=2, train_playlists=16)
    row = compare_decoders(recommender, histories[:12], batch_size=5, repeats=1)  # batches of 5, 5 and 2 users
    print("\n" + format_rows([row]))
    assert row["users"] == 12 and row["identical_users"] == 12 and row["mismatched_users"] == []
    assert row["max_score_diff"] < 1e-4 and row["raysid_s"] > 0 and row["transformers_s"] > 0
    # a mismatch is called a near-tie only when the exact scores at every position agree
    users = histories[:2]
    ours, scores = exact_topk(recommender, users, 8)
    swapped = ours.copy()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]
    assert (scores[:, 0] - scores[:, 1] > 1e-3).all()  # distinct scores, so the swap is a real disagreement
    assert tie_explained(recommender, users, np.array([0, 1]), ours, ours) == [True, True]
    assert tie_explained(recommender, users, np.array([0, 1]), ours, swapped) == [False, False]


def test_cli_prints_the_table():
    arguments = ["bench", "decoding", "--items", "120", "--batch", "2", "--users", "3", "--beam", "5",
                 "--repeats", "1", "--train-playlists", "2"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "CPU speedup" in result.output and " 3/3 " in result.output
