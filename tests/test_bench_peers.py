"""`raysid bench peers`: the data both sides see, raysid's row, the peers' environment, and the whole command."""

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from cli.main import app
from raysid.bench_peers import PeerSettings, format_table, prepare, run_raysid, write_atomic
from raysid.cache_manifest import PACKAGE, code_files
from raysid.data.dataset import Dataset
from raysid.data.importers import import_dataset
from raysid.data.importers.store import save_import
from raysid.peers.venv import MARKER, REQUIREMENTS, PeerInstallError, ensure_venv, requirements_digest, venv_path

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
    assert "bench_peers.py" not in files and not any(name.startswith("peers/") for name in files)
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
                 "--out", str(out)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "| raysid |" in result.output and "| RecBole |" in result.output
    assert "recbole epoch 1:" in result.output and "raysid / RecBole time to the best validation epoch" in result.output
    saved = json.loads((out / "peers.json").read_text())
    raysid, recbole = saved["rows"]
    interactions = saved["dataset"]["interactions"]
    assert recbole["counts"] == {"users": 30, "items": 10, "samples": interactions - 30}  # a user of n items: n - 1
    assert recbole["samples_per_epoch"] == interactions - 3 * 30  # every prefix of the training parts
    assert raysid["samples_per_epoch"] == 30
    for row in (raysid, recbole):
        check_metrics(row, users=30)
        assert row["test_hr@10"] == 1.0 and row["test_ndcg@10"] >= 1 / math.log2(11)
        assert 1 <= row["best_epoch"] <= row["epochs_run"] <= 2 and row["seconds_to_best"] > 0
    assert saved["history_masking"] == {"RecBole": False, "raysid": False}
    assert saved["early_stopping"] == {"RecBole": True, "raysid": True}
    assert saved["provenance"]["commit"] and saved["command"].startswith("raysid bench peers --dataset tiny --hidden-size 16")
    assert f"--epochs 2 --patience 1 --threads 1 --seed 0 --root {root} --out {out}" in saved["command"]
    assert "| RecBole |" in (out / "peers.md").read_text()
