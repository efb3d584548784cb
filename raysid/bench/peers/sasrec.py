"""``raysid bench peers``: raysid's SASRec and RecBole's SASRec on the same imported dataset, one after the other.

(``--peer tiger``, raysid's RQ-VAE + T5 against cornac's TIGER on the same users and split, is
``raysid.bench.peers.tiger``; it reuses ``prepare`` and ``run_runner`` from here.)

Both sides get the same protocol: leave-one-out (last item test, second-to-last valid, the rest trains), full ranking over every item of those users, the same
hidden size, layers, heads, maximum length, dropout, loss (cross-entropy over the full catalogue), batch
size, learning rate (Adam; raysid's AdamW with weight decay 0 is Adam), epoch cap, validation NDCG@10 on
every validation user after every epoch, early stopping after ``patience`` epochs without a better validation NDCG@10 (raysid's
``SASRecConfig.patience``, RecBole's ``stopping_step`` = patience - 1), the best epoch's weights tested,
and the same torch threads. A tie is no improvement for raysid and one for RecBole.

Only users with 4 or more items take part, on both sides: RecBole's leave-one-out gives a user of 3 items
a training pair and a test item but no validation item, where raysid validates on that user and trains on
nothing, so the two protocols agree only from 4 items on.

RecBole reads the data as atomic files written here (``NAME.inter``: user_id:token, item_id:token,
timestamp:float, the timestamp being the item's position in its user's sequence, so RecBole's 'TO' order is
raysid's order); its config is ``eval_args`` split LS valid_and_test, order TO, mode full. It runs in the
peers' own environment (``raysid.bench.peers.venv``) as a subprocess of ``raysid/bench/peers/recbole_runner.py``.

What stays different, and is reported: by default raysid's SASRec is the SASRec paper's (one window per
user with the loss at every position, pre-norm, ReLU, dropout inside the feed-forward, torch's
initialisation, newest item at the last position), RecBole's is not (every prefix of every training
sequence with the loss at its last position, so samples per epoch = training interactions - users;
post-norm, GELU, ...). ``--raysid KEY=VALUE`` sets those options of raysid's side (``RAYSID_OPTIONS``;
``RECBOLE_ARCHITECTURE`` holds RecBole's values of each), and the notes list the ones still different.
Both feed-forward layers are hidden_size wide (RecBole's ``inner_size`` is set so). Neither masks a
user's history items at evaluation (RecBole's flag is read from its own test loader).

``--seeds`` runs both sides once per seed and adds, per test metric, the paired difference raysid −
RecBole over the seeds with its 95% t-interval (``raysid.reporting.paired``), and each seed's ratio of the times to
the best validation epoch.
raysid's SASRec is called directly over item ids (``raysid.recommenders.sasrec.SASRec``), not through
``run_trial``, whose tokenizer stage would demand a feature matrix that an id-only SASRec never reads.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import yaml

from raysid.config import ConfigError, build, require
from raysid.data.dataset import Dataset, EvalSet
from raysid.data.importers.store import dataset_folder
from raysid.data.splits import leave_one_out
from raysid.metrics.ranking import ranking_metrics
from raysid.reporting.paired import PairedDifference, paired_values
from raysid.bench.peers.venv import RUNNER, ensure_venv
from raysid.provenance import collect
from raysid.recommenders.base import RecommenderInputs
from raysid.recommenders.sasrec import SASRec, SASRecConfig, training_data

KS = (5, 10)
STOP_METRIC = "ndcg@10"
TEST_METRICS = ("hr@5", "hr@10", "ndcg@5", "ndcg@10")
MIN_LENGTH = 4  # see the module docstring
Say = Callable[[str], None]
# RecBole 1.2.1's SASRec in raysid's SASRecConfig options: what --raysid KEY=VALUE may set on raysid's side
RECBOLE_ARCHITECTURE = {"samples": "prefixes", "norm": "post", "activation": "gelu", "feed_forward_dropout": False,
                        "init_std": 0.02, "layer_norm_eps": 1e-12, "position_alignment": "first"}
RAYSID_OPTIONS = tuple(RECBOLE_ARCHITECTURE)


class PeerRunError(RuntimeError):
    """The peer's run failed; the message names its log."""


