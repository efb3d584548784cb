"""`raysid bench peers --peer tiger`: settings, features, raysid's row, the table, and the whole command with cornac."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from raysid.bench.peers.sasrec import prepare
from raysid.cache import ArtifactStore
from raysid.config import ConfigError
from raysid.data.dataset import Dataset
from raysid.data.importers import import_dataset
from raysid.data.importers.store import save_import
from raysid.data.splits import leave_one_out
from raysid.bench.peers.tiger import (
    TigerSettings,
    cornac_arguments,
    format_tiger_table,
    parse_tiger_settings,
    run_raysid_tiger,
    text_features,
    tiger_command_line,
    training_samples,
)
from raysid.bench.peers.venv import CORNAC, MARKER, requirements_digest, venv_path
from test_bench_peers import index_reachable

TINY = TigerSettings(levels=2, codebook_size=4, latent_dim=8, hidden_dims=(32,), tokenizer_epochs=3,
                     tokenizer_batch_size=16, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8,
                     max_history=5, epochs=2, batch_size=16, beam_size=10, eval_batch_size=8)
TINY_SET = ["levels=2", "codebook_size=4", "latent_dim=8", "hidden_dims=[32]", "tokenizer_epochs=3",
            "tokenizer_batch_size=16", "d_model=16", "d_ff=32", "num_layers=1", "num_heads=2", "d_kv=8",
            "max_history=5", "epochs=2", "batch_size=16", "beam_size=10", "eval_batch_size=8"]
TITLES = ["red stapler", "blue pen", "black ink", "sticky notes", "paper clips", "desk lamp", "red stapler",
          "yellow marker", "file folder", "envelopes", "tape", "scissors"]


def imported(tmp_path: Path, users: int, items: int, titles: bool = True, seed: int = 0) -> Path:
    """A RecBole .inter file of ``users`` sequences (4..9 items) over ``items`` items, and (``titles``) a .item
    file naming them, imported with raysid's RecBole importer; returns the dataset root."""
    rng = np.random.default_rng(seed)
    source = tmp_path / "source"
    source.mkdir()
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(users):
        start = int(rng.integers(items))
        sequence = [(start + step * (1 + user % 2)) % items for step in range(int(rng.integers(4, 10)))]
        lines += [f"u{user}\ti{item}\t{1.6e9 + 3600.0 * step}" for step, item in enumerate(sequence)]
    (source / "tiny.inter").write_text("\n".join(lines) + "\n")
    if titles:
        rows = [f"i{item}\t{TITLES[item % len(TITLES)]}" for item in range(items)]
        (source / "tiny.item").write_text("item_id:token\ttitle:token_seq\n" + "\n".join(rows) + "\n")
    root = tmp_path / "datasets"
    save_import(import_dataset("recbole", source / "tiny.inter", "tiny"), "tiny", root)
    return root


def test_tiger_settings_from_key_values():
    settings = parse_tiger_settings(["epochs=3", "hidden_dims=[64, 32]", "learning_rate=5e-4"], threads=2, seed=7)
    assert (settings.epochs, settings.hidden_dims, settings.learning_rate) == (3, (64, 32), 5e-4)
    assert (settings.threads, settings.seed, settings.codebook_size) == (2, 7, 64)  # the rest are the defaults
    with pytest.raises(ConfigError, match=r"unknown key 'codebooks'; valid keys are: .*codebook_size"):
        parse_tiger_settings(["codebooks=3"])
    with pytest.raises(ConfigError, match=r"--tiger-set threads: set it with --threads"):
        parse_tiger_settings(["threads=4"])
    with pytest.raises(ConfigError, match=r"--tiger-set epochs: must be positive, got 0"):
        parse_tiger_settings(["epochs=0"])
    with pytest.raises(ConfigError, match=r"--tiger-set beam_size: must be >= 10"):
        parse_tiger_settings(["beam_size=5"])
    with pytest.raises(ConfigError, match=r"expected KEY=VALUE, got 'epochs'"):
        parse_tiger_settings(["epochs"])


