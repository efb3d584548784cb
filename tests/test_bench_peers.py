"""`raysid bench peers`: the data both sides see, raysid's row, the peers' environment, and the whole command."""

import dataclasses
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from cli.main import app
from raysid.bench.peers.sasrec import (
    RAYSID_OPTIONS,
    RECBOLE_ARCHITECTURE,
    TEST_METRICS,
    PeerSettings,
    command_line,
    comparison,
    format_comparison,
    format_table,
    parse_raysid_options,
    prepare,
    raysid_config,
    run_raysid,
    write_atomic,
)
from raysid.cache_manifest import PACKAGE, code_files
from raysid.data.dataset import Dataset
from raysid.data.importers import import_dataset
from raysid.data.importers.store import save_import
from raysid.bench.peers.venv import MARKER, REQUIREMENTS, PeerInstallError, ensure_venv, requirements_digest, venv_path

TINY = PeerSettings(hidden_size=16, num_layers=1, num_heads=2, max_length=10, dropout=0.1, batch_size=16,
                    eval_batch_size=32, epochs=2, patience=2, threads=1)


def write_inter(path: Path, users: int, items: int, seed: int = 0) -> list[list[str]]:
    """A RecBole .inter file of ``users`` sequences (lengths 4..9) over ``items`` items, rows shuffled, with
    wall-clock timestamps; returns each user's items in time order (the sequences an import must give)."""
    rng = np.random.default_rng(seed)
    sequences, rows = [], []
    for user in range(users):
        start = int(rng.integers(items))
        sequence = [f"i{(start + step * (1 + user % 2)) % items}" for step in range(int(rng.integers(4, 10)))]
        sequences.append(sequence)
        rows += [(f"u{user}", item, 1.6e9 + 3600.0 * step + user) for step, item in enumerate(sequence)]
    order = rng.permutation(len(rows))
    lines = ["user_id:token\titem_id:token\ttimestamp:float"] + [
        "{}\t{}\t{}".format(*rows[i]) for i in order]
    path.write_text("\n".join(lines) + "\n")
    return sequences


def imported(tmp_path: Path, users: int, items: int) -> tuple[Dataset, Path, list[list[str]]]:
    """The written .inter file imported with raysid's RecBole importer into a dataset root under tmp_path."""
    source = tmp_path / "source"
    source.mkdir()
    sequences = write_inter(source / "tiny.inter", users, items)
    root = tmp_path / "datasets"
    folder = save_import(import_dataset("recbole", source / "tiny.inter", "tiny"), "tiny", root)
    return Dataset.load(folder), root, sequences


def item_names(dataset: Dataset, sequence) -> list[str]:
    return [dataset.items["source_id"][int(i)] for i in sequence]


def test_prepare_keeps_users_of_four_items_and_renumbers_theirs():
    items = pl.DataFrame({"item_id": range(7)})
    sequences = [np.array(s) for s in ([5, 1, 3, 1], [1, 3, 5, 5, 3], [0, 2], [2, 0, 6], [4])]
    data = prepare(Dataset("hand", items, {}, sequences, {}))
    assert (data.num_items, data.left_out_users, data.left_out_items) == (3, 3, 4)  # items 1, 3, 5 remain
    assert [s.tolist() for s in data.sequences] == [[2, 0, 1, 0], [0, 1, 2, 2, 1]]


def test_atomic_files_read_back_by_the_importer_give_the_same_sequences(tmp_path):
    dataset, _, _ = imported(tmp_path, users=12, items=20)
    data = prepare(dataset)
    write_atomic(data, tmp_path / "atomic")
    back = import_dataset("recbole", tmp_path / "atomic" / "tiny" / "tiny.inter", "back").dataset
    written = [[f"i{i}" for i in s.tolist()] for s in data.sequences]
    assert [item_names(back, s) for s in back.sequences] == written


def test_raysid_row_is_counted_from_its_epochs(tmp_path):
    dataset, _, sequences = imported(tmp_path, users=40, items=25)
    data = prepare(dataset)
    lines = []
    row = run_raysid(data, TINY, lines.append)
    assert row["epochs_run"] == 2 and len(lines) == 2 and lines[0].startswith("raysid epoch 1:")
    valid = [e["valid"]["ndcg@10"] for e in row["epochs"]]
    assert row["best_epoch"] == 1 + int(np.argmax(valid)) and row["best_valid_ndcg@10"] == max(valid)
    assert row["seconds_to_best"] == row["epochs"][row["best_epoch"] - 1]["wall_s"] > 0
    assert row["samples_per_epoch"] == 40  # one window per user: every training part has >= 2 items
    check_metrics(row, users=40)