@dataclass(frozen=True)
class PeerSettings:
    """What both implementations are given; section ``bench peers`` names the keys in error messages."""

    hidden_size: int = 64  # item embedding and hidden size
    num_layers: int = 2  # self-attention blocks
    num_heads: int = 2  # attention heads per block
    max_length: int = 50  # histories keep their last max_length items
    dropout: float = 0.2  # embedding, attention and feed-forward dropout (RecBole: hidden and attention)
    batch_size: int = 128  # training samples per step (raysid: user windows; RecBole: prefixes)
    eval_batch_size: int = 256  # users per evaluation batch
    learning_rate: float = 1e-3  # Adam
    epochs: int = 50  # epoch cap
    patience: int = 5  # stop after this many epochs without a better valid NDCG@10; 0 = run every epoch
    threads: int = 1  # torch threads of each side
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "max_length", "batch_size", "eval_batch_size",
                     "epochs", "threads"):
            require(getattr(self, name) > 0, f"bench peers.{name}", f"must be positive, got {getattr(self, name)}")
        require(self.patience >= 0, "bench peers.patience", f"must be >= 0, got {self.patience}")
        require(self.hidden_size % self.num_heads == 0, "bench peers.hidden_size",
                f"{self.hidden_size} is not divisible by num_heads={self.num_heads}")


@dataclass(frozen=True)
class PeerData:
    """The users both sides see (sequences of MIN_LENGTH or more items), items renumbered to those they hold."""

    name: str
    sequences: list[np.ndarray]
    num_items: int
    left_out_users: int  # sequences shorter than MIN_LENGTH items
    left_out_items: int  # catalogue items that only those users (or nobody) hold
    kept_items: np.ndarray  # (num_items,) the dataset's id of each renumbered item


def prepare(dataset: Dataset) -> PeerData:
    """Keep the users of MIN_LENGTH or more items and renumber their items 0..n-1 in item-id order."""
    kept = [np.asarray(s, dtype=np.int64) for s in dataset.sequences if len(s) >= MIN_LENGTH]
    require(bool(kept), "dataset", f"{dataset.name!r} has no sequence of {MIN_LENGTH} or more items")
    used = np.unique(np.concatenate(kept))
    renumber = np.full(dataset.num_items, -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    return PeerData(dataset.name, [renumber[s] for s in kept], len(used),
                    len(dataset.sequences) - len(kept), dataset.num_items - len(used), used)


def load(name: str, root: str | Path | None = None) -> PeerData:
    """The imported dataset ``name`` (``raysid data import``), prepared for both sides."""
    return prepare(Dataset.load(dataset_folder(name, root)))


def write_atomic(data: PeerData, folder: Path) -> Path:
    """``folder/NAME/NAME.inter`` in RecBole's atomic format; returns ``folder`` (RecBole's data_path)."""
    target = folder / data.name
    target.mkdir(parents=True, exist_ok=True)
    with open(target / f"{data.name}.inter", "w") as out:
        out.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for user, sequence in enumerate(data.sequences):
            out.writelines(f"u{user}\ti{item}\t{position}\n" for position, item in enumerate(sequence.tolist()))
    return folder


# ------------------------------------------------------------------------------------------------- raysid


def parse_seeds(text: str) -> tuple[int, ...]:
    """``--seeds 0,1,2`` -> (0, 1, 2): distinct integers >= 0, at least one."""
    parts = [part.strip() for part in text.split(",")]
    require(all(part.isdigit() for part in parts), "--seeds", f"expected integers >= 0 separated by commas, got {text!r}")
    seeds = tuple(int(part) for part in parts)
    require(len(set(seeds)) == len(seeds), "--seeds", f"each seed once, got {text!r}")
    return seeds


def parse_raysid_options(items: list[str]) -> dict:
    """{option: value} from ``--raysid KEY=VALUE`` strings (YAML values), each one of ``RAYSID_OPTIONS`` and
    valid for ``SASRecConfig``; an unknown key or a bad value fails in one line naming it."""
    options = {}
    for item in items:
        key, sep, text = (part.strip() for part in item.partition("="))
        require(bool(sep) and bool(key), "--raysid", f"expected KEY=VALUE, got {item!r}")
        require(key in RAYSID_OPTIONS, f"--raysid {key}",
                f"not an option of raysid's side; valid ones are: {', '.join(RAYSID_OPTIONS)}")
        try:
            options[key] = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"--raysid {key}: {text!r} is not a YAML value ({error.problem})") from None
    try:
        config = build(SASRecConfig, options, "--raysid")  # YAML values coerced and validated as in a config
    except ConfigError as error:  # "--raysid.norm: ..." or "collaborative.init_std: ...": name the option
        message = str(error).replace("--raysid.", "--raysid ").replace(f"{SASRecConfig.section}.", "--raysid ")
        raise ConfigError(message) from None
    return {key: getattr(config, key) for key in options}


