"""The Ray Train adapter: the same loop without Ray, on one and on two real TorchTrainer workers, and resume."""

import os
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

from raysid.config import ConfigError
from raysid.distributed import Session, TrainingConfig, run_training, unwrap

X = torch.linspace(-1, 1, 64)[:, None]
Y = 3 * X - 1


def regression_loop(session: Session, epochs: int = 4, crash_marker: str = "") -> None:
    """Fit y = 3x - 1 with full-batch SGD over the workers' shards; optionally crash rank 1 once at epoch 3."""
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
    # the restarted group resumed from the last checkpoint Ray had registered (epoch 1 or 2), not from scratch
    assert starts[0] == 1.0 and starts[-1] in (2.0, 3.0)
    assert all(epoch >= start for (epoch, _), start in zip(seen, starts))
    local = run_training(regression_loop, TrainingConfig())
    for name, value in local["model"].items():
        torch.testing.assert_close(state["model"][name], value, rtol=1e-5, atol=1e-6)


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