def test_raysid_options_reach_raysid_side_only(tmp_path):
    """``--raysid samples=prefixes``: raysid trains every prefix, n - 1 samples of a training part of n items."""
    dataset, _, _ = imported(tmp_path, users=40, items=25)
    data = prepare(dataset)
    row = run_raysid(data, dataclasses.replace(TINY, epochs=1), print, parse_raysid_options(["samples=prefixes"]))
    train_items = sum(len(s) for s in data.sequences) - 2 * 40  # leave-one-out holds out two items per user
    assert row["samples_per_epoch"] == train_items - 40
    config = raysid_config(TINY, parse_raysid_options([f"{k}={v}" for k, v in RECBOLE_ARCHITECTURE.items()]))
    assert {k: getattr(config, k) for k in RAYSID_OPTIONS} == RECBOLE_ARCHITECTURE
    assert (config.hidden_size, config.max_length, config.seed) == (TINY.hidden_size, TINY.max_length, TINY.seed)


def seed_rows(values: dict[str, list[float]], seconds: dict[str, list[float]]) -> list[dict]:
    """Table rows of raysid and RecBole for seeds 0, 1, 2: every test metric ``values[name][seed]`` plus an
    offset per metric, the time to the best epoch ``seconds[name][seed]``."""
    rows = []
    for seed in range(3):
        for name in ("raysid", "RecBole"):
            metrics = {f"test_{m}": values[name][seed] + offset for m, offset in zip(TEST_METRICS, (0.0, 0.1, -0.01, 0.05))}
            rows.append({"implementation": name, "seed": seed, "seconds_per_epoch": 1.0, "train_seconds_per_epoch": 0.5,
                         "epochs_run": 3, "best_epoch": 2, "seconds_to_best": seconds[name][seed],
                         "best_valid_ndcg@10": 0.1, "samples_per_epoch": 10, **metrics})
    return rows


def test_paired_differences_and_time_ratios_over_seeds_by_hand():
    rows = seed_rows({"raysid": [0.20, 0.25, 0.21], "RecBole": [0.19, 0.20, 0.20]},
                     {"raysid": [10.0, 30.0, 12.0], "RecBole": [40.0, 50.0, 20.0]})
    differences = [0.01, 0.05, 0.01]  # raysid − RecBole on every metric: mean 0.0233.., sample std 0.02309..
    half = 4.302653 * statistics.stdev(differences) / math.sqrt(3)  # t(0.975, 2)
    compared = comparison(rows)
    assert [d["metric"] for d in compared["paired"]] == [f"test_{m}" for m in TEST_METRICS]
    for d in compared["paired"]:
        assert d["seeds"] == 3 and d["mean"] == pytest.approx(statistics.mean(differences), abs=1e-12)
        assert (d["low"], d["high"]) == pytest.approx((d["mean"] - half, d["mean"] + half), abs=1e-6)
        assert d["verdict"] == "does not separate"  # 0.0233 - 0.0574 < 0
    assert compared["time_ratios"] == {"0": 0.25, "1": 0.6, "2": 0.6}
    assert compared["raysid_at_least_recbole"] == {"0": True, "1": True, "2": True}
    assert compared["time_ratio_at_most_half"] == {"0": True, "1": False, "2": False}
    table = format_table(rows)
    assert table.startswith("| seed | implementation |") and table.count("\n| 1 | RecBole |") == 1
    assert table.endswith("per seed: seed 0 0.25, seed 1 0.60, seed 2 0.60")
    text = format_comparison({"comparison": compared})
    assert "| ndcg@10 | +0.0233 | [-0.0340, +0.0807] | does not separate |" in text
    assert "3 of 3 seeds" in text and "≤ 0.5 × RecBole's: 1 of 3 seeds" in text


def test_a_consistent_difference_separates():
    rows = seed_rows({"raysid": [0.30, 0.31, 0.29], "RecBole": [0.20, 0.20, 0.20]},
                     {"raysid": [1.0, 1.0, 1.0], "RecBole": [4.0, 4.0, 4.0]})
    assert all(d["verdict"] == "separates" and d["low"] > 0 for d in comparison(rows)["paired"])