def raysid_config(settings: PeerSettings, options: dict | None = None) -> SASRecConfig:
    """raysid's SASRec for ``settings``: the shared sizes and protocol, plus ``options`` of its own."""
    return SASRecConfig(
        hidden_size=settings.hidden_size, num_layers=settings.num_layers, num_heads=settings.num_heads,
        max_length=settings.max_length, dropout=settings.dropout, epochs=settings.epochs,
        batch_size=settings.batch_size, learning_rate=settings.learning_rate, loss="cross_entropy",
        item_representation="id", device="cpu", seed=settings.seed,
        patience=settings.patience or settings.epochs,  # 0: never stop, but still test the best epoch
        stop_metric=f"valid/{STOP_METRIC}", stop_mode="max", **(options or {}),
    )


def run_raysid(data: PeerData, settings: PeerSettings, say: Say = print, options: dict | None = None) -> dict:
    """raysid's SASRec over item ids: per-epoch validation, best epoch restored, test at full ranking."""
    splits = leave_one_out(data.sequences)
    config = raysid_config(settings, options)
    previous = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        model = SASRec(config, data.num_items)
        tracker = _EpochTracker(splits.valid, say)
        start = time.perf_counter()
        tracker.start = start
        model.fit(RecommenderInputs(splits.train, on_epoch=tracker.on_epoch, epoch_eval=tracker.evaluate))  # restores the best epoch
        fit_seconds = time.perf_counter() - start
        test = ranking_metrics(model.recommend(splits.test.histories, max(KS)), splits.test.targets, KS)
    finally:
        torch.set_num_threads(previous)
    played = [np.ones(len(s), dtype=np.int8) for s in splits.train]
    samples = len(training_data(splits.train, played, config.max_length, config.loss, config.samples))
    return _row("raysid", tracker.epochs, fit_seconds, test, samples)


class _EpochTracker:
    """Validation NDCG@10 after each raysid epoch, its wall time, and whether it is the best so far (strictly
    better, as raysid's early stopping counts it)."""

    def __init__(self, valid: EvalSet, say: Say):
        self.valid, self.say = valid, say
        self.epochs: list[dict] = []
        self.best_value, self.improved = -1.0, False
        self.start, self.eval_seconds = 0.0, 0.0

    def evaluate(self, recommender: SASRec) -> dict[str, float]:
        begin = time.perf_counter()
        ranked = recommender.recommend(self.valid.histories, max(KS))
        metrics = {f"valid/{k}": v for k, v in ranking_metrics(ranked, self.valid.targets, KS).items()}
        self.improved = metrics[f"valid/{STOP_METRIC}"] > self.best_value
        if self.improved:
            self.best_value = metrics[f"valid/{STOP_METRIC}"]
        self.eval_seconds = time.perf_counter() - begin
        return metrics

    def on_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        wall = time.perf_counter() - self.start
        previous = self.epochs[-1]["wall_s"] if self.epochs else 0.0
        train = wall - previous - self.eval_seconds
        self.epochs.append({"epoch": epoch, "wall_s": wall, "train_s": train, "valid_s": self.eval_seconds,
                            "train_loss": metrics["train/loss"], "best": self.improved,
                            "valid": {k[6:]: v for k, v in metrics.items() if k.startswith("valid/")}})
        self.say(f"raysid epoch {epoch}: train {train:.1f} s, loss {metrics['train/loss']:.4f}, "
                 f"valid {STOP_METRIC} {metrics[f'valid/{STOP_METRIC}']:.4f}{' (best)' if self.improved else ''}")