def test_command_line_repeats_the_settings():
    command = tiger_command_line("office", TINY, root=Path("/data"), out=Path("out"), cornac_venv=None)
    assert command[:11] == ["raysid", "bench", "peers", "--peer", "tiger", "--dataset", "office", "--threads", "1",
                            "--seed", "0"]
    given = [command[i + 1] for i, part in enumerate(command) if part == "--tiger-set"]
    assert parse_tiger_settings(given) == TINY and "hidden_dims=[32]" in given
    assert command[-4:] == ["--root", "/data", "--out", "out"]


def test_warmup_steps_and_cornac_arguments_match_the_settings():
    # 1,000 samples of batch 128: 8 steps per epoch; 10 epochs: 80 steps, 5% warmup: 4 steps
    settings = TigerSettings(epochs=10, batch_size=128, warmup_ratio=0.05)
    assert settings.warmup_steps(1000) == 4 and TigerSettings(warmup_ratio=0.0).warmup_steps(1000) == 0
    arguments = cornac_arguments(TINY, warmup_steps=3)
    assert (arguments["rqvae_num_levels"], arguments["rqvae_codebook_size"], arguments["rqvae_hidden_dims"]) == (2, 4, [32])
    assert (arguments["num_enc_layers"], arguments["num_dec_layers"], arguments["d_model"], arguments["d_kv"]) == (1, 1, 16, 8)
    assert (arguments["max_len"], arguments["n_epochs"], arguments["n_beams"], arguments["warmup_steps"]) == (5, 2, 10, 3)
    assert arguments["model_selection"] == "last" and not arguments["feature_standardize"]


def test_training_samples_are_every_prefix():
    assert training_samples([np.arange(4), np.arange(2), np.arange(1)]) == 3 + 1


def test_table_has_one_row_per_implementation_and_the_ratios():
    rows = [{"implementation": name, "tokenizer_seconds": 2.0, "seconds_per_step": step, "seconds_per_epoch": 10.0,
             "epochs_run": 5, "steps_run": 1234, "beam_users_per_second": rate, "test_hr@5": 0.1, "test_hr@10": 0.2,
             "test_ndcg@5": 0.05, "test_ndcg@10": 0.08, "identifier_levels": "64×64×64×3", "parameters": 98765}
            for name, step, rate in (("raysid", 0.05, 400.0), ("cornac", 0.2, 50.0))]
    table = format_tiger_table(rows)
    assert "| cornac | 2.0 | 0.200 | 10.0 | 5 | 1,234 | 50.0 | 0.1000 |" in table and "98,765" in table
    assert table.endswith("seconds per training step: 0.25; beam users/s: 8.00")


def test_text_features_are_z_scored_on_training_items_and_kept_in_the_store(tmp_path):
    dataset = Dataset.load(imported(tmp_path, users=20, items=12) / "tiny")
    data = prepare(dataset)
    splits = leave_one_out(data.sequences)
    store = ArtifactStore(tmp_path / "cache")
    features = text_features(dataset, data.kept_items, splits, threads=1, store=store)
    [matrix] = list((tmp_path / "cache" / "features").glob("*/matrix.npy"))  # one artifact (beside the store's locks)
    raw, written = np.load(matrix), matrix.stat().st_mtime_ns
    np.testing.assert_allclose(np.linalg.norm(raw, axis=1), 1.0, rtol=1e-5)  # MiniLM rows are unit vectors
    again = text_features(dataset, data.kept_items, splits, threads=1, store=store)
    assert np.array_equal(again, features) and matrix.stat().st_mtime_ns == written
    train = splits.train_items()
    assert features.shape == (data.num_items, 384) and features.dtype == np.float32
    np.testing.assert_allclose(features[train].mean(axis=0), 0.0, atol=1e-4)
    names = [dataset.items["title"][int(i)] for i in data.kept_items]
    same = [i for i, name in enumerate(names) if name == "red stapler"]
    assert len(same) == 2 and np.array_equal(features[same[0]], features[same[1]])  # items 0 and 6: one text
    assert not np.array_equal(features[0], features[1])