@pytest.mark.parametrize(("arguments", "message"), [
    (["--raysid", "norm=middle"], "--raysid norm: got 'middle'; valid choices are: 'pre', 'post'"),
    (["--raysid", "hidden_size=8"], "--raysid hidden_size: not an option of raysid's side; valid ones are: samples,"),
    (["--raysid", "init_std=-1"], "--raysid init_std: must be positive"),
    (["--seeds", "0,x"], "--seeds: expected integers >= 0 separated by commas, got '0,x'"),
    (["--seeds", "1,1"], "--seeds: each seed once"),
    (["--seed", "1", "--seeds", "0,1"], "--seed and --seeds: give one of them"),
])
def test_bad_raysid_option_or_seeds_is_one_line(tmp_path, arguments, message):
    result = CliRunner().invoke(app, ["bench", "peers", "--dataset", "nope", "--root", str(tmp_path), *arguments])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert "not found" not in result.output  # refused before the dataset is looked up


def test_command_line_repeats_the_seeds_and_the_options():
    command = command_line("office", TINY, {"norm": "post", "feed_forward_dropout": False, "layer_norm_eps": 1e-12},
                           (0, 1, 2), out=Path("out"))
    text = " ".join(command)
    assert "--seeds 0,1,2" in text and "--seed " not in text and text.endswith("--out out")
    assert "--raysid norm=post --raysid feed_forward_dropout=false --raysid layer_norm_eps=1e-12" in text
    assert parse_raysid_options(["norm=post", "feed_forward_dropout=false", "layer_norm_eps=1e-12"]) == {
        "norm": "post", "feed_forward_dropout": False, "layer_norm_eps": 1e-12}


def test_raysid_stops_after_patience_epochs_without_a_better_validation(tmp_path):
    dataset, _, _ = imported(tmp_path, users=40, items=25)
    row = run_raysid(prepare(dataset), dataclasses.replace(TINY, epochs=6, patience=1, learning_rate=0.05), print)
    valid = [e["valid"]["ndcg@10"] for e in row["epochs"]]
    first_worse = next((i + 2 for i, (a, b) in enumerate(zip(valid, valid[1:])) if b <= max(valid[: i + 1])), 6)
    assert row["epochs_run"] == first_worse and row["best_epoch"] == 1 + int(np.argmax(valid))


def check_metrics(row: dict, users: int) -> None:
    """Test metrics: HR@k is a count of users, NDCG@k <= HR@k, both grow with k, all in [0, 1]."""
    for k in (5, 10):
        hits = row[f"test_hr@{k}"] * users
        assert math.isclose(hits, round(hits), abs_tol=1e-3), (k, hits)
        assert 0.0 <= row[f"test_ndcg@{k}"] <= row[f"test_hr@{k}"] <= 1.0
    assert row["test_hr@5"] <= row["test_hr@10"] and row["test_ndcg@5"] <= row["test_ndcg@10"]


def test_table_has_one_row_per_implementation_and_the_ratio():
    rows = [{"implementation": name, "seconds_per_epoch": 1.0, "train_seconds_per_epoch": 0.5, "epochs_run": 3,
             "best_epoch": 2, "seconds_to_best": seconds, "best_valid_ndcg@10": 0.1, "test_hr@5": 0.2,
             "test_hr@10": 0.3, "test_ndcg@5": 0.1, "test_ndcg@10": 0.15, "samples_per_epoch": 1234}
            for name, seconds in (("raysid", 3.0), ("RecBole", 12.0))]
    table = format_table(rows)
    assert table.count("\n| raysid |") == 1 and "| RecBole | 1.00 | 0.50 | 3 | 2 | 12.0 |" in table
    assert "1,234" in table and table.endswith("time to the best validation epoch: 0.25")


def test_the_benchmark_stays_out_of_the_stage_code_version():
    files = {path.relative_to(PACKAGE).as_posix() for path in code_files()}
    assert not any(name.startswith("bench/") for name in files)
    assert "recommenders/sasrec.py" in files  # what it calls still counts


def test_unknown_dataset_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["bench", "peers", "--dataset", "nope", "--root", str(tmp_path)])
    assert result.exit_code == 2 and "dataset 'nope': not found" in result.output
    assert "Traceback" not in result.output


