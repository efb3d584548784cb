"""``raysid bench peers --peer tiger``: raysid's RQ-VAE tokenizer + T5 recommender and cornac 3.0.1's TIGER.

Both sides see the same users and items as the SASRec comparison (``raysid.bench.peers.sasrec.prepare``: users of 4
or more items), the same leave-one-out split (last item test, second-to-last valid and held out of training,
the rest trains), the same item features (the items' MiniLM text embeddings, ``raysid.features.text``, z-scored
on the training items by ``raysid.features.modalities.build_features``; cornac's own standardisation is off),
the same training samples (every prefix of every training sequence, next item as target) and the same
protocol: the last epoch's model ranks every item for each test history by constrained beam search, HR/NDCG
at 5 and 10 computed by ``raysid.metrics.ranking`` from each side's top 10. Matched sizes: levels and codebook
size (plus each side's tie-break level), RQ-VAE widths, d_z, β, epochs, batch and learning rate; T5 d_model,
d_ff, layers (encoder and decoder), heads, d_kv, dropout, history length, epochs, batch, AdamW learning rate
and weight decay, warmup steps, beam size; torch threads. What stays different is printed under the table
(``notes``).

raysid's side is its pipeline's own components (``get_tokenizer("rqvae")``, ``pipeline.identifiers``,
``build_recommender("t5", ...)``), called directly as ``run_trial``'s stages call them, so each stage can be
timed. cornac runs in its own environment (``raysid.bench.peers.venv.CORNAC``) as a subprocess of
``raysid/bench/peers/cornac_runner.py``.
"""

from __future__ import annotations

import json
import math
import shlex
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import yaml

from raysid.cache import ArtifactStore, stage_key
from raysid.config import ConfigError, build, require, stable_hash
from raysid.data.dataset import Dataset, Splits
from raysid.data.splits import leave_one_out
from raysid.features.modalities import FeatureConfig, build_features
from raysid.features.text import TextConfig, embed_texts, item_texts
from raysid.metrics.ranking import ranking_metrics
from raysid.bench.peers.venv import CORNAC_RUNNER
from raysid.recommenders.base import RecommenderInputs

KS = (5, 10)
WHERE = "bench peers --tiger-set"
FIXED = ("threads", "seed")  # set by --threads and --seed, shared with the SASRec comparison


@dataclass(frozen=True)
class TigerSettings:
    """What both TIGER implementations are given; ``--tiger-set KEY=VALUE`` sets a field by name."""

    levels: int = 3  # residual codebooks (each side appends its tie-break level)
    codebook_size: int = 64  # codes per codebook (K)
    latent_dim: int = 32  # d_z
    hidden_dims: tuple[int, ...] = (512, 256, 128)  # RQ-VAE encoder widths; the decoder mirrors them
    commitment_weight: float = 0.25  # β
    tokenizer_epochs: int = 100  # RQ-VAE passes over the items
    tokenizer_batch_size: int = 256
    tokenizer_learning_rate: float = 1e-3  # AdamW, weight decay 0.01 on both sides
    d_model: int = 64
    d_ff: int = 256
    num_layers: int = 2  # encoder blocks, and as many decoder blocks
    num_heads: int = 4
    d_kv: int = 16
    dropout: float = 0.1
    max_history: int = 20  # the encoder reads the last max_history items
    epochs: int = 10  # T5 passes over the training samples; the last epoch is tested
    batch_size: int = 128
    learning_rate: float = 1e-3  # AdamW peak learning rate
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05  # share of the steps with linear warmup (cornac: as many warmup steps)
    beam_size: int = 20
    eval_batch_size: int = 256  # users per beam-search batch (raysid; cornac ranks one user at a time)
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_dims", tuple(self.hidden_dims))
        for field in fields(self):
            value = getattr(self, field.name)
            if field.type == "int" and field.name != "seed":
                require(value > 0, f"{WHERE} {field.name}", f"must be positive, got {value}")
        require(self.beam_size >= max(KS), f"{WHERE} beam_size", f"must be >= {max(KS)} (HR@{max(KS)}), got {self.beam_size}")
        require(0.0 <= self.dropout < 1.0, f"{WHERE} dropout", f"must be in [0, 1), got {self.dropout}")
        require(0.0 <= self.warmup_ratio < 1.0, f"{WHERE} warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")

    def warmup_steps(self, samples: int) -> int:
        """Warmup steps of ``samples`` training samples per epoch, as raysid's T5 schedule counts them."""
        return math.ceil(self.epochs * math.ceil(samples / self.batch_size) * self.warmup_ratio)


