"""Throughput of every registered tokenizer on the built-in catalog, and how close RQ-VAE training gets to
the CPU's matmul peak.

``tokenizer_throughput`` generates a catalog, builds the features and, for each tokenizer kind, times ``fit``
(the whole call: k-means init, pair mining, PQ, ...) and ``encode`` over all items, and the peak growth of
the process's resident memory while it runs. Configs are the registry's defaults (the papers' codebook
sizes) with only ``epochs`` (neural tokenizers), ``device`` and, for ``external``, a generated table changed.

``matmul_share`` compares the FLOP rate of RQ-VAE training steps (counted analytically by
``rqvae_step_flops``) with the best rate of a large float32 matmul at the same thread count.

Numbers from a shared or busy machine are noisy; run twice before drawing conclusions.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raysid.config import build
from raysid.data.catalog import CatalogConfig, generate_catalog
from raysid.data.splits import SplitConfig, make_splits
from raysid.features.modalities import FeatureConfig, build_features
from raysid.tokenizers import TOKENIZERS, TokenizerInputs, get_tokenizer
from raysid.tokenizers.rqvae import RQVAEConfig, build_networks

_PAGE = 4096  # bytes per page of /proc/self/statm (Linux x86-64)
_RSS_INTERVAL = 0.02  # seconds between resident-memory samples
_CF_DIM = 32  # width of the stand-in CF embeddings (SASRec's default hidden size)


# --- memory and threads ---------------------------------------------------------------------------


def _rss_bytes() -> int:
    """Current resident set size of this process (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def _return_freed_memory() -> None:
    """glibc ``malloc_trim(0)``: hand memory freed by earlier tokenizers back to the OS, so that the next one's
    growth is not hidden by reuse of it. A no-op where glibc is missing."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def _peak_rss_growth() -> Iterator[dict[str, float]]:
    """Sample RSS in a background thread; on exit ``result["mib"]`` is the peak minus the RSS at entry.

    ``ru_maxrss`` cannot serve: it is the peak of the whole process, so only the first tokenizer would show.
    """
    gc.collect()
    _return_freed_memory()
    start, peak, stop = _rss_bytes(), [0], threading.Event()

    def sample() -> None:
        while not stop.wait(_RSS_INTERVAL):
            peak[0] = max(peak[0], _rss_bytes())

    result: dict[str, float] = {}
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        result["mib"] = max(peak[0], _rss_bytes()) / 2**20 - start / 2**20


@contextlib.contextmanager
def _threads(threads: int) -> Iterator[None]:
    """Limit torch's intra-op pool and, when threadpoolctl is installed, NumPy's BLAS and OpenMP pools.

    faiss k-means in raysid is single-threaded whatever this says (it pins one thread for determinism).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # then the script's OMP/OPENBLAS_NUM_THREADS environment decides
        limits: Any = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=threads)
    try:
        with limits:
            yield
    finally:
        torch.set_num_threads(previous)


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = call()
    return value, time.perf_counter() - start


# --- tokenizer throughput -------------------------------------------------------------------------


