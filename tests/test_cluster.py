"""From laptop to cluster: cluster definitions, URI storage, a real `ray start --head`, the Jobs API, resume.

The cluster tests start their own Ray head (`ray start --head` on loopback, its own ports, temp dir and auth
token) in subprocesses, so it never meets the session's `ray_local`; every client (raysid submit/status/logs,
raysid sweep) runs as a subprocess with that head's environment. The head is stopped at the end by the process
ids it started, never with `ray stop` (which would stop every Ray on the machine).
"""

import copy
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl
import pytest
import yaml
from mlflow.tracking import MlflowClient

from raysid.cache import ArtifactStore, RemoteArtifactStore, open_store
from raysid.config import ConfigError
from raysid.sweep.space import find_study
from raysid.sweep.submit import Submission, dashboard_port, read_cluster, tunnel_command

ROOT = Path(__file__).resolve().parents[1]
CLUSTERS = ROOT / "clusters"
PORTS = ("port", "dashboard-port", "ray-client-server-port", "node-manager-port", "object-manager-port",
         "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port")


# --- cluster definitions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["local.yaml", "aws-gpu.yaml"])
def test_cluster_launcher_yamls_pass_rays_own_schema(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CLUSTERS / name).read_text())
    validate_config(prepare_config(copy.deepcopy(config)))  # what `ray up` checks: raises on a bad key
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "RAYSID_RESULTS_DIR=" in head
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"  # token auth on every node


def test_cloud_yaml_has_a_cpu_head_and_gpu_worker_types():
    config = yaml.safe_load((CLUSTERS / "aws-gpu.yaml").read_text())
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0} and not head["node_config"]["InstanceType"].startswith(("g", "p"))
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert len(workers) >= 2 and all(t["node_config"]["InstanceType"].startswith("g5.") for t in workers)
    assert "-gpu" in config["docker"]["image"] and config["provider"]["type"] == "aws"