def parse_tiger_settings(items: list[str], threads: int = 1, seed: int = 0) -> TigerSettings:
    """TigerSettings from ``KEY=VALUE`` strings (YAML values); unknown keys fail listing the valid ones."""
    updates = {}
    for item in items:
        key, sep, text = item.partition("=")
        require(bool(sep) and bool(key.strip()), "--tiger-set", f"expected KEY=VALUE, got {item!r}")
        require(key.strip() not in FIXED, f"--tiger-set {key.strip()}", f"set it with --{key.strip()}")
        try:
            updates[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"--tiger-set {key.strip()}: {text!r} is not a YAML value ({error.problem})") from None
    return build(TigerSettings, {**updates, "threads": threads, "seed": seed}, WHERE)


# ------------------------------------------------------------------------------------------------- features


def text_features(dataset: Dataset, kept_items: np.ndarray, splits: Splits, threads: int,
                  store: ArtifactStore | None = None) -> np.ndarray:
    """(kept items, 384) float32: MiniLM embeddings of the items' texts (the dataset's text template),
    z-scored on the training items as the pipeline's feature stage does. With ``store`` the embeddings are
    kept there (stage ``features``), keyed by the texts and the text config, and reused."""
    template = require_text(dataset)
    texts = item_texts(dataset.items, template)
    texts = [texts[i] for i in kept_items.tolist()]
    config = TextConfig(template=template)
    if store is None:
        matrix = _embed(texts, config, threads)
    else:
        matrix = store.fetch("features", stage_key("peers_text", stable_hash(texts), config),
                             lambda folder: np.save(folder / "matrix.npy", _embed(texts, config, threads)),
                             lambda folder: np.load(folder / "matrix.npy"))
    kept = Dataset(dataset.name, dataset.items[kept_items.tolist()], {"text": matrix}, splits.train)
    return build_features(kept, FeatureConfig(modalities=("text",)), splits.train_items())["text"]


def _embed(texts: list[str], config: TextConfig, threads: int) -> np.ndarray:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return embed_texts(texts, config)
    finally:
        torch.set_num_threads(previous)


def training_samples(train: list[np.ndarray]) -> int:
    """(history, next item) samples per epoch, the same on both sides: every prefix of every sequence."""
    return sum(len(s) - 1 for s in train if len(s) >= 2)


# ------------------------------------------------------------------------------------------------- table


def tiger_row(name: str, *, tokenizer_s: float, train_s: float, epochs: int, steps: int, beam_s: float,
              users: int, ranked: np.ndarray, targets: np.ndarray, levels: list[int], parameters: int) -> dict:
    """One table row: stage seconds, epochs and steps, beam throughput, test metrics of the top 10."""
    test = ranking_metrics(np.asarray(ranked), targets, KS)
    return {
        "implementation": name, "tokenizer_seconds": tokenizer_s, "train_seconds": train_s,
        "seconds_per_epoch": train_s / epochs, "seconds_per_step": train_s / steps, "epochs_run": epochs,
        "steps_run": steps, "beam_seconds": beam_s, "beam_users_per_second": users / beam_s,
        **{f"test_{key}": float(test[key]) for key in ("hr@5", "hr@10", "ndcg@5", "ndcg@10")},
        "identifier_levels": "×".join(map(str, levels)), "parameters": parameters,
    }


