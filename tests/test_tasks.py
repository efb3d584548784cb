"""MusicRec's generation tasks (uni-modal, multi-modal, alignment) on multi-modal identifiers."""

import numpy as np
import pytest
import torch

from raysid.config import ConfigError
from raysid.recommenders.base import RecommenderInputs
from raysid.recommenders.t5 import T5Recommender, T5RecommenderConfig
from raysid.recommenders.tasks import build_tasks, modality_columns
from raysid.semantic_ids.table import SemanticIds

NAMES = ("s1", "text1", "text2", "audio1", "audio2", "t")


def test_columns_split_shared_and_each_modality():
    shared, groups = modality_columns(NAMES)
    assert shared == (0,) and groups == {"text": (1, 2), "audio": (3, 4)}  # the tie-break belongs to no modality


def test_tasks_and_their_columns():
    ranking, trained, tokens = build_tasks(("mmg", "umg", "mma"), NAMES, first_token=100)
    names = [task.name for task in trained]
    assert names == ["mmg", "umg:text", "umg:audio", "mma:text>audio", "mma:audio>text"]
    assert tokens == 5 and [task.token for task in trained] == [100, 101, 102, 103, 104]
    assert ranking.source == ranking.target == tuple(range(6))
    umg_audio, align = trained[2], trained[4]
    assert umg_audio.source == umg_audio.target == (0, 3, 4) and not umg_audio.item_input
    assert align.source == (3, 4) and align.target == (1, 2) and align.item_input


def test_without_mmg_ranking_still_uses_the_full_identifier():
    ranking, trained, tokens = build_tasks(("umg", "mma"), NAMES, first_token=10)
    assert "mmg" not in [task.name for task in trained] and ranking.name == "mmg" and ranking.token == 10


def test_one_task_needs_no_task_token():
    ranking, trained, tokens = build_tasks(("mmg",), NAMES, first_token=10)
    assert tokens == 0 and ranking.token is None and trained == [ranking]


@pytest.mark.parametrize("kinds, match", [(("mmg", "next"), "choose one or more"), ((), "choose one or more")])
def test_unknown_tasks_are_named(kinds, match):
    with pytest.raises(ConfigError, match=match):
        build_tasks(kinds, NAMES, 10)


def test_umg_needs_modality_positions():
    with pytest.raises(ConfigError, match="modality-specific positions"):
        build_tasks(("mmg", "umg"), ("rq1", "rq2", "t"), 10)


def _model(tasks):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, size=(40, 5))
    sids = SemanticIds.from_codes(codes, NAMES[:-1], (4,) * 5, tie_break=True)
    config = T5RecommenderConfig(d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8, epochs=2, beam_size=5, tasks=tasks)
    return T5Recommender(config, sids)


def test_encoder_reads_the_tasks_columns_and_token():
    model = _model(("mmg", "umg", "mma"))
    umg_text = model.tasks[1]
    ids, mask = model.encoder_inputs(torch.tensor([[3, 7]]), umg_text)
    tokens = model.item_tokens
    expected = [*tokens[3, [0, 1, 2]].tolist(), *tokens[7, [0, 1, 2]].tolist(), umg_text.token, 1]
    assert ids[0].tolist() == expected and mask.all()
    assert model.model.config.vocab_size == model.vocab.size + 5


def test_t5_trains_every_task_and_ranks_real_items():
    sequences = [np.random.default_rng(s).integers(0, 40, size=6) for s in range(30)]
    model = _model(("mmg", "umg", "mma"))
    losses = []
    model.fit(RecommenderInputs(sequences, on_epoch=lambda epoch, metrics: losses.append(metrics["train/loss"])))
    ranked = model.recommend([s[:-1] for s in sequences[:4]], 5)
    assert ranked.shape == (4, 5) and ((ranked >= 0) & (ranked < 40)).all()
    assert np.isfinite(losses).all() and len(losses) == 2