def test_failed_peer_install_names_the_command_to_rerun(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# a comment\nraysid-peer-that-does-not-exist==0.0.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    lines = []
    with pytest.raises(PeerInstallError, match=r"installing the peers failed .*; rerun: .*pip install --no-deps"):
        ensure_venv(tmp_path / "venv", lines.append, requirements)
    assert lines[0].startswith("peers: creating a virtual environment") and not (tmp_path / "venv" / MARKER).exists()
    assert lines[1].startswith("peers: installing 1 pinned package from")


def test_two_benchmarks_started_together_share_one_environment_made_once(tmp_path):
    """The second caller waits for the first to create and install the environment (a lock beside it), then
    reuses it: never a half-made one without pip (as two test runs side by side once met)."""
    from concurrent.futures import ThreadPoolExecutor

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# no pins: pip installs nothing, quickly\n")
    said: list[list[str]] = [[], []]
    with ThreadPoolExecutor(2) as pool:
        pythons = list(pool.map(lambda lines: ensure_venv(tmp_path / "venv", lines.append, requirements), said))
    assert pythons[0] == pythons[1] == tmp_path / "venv" / "bin" / "python"
    assert sorted(lines[-1] for lines in said) == ["peers: installed", f"peers: reusing the environment at {tmp_path / 'venv'}"]
    assert sum(line.startswith("peers: creating") for lines in said for line in lines) == 1
    assert (tmp_path / "venv" / MARKER).read_text().strip() == requirements_digest(requirements)


def index_reachable(requirement: str = "recbole==1.2.1") -> bool:
    """Whether this machine's package index serves ``requirement`` (pip download of the wheel alone)."""
    with __import__("tempfile").TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", folder, requirement]
        try:
            return subprocess.run(command, capture_output=True, timeout=120).returncode == 0
        except subprocess.TimeoutExpired:
            return False


@pytest.mark.slow
def test_bench_peers_prints_both_rows_on_an_imported_dataset(tmp_path):
    """The whole command: the peers' environment (installed once under ~/.cache/raysid, or $RAYSID_PEERS_VENV),
    raysid and RecBole on 10 items, where HR@10 must be 1 on both sides (every item is in the top 10)."""
    venv = venv_path()
    installed = (venv / MARKER).is_file() and (venv / MARKER).read_text().strip() == requirements_digest(REQUIREMENTS)
    if not installed and not index_reachable():
        pytest.skip("the package index is unreachable: cannot install the peers (pip download recbole==1.2.1 failed)")
    _, root, _ = imported(tmp_path, users=30, items=10)
    out = tmp_path / "out"
    arguments = ["bench", "peers", "--dataset", "tiny", "--root", str(root), "--epochs", "2", "--patience", "1",
                 "--hidden-size", "16", "--num-layers", "1", "--max-length", "10", "--batch-size", "16",
                 "--seeds", "0,1", "--raysid", "samples=prefixes", "--raysid", "norm=post", "--out", str(out)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "| 0 | raysid |" in result.output and "| 1 | RecBole |" in result.output
    assert "recbole epoch 1:" in result.output and "time to the best validation epoch, per seed: seed 0" in result.output
    assert "raysid − RecBole over 2 seeds" in result.output and "| hr@10 | +0.0000 |" in result.output
    saved = json.loads((out / "peers.json").read_text())
    assert [(row["seed"], row["implementation"]) for row in saved["rows"]] == [
        (0, "raysid"), (0, "RecBole"), (1, "raysid"), (1, "RecBole")]
    interactions = saved["dataset"]["interactions"]
    for raysid, recbole in (saved["rows"][:2], saved["rows"][2:]):
        assert recbole["counts"] == {"users": 30, "items": 10, "samples": interactions - 30}  # a user of n items: n - 1
        assert recbole["samples_per_epoch"] == raysid["samples_per_epoch"] == interactions - 3 * 30  # every prefix
        for row in (raysid, recbole):
            check_metrics(row, users=30)
            assert row["test_hr@10"] == 1.0 and row["test_ndcg@10"] >= 1 / math.log2(11)
            assert 1 <= row["best_epoch"] <= row["epochs_run"] <= 2 and row["seconds_to_best"] > 0
    assert saved["rows"][0]["test_ndcg@10"] != saved["rows"][2]["test_ndcg@10"]  # the seeds differ on raysid's side
    assert set(saved["comparison"]["time_ratios"]) == {"0", "1"} and len(saved["comparison"]["paired"]) == 4
    assert saved["raysid_options"] == {"samples": "prefixes", "norm": "post"}
    assert saved["raysid_config"]["norm"] == "post" and saved["seeds"] == [0, 1]
    assert saved["history_masking"] == {"RecBole": False, "raysid": False}
    assert saved["early_stopping"] == {"RecBole": True, "raysid": True}
    assert saved["provenance"]["commit"] and saved["command"].startswith("raysid bench peers --dataset tiny --hidden-size 16")
    assert (f"--epochs 2 --patience 1 --threads 1 --seeds 0,1 --raysid samples=prefixes --raysid norm=post --root {root} "
            f"--out {out}") in saved["command"]
    text = (out / "peers.md").read_text()
    assert "| 1 | RecBole |" in text and "as RecBole's: samples prefixes, norm post;" in text