COLUMNS = (("implementation", "implementation", "{}"), ("tokenizer s", "tokenizer_seconds", "{:.1f}"),
           ("s/step", "seconds_per_step", "{:.3f}"), ("s/epoch", "seconds_per_epoch", "{:.1f}"),
           ("epochs", "epochs_run", "{}"), ("steps", "steps_run", "{:,}"),
           ("beam users/s", "beam_users_per_second", "{:.1f}"), ("HR@5", "test_hr@5", "{:.4f}"),
           ("HR@10", "test_hr@10", "{:.4f}"), ("NDCG@5", "test_ndcg@5", "{:.4f}"),
           ("NDCG@10", "test_ndcg@10", "{:.4f}"), ("identifier", "identifier_levels", "{}"),
           ("T5 parameters", "parameters", "{:,}"))


def format_tiger_table(rows: list[dict]) -> str:
    """A markdown table, one row per implementation, and the raysid / cornac ratios of step time and beam rate."""
    lines = ["| " + " | ".join(title for title, _, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(form.format(row[key]) for _, key, form in COLUMNS) + " |" for row in rows]
    by_name = {row["implementation"]: row for row in rows}
    if {"raysid", "cornac"} <= set(by_name):
        raysid, cornac = by_name["raysid"], by_name["cornac"]
        lines.append(f"\nraysid / cornac seconds per training step: {raysid['seconds_per_step'] / cornac['seconds_per_step']:.2f}; "
                     f"beam users/s: {raysid['beam_users_per_second'] / cornac['beam_users_per_second']:.2f}")
    return "\n".join(lines)


def tiger_notes(result: dict) -> str:
    """The lines under the table: the shared protocol and what stays different."""
    s, d = result["settings"], result["dataset"]
    return "\n".join([
        f"protocol: leave-one-out (last item test, second-to-last valid, held out of training), {d['users']:,} users, "
        f"full ranking over {d['items']:,} items by constrained beam search (beam {s['beam_size']}), the last epoch "
        f"tested (no model selection on either side); the same z-scored MiniLM text embeddings of the items; RQ-VAE "
        f"{s['levels']} codebooks of {s['codebook_size']} codes (+ a tie-break level), d_z {s['latent_dim']}, widths "
        f"{list(s['hidden_dims'])}, β {s['commitment_weight']}, {s['tokenizer_epochs']} epochs, batch "
        f"{s['tokenizer_batch_size']}, AdamW lr {s['tokenizer_learning_rate']}; T5 d_model {s['d_model']}, d_ff "
        f"{s['d_ff']}, {s['num_layers']}+{s['num_layers']} layers, {s['num_heads']} heads of d_kv {s['d_kv']}, dropout "
        f"{s['dropout']}, history {s['max_history']} items, {s['epochs']} epochs of every training prefix, batch "
        f"{s['batch_size']}, AdamW lr {s['learning_rate']} weight decay {s['weight_decay']}, "
        f"{result['warmup_steps']} warmup steps; {s['threads']} thread(s) each, one after the other.",
        "what stays different: the RQ-VAE: raysid's layers are Linear→BatchNorm→ReLU, fitted on the training items "
        "with k-means initialised on the first batch; cornac's Linear→ReLU, fitted on every item with k-means on all "
        "of them. The T5: raysid's is transformers' T5ForConditionalGeneration over one vocabulary of every level's "
        "tokens (one tied output layer), history followed by eos, loss the mean cross-entropy per identifier token "
        "and eos; cornac's is two transformers T5Stacks with a learned start vector and one output layer per level, "
        "loss the sum of the levels' cross-entropies. The learning rate decays linearly after warmup on raysid's "
        "side, by a cosine on cornac's. Beam search: raysid's runs a batch of users at once with cached keys and "
        "values; cornac's one user at a time, the decoder rerun over the prefix at each level.",
    ])


# ------------------------------------------------------------------------------------------------- cornac


def cornac_arguments(settings: TigerSettings, warmup_steps: int) -> dict:
    """Keyword arguments of cornac's ``TIGER`` for the same sizes and protocol (see the module docstring)."""
    return {
        "tokenizer": "rqvae", "feature_standardize": False, "rqvae_latent_dim": settings.latent_dim,
        "rqvae_hidden_dims": list(settings.hidden_dims), "rqvae_num_levels": settings.levels,
        "rqvae_codebook_size": settings.codebook_size, "rqvae_beta": settings.commitment_weight,
        "rqvae_n_epochs": settings.tokenizer_epochs, "rqvae_learning_rate": settings.tokenizer_learning_rate,
        "rqvae_batch_size": settings.tokenizer_batch_size, "rqvae_weight_decay": 0.01,  # raysid: AdamW's default
        "d_model": settings.d_model, "d_ff": settings.d_ff, "num_heads": settings.num_heads, "d_kv": settings.d_kv,
        "num_enc_layers": settings.num_layers, "num_dec_layers": settings.num_layers, "dropout": settings.dropout,
        "max_len": settings.max_history, "n_epochs": settings.epochs, "learning_rate": settings.learning_rate,
        "weight_decay": settings.weight_decay, "batch_size": settings.batch_size, "lr_schedule": "cosine",
        "warmup_steps": warmup_steps, "model_selection": "last", "scoring": "beam", "n_beams": settings.beam_size,
        "device": "cpu", "verbose": False, "seed": settings.seed,
    }


def cornac_settings(features: Path, splits: Splits, num_items: int, settings: TigerSettings) -> dict:
    """The runner's SETTINGS (``raysid/bench/peers/cornac_runner.py``)."""
    return {"features": str(features), "num_items": num_items, "k": max(KS), "threads": settings.threads,
            "train": [s.tolist() for s in splits.train], "test": [h.tolist() for h in splits.test.histories],
            "tiger": cornac_arguments(settings, settings.warmup_steps(training_samples(splits.train)))}


def cornac_row(peer: dict, splits: Splits, epochs: int) -> dict:
    """The table row of the runner's RESULT."""
    row = tiger_row("cornac", tokenizer_s=peer["tokenizer_s"], train_s=peer["seq2seq_s"], epochs=epochs,
                    steps=peer["steps"], beam_s=peer["beam_s"], users=len(splits.test), ranked=np.array(peer["ranked"]),
                    targets=splits.test.targets, levels=peer["level_sizes"], parameters=peer["parameters"])
    return row | {"collisions": peer["collisions"], "versions": peer["versions"], "fit_seconds": peer["fit_s"]}


def run_cornac(features: np.ndarray, splits: Splits, num_items: int, settings: TigerSettings, python: Path,
               workdir: Path, say) -> dict:
    """cornac's TIGER in its environment on the same features and split."""
    from raysid.bench.peers.sasrec import run_runner

    np.save(workdir / "features.npy", features)
    (workdir / "settings.json").write_text(json.dumps(cornac_settings(workdir / "features.npy", splits, num_items, settings)))
    peer = run_runner("cornac", python, CORNAC_RUNNER, workdir, settings.threads, say)
    return cornac_row(peer, splits, settings.epochs)


# ------------------------------------------------------------------------------------------------- raysid


def run_raysid_tiger(features: np.ndarray, splits: Splits, settings: TigerSettings, say) -> dict:
    """raysid's RQ-VAE tokenizer and T5 recommender, as the pipeline's stages build them."""
    previous = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        start = time.perf_counter()
        sids, collisions = _raysid_identifiers(features, splits, settings)
        tokenizer_seconds = time.perf_counter() - start
        say(f"raysid tokenizer: {tokenizer_seconds:.1f} s, {collisions} items share codes with an earlier item")
        recommender = _raysid_recommender(sids, settings, training_samples(splits.train))
        start, epochs = time.perf_counter(), []

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            epochs.append(time.perf_counter() - start)
            say(f"raysid epoch {epoch}: {epochs[-1]:.1f} s since the T5 start, loss {metrics['train/loss']:.4f}")

        recommender.fit(RecommenderInputs(splits.train, on_epoch=on_epoch))
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        ranked = recommender.recommend(splits.test.histories, max(KS))
        beam_seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous)
    steps = settings.epochs * math.ceil(training_samples(splits.train) / settings.batch_size)
    row = tiger_row("raysid", tokenizer_s=tokenizer_seconds, train_s=train_seconds, epochs=len(epochs), steps=steps,
                    beam_s=beam_seconds, users=len(splits.test), ranked=ranked, targets=splits.test.targets,
                    levels=list(sids.codebook_sizes), parameters=recommender.num_parameters())
    return row | {"collisions": collisions, "epoch_wall_seconds": epochs}


