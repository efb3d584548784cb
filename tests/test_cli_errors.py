"""No traceback from any command: bad option values, unexpected errors and a failing environment are one line.

Environment failures are real: a read-only tmpfs mounted for the test (root ignores permission bits, so an
unwritable folder is a read-only mount, and also a file where a folder is expected), a 5 MiB tmpfs as the
results folder, a real loopback port nothing listens on as the MLflow server, a full tmpfs under a torch write.
Where mounting is refused (not root, no CAP_SYS_ADMIN) the mount tests are skipped; the file-in-the-way test
still runs. A local Ray that times out while starting cannot be provoked reliably, so its translation is tested
on the exception classes and messages Ray 2.60 raises (ray/_private/node.py, services.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from raysid.environment import DiskFull, MIN_FREE_BYTES, disk_full, explain, ray_start_line
from raysid.sweep.space import find_study

ROOT = Path(__file__).resolve().parents[1]


def _one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def mounted(tmp_path):
    """mount(name, size, read_only) -> a fresh tmpfs under tmp_path (skips where mounting is refused)."""
    mounts = []

    def mount(name: str, size: str, read_only: bool = False) -> Path:
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"{'ro,' if read_only else ''}size={size}", "tmpfs",
                               str(point)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
        mounts.append(point)
        return point

    yield mount
    for point in reversed(mounts):
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture
def study(tmp_path, tiny_overrides) -> Path:
    data = yaml.safe_load(find_study("musicrec-ratio").read_text())
    data.update(name="tiny-env", seeds=[0], smoke=tiny_overrides)
    path = tmp_path / "tiny-env.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# --- option values ---------------------------------------------------------------------------------------------

BAD_OPTIONS = [
    (["sweep", "musicrec-ratio", "--max-concurrent", "0"], "'--max-concurrent': Input should be greater than or equal to 1 (got '0')"),
    (["sweep", "musicrec-ratio", "--niceness", "30"], "'--niceness': Input should be less than or equal to 19 (got '30')"),
    (["sweep", "musicrec-ratio", "--address", "http://127.0.0.1:8265"], "is a job server's address; raysid sweep needs the cluster's"),
    (["sweep", "musicrec-ratio", "--address", "127.0.0.1:99999"], "'127.0.0.1:99999': expected auto, HOST:PORT"),
    (["sweep", "musicrec-ratio", "--tracking-uri", "sqlite:/x.db"], "'sqlite:/x.db': expected sqlite:///PATH/mlflow.db"),
    (["sweep", "musicrec-ratio", "--dataset", "../x"], "'--dataset': '../x': expected letters, digits"),
    (["sweep", "musicrec-ratio", "--set", "epochs"], "--set: expected KEY=VALUE (a dotted config path), got 'epochs'"),
    (["tokenize", "musicrec-ratio", "--seed", "-1"], "'--seed': Input should be greater than or equal to 0 (got '-1')"),
    (["tokenize", "musicrec-ratio", "--point", "ratio"], "--point expects AXIS=VALUE, got 'ratio'"),
    (["ui", "--port", "70000"], "'--port': Input should be less than or equal to 65535 (got '70000')"),
    (["submit", "musicrec-ratio", "--address", "127.0.0.1:8265"], "'127.0.0.1:8265': expected the job server's URL, http://HOST:PORT"),
    (["status", "job", "--wait", "nan"], "'--wait': nan is not a finite number >= 0"),
    (["status", "job", "--cluster", "/nonexistent/cluster.yaml"], "'--cluster': file '/nonexistent/cluster.yaml' does not exist"),
    (["bench", "tokenizers", "--threads", "zero"], "'--threads': Input should be a valid integer, unable to parse string as an integer (got 'zero')"),
    (["bench", "decoding", "--beam", "0"], "'--beam': Input should be greater than or equal to 1 (got '0')"),
    (["bench", "training", "--codebook-size", "1"], "'--codebook-size': Input should be greater than or equal to 2 (got '1')"),
    (["bench", "peers", "--dataset", "x", "--dropout", "1.5"], "'--dropout': 1.5 is not a finite number >= 0 and <= 0.99"),
    (["bench", "peers", "--dataset", "x", "--learning-rate", "inf"], "'--learning-rate': inf is not a finite number > 0"),
    (["bench", "peers", "--dataset", "x", "--tiger-set", "epochs"], "--tiger-set: expected KEY=VALUE, got 'epochs'"),
    (["data", "import", "amazon-reviews", ".", "--name", "x", "--core", "0"], "'--core': Input should be greater than or equal to 1 (got '0')"),
    (["data", "import", "nope", ".", "--name", "x"], "unknown dataset kind 'nope'; valid kinds are: mpd, spotify-skip"),
    (["data", "features", "x", "--min-length", "0"], "'--min-length': Input should be greater than or equal to 1 (got '0')"),
    (["verify", "musicrec-ratio", "--tolerance", "-1e999"], "'--tolerance': -inf is not a finite number >= 0"),
    (["cache", "prune", "--older-than", "nan"], "'--older-than': nan is not a finite number >= 0"),
    (["docs", "--root", "/nonexistent"], "'--root': dir '/nonexistent' does not exist"),
    (["sweep"], "Missing argument 'study'"),
    (["swep", "musicrec-ratio"], "No such command 'swep'"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_OPTIONS, ids=[" ".join(a[:3]) for a, _ in BAD_OPTIONS])
def test_a_bad_option_value_is_one_line_naming_the_option_the_value_and_what_is_allowed(arguments, message):
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2, result.output
    assert message in _one_line(result)


# --- an error no command handled -------------------------------------------------------------------------------


@pytest.fixture
def damaged_dataset(tmp_path) -> Path:
    """An imported dataset whose items.parquet was overwritten (a real, unforeseen failure inside `data show`)."""
    source = tmp_path / "p.jsonl"
    source.write_text("".join(json.dumps({"pid": p, "tracks": [{"track_uri": f"t{p}-{t}", "track_name": "s",
                                                                  "artist_name": "a"} for t in range(3)]}) + "\n"
                              for p in range(3)))
    root = tmp_path / "datasets"
    done = CliRunner().invoke(app, ["data", "import", "mpd", str(source), "--name", "hurt", "--root", str(root)])
    assert done.exit_code == 0, done.output
    (root / "hurt" / "items.parquet").write_bytes(b"not parquet at all")
    return root


def test_an_unexpected_error_is_one_line_naming_it_and_the_next_step(damaged_dataset):
    result = CliRunner().invoke(app, ["data", "show", "hurt", "--root", str(damaged_dataset)])
    assert result.exit_code == 2
    line = _one_line(result)
    assert line.startswith("error: raysid data show failed: ComputeError: parquet: "), line
    assert "(at raysid/data/dataset.py:" in line and "run it again with --debug" in line


def test_debug_shows_the_traceback_from_the_installed_entry_point(damaged_dataset):
    command = [sys.executable, "-m", "cli.main", "data", "show", "hurt", "--root", str(damaged_dataset)]
    plain = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert plain.returncode == 2 and "Traceback" not in plain.stdout + plain.stderr
    assert plain.stdout.startswith("error: raysid data show failed: ComputeError: "), plain.stdout
    for debug in ([command[0], "-m", "cli.main", "--debug", *command[3:]], command):
        env = dict(os.environ, RAYSID_DEBUG="1") if debug is command else dict(os.environ)
        shown = subprocess.run(debug, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
        assert shown.returncode == 2 and "Traceback (most recent call last)" in shown.stderr, shown.stderr
        assert "raysid/data/dataset.py" in shown.stderr


# --- the environment -------------------------------------------------------------------------------------------


def test_a_read_only_results_or_cache_folder_is_refused_before_ray_starts(mounted, study, tmp_path):
    import ray

    read_only = mounted("ro", "1m", read_only=True)
    ray_before = ray.is_initialized()  # another test of the session may have started the shared Ray
    result = CliRunner().invoke(app, ["sweep", str(study), "--smoke", "--results-dir", str(read_only / "r")])
    assert result.exit_code == 2
    assert _one_line(result) == (f"error: --results-dir {read_only / 'r'}: cannot write there (Read-only file "
                                 "system); give a folder you can write to")
    result = CliRunner().invoke(app, ["sweep", str(study), "--smoke", "--results-dir", str(tmp_path / "r"),
                                      "--cache-dir", str(read_only / "cache")])
    assert result.exit_code == 2
    assert _one_line(result).startswith(f"error: --cache-dir {read_only / 'cache'}: cannot write there (Read-only")
    assert ray.is_initialized() == ray_before  # refused before the sweep started (or joined) a Ray


def test_a_file_where_the_results_folder_should_be_is_refused(study, tmp_path):
    (tmp_path / "taken").write_text("a file")
    result = CliRunner().invoke(app, ["sweep", str(study), "--smoke", "--results-dir", str(tmp_path / "taken" / "r")])
    assert result.exit_code == 2
    assert _one_line(result) == (f"error: --results-dir {tmp_path / 'taken' / 'r'}: {tmp_path / 'taken'} is a file, "
                                 "not a folder; give a folder (or remove the file)")


def test_a_disk_without_room_for_a_sweep_is_refused_naming_its_free_space(mounted, study):
    small = mounted("small", "5m")
    result = CliRunner().invoke(app, ["sweep", str(study), "--smoke", "--results-dir", str(small / "r")])
    assert result.exit_code == 2
    line = _one_line(result)
    free = os.statvfs(small).f_bavail * os.statvfs(small).f_frsize
    assert line.startswith(f"error: --results-dir {small / 'r'}: its disk ({small}) has {free / 2**20:.1f} MiB free "
                           f"of 5.0 MiB; a sweep needs at least {MIN_FREE_BYTES / 2**20:.1f} MiB there"), line


def test_an_mlflow_server_that_does_not_answer_is_one_line(study, tmp_path):
    with socket.socket() as probe:  # a loopback port bound but never listening: nothing answers there
        probe.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{probe.getsockname()[1]}"
        result = CliRunner().invoke(app, ["sweep", str(study), "--smoke", "--results-dir", str(tmp_path / "r"),
                                          "--tracking-uri", uri])
    assert result.exit_code == 2
    assert _one_line(result) == (f"error: --tracking-uri {uri}: no MLflow server answers there ([Errno 111] Connection "
                                 "refused); start one (mlflow server --host 127.0.0.1 --port 5000) or leave "
                                 "--tracking-uri out to use RESULTS_DIR/mlflow.db")


def test_a_full_disk_under_a_torch_write_names_the_disk_not_unexpected_pos(mounted):
    import torch

    from raysid.cache import ArtifactStore

    disk = mounted("full", "1m")
    store = ArtifactStore(disk / "cache")
    with pytest.raises(DiskFull) as caught:
        store.fetch("tokenizer", "k1", lambda folder: torch.save(torch.zeros(1_000_000), folder / "model.pt"),
                    lambda folder: None)
    message = str(caught.value)
    assert message.startswith(f"the disk holding {disk / 'cache'} ({disk}) is full while writing the tokenizer "
                              "artifact: ") and " free of 1.0 MiB;" in message and "--resume" in message
    assert "unexpected pos" in str(caught.value.__cause__)  # what torch itself says
    assert list((disk / "cache" / "tokenizer").iterdir()) == [disk / "cache" / "tokenizer" / ".k1.lock"]  # no .partial
    assert explain(caught.value) == message


def test_a_local_ray_start_timeout_is_one_line_with_ray_s_hint():
    """Ray 2.60's own exceptions for a node that does not come up (not provoked: a loaded machine is not reliable)."""
    hint = RuntimeError("GCS cannot find the node with node ID 1f2e. The node registration may not be complete yet "
                        "before the timeout. Try increase the RAY_raylet_start_wait_time_s config.")
    try:
        try:
            raise hint
        except RuntimeError:
            raise Exception("The current node timed out during startup. This could happen because some of the "
                            "raylet failed to startup or the GCS has become overloaded.")
    except Exception as error:  # noqa: BLE001 - ray/_private/node.py raises a bare Exception
        timed_out = error
    line = ray_start_line(timed_out)
    assert line.startswith("the local Ray did not start in time (The current node timed out during startup; load average ")
    assert line.endswith("run it again when the machine is less busy, give Ray longer (export "
                         "RAY_raylet_start_wait_time_s=120), or pass --address of a running cluster")
    socket_wait = TimeoutError("Timed out after 30 seconds while waiting for node to startup. Did not find socket name "
                               "/tmp/ray/s/plasma_store in the list of object store socket names.")
    assert ray_start_line(socket_wait).startswith("the local Ray did not start in time (Timed out after 30 seconds")
    assert ray_start_line(RuntimeError("something else")) is None and explain(timed_out) == line
    assert not disk_full(timed_out)


def test_an_error_that_quotes_a_bracketed_value_shows_it_whole():
    """Error lines are printed as text, not rich markup, so a value such as ``[mmg]`` stays on the line."""
    result = CliRunner().invoke(app, ["show", "musicrec-ratio", "--set", "features.modalities=[text]",
                                      "--set", "recommender.tasks=[mmg,umg]"])
    assert result.exit_code == 2
    assert result.output.rstrip().endswith("drop those tasks (recommender.tasks: [mmg])"), result.output