def test_a_dataset_without_item_text_is_one_line(tmp_path):
    root = imported(tmp_path, users=10, items=8, titles=False)
    result = CliRunner().invoke(app, ["bench", "peers", "--peer", "tiger", "--dataset", "tiny", "--root", str(root)])
    assert result.exit_code == 2 and "'tiny' has no text template" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["bench", "peers", "--peer", "gru", "--dataset", "tiny", "--root", str(root)])
    assert result.exit_code == 2 and "--peer: unknown comparison 'gru'; valid ones are: sasrec, tiger, all" in result.output


def test_raysid_row_counts_steps_and_ranks_every_item(tmp_path):
    """Ten items and a beam of ten: every item is in every top 10, so HR@10 is 1 (an oracle needing no model)."""
    dataset = Dataset.load(imported(tmp_path, users=24, items=10) / "tiny")
    data = prepare(dataset)
    splits = leave_one_out(data.sequences)
    features = text_features(dataset, data.kept_items, splits, threads=1)
    lines = []
    row = run_raysid_tiger(features, splits, TINY, lines.append)
    samples = sum(len(s) - 1 for s in splits.train)
    assert row["epochs_run"] == 2 and row["steps_run"] == 2 * math.ceil(samples / 16)
    assert lines[0].startswith("raysid tokenizer:") and lines[2].startswith("raysid epoch 2:")
    assert row["test_hr@10"] == 1.0 and row["test_ndcg@10"] >= 1 / math.log2(11)
    assert row["identifier_levels"].startswith("4×4×") and row["beam_users_per_second"] > 0
    assert math.isclose(row["seconds_per_step"] * row["steps_run"], row["train_seconds"])
    hits = row["test_hr@5"] * 24
    assert math.isclose(hits, round(hits), abs_tol=1e-6)


@pytest.mark.slow
def test_bench_peers_tiger_prints_both_rows_on_an_imported_dataset(tmp_path):
    """The whole command: cornac's environment (installed once under ~/.cache/raysid, or $RAYSID_CORNAC_VENV),
    raysid and cornac on 10 items with a beam of 10, where HR@10 must be 1 on both sides."""
    venv = venv_path(None, CORNAC)
    installed = (venv / MARKER).is_file() and (venv / MARKER).read_text().strip() == requirements_digest(CORNAC.requirements)
    if not installed and not index_reachable("cornac==3.0.1"):
        pytest.skip("the package index is unreachable: cannot install cornac (pip download cornac==3.0.1 failed)")
    root, out = imported(tmp_path, users=24, items=10), tmp_path / "out"
    arguments = ["bench", "peers", "--peer", "tiger", "--dataset", "tiny", "--root", str(root), "--out", str(out),
                 "--note", "a test run", *[part for item in TINY_SET for part in ("--tiger-set", item)]]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "| raysid |" in result.output and "| cornac |" in result.output and "cornac epoch 2:" in result.output
    saved = json.loads((out / "tiger.json").read_text())
    raysid, cornac = saved["rows"]
    samples = saved["samples_per_epoch"]
    assert cornac["steps_run"] == 2 * (samples // 16 + (samples % 16 > 1))  # cornac drops a last batch of one
    assert raysid["steps_run"] == 2 * math.ceil(samples / 16)
    for row in (raysid, cornac):
        assert row["test_hr@10"] == 1.0 and row["test_ndcg@10"] >= 1 / math.log2(11), row
        assert row["epochs_run"] == 2 and row["beam_users_per_second"] > 0 and row["tokenizer_seconds"] > 0
        assert row["identifier_levels"].startswith("4×4×")
    assert saved["peer_versions"]["cornac"] == "3.0.1" and saved["peer_versions"]["transformers"] == "5.24.0"
    assert saved["dataset"]["users"] == 24 and saved["dataset"]["items"] == 10
    markdown = (out / "tiger.md").read_text()
    assert "| cornac |" in markdown and "a test run" in markdown and "what stays different" in markdown
    assert saved["command"].startswith("raysid bench peers --peer tiger --dataset tiny --threads 1 --seed 0")