# ------------------------------------------------------------------------------------------------- RecBole


def recbole_config(settings: PeerSettings) -> dict:
    """RecBole's config_dict for the same protocol and model sizes (see the module docstring)."""
    stopping = settings.patience - 1 if settings.patience else settings.epochs  # it stops after stopping_step + 1
    return {
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",
        "MAX_ITEM_LIST_LENGTH": settings.max_length, "hidden_size": settings.hidden_size,
        "inner_size": settings.hidden_size, "n_layers": settings.num_layers, "n_heads": settings.num_heads,
        "hidden_dropout_prob": settings.dropout, "attn_dropout_prob": settings.dropout,
        "loss_type": "CE", "train_neg_sample_args": None,
        "epochs": settings.epochs, "train_batch_size": settings.batch_size,
        "eval_batch_size": settings.eval_batch_size, "learning_rate": settings.learning_rate,
        "learner": "adam", "weight_decay": 0.0,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Hit", "NDCG"], "topk": list(KS), "valid_metric": "NDCG@10", "metric_decimal_place": 6,
        "stopping_step": stopping, "eval_step": 1, "seed": settings.seed, "reproducibility": True,
        "use_gpu": False, "device": "cpu", "worker": 0, "show_progress": False, "state": "WARNING",
    }


def run_recbole(data: PeerData, settings: PeerSettings, python: Path, workdir: Path, say: Say = print) -> dict:
    """RecBole's SASRec in the peers' environment on the atomic files of ``data``."""
    payload = {"data_path": str(write_atomic(data, workdir / "atomic")), "dataset": data.name,
               "checkpoint_dir": str(workdir / "checkpoints"), "threads": settings.threads,
               "config": recbole_config(settings)}
    (workdir / "settings.json").write_text(json.dumps(payload, indent=2))
    peer = run_runner("RecBole", python, RUNNER, workdir, settings.threads, say)
    for epoch in peer["epochs"]:
        epoch["valid"] = _raysid_names(epoch["valid"])
    row = _row("RecBole", peer["epochs"], peer["fit_s"], _raysid_names(peer["test"]), peer["train_samples"])
    return row | {"masks_history": peer["masks_history"], "versions": peer["versions"],
                  "counts": {"users": peer["users"], "items": peer["items"], "samples": peer["samples"]}}


def run_runner(name: str, python: Path, runner: Path, workdir: Path, threads: int, say: Say = print) -> dict:
    """Run a peer's ``runner`` script on ``workdir/settings.json`` with its environment's ``python``, passing
    its stdout lines to ``say`` and its stderr to ``workdir/NAME.log``; the RESULT it wrote, parsed."""
    log, result = workdir / f"{name.lower()}.log", workdir / f"{name.lower()}-result.json"
    command = [str(python), str(runner), str(workdir / "settings.json"), str(result)]
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=workdir,
                                   env={**_environment(), **env})
        for line in process.stdout:
            say(line.rstrip())
    if process.wait() != 0:
        last = [line for line in log.read_text().splitlines() if line.strip()][-1:] or ["no output"]
        raise PeerRunError(f"{name}'s run failed (exit {process.returncode}): {last[0]}; log: {log}; "
                           f"rerun: {shlex.join(command)}")
    return json.loads(result.read_text())


def _raysid_names(metrics: dict[str, float]) -> dict[str, float]:
    """RecBole's ``hit@k`` is raysid's ``hr@k``."""
    return {key.replace("hit@", "hr@"): value for key, value in metrics.items()}