def _raysid_identifiers(features: np.ndarray, splits: Splits, settings: TigerSettings):
    """The tokenizer stage (fit on the training items, encode every item) and the tie-break digit."""
    from raysid.pipeline.trial import identifiers
    from raysid.trial_config import SemanticIdConfig
    from raysid.semantic_ids.table import SemanticIds
    from raysid.tokenizers import TokenizerInputs, get_tokenizer

    spec = get_tokenizer("rqvae")
    config = spec.config(hidden_dims=settings.hidden_dims, latent_dim=settings.latent_dim,
                          codebook_sizes=(settings.codebook_size,) * settings.levels,
                          commitment_weight=settings.commitment_weight, epochs=settings.tokenizer_epochs,
                          batch_size=settings.tokenizer_batch_size, learning_rate=settings.tokenizer_learning_rate,
                          device="cpu", seed=settings.seed)
    tokenizer = spec.build(config).fit(TokenizerInputs({"text": features}, splits.train_items()))
    codes = tokenizer.encode({"text": features})
    raw = SemanticIds.from_codes(codes, tokenizer.position_names, tokenizer.codebook_sizes, tie_break=False)
    unique = identifiers(raw, SemanticIdConfig(tie_break=True))
    return unique, int((unique.codes[:, -1] > 0).sum())


