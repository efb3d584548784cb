"""Train and test RecBole's SASRec on atomic files; run by ``raysid bench peers`` inside the peers' venv.

Usage: ``python recbole_runner.py SETTINGS.json RESULT.json``. SETTINGS holds ``data_path`` (the folder
holding ``DATASET/DATASET.inter``), ``dataset``, ``checkpoint_dir``, ``threads`` and ``config`` (RecBole
config keys, passed as RecBole's ``config_dict``). RESULT receives per-epoch train/valid seconds and
validation metrics, the best epoch, the test metrics at the best epoch's weights, the number of training
samples per epoch and the peer's library versions. One progress line per epoch goes to stdout.

This script imports nothing from raysid: it runs with the peers' own pins. It shims RecBole 1.2.1's
incompatibilities with today's libraries from the outside, never by editing RecBole:
- numpy 2 removed ``np.float_``, ``np.complex_`` and ``np.unicode_``, which RecBole's ``Config`` reads
  (``compatibility_settings``): they are restored as the numpy-1 aliases before RecBole is imported;
- torch >= 2.6 loads checkpoints with ``weights_only=True``, and RecBole's own checkpoint holds its
  ``Config`` object: ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` is set for this process (RecBole's own file);
- ``recbole.quick_start`` imports ``ray.tune`` from Ray <= 2.6.3, which is not installed: the Config,
  dataset, model and trainer are built here as ``quick_start.run_recbole`` builds them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"

import numpy as np  # noqa: E402

for _alias, _type in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
    if _alias not in np.__dict__:
        setattr(np, _alias, _type)

import torch  # noqa: E402
from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.model.sequential_recommender import SASRec  # noqa: E402
from recbole.trainer import Trainer  # noqa: E402
from recbole.utils import init_seed  # noqa: E402


class TimedTrainer(Trainer):
    """RecBole's Trainer as it is, with the seconds and results of each training and validation epoch kept."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.train_seconds: list[float] = []
        self.valid_seconds: list[float] = []
        self.valid_results: list[dict[str, float]] = []

    def _train_epoch(self, *args, **kwargs):
        start = time.perf_counter()
        loss = super()._train_epoch(*args, **kwargs)
        self.train_seconds.append(time.perf_counter() - start)
        self.last_loss = float(sum(loss) if isinstance(loss, tuple) else loss)
        return loss

    def _valid_epoch(self, *args, **kwargs):
        start = time.perf_counter()
        score, result = super()._valid_epoch(*args, **kwargs)
        self.valid_seconds.append(time.perf_counter() - start)
        self.valid_results.append({key: float(value) for key, value in result.items()})
        return score, result


def run(settings: dict) -> dict:
    """Build RecBole's Config, dataset, SASRec and Trainer; train with early stopping; test the best epoch."""
    torch.set_num_threads(int(settings["threads"]))
    config = Config(model="SASRec", dataset=settings["dataset"],
                    config_dict={**settings["config"], "data_path": settings["data_path"],
                                 "checkpoint_dir": settings["checkpoint_dir"]})
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = SASRec(config, train_data._dataset).to(config["device"])
    trainer = TimedTrainer(config, model)
    start, epochs = time.perf_counter(), []

    def on_epoch(epoch: int, score: float) -> None:
        epochs.append({"epoch": epoch + 1, "wall_s": time.perf_counter() - start, "best": trainer.cur_step == 0,
                       "train_s": trainer.train_seconds[-1], "valid_s": trainer.valid_seconds[-1],
                       "train_loss": trainer.last_loss, "valid": trainer.valid_results[-1]})
        print(f"recbole epoch {epoch + 1}: train {trainer.train_seconds[-1]:.1f} s, loss {trainer.last_loss:.4f}, "
              f"valid ndcg@10 {score:.4f}{' (best)' if trainer.cur_step == 0 else ''}", flush=True)

    trainer.fit(train_data, valid_data, saved=True, show_progress=False, verbose=False, callback_fn=on_epoch)
    fit_seconds = time.perf_counter() - start
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    best = [e for e in epochs if e["best"]][-1]
    return {
        "epochs": epochs, "fit_s": fit_seconds, "best_epoch": best["epoch"], "best_wall_s": best["wall_s"],
        "test": {key: float(value) for key, value in test.items()},
        "train_samples": int(train_data.sample_size), "users": int(dataset.user_num - 1),
        "items": int(dataset.item_num - 1), "samples": int(dataset.inter_num),  # every prefix, before the split
        "masks_history": _masks_history(test_data), "versions": _versions(),
    }


def _masks_history(test_data) -> bool:
    """Whether RecBole's full-sort evaluation sets a user's history items to -inf (its history_index)."""
    _, history_index, _, _ = next(iter(test_data))
    return history_index is not None


def _versions() -> dict[str, str]:
    from importlib import metadata

    return {name: metadata.version(name) for name in ("recbole", "torch", "numpy", "pandas", "scipy")} | {
        "python": sys.version.split()[0]}


if __name__ == "__main__":
    settings_path, result_path = (Path(arg) for arg in sys.argv[1:3])
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value overrides from the command line
    result = run(json.loads(settings_path.read_text()))
    result_path.write_text(json.dumps(result, indent=2))