def _environment() -> dict[str, str]:
    """This process's environment without raysid's PYTHONPATH and venv, which the peers must not see."""
    return {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}


# ------------------------------------------------------------------------------------------------- table


def _row(name: str, epochs: list[dict], fit_seconds: float, test: dict[str, float], samples: int) -> dict:
    """One table row from the per-epoch records (``epoch``, ``wall_s``, ``train_s``, ``best``) and test metrics."""
    best = [e for e in epochs if e["best"]][-1]
    return {
        "implementation": name, "seconds_per_epoch": fit_seconds / len(epochs),
        "train_seconds_per_epoch": sum(e["train_s"] for e in epochs) / len(epochs), "epochs_run": len(epochs),
        "best_epoch": best["epoch"], "seconds_to_best": best["wall_s"], "best_valid_ndcg@10": best["valid"]["ndcg@10"],
        **{f"test_{key}": float(test[key]) for key in TEST_METRICS},
        "samples_per_epoch": samples, "epochs": epochs,
    }


COLUMNS = (("implementation", "implementation", "{}"), ("s/epoch", "seconds_per_epoch", "{:.2f}"),
           ("train s/epoch", "train_seconds_per_epoch", "{:.2f}"), ("epochs run", "epochs_run", "{}"),
           ("best epoch", "best_epoch", "{}"), ("s to best", "seconds_to_best", "{:.1f}"),
           ("valid NDCG@10", "best_valid_ndcg@10", "{:.4f}"), ("HR@5", "test_hr@5", "{:.4f}"),
           ("HR@10", "test_hr@10", "{:.4f}"), ("NDCG@5", "test_ndcg@5", "{:.4f}"),
           ("NDCG@10", "test_ndcg@10", "{:.4f}"), ("samples/epoch", "samples_per_epoch", "{:,}"))


