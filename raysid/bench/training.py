"""Training-step benchmark of the generative recommenders (T5, GPT-2) at a named size (``raysid.presets``).

``training_benchmark`` builds the model at a preset on the built-in catalog (or an imported dataset's
sequences), gives every item a random 'v0' identifier (``levels`` codes of ``codebook_size`` plus the
tie-break digit: the identifiers' values do not change the cost, only their number of positions and the
vocabulary do), and times ``steps`` training steps of ``batch_size`` samples after ``warmup`` steps. A step
is what the models' own training loops do per batch: the batch built from the samples (T5: every prefix of
every training sequence, ``Samples.from_sequences``; GPT-2: FusID's one window per sequence,
``Windows.training``), forward, loss, backward, AdamW; T5 trains its ranking task only (``mmg``).

Figures (``figures``): seconds per step, tokens per step and tokens/s counting every token of the padded
batch and only the real (non-padding) ones, the padding share 1 − real / all, FLOPs per step and per token
(``t5_step_flops`` / ``gpt2_step_flops``: matmuls only, forward × 3 for training) and the achieved FLOP/s as
a share of this machine's float32 matmul rate measured in the same run at the same thread count
(``raysid.bench.tokenizers.matmul_gflops``: a 2048 × 2048 matmul, the reference ``raysid bench tokenizers``
uses; measured before and after the steps and the better kept, as a busy machine lowers either), and a
projected epoch of ``epoch_samples`` samples at this run's seconds per step.

Numbers from a shared or busy machine are noisy; print the load average with them.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from raysid.bench.decoding import _threads
from raysid.bench.tokenizers import catalog_config, matmul_gflops
from raysid.data.catalog import generate_catalog
from raysid.data.splits import leave_one_out
from raysid.devices import resolve_device
from raysid.presets import recommender_config
from raysid.recommenders import ItemCatalog, build_recommender
from raysid.recommenders.gpt2 import Windows, batch_tensors, summed_loss
from raysid.recommenders.t5 import Samples
from raysid.semantic_ids.table import SemanticIds
from raysid.semantic_ids.vocab import PAD

MODELS = ("t5", "gpt2")
# Samples in one epoch of a dataset of ~25,000 users × 10,000 items (issue 11's Amazon import): T5 trains on
# every prefix of the training sequences (131,837 there), GPT-2 on one window per sequence.
EPOCH_SAMPLES = {"t5": 131_837, "gpt2": 25_000}


@dataclass(frozen=True)
class BatchShape:
    """The padded shape of one training batch and how many of its tokens are real."""

    rows: int  # samples in the batch
    source: int  # T5: encoder tokens per row; GPT-2: input tokens per row
    target: int  # T5: decoder tokens per row (identifier + eos); GPT-2: 0
    real: int  # non-padding tokens of the whole batch (encoder + decoder)

    @property
    def tokens(self) -> int:
        return self.rows * (self.source + self.target)


# --- FLOPs ----------------------------------------------------------------------------------------------


def t5_step_flops(shape: BatchShape, d_model: int, d_ff: int, layers: int, heads: int, d_kv: int, vocab: int) -> int:
    """FLOPs of one T5 training step on a padded batch: 3 × forward (backward ≈ 2 × forward), forward = 2 × the
    multiply-adds of the matmuls, with B rows, S encoder and T decoder tokens, inner = heads · d_kv:

        encoder layer   B·S·(4·d·inner + 2·d·d_ff) + 2·B·S²·inner            (q, k, v, o; feed-forward; q·kᵀ, a·v)
        decoder layer   B·T·(4·d·inner + 2·d·inner + 2·d·d_ff) + B·S·2·d·inner (self q, k, v, o; cross q, o;
                        + 2·B·T²·inner + 2·B·T·S·inner                         feed-forward; cross k, v; attention)
        output          B·T·d·vocab

    Layer norms, softmax, ReLU, the loss and AdamW are elementwise and left out."""
    b, s, t, inner = shape.rows, shape.source, shape.target, heads * d_kv
    encoder = b * s * (4 * d_model * inner + 2 * d_model * d_ff) + 2 * b * s * s * inner
    decoder = b * t * (6 * d_model * inner + 2 * d_model * d_ff) + b * s * 2 * d_model * inner
    decoder += 2 * b * t * t * inner + 2 * b * t * s * inner
    return 3 * 2 * (layers * (encoder + decoder) + b * t * d_model * vocab)


def gpt2_step_flops(shape: BatchShape, n_embd: int, n_inner: int, layers: int, vocab: int) -> int:
    """FLOPs of one GPT-2 training step, 3 × forward, forward = 2 × multiply-adds, B rows of T tokens, d = n_embd:

        layer   B·T·(4·d² + 2·d·n_inner) + 2·B·T²·d      (q, k, v, projection; feed-forward; q·kᵀ, a·v)
        output  B·T·d·vocab

    The attention products are counted over all T × T positions, as the dense kernels compute them."""
    b, t, d = shape.rows, shape.source, n_embd
    layer = b * t * (4 * d * d + 2 * d * n_inner) + 2 * b * t * t * d
    return 3 * 2 * (layers * layer + b * t * d * vocab)


# --- workloads ------------------------------------------------------------------------------------------


def seeded_batches(size: int, count: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """``count`` batches of ``batch_size`` indices into ``size`` samples: seeded permutations laid end to end."""
    order = torch.cat([torch.randperm(size, generator=generator) for _ in range(math.ceil(count * batch_size / size))])
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(count)]


class T5Workload:
    """T5's training batches: ``Samples`` drawn in a seeded order, the ranking task's loss."""

    def __init__(self, recommender: Any, sequences: list[np.ndarray], seed: int) -> None:
        self.recommender, self.config = recommender, recommender.config
        self.samples = Samples.from_sequences(sequences, recommender.device)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.samples)

    def batches(self, count: int, batch_size: int) -> list[torch.Tensor]:
        device = self.recommender.device
        return [index.to(device) for index in seeded_batches(len(self), count, batch_size, self.generator)]

    def shape(self, index: torch.Tensor) -> BatchShape:
        r = self.recommender
        input_ids, mask = r.encoder_inputs(self.samples.history_items(index, self.config.max_history))
        labels = r.decoder_labels(self.samples.targets[index])
        return BatchShape(len(index), input_ids.shape[1], labels.shape[1], int(mask.sum()) + labels.numel())

    def loss(self, index: torch.Tensor) -> torch.Tensor:
        return self.recommender.batch_loss(self.samples, index)

    def flops(self, shape: BatchShape) -> int:
        c = self.config
        vocab = self.recommender.model.config.vocab_size
        return t5_step_flops(shape, c.d_model, c.d_ff, c.num_layers, c.num_heads, c.d_kv, vocab)


class GPT2Workload:
    """GPT-2's training batches: FusID's windows in a seeded order, the next-token loss of ``config.loss``."""

    def __init__(self, recommender: Any, sequences: list[np.ndarray], seed: int) -> None:
        self.recommender, self.config = recommender, recommender.config
        self.windows = Windows.training(sequences, self.config.max_context_items)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.windows)

    def batches(self, count: int, batch_size: int) -> list[torch.Tensor]:
        return seeded_batches(len(self), count, batch_size, self.generator)

    def _tensors(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.recommender
        return batch_tensors(r.item_tokens, self.windows, rows, self.config.loss == "target", r.device)

    def shape(self, rows: torch.Tensor) -> BatchShape:
        inputs = self._tensors(rows)[0][:, :-1]  # the model reads every token but the last
        return BatchShape(len(rows), inputs.shape[1], 0, int((inputs != PAD).sum()))

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        tokens, labelled = self._tensors(rows)
        return summed_loss(self.recommender.model, tokens, labelled) / labelled.sum()

    def flops(self, shape: BatchShape) -> int:
        c = self.config
        return gpt2_step_flops(shape, c.n_embd, c.n_inner or 4 * c.n_embd, c.n_layer, self.recommender.vocab.size)


WORKLOADS = {"t5": T5Workload, "gpt2": GPT2Workload}


# --- setup ----------------------------------------------------------------------------------------------


def training_sequences(dataset: str | None, num_tracks: int, seed: int) -> tuple[list[np.ndarray], int, str]:
    """The leave-one-out training sequences, the number of items and a label: the built-in catalog scaled to
    ``num_tracks`` (``raysid bench tokenizers``' scaling), or imported dataset ``dataset`` as imported."""
    if dataset is None:
        data = generate_catalog(catalog_config(num_tracks, seed))
        label = f"built-in catalog ({num_tracks:,} tracks, {len(data.sequences):,} playlists)"
    else:
        from raysid.data.dataset import Dataset
        from raysid.data.importers.store import dataset_folder

        data = Dataset.load(dataset_folder(dataset))  # fails naming the datasets that exist
        label = f"imported dataset {dataset} ({data.num_items:,} items, {len(data.sequences):,} sequences)"
    return leave_one_out(data.sequences).train, data.num_items, label


def random_sids(num_items: int, levels: int, codebook_size: int, seed: int) -> SemanticIds:
    """'v0' identifiers: ``levels`` uniform random codes of ``codebook_size`` per item, plus the tie-break digit."""
    if levels < 1 or codebook_size < 1:
        raise ValueError(f"levels and codebook_size must be positive, got {levels}, {codebook_size}")
    codes = np.random.default_rng(seed).integers(0, codebook_size, size=(num_items, levels))
    names = tuple(f"r{level}" for level in range(1, levels + 1))
    return SemanticIds.from_codes(codes, names, (codebook_size,) * levels, tie_break=True)


def check_options(kind: str, device: str, precision: str) -> None:
    """ValueError naming the option unless the model, the device and the precision go together."""
    if kind not in MODELS:
        raise ValueError(f"--model {kind!r}: valid models are: {', '.join(MODELS)}")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"--precision {precision!r}: valid choices are: fp32, bf16")
    if precision == "bf16" and not device.startswith("cuda"):
        raise ValueError("--precision bf16: the recommenders use bf16 autocast on CUDA only; pass --device cuda "
                         "or --precision fp32")
    resolve_device(device)  # a CUDA device on a machine without one fails here, before any work