def test_kuberay_manifests_have_the_required_keys():
    cluster = read_cluster(CLUSTERS / "kuberay-raycluster.yaml")
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["kind"] == "RayCluster"
    spec = cluster["spec"]
    assert spec["authOptions"] == {"mode": "token"} and spec["rayVersion"].startswith("2.60")
    assert spec["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["image"] and "nvidia.com/gpu" not in head["resources"]["limits"]
    gpu = spec["workerGroupSpecs"][0]
    assert gpu["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {gpu["minReplicas"], gpu["maxReplicas"]} == {0, 8}
    documents = list(yaml.safe_load_all((CLUSTERS / "kuberay-rayjob.yaml").read_text()))
    job, policy = documents
    assert (job["apiVersion"], job["kind"], policy["kind"]) == ("ray.io/v1", "RayJob", "NetworkPolicy")
    assert job["spec"]["entrypoint"].startswith("python -m cli.main sweep musicrec-ratio --address auto")
    assert job["spec"]["shutdownAfterJobFinishes"] is True and job["spec"]["rayClusterSpec"]["authOptions"]["mode"] == "token"
    runtime_env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    assert runtime_env["working_dir"] == "/home/ray/raysid"
    assert policy["spec"]["podSelector"]["matchLabels"]["ray.io/node-type"] == "head"


def test_cluster_definitions_resolve_to_a_job_server_address(tmp_path):
    assert tunnel_command(read_cluster(CLUSTERS / "local.yaml"), "local.yaml", 1) is None  # loopback head
    assert dashboard_port(read_cluster(CLUSTERS / "local.yaml")) == 8265
    aws = read_cluster(CLUSTERS / "aws-gpu.yaml")
    assert tunnel_command(aws, "c.yaml", 4321) == ["ray", "dashboard", "c.yaml", "--port", "4321", "--remote-port", "8265"]
    kuberay = read_cluster(CLUSTERS / "kuberay-raycluster.yaml")
    assert tunnel_command(kuberay, "k.yaml", 4321) == [
        "kubectl", "port-forward", "--address", "127.0.0.1", "-n", "default", "service/raysid-head-svc", "4321:8265"]
    with pytest.raises(ConfigError, match="a RayJob runs its own entrypoint"):
        tunnel_command(read_cluster(CLUSTERS / "kuberay-rayjob.yaml"), "j.yaml", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text("just: a mapping\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: expected a Ray cluster launcher YAML \(with 'provider'\)"):
        read_cluster(bad)
    bad.write_text("provider: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        read_cluster(bad)


def test_submission_entrypoint_is_an_argument_list():
    args = Submission("s", smoke=True, cache="s3://b/c", max_concurrent=2).arguments("my study.yaml")
    assert args == ["python", "-m", "cli.main", "sweep", "my study.yaml", "--address", "auto", "--no-progress",
                    "--cache-dir", "s3://b/c", "--max-concurrent", "2", "--smoke"]


def test_the_code_base_loads_yaml_safely_builds_no_shell_strings_and_loads_weights_only():
    sources = {p: p.read_text() for p in [*ROOT.glob("raysid/**/*.py"), *ROOT.glob("cli/*.py")]}
    loads = 0
    for path, text in sources.items():
        assert "yaml.load(" not in text and "yaml.unsafe_load" not in text and "shell=True" not in text, path
        assert "os.system(" not in text and "os.popen(" not in text, path
        for call in re.findall(r"torch\.load\((.*)", text):
            assert "weights_only=True" in call, (path, call)  # no pickled code runs when a checkpoint loads
            loads += 1
    assert loads >= 4  # tokenizers, T5, SASRec, Ray Train checkpoints


# --- shared storage: the stage cache at a URI ------------------------------------------------------------


def test_a_uri_cache_uploads_once_and_other_nodes_download(tmp_path):
    uri = (tmp_path / "bucket" / "cache").as_uri()  # file:// goes through the same pyarrow code as s3://
    built = []

    def produce(folder):
        built.append(folder)
        (folder / "sub").mkdir()
        (folder / "sub" / "codes.json").write_text(json.dumps([1, 2, 3]))

    first = open_store(uri, tmp_path / "node-a")
    assert isinstance(first, RemoteArtifactStore) and first.location == uri
    assert first.fetch("tokenizer", "k1", produce, lambda f: json.loads((f / "sub" / "codes.json").read_text())) == [1, 2, 3]
    remote = tmp_path / "bucket" / "cache" / "tokenizer" / "k1"
    assert (remote / ".complete").exists() and json.loads((remote / "sub" / "codes.json").read_text()) == [1, 2, 3]

    second = open_store(uri, tmp_path / "node-b")  # another node: nothing local yet
    assert not (tmp_path / "node-b" / "tokenizer" / "k1").exists() and second.has("tokenizer", "k1")
    value = second.fetch("tokenizer", "k1", produce, lambda f: json.loads((f / "sub" / "codes.json").read_text()))
    assert value == [1, 2, 3] and len(built) == 1 and second.records[0].cached
    assert second.local("tokenizer", "missing") is None and second.local("tokenizer", "k1") == tmp_path / "node-b" / "tokenizer" / "k1"
    assert isinstance(open_store(tmp_path / "plain"), ArtifactStore) and not isinstance(open_store(tmp_path / "plain"), RemoteArtifactStore)


def test_an_interrupted_upload_is_not_taken_for_an_artifact(tmp_path):
    uri = (tmp_path / "bucket").as_uri()
    (tmp_path / "bucket" / "result" / "k").mkdir(parents=True)
    (tmp_path / "bucket" / "result" / "k" / "metrics.json").write_text("{}")  # no .complete: a dead uploader
    store = open_store(uri, tmp_path / "mirror")
    assert not store.has("result", "k")
    assert store.fetch("result", "k", lambda f: (f / "metrics.json").write_text('{"a": 1}'),
                       lambda f: json.loads((f / "metrics.json").read_text())) == {"a": 1}
    assert (tmp_path / "bucket" / "result" / "k" / ".complete").exists()


def test_a_cache_uri_pyarrow_cannot_open_fails_naming_it(tmp_path):
    with pytest.raises(ValueError, match=r"cache URI 'nosuchscheme://x/y': not a filesystem pyarrow can open"):
        open_store("nosuchscheme://x/y", tmp_path)


# --- a real Ray head ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _processes(test) -> list[int]:
    """Ids of live processes whose command line or environment passes ``test``."""
    found = []
    for folder in glob.glob("/proc/[0-9]*"):
        try:
            cmdline = Path(folder, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = Path(folder, "environ").read_bytes().decode(errors="replace").split("\0")
            state = Path(folder, "stat").read_text().split(") ")[-1][:1]
        except OSError:
            continue
        if state != "Z" and test(cmdline, environ):
            found.append(int(folder[len("/proc/"):]))
    return found


class LocalHead:
    """`ray start --head` on 127.0.0.1 with its own ports, temp dir and token; stopped by process id."""

    def __init__(self):
        self.temp = Path(tempfile.mkdtemp(prefix="rsh", dir="/tmp"))  # short: Ray's socket paths must fit
        self.ports = {name: _free_port() for name in PORTS}
        token = self.temp / "auth_token"
        token.write_text(secrets.token_hex(32))
        self.env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS", "RAY_AUTH_TOKEN")}
        self.env.update(RAY_AUTH_TOKEN_PATH=str(token), RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1",
                        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))

    @property
    def gcs(self) -> str:
        return f"127.0.0.1:{self.ports['port']}"

    @property
    def jobs(self) -> str:
        return f"http://127.0.0.1:{self.ports['dashboard-port']}"

    def start(self, results_dir: Path) -> None:
        command = ["ray", "start", "--head", "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
                   "--include-dashboard", "true", "--num-cpus", "2", "--temp-dir", str(self.temp),
                   "--disable-usage-stats", *[arg for name, port in self.ports.items() for arg in (f"--{name}", str(port))]]
        self.results = results_dir
        env = dict(self.env, RAYSID_RESULTS_DIR=str(results_dir))  # what jobs inherit from the head
        started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, start_new_session=True)
        assert started.returncode == 0, started.stdout + started.stderr
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the job server answers 401 without the token: it is up
            try:
                urllib.request.urlopen(f"{self.jobs}/api/version", timeout=2)
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"no job server on {self.jobs}")

    def stop(self) -> None:
        mine = _processes(lambda cmdline, environ: str(self.temp) in cmdline)
        raylets = {str(pid) for pid in mine if "raylet/raylet" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")}
        workers = _processes(lambda cmdline, environ: any(e.startswith("RAY_RAYLET_PID=") and e.split("=", 1)[1] in raylets for e in environ))
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in mine + workers:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (set(mine + workers) & set(_processes(lambda c, e: True))):
                time.sleep(0.3)
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    cluster = LocalHead()
    cluster.start(tmp_path_factory.mktemp("head-results"))
    yield cluster
    cluster.stop()


def raysid(head, *args, timeout=600, check=True):
    """Run the raysid CLI as a separate process with the test head's environment."""
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], env=head.env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"raysid {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr[-5000:]}"
    return done


def write_study(folder: Path, name: str, tiny: dict, ratios=("1:3", "3:1"), seeds=(0,)) -> Path:
    """musicrec-ratio shrunk, as a study that extends it (submit ships it with its parent merged in): the
    given ratios and seeds, TINY sizes as smoke overrides."""
    labels = yaml.safe_load(find_study("musicrec-ratio").read_text())["axes"]["ratio"]["grid"]
    deleted = "".join(f"        '{label}': !delete\n" for label in labels if label not in ratios)
    path = folder / f"{name}.yaml"
    smoke = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in tiny.items())
    path.write_text(f"extends: musicrec-ratio\nname: {name}\naxes:\n  ratio:\n    grid:\n{deleted}"
                    f"seeds: {list(seeds)}\nsmoke:\n  seeds: !delete\n{smoke}")
    return path


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_submit_a_study_through_the_jobs_api_and_find_its_results(head, tmp_path, tiny_overrides):
    """`raysid submit` ships the study, the job runs it on the head, status/logs follow it, results land."""
    study = write_study(tmp_path, "jobs-smoke", tiny_overrides)
    shared = tmp_path / "shared"  # stands for the bucket every node sees
    cache, storage = (shared / "cache").as_uri(), (shared / "tune").as_uri()
    submitted = raysid(head, "submit", str(study), "--address", head.jobs, "--smoke",
                       "--cache-dir", cache, "--storage", storage)
    job_id = submitted.stdout.strip().splitlines()[-1]
    assert job_id.startswith("raysid-jobs-smoke-")

    cluster_file = tmp_path / "local.yaml"  # clusters/local.yaml pointed at this head's job server port
    config = yaml.safe_load((CLUSTERS / "local.yaml").read_text())
    config["head_start_ray_commands"] = [c.replace("--dashboard-port=8265", f"--dashboard-port={head.ports['dashboard-port']}")
                                         for c in config["head_start_ray_commands"]]
    cluster_file.write_text(yaml.safe_dump(config))
    status = raysid(head, "status", job_id, "--cluster", str(cluster_file), "--wait", "600", check=False)
    logs = raysid(head, "logs", job_id, "--address", head.jobs).stdout
    assert status.returncode == 0 and "SUCCEEDED" in status.stdout, status.stdout + logs[-5000:]
    assert "raysid.study: jobs-smoke" in status.stdout and "--smoke" in status.stdout
    assert "2 trials finished" in logs

    results = head.results  # no --results-dir: the job used the head's RAYSID_RESULTS_DIR
    trials = pl.read_parquet(results / "jobs-smoke-smoke" / "trials.parquet")
    assert sorted(trials["ratio"].to_list()) == ["1:3", "3:1"] and trials["test/ndcg@10"].is_not_null().all()
    assert len(list((shared / "cache" / "result").glob("*/.complete"))) == 2  # the URI cache, one result per trial
    assert not (results / "cache").exists()
    assert (shared / "tune" / "jobs-smoke-smoke" / "raysid-sweep.json").exists()  # the URI Tune storage
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("jobs-smoke").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2 and {r.info.status for r in children} == {"FINISHED"}
    for child in children:  # artifacts came from the URI cache
        assert {"config.json", "semantic_ids.parquet"} <= {a.path for a in client.list_artifacts(child.info.run_id)}

    followed = raysid(head, "logs", job_id, "--address", head.jobs, "--follow", timeout=120).stdout
    assert "2 trials finished" in followed


def _trial_states(experiment: Path) -> dict[str, str]:
    """Trial id -> status in Tune's newest saved experiment state (what a resume starts from)."""
    from ray.tune import ExperimentAnalysis

    if not list(experiment.glob("experiment_state-*.json")):
        return {}
    try:
        return {t.trial_id: t.status for t in ExperimentAnalysis(str(experiment)).trials}
    except Exception:  # a state file being replaced right now
        return {}


def _final_reports(trial_dir: Path) -> list[dict]:
    lines = (trial_dir / "result.json").read_text().splitlines() if (trial_dir / "result.json").exists() else []
    return [row for row in map(json.loads, lines) if "stage_keys/result" in row]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_killed_driver_resumes_without_losing_or_repeating_trials(head, tmp_path, tiny_overrides):
    # 4 trials, one at a time, of several seconds each (as in the S3 test): tiny trials of a second or two could
    # all end before Tune's saved state showed the first one, and the driver was then killed too late
    longer = {**tiny_overrides, "tokenizer.epochs": 10, "recommender.epochs": 4}
    study = write_study(tmp_path, "resume", longer, seeds=(0, 1))
    results = tmp_path / "results"
    args = ["sweep", str(study), "--smoke", "--address", head.gcs, "--results-dir", str(results),
            "--max-concurrent", "1", "--no-progress"]
    experiment = results / "tune" / "resume-smoke"
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=head.env, cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 600
        while "TERMINATED" not in _trial_states(experiment).values():
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-5000:]
            assert time.monotonic() < deadline, "no trial finished"
            time.sleep(0.3)
        os.killpg(driver.pid, signal.SIGKILL)  # the driver dies mid-study
        driver.wait()
    states = _trial_states(experiment)
    finished_before = {t for t, s in states.items() if s == "TERMINATED"}
    assert 1 <= len(finished_before) < 4, states

    resumed = raysid(head, *args, "--resume")
    assert "4 trials finished" in resumed.stdout

    trials = pl.read_parquet(results / "resume-smoke" / "trials.parquet")
    assert sorted(zip(trials["ratio"], trials["seed"])) == [("1:3", 0), ("1:3", 1), ("3:1", 0), ("3:1", 1)]
    by_trial = {row["trial_id"]: row for row in trials.iter_rows(named=True)}
    assert len(by_trial) == 4 and finished_before <= set(by_trial)
    for trial_id in finished_before:  # kept, not run again (a second run would be answered from the cache)
        assert by_trial[trial_id]["cached/result"] == 0.0
    # every point did its work exactly once, counted over all its trial folders: a trial that had started but
    # that Tune's saved state did not hold yet comes back under a new trial id (and is answered from the cache
    # when its result was stored before the kill)
    reports = {}
    for folder in (p for p in experiment.iterdir() if (p / "params.json").exists()):
        params = json.loads((folder / "params.json").read_text())
        reports.setdefault((params["ratio"], params["seed"]), []).extend(_final_reports(folder))
    # (a point killed after its result was stored but before Tune wrote its report has only cached reports)
    assert sorted(reports) == [("1:3", 0), ("1:3", 1), ("3:1", 0), ("3:1", 1)]
    for point, done in reports.items():
        assert done and sum(r["cached/result"] == 0.0 for r in done) <= 1, (point, done)
    assert len(list((results / "cache" / "result").glob("[!.]*"))) == 4  # one result artifact per point, made once
    for trial_id in finished_before:
        assert len(_final_reports(next(experiment.glob(f"*{trial_id}*")))) == 1

    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name("resume").experiment_id
    runs = client.search_runs([experiment_id])
    parents = [r for r in runs if r.data.tags.get("raysid.kind") == "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and "raysid.resumed" in parents[0].data.tags
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.tags["raysid.trial_id"] for r in children) == sorted(by_trial)  # one run per trial
    assert {r.info.status for r in children} == {"FINISHED"}
    for child in children:
        row = by_trial[child.data.tags["raysid.trial_id"]]
        assert child.data.metrics["test/ndcg_at_10"] == pytest.approx(row["test/ndcg@10"])

    ray_client = [a if a != head.gcs else f"ray://127.0.0.1:{head.ports['ray-client-server-port']}" for a in args]
    again = raysid(head, *ray_client, "--resume", check=False)  # nothing left to run; through Ray Client this time
    assert again.returncode == 0 and "4 trials finished" in again.stdout, again.stdout + again.stderr[-3000:]
    assert len(client.search_runs([experiment_id])) == 5  # still one sweep run and four trial runs
    changed = write_study(tmp_path, "resume", dict(tiny_overrides, **{"recommender.epochs": 2}), seeds=(0, 1))
    refused = raysid(head, "sweep", str(changed), *args[2:], "--resume", check=False)
    assert refused.returncode == 2 and "changed since the sweep started" in " ".join(refused.stdout.split())  # rich wraps


