"""Ray Train adapter: every training loop in raysid runs through ``run_training``.

A training loop is a plain function ``loop(session) -> None`` that builds its model on ``session.device``,
restores ``session.restore()`` when it is not None, trains its share of each batch (``session.shard``),
and calls ``session.report(epoch, metrics, state)`` after every epoch. The same loop runs

- in this process, without Ray (``TrainingConfig.ray = False``, the default: tests, debugging, laptops), or
- as a Ray Train ``TorchTrainer`` with ``num_workers`` DDP workers (gloo on CPU, NCCL on GPU): a checkpoint
  per epoch, and after a worker failure the group restarts from the last checkpoint (``max_failures``).

``run_training`` returns the state of the last epoch (as the loop passed it to ``report``), from which the
caller rebuilds its trained model in the calling process. Per-epoch metrics reach ``on_epoch``: live without
Ray, replayed from the run's reports when the Ray run has finished.

Inside ``run_scope`` (a Tune trial, then the stage artifact being built) a Ray run's folder is named after the
scope, so a run started again there (the trial retried after its node was lost, a resumed sweep) resumes from
its last checkpoint instead of starting over; each finished run records where its worker groups ran and the
checkpoint each group resumed after (``RunScope.runs``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from raysid.devices import resolve_device
from raysid.training_config import TrainingConfig  # noqa: F401  (re-exported: the section this module runs)

OnEpoch = Callable[[int, dict[str, float]], None]
STATE_FILE = "state.pt"


@dataclass
class RunScope:
    """Where the Ray Train runs started inside ``run_scope`` are kept and what they are called."""

    parts: tuple[str, ...]  # what names the runs: the enclosing scopes' parts, then this one's
    storage: str | None  # runs' storage when their TrainingConfig names none (a folder or URI every node sees)
    outer: RunScope | None = None
    started: dict[str, int] = field(default_factory=dict)  # loop name -> runs started so far in this scope
    runs: list[dict[str, Any]] = field(default_factory=list)  # finished runs (their own and inner scopes')

    def run_name(self, name: str) -> str:
        """``name-<digest>``: the same for the same scope parts, loop name and order inside the scope."""
        self.started[name] = self.started.get(name, 0) + 1
        digest = hashlib.sha256("\0".join((*self.parts, name, str(self.started[name]))).encode()).hexdigest()
        return f"{name}-{digest[:12]}"

    def record(self, run: dict[str, Any]) -> None:
        scope: RunScope | None = self
        while scope is not None:
            scope.runs.append(run)
            scope = scope.outer


_SCOPE: ContextVar[RunScope | None] = ContextVar("raysid_run_scope", default=None)


@contextlib.contextmanager
def run_scope(*parts: str, storage: str | None = None) -> Iterator[RunScope]:
    """Name the Ray Train runs started inside the block after ``parts`` (added to the enclosing scope's), so
    that a run started again under the same scope resumes from its last checkpoint (Ray Train restores a run
    folder that holds one). ``storage``, else the enclosing scope's, is where runs go when their
    TrainingConfig names no storage_path."""
    outer = _SCOPE.get()
    scope = RunScope((*(outer.parts if outer else ()), *parts), storage or (outer.storage if outer else None), outer)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


class Session:
    """What a training loop sees of its worker: rank, device, sharding, collectives, reporting."""

    def __init__(self, rank: int, world_size: int, device: torch.device, precision: str, restored: dict | None):
        self.rank, self.world_size, self.device = rank, world_size, device
        self.precision = precision
        self._restored = restored
        self.reports: list[tuple[int, dict[str, float]]] = []
        self.state: dict | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def restore(self) -> dict | None:
        """The state of the last checkpoint when this run resumes after a failure, else None."""
        return self._restored

    def wrap(self, module: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """``module`` on this device, wrapped in DDP when there is more than one worker."""
        module = module.to(self.device)
        if self.world_size == 1:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters)

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This worker's rows of a global batch ``index`` (every world_size-th row from its rank)."""
        return index[self.rank :: self.world_size]

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the workers, in place; returns it."""
        if self.world_size > 1:
            moved = tensor.to(self.device)
            dist.all_reduce(moved)
            tensor.copy_(moved.to(tensor.device))
        return tensor

    def broadcast(self, tensor: torch.Tensor) -> torch.Tensor:
        """Replace ``tensor`` on every worker by rank 0's value, in place; returns it."""
        if self.world_size > 1:
            moved = tensor.to(self.device)
            dist.broadcast(moved, src=0)
            tensor.copy_(moved.to(tensor.device))
        return tensor

    @torch.no_grad()
    def sync(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every worker (after non-gradient updates such as k-means)."""
        if self.world_size > 1:
            for tensor in unwrap(module).state_dict().values():
                self.broadcast(tensor)

    def sums(self, totals: dict[str, float]) -> dict[str, float]:
        """Per-key sums of ``totals`` over the workers (for example loss × rows and rows)."""
        if self.world_size == 1 or not totals:
            return dict(totals)
        values = torch.tensor(list(totals.values()), dtype=torch.float64)
        return dict(zip(totals, self.all_reduce(values).tolist()))

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA when precision is "bf16"; a no-op otherwise."""
        enabled = self.precision == "bf16" and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def report(self, epoch: int, metrics: dict[str, float], state: dict) -> None:
        """End of an epoch: record its metrics and the state to resume from (a checkpoint under Ray)."""
        self.reports.append((epoch, dict(metrics)))
        self.state = state


Loop = Callable[[Session], None]


def resolve_training(training: TrainingConfig | None, device: str) -> TrainingConfig:
    """``training`` (default: in-process) with the stage's own ``device`` used when it runs without Ray."""
    training = training or TrainingConfig()
    return training if training.ray else replace(training, device=device)


def epoch_state(model: nn.Module, optimizers: list, generator: torch.Generator, epoch: int, **extra: Any) -> dict:
    """What a loop reports at the end of an epoch to resume from it and to rebuild the model."""
    return {
        "model": unwrap(model).state_dict(),
        "optimizers": [optimizer.state_dict() for optimizer in optimizers],
        "generator": generator.get_state(),
        "epoch": epoch,
        **extra,
    }


def resume(session: Session, model: nn.Module, optimizers: list, generator: torch.Generator) -> int | None:
    """Load the restored state (if this run resumes) into model, optimizers and generator; its epoch or None."""
    restored = session.restore()
    if restored is None:
        return None
    unwrap(model).load_state_dict(restored["model"])
    for optimizer, saved in zip(optimizers, restored["optimizers"]):
        optimizer.load_state_dict(saved)
    generator.set_state(restored["generator"])
    return int(restored["epoch"])


def run_training(loop: Loop, config: TrainingConfig, on_epoch: OnEpoch | None = None, name: str = "train") -> dict:
    """Run ``loop`` as ``config`` says and return the state it reported last (see the module docstring)."""
    if config.ray:
        state, reports = _run_on_ray(loop, config, name)
    else:
        session = Session(0, 1, resolve_device(config.device), config.precision, None)
        if on_epoch is not None:
            session.report = _forwarding(session.report, on_epoch)  # live epochs without Ray
        loop(session)
        state, reports = session.state, []
    if state is None:
        raise RuntimeError(f"{name}: the training loop never called session.report")
    for epoch, metrics in reports:
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    return state


def _forwarding(report: Callable, on_epoch: OnEpoch) -> Callable:
    def forward(epoch: int, metrics: dict[str, float], state: dict) -> None:
        report(epoch, metrics, state)
        on_epoch(epoch, dict(metrics))

    return forward


class RaySession(Session):
    """A Session inside a Ray Train worker: DDP through torch.distributed, checkpoints through ray.train.

    ``groups`` lists the worker groups that trained this run so far (a restarted group adds one): the epoch of
    the checkpoint it resumed after (None: from scratch), its workers' node ids and addresses by rank, and the
    epochs it trained."""

    groups: list[dict[str, Any]]

    def report(self, epoch: int, metrics: dict[str, float], state: dict) -> None:
        import ray.train

        super().report(epoch, metrics, state)
        group = self.groups[-1]
        group["epochs"].append(epoch)
        payload = {**metrics, "epoch": epoch, "resumed_after": group["resumed_after"], "nodes": group["nodes"],
                   "node_ips": group["node_ips"]}
        if not self.is_main:
            ray.train.report(payload)  # every worker reports; only rank 0 writes the checkpoint
            return
        with tempfile.TemporaryDirectory() as folder:
            saved = {"state": _to_cpu(state), "reports": _to_cpu(self.reports), "groups": self.groups}
            torch.save(saved, Path(folder) / STATE_FILE)
            ray.train.report(payload, checkpoint=ray.train.Checkpoint.from_directory(folder))


def _worker(train_config: dict) -> None:
    """``train_loop_per_worker`` of the TorchTrainer: rebuild the session, resume, run the loop."""
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    checkpoint = ray.train.get_checkpoint()
    saved = _read_checkpoint(checkpoint) if checkpoint else None
    device = ray.train.torch.get_device()
    torch.set_num_threads(max(1, int(train_config["threads"])))
    session = RaySession(context.get_world_rank(), context.get_world_size(), device, train_config["precision"], None)
    session.groups = list(saved.get("groups", [])) if saved is not None else []
    if saved is not None:
        session._restored = saved["state"]
        session.reports = list(saved["reports"])
    resumed_after = session.reports[-1][0] if session.reports else None
    session.groups.append({"resumed_after": resumed_after, **_group_nodes(session.world_size), "epochs": []})
    train_config["loop"](session)


def _group_nodes(world_size: int) -> dict[str, list[str]]:
    """The node id and address of every worker of the group, by rank (as Ray reports them)."""
    import ray
    import ray.util

    mine = [ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()]
    everyone = [mine] * world_size
    if world_size > 1:
        everyone = [None] * world_size
        dist.all_gather_object(everyone, mine)
    return {"nodes": [node for node, _ in everyone], "node_ips": [ip for _, ip in everyone]}


def _read_checkpoint(checkpoint: Any) -> dict:
    with checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True)  # tensors and plain data only


def _run_on_ray(loop: Loop, config: TrainingConfig, name: str) -> tuple[dict, list[tuple[int, dict]]]:
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    scope = _SCOPE.get()
    run_name = scope.run_name(name) if scope is not None else f"{name}-{uuid.uuid4().hex[:8]}"
    storage = _storage(config, scope)
    threads = config.resources_per_worker.get("CPU", 1.0)
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"loop": loop, "precision": config.precision, "threads": threads},
        torch_config=TorchConfig(backend=config.distributed_backend),
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.num_workers, use_gpu=config.use_gpu, resources_per_worker=config.resources_per_worker
        ),
        run_config=ray.train.RunConfig(
            name=run_name,
            storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=config.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
        ),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"{name}: the Ray Train run finished without a checkpoint")
    saved = _read_checkpoint(result.checkpoint)
    if scope is not None:
        scope.record({"name": run_name, "storage": storage, "groups": saved.get("groups", [])})
    return saved["state"], saved["reports"]


def _storage(config: TrainingConfig, scope: RunScope | None) -> str:
    """Where the run's folder goes: the config's storage_path, else the scope's, else a temporary folder."""
    storage = config.storage_path or (scope.storage if scope is not None else None)
    if storage and "://" in storage:
        return storage
    return str(Path(storage or os.path.join(tempfile.gettempdir(), "raysid-train")).resolve())


def _to_cpu(value: Any) -> Any:
    """A copy of ``value`` with every tensor moved to the CPU and numpy scalars as Python numbers (checkpoints
    load anywhere, with ``weights_only=True``)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


@contextlib.contextmanager
def no_sync(module: nn.Module) -> Iterator[None]:
    """DDP's no_sync for forward passes that are not followed by a backward (a no-op otherwise)."""
    if isinstance(module, nn.parallel.DistributedDataParallel):
        with module.no_sync():
            yield
    else:
        yield