def build_model(kind: str, preset: str, sids: SemanticIds, batch_size: int, device: str, precision: str,
                seed: int) -> Any:
    """The ``kind`` recommender at ``preset`` on ``device`` and ``precision`` (bf16 autocast needs CUDA)."""
    check_options(kind, device, precision)
    updates = {"device": device, "precision": precision, "batch_size": batch_size, "seed": seed,
               "beam_size": min(20, sids.num_items)}
    return build_recommender(kind, recommender_config(preset, kind, updates), ItemCatalog(sids, sids.num_items))


def autocast(device: torch.device, precision: str):
    """bf16 autocast on CUDA when ``precision`` is bf16 (T5's ``batch_loss`` applies its own), else a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16" and device.type == "cuda")


# --- measurement ----------------------------------------------------------------------------------------


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(workload: Any, batches: Sequence[torch.Tensor], optimizer: torch.optim.Optimizer) -> list[float]:
    """Wall seconds of one training step (forward, loss, backward, AdamW) per batch, the device synchronised."""
    model, device = workload.recommender.model, workload.recommender.device
    precision = workload.config.precision
    model.train()
    seconds = []
    for index in batches:
        _synchronize(device)
        start = time.perf_counter()
        with autocast(device, precision):
            loss = workload.loss(index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def matmul_rate(device: torch.device, precision: str, threads: int, size: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of a (size × size) @ (size × size) matmul: on the CPU ``raysid.bench.tokenizers.matmul_gflops``
    (float32, ``threads`` threads); on CUDA in float32 or bf16 as ``precision`` says."""
    if device.type == "cpu":
        return matmul_gflops(threads, size, repeats)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def figures(shapes: Sequence[BatchShape], seconds: Sequence[float], flops: Sequence[int], matmul_gflops_rate: float,
            epoch_samples: int, batch_size: int) -> dict[str, float]:
    """The benchmark's figures from the timed batches' shapes, wall seconds and FLOPs (see the module doc)."""
    steps, total_seconds = len(seconds), float(sum(seconds))
    tokens, real = sum(s.tokens for s in shapes), sum(s.real for s in shapes)
    step_seconds = total_seconds / steps
    achieved = sum(flops) / total_seconds / 1e9
    epoch_steps = math.ceil(epoch_samples / batch_size)
    return {
        "steps": float(steps), "seconds_per_step": step_seconds,
        "tokens_per_step": tokens / steps, "real_tokens_per_step": real / steps,
        "tokens_per_s": tokens / total_seconds, "real_tokens_per_s": real / total_seconds,
        "padding_share": 1.0 - real / tokens,
        "gflop_per_step": sum(flops) / steps / 1e9, "flops_per_token": sum(flops) / tokens,
        "achieved_gflops": achieved, "matmul_gflops": matmul_gflops_rate, "matmul_share": achieved / matmul_gflops_rate,
        "epoch_samples": float(epoch_samples), "epoch_steps": float(epoch_steps),
        "epoch_hours": epoch_steps * step_seconds / 3600,
    }