def format_table(rows: list[dict]) -> str:
    """A markdown table, one row per implementation (and seed, when there are several), and the raysid/RecBole
    ratio of the times to the best validation epoch (one per seed)."""
    seeds = sorted({row.get("seed", 0) for row in rows})
    columns = ((("seed", "seed", "{}"),) if len(seeds) > 1 else ()) + COLUMNS
    lines = ["| " + " | ".join(title for title, _, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(form.format(row[key]) for _, key, form in columns) + " |" for row in rows]
    ratios = time_ratios(rows)
    if len(ratios) == 1:
        lines.append(f"\nraysid / RecBole time to the best validation epoch: {next(iter(ratios.values())):.2f}")
    elif ratios:
        lines.append("\nraysid / RecBole time to the best validation epoch, per seed: "
                     + ", ".join(f"seed {seed} {ratio:.2f}" for seed, ratio in ratios.items()))
    return "\n".join(lines)


def _pairs(rows: list[dict]) -> dict[int, tuple[dict, dict]]:
    """{seed: (raysid's row, RecBole's row)} for the seeds that have both."""
    by = {(row.get("seed", 0), row["implementation"]): row for row in rows}
    seeds = sorted({seed for seed, _ in by})
    return {seed: (by[seed, "raysid"], by[seed, "RecBole"]) for seed in seeds
            if (seed, "raysid") in by and (seed, "RecBole") in by}


def time_ratios(rows: list[dict]) -> dict[int, float]:
    """{seed: raysid's seconds to its best validation epoch / RecBole's}."""
    return {seed: ours["seconds_to_best"] / theirs["seconds_to_best"] for seed, (ours, theirs) in _pairs(rows).items()}


def paired_differences(rows: list[dict]) -> list[PairedDifference]:
    """raysid − RecBole on each test metric over the seeds, with the 95% t-interval of ``raysid.reporting.paired``."""
    pairs = _pairs(rows)
    return [paired_values("raysid", "RecBole", f"test_{metric}",
                          {seed: ours[f"test_{metric}"] for seed, (ours, _) in pairs.items()},
                          {seed: theirs[f"test_{metric}"] for seed, (_, theirs) in pairs.items()})
            for metric in TEST_METRICS]


def comparison(rows: list[dict]) -> dict:
    """What the rows say about raysid against RecBole: paired differences, time ratios, the issue's bar per seed."""
    pairs = _pairs(rows)
    ratios = time_ratios(rows)
    return {
        "paired": [asdict(d) | {"verdict": d.verdict} for d in paired_differences(rows)],
        "time_ratios": {str(seed): ratio for seed, ratio in ratios.items()},
        "raysid_at_least_recbole": {str(seed): all(ours[f"test_{m}"] >= theirs[f"test_{m}"] for m in TEST_METRICS)
                                    for seed, (ours, theirs) in pairs.items()},
        "time_ratio_at_most_half": {str(seed): ratio <= 0.5 for seed, ratio in ratios.items()},
    }


def format_comparison(result: dict) -> str:
    """The paired differences (a markdown table) and the per-seed verdicts of the issue's bar."""
    compared = result["comparison"]
    seeds = len(compared["time_ratios"])
    lines = [f"raysid − RecBole over {seeds} seed{'s' * (seeds != 1)} (mean and 95% t-interval of the paired "
             "differences; an interval that excludes 0 separates):", "",
             "| test metric | mean | 95% interval | verdict |", "|---|---|---|---|"]
    for d in compared["paired"]:
        interval = "n/a (one seed)" if d["low"] is None else f"[{d['low']:+.4f}, {d['high']:+.4f}]"
        lines.append(f"| {d['metric'][5:]} | {d['mean']:+.4f} | {interval} | {d['verdict']} |")
    at_least = compared["raysid_at_least_recbole"]
    half = compared["time_ratio_at_most_half"]
    lines += ["", f"raysid ≥ RecBole on every test metric: {sum(at_least.values())} of {len(at_least)} seeds; "
              f"raysid's time to the best validation epoch ≤ 0.5 × RecBole's: {sum(half.values())} of {len(half)} seeds."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- benchmark


def peers_benchmark(name: str, settings: PeerSettings, root: str | Path | None = None, venv: str | Path | None = None,
                    say: Say = print, options: dict | None = None, seeds: tuple[int, ...] | None = None) -> dict:
    """Both rows on dataset ``name`` for each of ``seeds`` (default: ``settings.seed``): the peers' environment is
    made ready first, then per seed raysid (with ``options``, see ``RAYSID_OPTIONS``), then RecBole."""
    seeds = tuple(seeds or (settings.seed,))
    data = load(name, root)
    python = ensure_venv(venv, say)
    say(f"dataset {name}: {len(data.sequences):,} users, {data.num_items:,} items "
        f"({data.left_out_users:,} users under {MIN_LENGTH} items and {data.left_out_items:,} items left out)")
    rows = []
    for seed in seeds:
        run = replace(settings, seed=seed)
        if len(seeds) > 1:
            say(f"seed {seed}")
        rows.append(run_raysid(data, run, say, options) | {"seed": seed})
        with tempfile.TemporaryDirectory(prefix="raysid-peers-") as folder:
            rows.append(run_recbole(data, run, python, Path(folder), say) | {"seed": seed})
    recbole, first = rows[1], replace(settings, seed=seeds[0])
    return {
        "dataset": {"name": name, "users": len(data.sequences), "items": data.num_items,
                    "interactions": int(sum(len(s) for s in data.sequences)),
                    "left_out_users": data.left_out_users, "left_out_items": data.left_out_items},
        "settings": asdict(first), "seeds": list(seeds), "raysid_options": dict(options or {}),
        "raysid_config": asdict(raysid_config(first, options)), "rows": rows, "recbole_config": recbole_config(first),
        "comparison": comparison(rows),
        "history_masking": {"RecBole": recbole["masks_history"], "raysid": False},
        "early_stopping": {"RecBole": settings.patience > 0, "raysid": settings.patience > 0},
        "peer_versions": recbole["versions"],
    }


def architecture_notes(options: dict) -> str:
    """Which of RecBole's architecture and sample choices raysid's side runs with, and which differ."""
    config = raysid_config(PeerSettings(), options)
    same = [key for key in RAYSID_OPTIONS if getattr(config, key) == RECBOLE_ARCHITECTURE[key]]
    different = [f"{key} {getattr(config, key)} (RecBole: {RECBOLE_ARCHITECTURE[key]})"
                 for key in RAYSID_OPTIONS if key not in same]
    return ("architecture and samples (raysid's SASRecConfig): " + (
        f"as RecBole's: {', '.join(f'{k} {getattr(config, k)}' for k in same)}; " if same else "")
        + (f"different: {', '.join(different)}" if different else "nothing different") + ". "
        "samples window: one per user, loss at every position; prefixes: every prefix of each training "
        "sequence, loss at its last position (RecBole's). Both feed-forward layers are hidden-size wide.")


def protocol_notes(result: dict) -> str:
    """The lines under the table: the shared protocol and what stays different."""
    masks = "masks" if result["history_masking"]["RecBole"] else "does not mask"
    s, stopping = result["settings"], result["early_stopping"]
    rule = f"after {s['patience']} epochs without a better valid NDCG@10"
    stops = [f"{name} stops {rule}" if stopping[name] else f"{name} runs every epoch" for name in ("raysid", "RecBole")]
    seeds = result.get("seeds", [s["seed"]])
    return "\n".join([
        f"protocol: leave-one-out (last item test, second-to-last valid), full ranking over {result['dataset']['items']:,} "
        f"items, hidden {s['hidden_size']}, {s['num_layers']} layers, {s['num_heads']} heads, max length "
        f"{s['max_length']}, dropout {s['dropout']}, cross-entropy, batch {s['batch_size']}, Adam lr {s['learning_rate']}, "
        f"at most {s['epochs']} epochs ({', '.join(stops)}; each tests its best validation epoch), "
        f"{s['threads']} thread(s) each, one after the other, seed{'s' * (len(seeds) > 1)} "
        f"{', '.join(map(str, seeds))} (both sides).",
        f"history items at evaluation: RecBole {masks} them (read from its own test loader); raysid does not mask "
        "them either (it ranks every item).",
        architecture_notes(result.get("raysid_options", {})),
    ])


def write_outputs(result: dict, out: Path, command: list[str], note: str = "") -> tuple[Path, Path]:
    """``peers.md`` (table, notes, ``note``, command, provenance) and ``peers.json`` (everything) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    provenance = collect(result["settings"]["threads"])
    full = result | {"command": shlex.join(command), "provenance": provenance} | ({"note": note} if note else {})
    markdown = out / "peers.md"
    markdown.write_text(
        f"# raysid vs RecBole SASRec on {result['dataset']['name']}\n\n{format_table(result['rows'])}\n\n"
        f"{format_comparison(result)}\n\n"
        f"{protocol_notes(result)}\n\n" + (f"{note}\n\n" if note else "") + f"Command: `{shlex.join(command)}`\n\n"
        f"Provenance: {', '.join(f'{k} {v}' for k, v in provenance.items())}; peers: "
        f"{', '.join(f'{k} {v}' for k, v in result['peer_versions'].items())}\n")
    data = out / "peers.json"
    data.write_text(json.dumps(full, indent=2))
    return markdown, data


def command_line(dataset: str, settings: PeerSettings, options: dict | None = None, seeds: tuple[int, ...] | None = None,
                 **paths: Path | None) -> list[str]:
    """The ``raysid bench peers`` command that repeats this run: every setting spelled out (``--seeds`` in place
    of ``--seed`` when given), each ``--raysid`` option, then ``paths`` (``root``, ``out``, ``peers_venv``) that
    were given."""
    command = ["raysid", "bench", "peers", "--dataset", dataset]
    for name, value in asdict(settings).items():
        if name == "seed" and seeds:
            command += ["--seeds", ",".join(map(str, seeds))]
        else:
            command += [f"--{name.replace('_', '-')}", str(value)]
    for key, value in (options or {}).items():
        command += ["--raysid", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    for name, value in paths.items():
        command += [] if value is None else [f"--{name.replace('_', '-')}", str(value)]
    return command