@pytest.mark.parametrize("command", [["status", "some-job"], ["logs", "some-job"], ["submit", "musicrec-ratio"]])
def test_a_job_server_that_does_not_answer_is_one_line(command):
    from typer.testing import CliRunner

    from cli.main import app

    with socket.socket() as probe:  # a loopback port nothing listens on: bound, never listened
        probe.bind(("127.0.0.1", 0))
        address = f"http://127.0.0.1:{probe.getsockname()[1]}"
        result = CliRunner().invoke(app, [*command, "--address", address])
    assert result.exit_code == 2, result.output
    assert f"error: no Ray job server answers at {address}" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_a_cluster_address_nothing_listens_at_fails_at_once():
    from raysid.sweep.runner import check_reachable

    with socket.socket() as listening, socket.socket() as silent:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        silent.bind(("127.0.0.1", 0))  # bound, never listened: connecting is refused
        check_reachable(f"127.0.0.1:{listening.getsockname()[1]}")
        check_reachable(f"ray://127.0.0.1:{listening.getsockname()[1]}")
        check_reachable("auto")  # left to Ray
        dead = f"127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(ConfigError, match=rf"--address {dead}: no Ray cluster answers there \(Connection refused\)"):
            check_reachable(dead)
        with pytest.raises(ConfigError, match="no Ray cluster answers there"):
            check_reachable(f"ray://{dead}")


def test_submit_ships_only_sources_and_package_data_and_names_secret_like_files(tmp_path):
    from raysid.sweep.submit import stage_package

    package = tmp_path / "raysid"
    for name, text in {"__init__.py": "", "sub/mod.py": "x = 1\n", "bench/peers/requirements.txt": "a==1\n", "py.typed": "",
                       ".env": "AWS_SECRET_ACCESS_KEY=x\n", "sub/notes.ipynb": "{}", "sub/id_rsa": "key",
                       "__pycache__/mod.cpython-311.pyc": "", "tokenize.py": ""}.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    with pytest.warns(UserWarning, match=r"look like secrets.*: raysid/.env, raysid/sub/id_rsa$"):
        staged = stage_package(package, tmp_path / "staged")
    shipped = sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file())
    assert shipped == ["__init__.py", "bench/peers/requirements.txt", "py.typed", "sub/mod.py", "tokenize.py"]
