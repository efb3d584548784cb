"""The stage cache cannot lie: code version in every key, checksums verified on read, check and prune.

Every test damages real files of a real finished TINY trial (built once, copied per test) and runs the
real pipeline or the real CLI on them.
"""

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from cli.main import app
from raysid.cache import COMPLETE, ArtifactError, ArtifactStore, CacheWarning, code_version, load_json
from raysid.config import override
from raysid.pipeline.keys import StageKeys
from raysid.pipeline.trial import run_trial
from raysid.trial_config import parse_trial_config

ROOT = Path(__file__).resolve().parents[1]
TRIAL = {"tokenizer": {"kind": "musicrec", "shared_levels": 1, "specific_levels": 1}}


@pytest.fixture(scope="module")
def config():
    from conftest import TINY

    return parse_trial_config(override(TRIAL, TINY))


@pytest.fixture(scope="module")
def finished(config, tmp_path_factory):
    """A cache folder holding one finished trial, and that trial's metrics."""
    root = tmp_path_factory.mktemp("finished") / "cache"
    return root, run_trial(config, ArtifactStore(root))


@pytest.fixture
def cache(finished, tmp_path):
    """A fresh copy of the finished trial's cache folder, and its metrics."""
    root, metrics = finished
    shutil.copytree(root, tmp_path / "cache")
    return tmp_path / "cache", metrics


