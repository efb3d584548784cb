"""The Ray Train adapter: the same loop without Ray, on one and on two real TorchTrainer workers, and resume."""

import json
import os
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from raysid.config import ConfigError
from raysid.distributed import Session, TrainingConfig, run_scope, run_training, unwrap
from raysid.recommenders.base import RecommenderInputs
from raysid.tokenizers.base import TokenizerInputs

X = torch.linspace(-1, 1, 64)[:, None]
Y = 3 * X - 1


def _checkpointed_epoch(storage: Path) -> int:
    """The epoch of the checkpoint Ray Train registered last under ``storage`` (0 before the first)."""
    for snapshot in storage.glob("*/checkpoint_manager_snapshot.json"):
        try:
            latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result") or {}
        except (OSError, json.JSONDecodeError):  # being written right now
            continue
        return int((latest.get("metrics") or {}).get("epoch", 0))
    return 0


def regression_loop(session: Session, epochs: int = 4, crash_marker: str = "") -> None:
    """Fit y = 3x - 1 with full-batch SGD over the workers' shards; optionally crash rank 1 once at epoch 3,
    once Ray Train has registered the epoch-2 checkpoint (an event, so the restart point is known)."""
    torch.manual_seed(0)
    model = session.wrap(nn.Linear(1, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    start, restored = 1, session.restore()
    if restored is not None:
        unwrap(model).load_state_dict(restored["model"])
        optimizer.load_state_dict(restored["optimizer"])
        start = restored["epoch"] + 1
    for epoch in range(start, epochs + 1):
        if crash_marker and epoch == 3 and session.rank == session.world_size - 1 and not Path(crash_marker).exists():
            deadline = time.monotonic() + 300
            while _checkpointed_epoch(Path(crash_marker).parent) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            Path(crash_marker).write_text("crashed once")
            os._exit(1)  # a worker dies without warning
        rows = session.shard(torch.arange(len(X)))
        loss = ((model(X[rows]) - Y[rows]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        totals = session.sums({"loss": float(loss.detach()) * len(rows), "rows": float(len(rows))})
        state = {"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}
        session.report(epoch, {"loss": totals["loss"] / totals["rows"], "start": float(start)}, state)


def test_without_ray_reports_every_epoch_live():
    seen = []
    state = run_training(regression_loop, TrainingConfig(), on_epoch=lambda e, m: seen.append((e, m["loss"])))
    assert [e for e, _ in seen] == [1, 2, 3, 4]
    assert seen[-1][1] < seen[0][1]
    assert state["epoch"] == 4


def test_two_ray_workers_match_one_process(ray_local, tmp_path):
    """Full-batch DDP over two shards averages the same gradient as one process: same weights."""
    local = run_training(regression_loop, TrainingConfig())
    config = TrainingConfig(ray=True, num_workers=2, resources_per_worker={"CPU": 0.5}, storage_path=str(tmp_path))
    seen = []
    distributed = run_training(regression_loop, config, on_epoch=lambda e, m: seen.append(e))
    assert seen == [1, 2, 3, 4]
    for name, value in local["model"].items():
        torch.testing.assert_close(distributed["model"][name], value, rtol=1e-5, atol=1e-6)


def test_a_killed_worker_resumes_from_its_last_checkpoint(ray_local, tmp_path):
    marker = tmp_path / "crashed"
    config = TrainingConfig(
        ray=True, num_workers=2, resources_per_worker={"CPU": 0.5}, max_failures=1, storage_path=str(tmp_path)
    )
    seen = []
    state = run_training(partial(regression_loop, crash_marker=str(marker)), config, lambda e, m: seen.append((e, m)))
    assert marker.exists()  # the worker did die once
    assert [e for e, _ in seen] == [1, 2, 3, 4]  # no epoch lost, none repeated in the reports
    starts = [m["start"] for _, m in seen]
    # the restarted group resumed from the last checkpoint Ray had registered (epoch 2), not from scratch
    assert starts[0] == 1.0 and starts[-1] == 3.0
    assert all(epoch >= start for (epoch, _), start in zip(seen, starts))
    local = run_training(regression_loop, TrainingConfig())
    for name, value in local["model"].items():
        torch.testing.assert_close(state["model"][name], value, rtol=1e-5, atol=1e-6)


def test_a_run_started_again_in_its_scope_resumes_from_its_checkpoint(ray_local, tmp_path):
    """A run that failed for good (no retries left: a lost node, a killed trial) and is started again under the
    same scope (the retried trial building the same artifact) continues from its last checkpoint."""
    marker = tmp_path / "crashed"
    config = TrainingConfig(ray=True, num_workers=2, resources_per_worker={"CPU": 0.5}, storage_path=str(tmp_path))
    loop = partial(regression_loop, crash_marker=str(marker))
    with pytest.raises(Exception, match="Training failed"), run_scope("trial-1", "tokenizer", "key-1"):
        run_training(loop, config, name="regression")
    assert marker.exists()
    seen = []
    with run_scope("trial-1", "tokenizer", "key-1") as scope:
        state = run_training(loop, config, lambda e, m: seen.append((e, m)), name="regression")
    assert [e for e, _ in seen] == [1, 2, 3, 4] and [m["start"] for _, m in seen] == [1.0, 1.0, 3.0, 3.0]
    (run,) = scope.runs  # the run's record: its two worker groups, the second resumed after epoch 2
    assert [g["resumed_after"] for g in run["groups"]] == [None, 2] and [g["epochs"] for g in run["groups"]] == [[1, 2], [3, 4]]
    assert all(len(g["nodes"]) == 2 and g["node_ips"][0] for g in run["groups"])
    assert state["epoch"] == 4 and run["name"].startswith("regression-")
    with run_scope("trial-2", "tokenizer", "key-1") as other:  # another scope: a run of its own, from scratch
        run_training(regression_loop, config, name="regression")
    assert other.runs[0]["name"] != run["name"] and other.runs[0]["groups"][0]["resumed_after"] is None


def test_runs_are_named_by_scope_name_and_order():
    with run_scope("t") as outer, run_scope("semantic_ids", "k1", storage="s3://b/train") as inner:
        first, second, other = inner.run_name("sasrec"), inner.run_name("sasrec"), inner.run_name("t5")
        assert inner.storage == "s3://b/train" and inner.parts == ("t", "semantic_ids", "k1") and outer.storage is None
    assert len({first, second, other}) == 3 and first.startswith("sasrec-") and other.startswith("t5-")
    with run_scope("t"), run_scope("semantic_ids", "k1") as again:
        assert again.run_name("sasrec") == first and again.run_name("sasrec") == second


def test_without_ray_the_loop_must_report():
    with pytest.raises(RuntimeError, match="never called session.report"):
        run_training(lambda session: None, TrainingConfig(), name="silent")


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"num_workers": 0}, "training.num_workers"),
        ({"num_workers": 2}, "training.num_workers"),  # several workers need Ray
        ({"precision": "fp16"}, "training.precision"),
        ({"max_failures": -1}, "training.max_failures"),
        ({"resources_per_worker": {"CPU": -1}}, "training.resources_per_worker"),
    ],
)
def test_bad_training_configs_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        TrainingConfig(**kwargs)


# ------------------------------------------------------------------ the real training loops on Ray Train
def _catalog():
    from raysid.data.catalog import CatalogConfig, generate_catalog
    from raysid.data.splits import SplitConfig, make_splits

    dataset = generate_catalog(CatalogConfig(
        num_tracks=120, num_playlists=90, num_genres=3, subgenres_per_genre=2, num_artists=12,
        text_dim=16, audio_dim=8, num_tags=12, max_length=12,
    ))
    features = {k: (v - v.mean(0)) / (v.std(0) + 1e-6) for k, v in dataset.modalities.items()}
    return dataset, make_splits(dataset, SplitConfig()), features


RAY_2 = dict(ray=True, num_workers=2, resources_per_worker={"CPU": 0.5})


def test_musicrec_on_two_ray_workers_keeps_the_tokenizer_contract(ray_local, tmp_path):
    from raysid.tokenizers.musicrec import MusicRecConfig, MusicRecTokenizer

    _, splits, features = _catalog()
    config = MusicRecConfig(latent_dim=8, hidden_dims=(32,), codebook_size=8, epochs=3, batch_size=32, alpha=0, beta=0)
    local_epochs, ray_epochs = [], []
    local = MusicRecTokenizer(config).fit(TokenizerInputs(features, splits.train_items(),
                                                          on_epoch=lambda e, m: local_epochs.append(m)))
    training = TrainingConfig(**RAY_2, storage_path=str(tmp_path))
    distributed = MusicRecTokenizer(config).fit(TokenizerInputs(
        features, splits.train_items(), on_epoch=lambda e, m: ray_epochs.append(m), training=training
    ))
    codes = distributed.encode(features)
    assert codes.shape == local.encode(features).shape == (120, 2 + 3 * 2)
    assert codes.min() >= 0 and codes.max() < 8
    assert len(ray_epochs) == len(local_epochs) == 3 and ray_epochs[0].keys() == local_epochs[0].keys()
    assert ray_epochs[-1]["tokenizer/loss"] < ray_epochs[0]["tokenizer/loss"]  # it trained


def test_t5_on_two_ray_workers_ranks_real_items(ray_local, tmp_path):
    from raysid.recommenders.t5 import T5Recommender, T5RecommenderConfig
    from raysid.semantic_ids.table import SemanticIds

    _, splits, _ = _catalog()
    codes = np.random.default_rng(0).integers(0, 8, size=(120, 2))
    sids = SemanticIds.from_codes(codes, ("a", "b"), (8, 8), True)
    config = T5RecommenderConfig(d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8, epochs=2, beam_size=10)
    reports = []
    model = T5Recommender(config, sids).fit(RecommenderInputs(
        splits.train, valid=splits.valid, on_epoch=lambda e, m: reports.append((e, m)),
        training=TrainingConfig(**RAY_2, storage_path=str(tmp_path)),
        epoch_eval=lambda recommender: {"valid/items_ranked": float(recommender.recommend(splits.valid.histories[:4], 5).size)},
    ))
    assert [e for e, _ in reports] == [1, 2]
    assert set(reports[0][1]) == {"train/loss", "valid/loss", "valid/items_ranked"}  # rank 0 ran epoch_eval
    ranked = model.recommend(splits.test.histories, 5)
    assert ranked.shape == (len(splits.test), 5) and ((ranked >= 0) & (ranked < 120)).all()


def test_a_sweep_trial_drives_a_two_worker_torch_trainer(ray_local, tmp_path, tiny_overrides):
    """A Tune trial (0.5 CPU) trains its tokenizer on a 2-worker TorchTrainer; the report and MLflow see it."""
    from raysid.sweep.runner import SweepSettings, run_sweep, trial_resources
    from raysid.sweep.space import parse_study

    smoke = {k: v for k, v in tiny_overrides.items() if k.startswith("dataset.")}
    study = parse_study({
        "name": "ray-train-trial",
        "base": {
            "recommender": {"kind": "none"},
            "tokenizer": {"kind": "rqvae", "codebook_sizes": [8, 8], "hidden_dims": [32], "latent_dim": 8, "epochs": 2},
            "training": {"ray": True, "num_workers": 2, "resources_per_worker": {"CPU": 0.5},
                         "storage_path": str(tmp_path / "train")},
        },
        "axes": {"tokenizer.latent_dim": {"grid": [8]}},
        "seeds": [0], "metric": "sid/conflict_rate", "mode": "min",
        "report": {"rows": ["tokenizer.latent_dim"], "metrics": ["sid/conflict_rate"], "baseline": None},
        "smoke": smoke,
    }, "ray-train-trial.yaml")
    assert trial_resources(study.resolve(study.first_point(), True)) == {"cpu": 0.5}
    outcome = run_sweep(study, SweepSettings(results_dir=tmp_path / "results", smoke=True, progress=False))
    assert not outcome.failed and outcome.trials.height == 1 and outcome.concurrency == 1
    assert 0.0 <= outcome.trials["sid/conflict_rate"][0] <= 1.0
    assert len(list((tmp_path / "train").glob("RQVAETokenizer-*"))) == 1  # the run folder Ray Train wrote