def catalog_config(num_tracks: int, seed: int = 0) -> CatalogConfig:
    """The built-in catalog scaled to ``num_tracks``: a playlist per 5 tracks, an artist per 20."""
    return CatalogConfig(
        num_tracks=num_tracks,
        num_playlists=max(1, num_tracks // 5),
        num_artists=max(32, num_tracks // 20),  # at least one per sub-genre (8 genres × 4)
        seed=seed,
    )


def tokenizer_throughput(
    num_tracks: int = 100_000,
    kinds: Sequence[str] | None = None,
    threads: int = 1,
    epochs: int = 1,
    seed: int = 0,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """One row per tokenizer kind (all registered when ``kinds`` is None) on a ``num_tracks`` catalog.

    Row keys: kind, train_items, epochs (None for non-neural kinds), fit_s, fit_rate, fit_unit
    ("item-epochs/s": train items × epochs / fit_s for neural kinds; "pair-epochs/s": pairs_per_epoch ×
    epochs / fit_s for FusID; "items/s": train items / fit_s otherwise), encode_s, encode_items_per_s (all
    items), peak_rss_mib (peak RSS growth during fit + encode). MusicRec gets random CF embeddings of
    width 32 in place of SASRec's (same cost, no SASRec training); ``external`` reads a generated table.
    """
    kinds = list(TOKENIZERS) if kinds is None else list(kinds)
    for kind in kinds:
        get_tokenizer(kind)  # fail early, naming the valid kinds
    dataset = generate_catalog(catalog_config(num_tracks, seed))
    splits = make_splits(dataset, SplitConfig())
    train_items = splits.train_items()
    features = build_features(dataset, FeatureConfig(), train_items)
    inputs = {"features": features, "train_items": train_items, "sequences": splits.train, "seed": seed}
    with _threads(threads), tempfile.TemporaryDirectory(prefix="raysid-bench-") as folder:
        return [_measure(kind, inputs, epochs, device, Path(folder)) for kind in kinds]


def _measure(kind: str, inputs: dict[str, Any], epochs: int, device: str, folder: Path) -> dict[str, Any]:
    """Build ``kind`` with benchmark overrides, fit and encode it; one row of ``tokenizer_throughput``."""
    features, train_items = inputs["features"], inputs["train_items"]
    num_items = len(next(iter(features.values())))
    spec = get_tokenizer(kind)
    overrides = _overrides(spec.config, epochs, device, folder, num_items, inputs["seed"])
    config = build(spec.config, overrides, "tokenizer")
    tokenizer, capabilities = spec.build(config), config.capabilities()
    cf = np.random.default_rng(inputs["seed"]).standard_normal((num_items, _CF_DIM), np.float32)
    fit_inputs = TokenizerInputs(features if capabilities.needs_features else None, train_items, num_items=num_items,
                                 sequences=inputs["sequences"] if capabilities.needs_sequences else None,
                                 collaborative=cf if capabilities.uses_collaborative else None)
    with _peak_rss_growth() as rss:
        _, fit_s = _timed(lambda: tokenizer.fit(fit_inputs))
        _, encode_s = _timed(lambda: tokenizer.encode(fit_inputs.features))
    work, unit = _fit_work(tokenizer.config, len(train_items))
    return {
        "kind": kind,
        "train_items": len(train_items),
        "epochs": overrides.get("epochs"),
        "fit_s": fit_s,
        "fit_rate": work / fit_s,
        "fit_unit": unit,
        "encode_s": encode_s,
        "encode_items_per_s": num_items / encode_s,
        "peak_rss_mib": rss["mib"],
    }


def _overrides(config_class: type, epochs: int, device: str, folder: Path, num_items: int, seed: int) -> dict:
    """The config fields the benchmark changes: epochs, device, and a generated table for ``path``."""
    fields = {field.name for field in dataclasses.fields(config_class)}
    overrides: dict[str, Any] = {"epochs": epochs, "device": device}
    overrides = {name: value for name, value in overrides.items() if name in fields}
    if "path" in fields:  # the external tokenizer imports an identifier table
        overrides["path"] = str(_write_table(folder / "external.json", num_items, seed))
    return overrides


def _write_table(path: Path, num_items: int, seed: int, sizes: tuple[int, ...] = (256, 256, 256)) -> Path:
    """A random identifier table {item_id: ["<x1_c>", …]} for every item, in the external tokenizer's format."""
    codes = np.random.default_rng(seed).integers(0, sizes, size=(num_items, len(sizes)))
    table = {str(item): [f"<x{p + 1}_{c}>" for p, c in enumerate(row)] for item, row in enumerate(codes.tolist())}
    path.write_text(json.dumps(table))
    return path


def _fit_work(config: Any, train_items: int) -> tuple[float, str]:
    """(units of work done by fit, their name): see ``tokenizer_throughput``."""
    epochs = getattr(config, "epochs", None)
    if epochs is None:
        return float(train_items), "items/s"
    if hasattr(config, "pairs_per_epoch"):
        return float(config.pairs_per_epoch * epochs), "pair-epochs/s"
    return float(train_items * epochs), "item-epochs/s"


# --- matmul share ---------------------------------------------------------------------------------


def rqvae_step_flops(
    input_dim: int, hidden_dims: Sequence[int], latent_dim: int, codebook_sizes: Sequence[int], batch: int
) -> int:
    """FLOPs of one RQ-VAE training step on ``batch`` rows, counting matmuls only:

        3 · Σ_Linear 2·batch·in·out   +   Σ_l 2·batch·K_l·d_z

    The Linear layers are the encoder input→hidden…→d_z and the mirrored decoder; 3 = forward + backward
    (≈ 2× forward: gradients of inputs and of weights). The quantizer's distance matmul r·Cᵀ is computed on
    detached tensors, so it has no backward. BatchNorm, ReLU, losses and AdamW are elementwise and left out.
    """
    widths = [input_dim, *hidden_dims, latent_dim]
    encoder = sum(fan_in * fan_out for fan_in, fan_out in zip(widths[:-1], widths[1:]))
    linear = 2 * batch * 2 * encoder  # the decoder mirrors the encoder: the same in·out products
    distances = sum(2 * batch * size * latent_dim for size in codebook_sizes)
    return 3 * linear + distances


def matmul_gflops(threads: int = 1, size: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of a (size × size) @ (size × size) float32 torch matmul (2·size³ FLOPs) on the CPU."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator) for _ in range(2))
    with _threads(threads):
        torch.mm(a, b)  # warm-up
        best = min(_timed(lambda: torch.mm(a, b))[1] for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def rqvae_step_seconds(
    config: RQVAEConfig, input_dim: int, threads: int = 1, steps: int = 20, repeats: int = 5
) -> float:
    """Best-of-``repeats`` mean wall time of one RQ-VAE training step (forward, backward, AdamW) on the CPU,
    the same step as ``RQVAETokenizer`` takes, on random rows of ``input_dim`` columns."""
    network = build_networks(config, [input_dim])[0]
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate)
    x = torch.randn(config.batch_size, input_dim, generator=torch.Generator().manual_seed(config.seed))

    def step() -> None:
        terms, _ = network.losses(x)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()

    with _threads(threads):
        step()  # warm-up
        rounds = [_timed(lambda: [step() for _ in range(steps)])[1] / steps for _ in range(repeats)]
    return min(rounds)


def matmul_share(
    threads: int = 1, input_dim: int = 144, config: RQVAEConfig | None = None, matmul_size: int = 2048
) -> dict[str, float]:
    """RQ-VAE training FLOP rate as a share of the CPU's matmul rate at ``threads`` threads.

    ``input_dim`` 144 is the built-in catalog's text 64 + audio 32 + tags 48; ``config`` defaults to
    ``RQVAEConfig()`` (3MToken's widths and codebooks, batch 256).
    """
    config = config or RQVAEConfig(device="cpu")
    flops = rqvae_step_flops(input_dim, config.hidden_dims, config.latent_dim, config.codebook_sizes, config.batch_size)
    seconds = rqvae_step_seconds(config, input_dim, threads)
    peak = matmul_gflops(threads, matmul_size)
    achieved = flops / seconds / 1e9
    return {
        "threads": float(threads),
        "matmul_gflops": peak,
        "rqvae_step_gflop": flops / 1e9,
        "rqvae_step_ms": seconds * 1e3,
        "rqvae_gflops": achieved,
        "share": achieved / peak,
    }


# --- printing -------------------------------------------------------------------------------------


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width text table of ``tokenizer_throughput`` rows."""
    header = f"{'kind':<16}{'train':>8}{'epochs':>7}{'fit s':>9}{'fit rate':>12}  {'unit':<14}"
    header += f"{'encode s':>9}{'encode/s':>11}{'peak RSS +MiB':>15}"
    lines = [header, "-" * len(header)]
    for row in rows:
        epochs = "-" if row["epochs"] is None else str(row["epochs"])
        lines.append(
            f"{row['kind']:<16}{row['train_items']:>8}{epochs:>7}{row['fit_s']:>9.2f}{row['fit_rate']:>12,.0f}  "
            f"{row['fit_unit']:<14}{row['encode_s']:>9.2f}{row['encode_items_per_s']:>11,.0f}"
            f"{row['peak_rss_mib']:>15.0f}"
        )
    return "\n".join(lines)


def format_share(share: dict[str, float]) -> str:
    """One paragraph on ``matmul_share``'s figures."""
    return (
        f"CPU float32 matmul at {share['threads']:.0f} thread(s): {share['matmul_gflops']:.1f} GFLOP/s (best of 5)\n"
        f"RQ-VAE training step: {share['rqvae_step_gflop']:.3f} GFLOP in {share['rqvae_step_ms']:.2f} ms "
        f"= {share['rqvae_gflops']:.1f} GFLOP/s, {100 * share['share']:.0f}% of the matmul rate"
    )
