"""The training-step benchmark (raysid bench training) and the model-size presets, on real models and data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from cli.main import app
from raysid.bench.decoding import benchmark_model, compare_decoders
from raysid.bench.training import (
    WORKLOADS,
    BatchShape,
    build_model,
    random_sids,
    t5_step_flops,
    training_benchmark,
    training_sequences,
)
from raysid.config import ConfigError
from raysid.presets import PRESETS, apply_preset, recommender_config
from raysid.recommenders.gpt2 import GPT2RecommenderConfig
from raysid.recommenders.t5 import T5RecommenderConfig
from raysid.sweep.space import load_study

SEQUENCES = [np.array([0, 1, 2]), np.array([3, 4, 5, 6, 7])]


def _workload(kind: str, sequences=SEQUENCES, items: int = 8, levels: int = 1, codebook: int = 4):
    recommender = build_model(kind, "spine", random_sids(items, levels, codebook, 0), 8, "cpu", "fp32", 0)
    return WORKLOADS[kind](recommender, sequences, 0)


@pytest.mark.parametrize("model", ["t5", "gpt2"])
def test_figures_are_consistent(model):
    row = training_benchmark(model, "spine", num_tracks=100, steps=2, warmup=1, batch_size=8, levels=2,
                             codebook_size=8, epoch_samples=1000)
    assert row["tokens_per_s"] == pytest.approx(row["tokens_per_step"] / row["seconds_per_step"], rel=1e-12)
    assert row["real_tokens_per_s"] == pytest.approx(row["real_tokens_per_step"] / row["seconds_per_step"], rel=1e-12)
    assert row["padding_share"] == pytest.approx(1 - row["real_tokens_per_step"] / row["tokens_per_step"], rel=1e-12)
    assert row["flops_per_token"] == pytest.approx(row["gflop_per_step"] * 1e9 / row["tokens_per_step"], rel=1e-12)
    assert row["achieved_gflops"] == pytest.approx(row["gflop_per_step"] / row["seconds_per_step"], rel=1e-12)
    assert row["matmul_share"] == pytest.approx(row["achieved_gflops"] / row["matmul_gflops"], rel=1e-12)
    assert row["epoch_steps"] == math.ceil(1000 / 8) == 125
    assert row["epoch_hours"] == pytest.approx(125 * row["seconds_per_step"] / 3600, rel=1e-12)
    assert 0 < row["padding_share"] < 1 and row["matmul_gflops"] > 0 and len(row["load_average"]) == 3


def test_t5_batch_tokens_and_padding_by_hand():
    workload = _workload("t5")  # identifiers: 1 code + the tie-break digit = 2 tokens
    assert len(workload) == 2 + 4  # every prefix: histories [0], [0 1], [3], [3 4], [3 4 5], [3 4 5 6]
    shape = workload.shape(torch.arange(6))
    # encoder: the longest history (4 items × 2 tokens) + eos = 9 columns; real: Σ (2·len + 1) = 2·13 + 6
    # decoder: 2 identifier tokens + eos, all real
    assert (shape.rows, shape.source, shape.target) == (6, 9, 3)
    assert shape.tokens == 6 * 12 and shape.real == 32 + 18
    assert 1 - shape.real / shape.tokens == pytest.approx(22 / 72)


def test_gpt2_batch_tokens_and_padding_by_hand():
    workload = _workload("gpt2")
    shape = workload.shape(torch.arange(2))
    # windows of 3 and 5 items: start + 5 × 2 tokens, minus the last token the model never reads = 10 columns;
    # real: 1 + 3·2 for the short window, 1 + 5·2 - 1 for the long one
    assert (shape.rows, shape.source, shape.target, shape.real) == (2, 10, 0, 7 + 10)


def test_t5_flops_by_hand():
    shape = BatchShape(rows=2, source=3, target=2, real=0)
    # d 4, d_ff 8, 1 layer, 2 heads of d_kv 2 (inner 4), vocab 10; multiply-adds:
    encoder = 2 * 3 * (4 * 4 * 4 + 2 * 4 * 8) + 2 * 2 * 3 * 3 * 4  # 768 + 144
    decoder = 2 * 2 * (6 * 4 * 4 + 2 * 4 * 8) + 2 * 3 * 2 * 4 * 4 + 2 * 2 * 2 * 2 * 4 + 2 * 2 * 2 * 3 * 4  # 640 + 192 + 64 + 96
    output = 2 * 2 * 4 * 10
    assert encoder + decoder + output == 2064
    assert t5_step_flops(shape, 4, 8, 1, 2, 2, 10) == 6 * 2064


@pytest.mark.parametrize("model", ["t5", "gpt2"])
def test_flops_formula_equals_torch_flop_counter(model):
    sequences, items, _ = training_sequences(None, 100, 0)
    workload = _workload(model, sequences, items, levels=2, codebook=8)
    index = workload.batches(1, 8)[0]
    with FlopCounterMode(display=False) as counter:
        workload.loss(index).backward()  # forward and backward of one real training batch
    assert counter.get_total_flops() == workload.flops(workload.shape(index))


def test_presets_resolve_to_the_documented_values():
    paper = recommender_config("paper", "t5")
    assert (paper.d_model, paper.d_ff, paper.num_layers, paper.num_heads, paper.d_kv) == (128, 1024, 4, 6, 64)
    assert (paper.dropout, paper.max_history) == (0.1, 20)
    small = recommender_config("t5-small", "t5")
    assert (small.d_model, small.d_ff, small.num_layers, small.num_heads, small.d_kv) == (512, 2048, 6, 8, 64)
    gpt2 = recommender_config("paper", "gpt2")
    assert (gpt2.n_embd, gpt2.n_layer, gpt2.n_head, gpt2.n_inner, gpt2.max_context_items) == (768, 12, 12, 3072, 30)
    assert recommender_config("spine", "t5") == T5RecommenderConfig()  # spine = today's defaults
    assert recommender_config("spine", "gpt2") == GPT2RecommenderConfig()
    assert recommender_config("paper", "t5", {"batch_size": 7}).batch_size == 7
    with pytest.raises(ConfigError, match="valid presets are: spine, paper, t5-small"):
        recommender_config("huge", "t5")
    with pytest.raises(ConfigError, match="no sizes for recommender kind 'gpt2'; it has: t5"):
        recommender_config("t5-small", "gpt2")
    assert set(PRESETS) == {"spine", "paper", "t5-small"}


def test_preset_on_a_study_keeps_its_axes_and_other_settings():
    study = apply_preset(load_study("musicrec-ratio"), "paper")
    assert study.name == "musicrec-ratio-paper"
    config = study.resolve({"ratio": "3:1", "seed": 1})
    assert (config.recommender.d_model, config.recommender.max_history, config.recommender.d_ff) == (128, 20, 1024)
    assert config.recommender.learning_rate == 1.0e-2 and config.recommender.epochs == 3  # the study's own
    assert (config.tokenizer.shared_levels, config.tokenizer.specific_levels, config.seed) == (3, 1, 1)
    assert study.resolve({"ratio": "3:1", "seed": 1}, smoke=True).recommender.epochs == 2  # smoke still last
    fusid = apply_preset(load_study("fusid-recommendation"), "paper")
    assert fusid.resolve({"variant": "FusID", "seed": 0}).recommender.n_embd == 768
    assert fusid.resolve({"variant": "SASRec", "seed": 0}).recommender_kind == "sasrec"  # its own section
    with pytest.raises(ConfigError, match="this study's recommender is 'sasrec'"):
        apply_preset(load_study("semantic-ids-k-vs-h"), "paper")


def test_cli_bad_options_fail_in_one_line(tmp_path):
    runner = CliRunner()
    cases = [
        (["bench", "training", "--preset", "huge"], "preset 'huge': unknown"),
        (["bench", "training", "--precision", "bf16", "--tracks", "100"], "bf16 autocast on CUDA only"),
        (["bench", "training", "--model", "sasrec", "--tracks", "100"], "valid models are: t5, gpt2"),
        (["sweep", "semantic-ids-k-vs-h", "--preset", "paper", "--results-dir", str(tmp_path)], "is 'sasrec'"),
    ]
    for arguments, message in cases:
        result = runner.invoke(app, arguments)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output


def test_cli_training_prints_the_figures():
    arguments = ["bench", "training", "--model", "t5", "--preset", "spine", "--tracks", "100", "--steps", "1",
                 "--warmup", "0", "--batch", "4", "--levels", "2", "--codebook-size", "8"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    for label in ("seconds per step:", "non-padding (padding share", "% of this device's 2048² matmul rate",
                  "projected epoch:       131,837 samples = 32,960 steps", "load average"):
        assert label in result.output, result.output


def test_decoding_at_the_paper_size():
    recommender, histories = benchmark_model(120, beam_size=8, codebook_size=4, levels=2, train_playlists=2,
                                             preset="paper")
    c = recommender.config
    assert (c.d_model, c.d_ff, c.num_layers, c.num_heads, c.d_kv, c.max_history) == (128, 1024, 4, 6, 64, 20)
    row = compare_decoders(recommender, histories[:4], batch_size=4, repeats=1)
    assert row["identical_users"] == 4 and row["mismatched_users"] == []


def test_cli_decoding_preset_paper():
    arguments = ["bench", "decoding", "--preset", "paper", "--items", "120", "--batch", "3", "--users", "3",
                 "--beam", "5", "--repeats", "1", "--train-playlists", "2"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "T5 at preset paper on 120 items" in result.output and "d_model 128, 4 + 4 layers, 20 history items" in result.output
    assert " 3/3 " in result.output


def test_training_on_an_imported_dataset(tmp_path, monkeypatch):
    from raysid.data.importers import import_dataset
    from raysid.data.importers.store import save_import

    rows = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(6):  # 6 users of 6 interactions each over 10 items
        rows += [f"u{user}\ti{(user + step) % 10}\t{step}" for step in range(6)]
    (tmp_path / "tiny.inter").write_text("\n".join(rows) + "\n")
    save_import(import_dataset("recbole", tmp_path / "tiny.inter", "tiny"), "tiny", tmp_path / "datasets")
    monkeypatch.setenv("RAYSID_DATA_DIR", str(tmp_path / "datasets"))
    sequences, items, label = training_sequences("tiny", 0, 0)
    assert items == 10 and label.startswith("imported dataset tiny") and [len(s) for s in sequences] == [4] * 6
    row = training_benchmark("t5", "spine", dataset="tiny", steps=1, warmup=0, batch_size=4, levels=1, codebook_size=4)
    assert row["data_samples"] == 6 * 3  # every prefix of six 4-item training sequences
    # the batch of 4 samples: histories of 1-3 items × 2 tokens + eos, decoder 2 + eos; padding by its shape
    assert 4 * (2 + 1 + 3) <= row["real_tokens_per_step"] <= row["tokens_per_step"] <= 4 * (3 * 2 + 1 + 3)


def test_cli_show_with_a_preset():
    result = CliRunner().invoke(app, ["show", "musicrec-ratio", "--preset", "paper"])
    assert result.exit_code == 0, result.output
    assert "musicrec-ratio-paper" in result.output
    for line in ("recommender.d_model = 128", "recommender.num_layers = 4", "recommender.max_history = 20",
                 "recommender.learning_rate = 0.01"):
        assert line in result.output, result.output
    bad = CliRunner().invoke(app, ["show", "musicrec-ratio", "--preset", "huge"])
    assert bad.exit_code == 2 and "valid presets are: spine, paper, t5-small" in bad.output