def outcome(metrics: dict) -> dict:
    """What a trial found: its metrics without stage timings, cache flags, repair notes and folder."""
    return {k: v for k, v in metrics.items() if not k.startswith(("time/", "cached/", "cache/", "artifact_dir"))}


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def run_damaged(config, root: Path) -> tuple[dict, list[str]]:
    """Run the trial again on ``root``; its metrics and the CacheWarnings it issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = run_trial(config, ArtifactStore(root))
    return metrics, [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]


def test_a_finished_artifact_records_every_file_size_and_checksum(cache, config):
    root, _ = cache
    folder = root / "result" / StageKeys.of(config).result
    manifest = json.loads((folder / COMPLETE).read_text())
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != COMPLETE)
    assert sorted(manifest["files"]) == names == ["config.json", "metrics.json", "provenance.json",
                                                     "semantic_ids.parquet", "usage.parquet"]
    import hashlib

    metrics_file = manifest["files"]["metrics.json"]
    assert metrics_file["size"] == (folder / "metrics.json").stat().st_size
    assert metrics_file["sha256"] == hashlib.sha256((folder / "metrics.json").read_bytes()).hexdigest()
    assert manifest["code_version"] == code_version() and manifest["stage"] == "result"


@pytest.mark.parametrize("name", ["metrics.json", "semantic_ids.parquet"])
def test_a_truncated_result_file_is_rebuilt_with_one_warning_and_the_same_metrics(cache, config, name):
    root, before = cache
    key = StageKeys.of(config).result
    folder = root / "result" / key
    frame = pl.read_parquet(folder / "semantic_ids.parquet")
    truncate(folder / name)
    after, messages = run_damaged(config, root)
    assert len(messages) == 1 and "result" in messages[0] and key in messages[0] and name in messages[0]
    assert after["cached/result"] == 0.0 and after["cached/tokenizer"] == 1.0  # only the damaged stage ran again
    assert after["cache/repairs"] == messages[0] and after["artifact_dir"] == str(folder)
    assert outcome(after) == outcome(before) and len(outcome(before)) > 50
    assert pl.read_parquet(folder / "semantic_ids.parquet").equals(frame)
    again, messages = run_damaged(config, root)  # repaired: served from the cache, silently
    assert messages == [] and again["cached/result"] == 1.0 and outcome(again) == outcome(before)


def test_a_damaged_upstream_artifact_is_rebuilt_when_a_stage_needs_it(cache, config):
    root, before = cache
    keys = StageKeys.of(config)
    shutil.rmtree(root / "result" / keys.result)  # the result must be built, so the tokenizer is read
    codes = next((root / "tokenizer" / keys.tokenizer / "codes").iterdir())
    codes.write_bytes(codes.read_bytes()[::-1])  # same size, other bytes: only the checksum tells
    after, messages = run_damaged(config, root)
    assert len(messages) == 1 and "tokenizer" in messages[0] and keys.tokenizer in messages[0]
    assert f"codes/{codes.name}" in messages[0] and "sha256" in messages[0]
    assert after["cached/tokenizer"] == 0.0 and outcome(after) == outcome(before)


def test_an_artifact_without_a_manifest_is_unverifiable_and_rebuilt(cache, config):
    root, before = cache
    key = StageKeys.of(config).result
    (root / "result" / key / COMPLETE).write_text("2026-11-30T10:00:00")  # what older raysid wrote
    after, messages = run_damaged(config, root)
    assert len(messages) == 1 and key in messages[0] and "unverifiable" in messages[0]
    assert outcome(after) == outcome(before)


def test_a_load_that_raises_counts_as_damage(cache, config):
    root, before = cache
    folder = root / "result" / StageKeys.of(config).result
    (folder / "metrics.json").write_text("{not json")  # bad content its manifest agrees with
    manifest = json.loads((folder / COMPLETE).read_text())
    manifest["files"]["metrics.json"] = {"size": 9, "sha256": __import__("hashlib").sha256(b"{not json").hexdigest()}
    (folder / COMPLETE).write_text(json.dumps(manifest))
    after, messages = run_damaged(config, root)
    assert len(messages) == 1 and "fails to load" in messages[0] and "metrics.json" in messages[0]
    assert outcome(after) == outcome(before)


def test_an_artifact_that_still_fails_after_its_rebuild_raises_naming_the_file(tmp_path):
    store = ArtifactStore(tmp_path)
    builds = []

    def produce(folder):
        builds.append(folder)
        (folder / "metrics.json").write_text("{truncated")

    with pytest.raises(ArtifactError, match=r"metrics\.json: not a readable JSON file"):
        store.fetch("result", "k", produce, lambda folder: load_json(folder / "metrics.json"))
    assert len(builds) == 1  # freshly built: rebuilding would write the same
    (tmp_path / "result" / "k" / COMPLETE).write_text("old")  # stored, unverifiable: rebuilt once, then it raises
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ArtifactError, match=r"k .*metrics\.json"):
        warnings.simplefilter("always")
        store.fetch("result", "k", produce, lambda folder: load_json(folder / "metrics.json"))
    assert len(builds) == 2 and len(caught) == 1


def _keys_in_copy(tmp_path: Path, name: str, edit: str | None) -> dict:
    """StageKeys of the TINY trial computed by a fresh process importing a copy of raysid with ``edit`` changed."""
    copy = tmp_path / name
    shutil.copytree(ROOT / "raysid", copy / "raysid", ignore=shutil.ignore_patterns("__pycache__"))
    if edit:
        with open(copy / "raysid" / edit, "a") as handle:
            handle.write("\n# an edit\n")
    script = ("import json, sys; sys.path.insert(0, sys.argv[1]); from conftest import TINY; "
              "from raysid.config import override; from raysid.pipeline.keys import StageKeys; "
              "from raysid.trial_config import parse_trial_config; "
              "from raysid.cache import code_version; import raysid; "
              f"keys = StageKeys.of(parse_trial_config(override({TRIAL!r}, TINY))); "
              "print(json.dumps({**vars(keys), 'version': code_version(), 'file': raysid.__file__}))")
    env = {**os.environ, "PYTHONPATH": str(copy)}
    done = subprocess.run([sys.executable, "-c", script, str(ROOT / "tests")], env=env, capture_output=True,
                          text=True, check=True, cwd=tmp_path)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found.pop("file").startswith(str(copy))
    return found


def test_a_code_change_gives_new_keys_and_an_excluded_file_does_not(config, tmp_path):
    here = {**vars(StageKeys.of(config)), "version": code_version()}
    changed = _keys_in_copy(tmp_path, "changed", "tokenizers/rqvae.py")
    assert changed["version"] != here["version"]
    assert all(changed[stage] != here[stage] for stage in ("dataset", "collaborative", "tokenizer", "result"))
    assert _keys_in_copy(tmp_path, "report-only", "reporting/summary.py") == here  # reports cannot change a stage's output


def cli(*args: str):
    return CliRunner().invoke(app, ["cache", *args])


def test_cache_check_finds_a_damaged_artifact_and_fix_removes_it(cache, config):
    root, _ = cache
    key = StageKeys.of(config).result
    healthy = cli("check", "--cache-dir", str(root))
    assert healthy.exit_code == 0 and "4 artifacts" in healthy.output and "0 damaged" in healthy.output
    truncate(root / "result" / key / "semantic_ids.parquet")
    found = cli("check", "--cache-dir", str(root))
    assert found.exit_code == 1
    assert f"damaged  result/{key}: semantic_ids.parquet has" in found.output and "1 damaged" in found.output
    fixed = cli("check", "--results-dir", str(root.parent), "--fix")  # RESULTS_DIR/cache
    assert fixed.exit_code == 0 and f"removed result/{key}" in fixed.output
    assert not (root / "result" / key).exists() and (root / "tokenizer" / StageKeys.of(config).tokenizer).exists()
    after = cli("check", "--cache-dir", str(root))
    assert after.exit_code == 0 and "3 artifacts" in after.output and "3 verified" in after.output


def test_cache_check_of_a_missing_folder_fails_naming_it(tmp_path):
    missing = cli("check", "--cache-dir", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and str(tmp_path / "nowhere") in missing.output and "Traceback" not in missing.output


def test_prune_removes_unfinished_builds_and_artifacts_of_other_code(cache, config):
    root, _ = cache
    keys = StageKeys.of(config)
    partial = root / "tokenizer" / f".{keys.tokenizer}.0123abcd.partial"
    (partial / "tokenizer").mkdir(parents=True)
    (partial / "tokenizer" / "weights.pt").write_bytes(b"x" * 1234)  # a build killed half way
    old = root / "result" / "0000000000000000"
    old.mkdir()
    (old / "metrics.json").write_text("{}")  # 2 bytes
    (old / COMPLETE).write_text("2026-11-30T10:00:00")  # 19 bytes, no manifest: older raysid
    locks = sorted(p.name for stage in root.iterdir() for p in stage.glob(".*.lock"))
    assert len(locks) == 4  # one per built stage, nobody holds them

    dry = cli("prune", "--cache-dir", str(root), "--dry-run")
    assert dry.exit_code == 0 and "would remove 6 entries" in dry.output and "would free 1,255 bytes" in dry.output
    assert partial.exists() and old.exists()
    pruned = cli("prune", "--cache-dir", str(root))
    assert pruned.exit_code == 0 and "removed 6 entries" in pruned.output and "freed 1,255 bytes" in pruned.output
    assert f"tokenizer/{partial.name}: unfinished build" in pruned.output and "result/0000000000000000: no checksum" in pruned.output
    assert not partial.exists() and not old.exists() and not list(root.glob("*/.*.lock"))
    kept = cli("check", "--cache-dir", str(root))
    assert kept.exit_code == 0 and "4 artifacts" in kept.output and "4 verified" in kept.output


def test_prune_older_than_removes_only_old_artifacts(cache, config):
    root, _ = cache
    folder = root / "dataset" / StageKeys.of(config).dataset
    manifest = json.loads((folder / COMPLETE).read_text())
    manifest["created"] -= 3 * 86400  # built three days ago
    (folder / COMPLETE).write_text(json.dumps(manifest))
    assert "removed 4 entries" in cli("prune", "--cache-dir", str(root), "--older-than", "5").output  # the 4 locks
    pruned = cli("prune", "--cache-dir", str(root), "--older-than", "2")
    assert f"removed  dataset/{folder.name}: created 3.0 days ago" in pruned.output and "removed 1 entries" in pruned.output
    assert not folder.exists() and (root / "result" / StageKeys.of(config).result).exists()


def test_a_damaged_remote_copy_is_verified_on_download_rebuilt_and_uploaded_again(tmp_path):
    from raysid.cache import open_store

    uri = (tmp_path / "bucket").as_uri()  # file:// goes through the same pyarrow code as s3://
    builds = []

    def produce(folder):
        builds.append(folder)
        (folder / "codes.json").write_text(json.dumps(list(range(100))))

    def load(folder):
        return json.loads((folder / "codes.json").read_text())

    assert open_store(uri, tmp_path / "node-a").fetch("tokenizer", "k", produce, load) == list(range(100))
    remote = tmp_path / "bucket" / "tokenizer" / "k" / "codes.json"
    truncate(remote)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert open_store(uri, tmp_path / "node-b").local("tokenizer", "k") is None  # not served
        assert open_store(uri, tmp_path / "node-c").fetch("tokenizer", "k", produce, load) == list(range(100))
    messages = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert len(messages) == 2 and all("remote copy: codes.json has" in m for m in messages)
    assert "not served" in messages[0] and "rebuilding it" in messages[1] and len(builds) == 2
    assert json.loads(remote.read_text()) == list(range(100))  # the rebuilt artifact replaced the damaged upload
    node_d = open_store(uri, tmp_path / "node-d")
    assert node_d.fetch("tokenizer", "k", produce, load) == list(range(100)) and len(builds) == 2