def _raysid_recommender(sids, settings: TigerSettings, samples: int):
    """The recommender stage's T5 of these sizes (``build_recommender``, as ``evaluation.build`` calls it)."""
    from raysid.recommenders import ItemCatalog, build_recommender
    from raysid.recommenders.t5 import T5RecommenderConfig

    config = T5RecommenderConfig(
        d_model=settings.d_model, d_ff=settings.d_ff, num_layers=settings.num_layers, num_heads=settings.num_heads,
        d_kv=settings.d_kv, dropout=settings.dropout, max_history=settings.max_history, epochs=settings.epochs,
        batch_size=settings.batch_size, learning_rate=settings.learning_rate, weight_decay=settings.weight_decay,
        warmup_ratio=settings.warmup_ratio, beam_size=settings.beam_size, eval_batch_size=settings.eval_batch_size,
        device="cpu", seed=settings.seed)
    return build_recommender("t5", config, ItemCatalog(sids, sids.num_items))


def settings_dict(settings: TigerSettings) -> dict:
    return asdict(settings) | {"hidden_dims": list(settings.hidden_dims)}


# ------------------------------------------------------------------------------------------------- benchmark


def require_text(dataset: Dataset) -> str:
    """The dataset's text template; a dataset without item text fails naming it (before any install)."""
    template = dataset.meta.get("text_template", "")
    require(bool(template), "dataset", f"{dataset.name!r} has no text template (its items have no text): TIGER "
            "tokenizes item text; import a dataset whose items have titles")
    return template