def training_benchmark(
    model: str = "t5", preset: str = "paper", dataset: str | None = None, num_tracks: int = 2_000,
    steps: int = 5, warmup: int = 2, batch_size: int = 128, threads: int = 1, device: str = "cpu",
    precision: str = "fp32", levels: int = 3, codebook_size: int = 256, epoch_samples: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Build, warm up and time ``model`` at ``preset``; the figures and what they were measured on."""
    if steps < 1 or warmup < 0 or batch_size < 1 or threads < 1:
        raise ValueError(f"need steps >= 1, warmup >= 0, batch >= 1 and threads >= 1, got {steps}, {warmup}, "
                         f"{batch_size}, {threads}")
    check_options(model, device, precision)
    recommender_config(preset, model)  # an unknown preset fails before the data is built
    epoch_samples = EPOCH_SAMPLES[model] if epoch_samples is None else epoch_samples
    if epoch_samples < 1:
        raise ValueError(f"--epoch-samples must be positive, got {epoch_samples}")
    sequences, num_items, data_label = training_sequences(dataset, num_tracks, seed)
    with _threads(threads):
        recommender = build_model(model, preset, random_sids(num_items, levels, codebook_size, seed), batch_size,
                                  device, precision, seed)
        workload = WORKLOADS[model](recommender, sequences, seed)
        config = recommender.config
        optimizer = torch.optim.AdamW(recommender.model.parameters(), lr=config.learning_rate,
                                      weight_decay=config.weight_decay)
        batches = workload.batches(warmup + steps, batch_size)
        before = matmul_rate(recommender.device, precision, threads)
        timed_steps(workload, batches[:warmup], optimizer)
        seconds = timed_steps(workload, batches[warmup:], optimizer)
        rate = max(before, matmul_rate(recommender.device, precision, threads))  # the better of before / after
        with torch.no_grad():
            shapes = [workload.shape(index) for index in batches[warmup:]]
    result = figures(shapes, seconds, [workload.flops(s) for s in shapes], rate, epoch_samples, batch_size)
    return {**result, "model": model, "preset": preset, "parameters": recommender.num_parameters(),
            "data": data_label, "data_samples": len(workload), "batch_size": batch_size, "threads": threads,
            "device": str(recommender.device), "precision": precision, "positions": recommender.sids.num_positions,
            "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def format_figures(row: dict[str, Any]) -> str:
    """The benchmark's figures as a few labelled lines."""
    load = ", ".join(f"{x:.2f}" for x in row["load_average"])
    formula = ("T5: 3 × 2 × Σ matmul multiply-adds (encoder S, decoder T tokens; see t5_step_flops)" if row["model"] == "t5"
               else "GPT-2: 3 × 2 × Σ matmul multiply-adds (see gpt2_step_flops)")
    return "\n".join([
        f"{row['model']} at preset {row['preset']}: {row['parameters']:,} parameters, identifiers of "
        f"{row['positions']} tokens; {row['data']}, {row['data_samples']:,} training samples",
        f"device {row['device']}, {row['precision']}, {row['threads']} thread(s), batch {row['batch_size']}, "
        f"{row['steps']:.0f} timed steps; {row['date']}, load average {load}",
        f"seconds per step:      {row['seconds_per_step']:.3f}",
        f"tokens per step:       {row['tokens_per_step']:,.0f} all, {row['real_tokens_per_step']:,.0f} non-padding "
        f"(padding share {100 * row['padding_share']:.1f}%)",
        f"tokens/s:              {row['tokens_per_s']:,.0f} all, {row['real_tokens_per_s']:,.0f} non-padding",
        f"FLOPs:                 {row['gflop_per_step']:.2f} GFLOP per step, {row['flops_per_token']:,.0f} per token "
        f"({formula}; forward + backward = 3 × forward)",
        f"achieved:              {row['achieved_gflops']:.1f} GFLOP/s = {100 * row['matmul_share']:.0f}% of this "
        f"device's 2048² matmul rate measured now ({row['matmul_gflops']:.1f} GFLOP/s)",
        f"projected epoch:       {row['epoch_samples']:,.0f} samples = {row['epoch_steps']:,.0f} steps × "
        f"{row['seconds_per_step']:.3f} s = {row['epoch_hours']:.2f} h at this run's batch shapes "
        f"(~25k users × 10k items; T5: every prefix, GPT-2: one window per user)",
    ])
