"""A sweep whose stage cache, Tune storage and MLflow artifacts live on an S3-compatible server.

The server is moto's standalone server (``moto[server]``, a test dependency) on 127.0.0.1 with its IAM checks
on: after the first four requests (a user, its S3 policy, its access key, the bucket) every request must be
signed with that key, so a sweep that did not take its credentials from the environment would be refused.
raysid gets them as a user would give them: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL and
AWS_DEFAULT_REGION in the environment (read by pyarrow's S3FileSystem, which the cache and Ray Tune use, and by
boto3, which MLflow uses). The sweep's driver is killed with SIGKILL after its first trial and the sweep resumed;
then the secret key is looked for everywhere the sweep wrote: its output, the results folder (the MLflow store
included), Ray's session logs and every object in the bucket.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import botocore.exceptions
import polars as pl
import pytest
import yaml
from mlflow.tracking import MlflowClient

from ray_processes import ROOT, descendants, free_port, kill
from raysid.cache import MIRROR_ENV
from raysid.sweep.space import find_study

BUCKET = "raysid-test"
POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


class S3Server:
    """moto's S3 on 127.0.0.1 with IAM checks on; ``credentials`` are the one key it accepts."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="4")  # the setup below, then signed requests only
        self.log = open(folder / "moto.log", "w")
        self.process = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
                                         "-p", str(self.port)], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait()
        setup = self.client("iam", "setup", "setup")
        setup.create_user(UserName="raysid")
        setup.put_user_policy(UserName="raysid", PolicyName="s3", PolicyDocument=json.dumps(POLICY))
        key = setup.create_access_key(UserName="raysid")["AccessKey"]
        self.key_id, self.secret = key["AccessKeyId"], key["SecretAccessKey"]
        self.client("s3").create_bucket(Bucket=BUCKET)

    def _wait(self) -> None:
        import socket

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "moto_server exited"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()  # no request: none is counted
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("moto_server did not listen")

    @property
    def environment(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self, service: str, key_id: str | None = None, secret: str | None = None):
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=key_id or self.key_id, aws_secret_access_key=secret or self.secret)

    def objects(self) -> dict[str, bytes]:
        s3, found = self.client("s3"), {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for item in page.get("Contents", []):
                found[item["Key"]] = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        return found

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture
def s3(tmp_path):
    server = S3Server(tmp_path)
    yield server
    server.stop()


def _study(folder: Path, tiny: dict) -> Path:
    """musicrec-ratio shrunk to 4 trials of ~10 s each (the driver is killed between the first's end and the last's)."""
    data = yaml.safe_load(find_study("musicrec-ratio").read_text())
    data["name"] = "on-s3"
    data["axes"]["ratio"]["grid"] = {r: data["axes"]["ratio"]["grid"][r] for r in ("1:3", "3:1")}
    data["seeds"], data["smoke"] = [0, 1], {**tiny, "tokenizer.epochs": 10, "recommender.epochs": 4}
    path = folder / "on-s3.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _finished_in_tune_state(experiment: str) -> int:
    """Trials TERMINATED in the experiment state Tune saved to S3 (what a resume starts from)."""
    from ray.tune import ExperimentAnalysis

    try:
        return sum(t.status == "TERMINATED" for t in ExperimentAnalysis(experiment).trials)
    except Exception:  # not saved yet, or being replaced
        return 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_sweep_on_s3_resumes_after_its_driver_is_killed_and_never_writes_the_secret(s3, tmp_path, monkeypatch,
                                                                                      tiny_overrides):
    refused = s3.client("s3", secret="not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError, match="SignatureDoesNotMatch"):
        refused.list_objects_v2(Bucket=BUCKET)  # the server checks signatures
    for name, value in s3.environment.items():
        monkeypatch.setenv(name, value)  # for this process's pyarrow, boto3 and MLflow reading the bucket
    ray_temp = Path(tempfile.mkdtemp(prefix="rss", dir="/tmp"))  # the local Ray's logs (short: socket paths)
    token = tmp_path / "ray-token"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_TMPDIR=str(ray_temp), RAY_AUTH_TOKEN_PATH=str(token), RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env[MIRROR_ENV] = str(tmp_path / "mirror")  # not the machine's default mirror, which an earlier run filled
    results = tmp_path / "results"
    uris = {"--cache-dir": f"s3://{BUCKET}/raysid/cache", "--storage": f"s3://{BUCKET}/raysid/tune",
            "--mlflow-artifacts": f"s3://{BUCKET}/raysid/mlartifacts"}
    args = [sys.executable, "-m", "cli.main", "sweep", str(_study(tmp_path, tiny_overrides)), "--smoke",
            "--results-dir", str(results), "--max-concurrent", "1", "--no-progress",
            *[part for option, uri in uris.items() for part in (option, uri)]]
    experiment = f"{uris['--storage']}/on-s3-smoke"
    try:
        with open(tmp_path / "killed.log", "w") as log:
            driver = subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + 600
            while _finished_in_tune_state(experiment) < 1:
                assert driver.poll() is None, (tmp_path / "killed.log").read_text()[-5000:]
                assert time.monotonic() < deadline, "no trial finished"
                time.sleep(0.5)
            started = descendants([driver.pid])  # its local Ray too
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
            kill(started, grace=5)
        assert 1 <= _finished_in_tune_state(experiment) < 4
        resumed = subprocess.run([*args, "--resume"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0 and "4 trials finished" in resumed.stdout, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        _check_results(s3, results, experiment)
        _check_secret_is_nowhere(s3, [tmp_path / "killed.log", results, ray_temp], resumed.stdout + resumed.stderr)
        assert token.stat().st_mode & 0o777 == 0o600  # the local Ray's token, made by raysid: owner-only
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)


def _check_results(s3: S3Server, results: Path, experiment: str) -> None:
    trials = pl.read_parquet(results / "on-s3-smoke" / "trials.parquet")
    assert sorted(zip(trials["ratio"], trials["seed"])) == [("1:3", 0), ("1:3", 1), ("3:1", 0), ("3:1", 1)]
    assert {p.name for p in results.iterdir()} >= {"on-s3-smoke", "mlflow.db"}
    assert not {"cache", "tune", "mlartifacts"} & {p.name for p in results.iterdir()}  # every store is in the bucket
    keys = list(s3.objects())
    assert len([k for k in keys if k.startswith("raysid/cache/result/") and k.endswith("/.complete")]) == 4  # made once each
    assert f"{experiment.split(BUCKET + '/', 1)[1]}/raysid-sweep.json" in keys
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment_info = client.get_experiment_by_name("on-s3")
    assert experiment_info.artifact_location == f"s3://{BUCKET}/raysid/mlartifacts/on-s3"
    runs = client.search_runs([experiment_info.experiment_id])
    parents = [r for r in runs if r.data.tags.get("raysid.kind") == "sweep"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4 and "raysid.resumed" in parents[0].data.tags
    assert {r.info.status for r in runs} == {"FINISHED"}
    for child in children:  # listed from the bucket through MLflow's S3 artifact store
        assert {"config.json", "semantic_ids.parquet"} <= {a.path for a in client.list_artifacts(child.info.run_id)}
        assert [k for k in keys if k.startswith(f"raysid/mlartifacts/on-s3/{child.info.run_id}/artifacts/")]


def _check_secret_is_nowhere(s3: S3Server, places: list[Path], output: str) -> None:
    secret = s3.secret.encode()
    assert s3.secret not in output
    for place in places:
        files = [place] if place.is_file() else [p for p in place.rglob("*") if p.is_file() and not p.is_symlink()]
        assert files
        for path in files:
            assert secret not in path.read_bytes(), path
    for key, body in s3.objects().items():
        assert secret not in body and s3.secret not in key, key
    client = MlflowClient(f"sqlite:///{places[1] / 'mlflow.db'}")
    for run in client.search_runs([client.get_experiment_by_name("on-s3").experiment_id]):
        assert all(s3.secret not in str(v) for v in [*run.data.params.values(), *run.data.tags.values()])