def tiger_benchmark(name: str, settings: TigerSettings, root: str | Path | None = None,
                    venv: str | Path | None = None, say=print, store: ArtifactStore | None = None) -> dict:
    """Both TIGER rows on dataset ``name``: cornac's environment is made ready first, then the item features
    (kept in ``store`` when given), then raysid, then cornac."""
    from raysid.bench.peers.sasrec import MIN_LENGTH, prepare
    from raysid.data.importers.store import dataset_folder
    from raysid.bench.peers.venv import CORNAC, ensure_venv

    dataset = Dataset.load(dataset_folder(name, root))
    require_text(dataset)
    data = prepare(dataset)
    python = ensure_venv(venv, say, environment=CORNAC)
    say(f"dataset {name}: {len(data.sequences):,} users, {data.num_items:,} items "
        f"({data.left_out_users:,} users under {MIN_LENGTH} items and {data.left_out_items:,} items left out)")
    splits = leave_one_out(data.sequences)
    say(f"item features: MiniLM embeddings of {data.num_items:,} item texts" + (f" (kept in {store.location})" if store else ""))
    features = text_features(dataset, data.kept_items, splits, settings.threads, store)
    rows = [run_raysid_tiger(features, splits, settings, say)]
    with tempfile.TemporaryDirectory(prefix="raysid-tiger-") as folder:
        rows.append(run_cornac(features, splits, data.num_items, settings, python, Path(folder), say))
    samples = training_samples(splits.train)
    return {
        "dataset": {"name": name, "users": len(data.sequences), "items": data.num_items,
                    "interactions": int(sum(len(s) for s in data.sequences)),
                    "left_out_users": data.left_out_users, "left_out_items": data.left_out_items},
        "settings": settings_dict(settings), "rows": rows, "samples_per_epoch": samples,
        "warmup_steps": settings.warmup_steps(samples),
        "cornac_arguments": cornac_arguments(settings, settings.warmup_steps(samples)), "peer_versions": rows[1]["versions"],
    }


def write_tiger_outputs(result: dict, out: Path, command: list[str], note: str = "") -> tuple[Path, Path]:
    """``tiger.md`` (table, notes, command, provenance) and ``tiger.json`` (everything) under ``out``."""
    from raysid.provenance import collect

    out.mkdir(parents=True, exist_ok=True)
    provenance = collect(result["settings"]["threads"])
    full = result | {"command": shlex.join(command), "provenance": provenance, "note": note}
    markdown = out / "tiger.md"
    markdown.write_text(
        f"# raysid RQ-VAE + T5 vs cornac TIGER on {result['dataset']['name']}\n\n"
        f"{format_tiger_table(result['rows'])}\n\n{tiger_notes(result)}\n\n" + (f"{note}\n\n" if note else "") +
        f"Command: `{shlex.join(command)}`\n\n"
        f"Provenance: {', '.join(f'{k} {v}' for k, v in provenance.items())}; peers: "
        f"{', '.join(f'{k} {v}' for k, v in result['peer_versions'].items())}\n")
    data = out / "tiger.json"
    data.write_text(json.dumps(full, indent=2))
    return markdown, data


def tiger_command_line(dataset: str, settings: TigerSettings, note: str = "", **paths: Path | None) -> list[str]:
    """The ``raysid bench peers --peer tiger`` command that repeats this run: every setting spelled out."""
    command = ["raysid", "bench", "peers", "--peer", "tiger", "--dataset", dataset,
               "--threads", str(settings.threads), "--seed", str(settings.seed)]
    for name, value in settings_dict(settings).items():
        if name not in FIXED:
            command += ["--tiger-set", f"{name}={json.dumps(value) if isinstance(value, list) else value}"]
    for name, value in paths.items():
        command += [] if value is None else [f"--{name.replace('_', '-')}", str(value)]
    return command + (["--note", note] if note else [])
