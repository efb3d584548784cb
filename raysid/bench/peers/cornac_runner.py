"""Train and test cornac's TIGER (its RQ-VAE + T5); run by ``raysid bench peers --peer tiger`` inside cornac's venv.

Usage: ``python cornac_runner.py SETTINGS.json RESULT.json``. SETTINGS holds ``features`` (an ``.npy`` file,
(items, dim) float32, row i = item i), ``num_items``, ``train`` (each user's training sequence of item ids),
``test`` (each user's test history), ``k`` (list length), ``threads`` and ``tiger`` (keyword arguments of
cornac's ``TIGER``). RESULT receives the top-``k`` items of every test history (best first), the seconds of
the tokenizer stage and of the seq2seq training, the optimizer steps taken, the beam search's seconds, the
semantic-ID levels, the parameter count and the peer's library versions. One progress line per epoch goes to
stdout.

This script imports nothing from raysid: it runs with cornac's own pins. It uses cornac as its docs do, with
two differences made from the outside, never by editing cornac:
- the training set is cornac's ``SequentialDataset.build`` (format SIT: session = user, timestamp = position)
  with the item map filled in advance (``i0`` -> 0, …), so cornac's item index is raysid's item id and items
  seen only in validation or test still have a semantic ID; the features are attached as the
  ``FeatureModality`` that ``NextItemEvaluation.from_splits(..., item_feature=...)`` would attach;
- ``TimedTIGER`` subclasses ``TIGER`` only to time its tokenizer and seq2seq stages (the step count and the
  per-epoch lines come from a torch optimizer step hook held during the seq2seq stage); ranking calls
  TIGER's own ``score`` (constrained beam search, one history at a time) for every test user.
"""

from __future__ import annotations

import json
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from cornac.data import FeatureModality, SequentialDataset
from cornac.models import TIGER
from torch.optim.optimizer import register_optimizer_step_post_hook


class TimedTIGER(TIGER):
    """cornac's TIGER as it is, with the seconds of its stages and its seq2seq optimizer steps kept."""

    steps_per_epoch = 1  # set by the runner before fit, for the per-epoch progress lines

    def _tokenize(self, torch_module, feats_t):
        start = time.perf_counter()
        codes = super()._tokenize(torch_module, feats_t)
        self.tokenizer_seconds = time.perf_counter() - start
        return codes

    def _fit_seq2seq(self, torch_module, val_set):
        self.step_times: list[float] = []
        start = time.perf_counter()

        def on_step(optimizer, args, kwargs) -> None:
            self.step_times.append(time.perf_counter() - start)
            if len(self.step_times) % self.steps_per_epoch == 0:
                epoch = len(self.step_times) // self.steps_per_epoch
                print(f"cornac epoch {epoch}: {self.step_times[-1]:.1f} s since the seq2seq start", flush=True)

        handle = register_optimizer_step_post_hook(on_step)
        try:
            super()._fit_seq2seq(torch_module, val_set)
        finally:
            handle.remove()
        self.seq2seq_seconds = time.perf_counter() - start


def training_set(train: list[list[int]], num_items: int, features: np.ndarray) -> SequentialDataset:
    """cornac's training set of the users' training sequences, item index = item id, features attached."""
    rows = [(f"u{user}", f"i{item}", position) for user, sequence in enumerate(train)
            for position, item in enumerate(sequence)]
    item_map = OrderedDict((f"i{item}", item) for item in range(num_items))
    dataset = SequentialDataset.build(rows, fmt="SIT", global_iid_map=item_map)
    dataset.add_modalities(item_feature=FeatureModality(features=features).build())
    return dataset


def steps_per_epoch(train: list[list[int]], batch_size: int) -> int:
    """cornac's batches per epoch: every prefix is a sample; a last batch of one sample is dropped."""
    samples = sum(len(s) - 1 for s in train if len(s) >= 2)
    return samples // batch_size + (1 if samples % batch_size > 1 else 0)


def run(settings: dict) -> dict:
    torch.set_num_threads(int(settings["threads"]))
    features = np.load(settings["features"]).astype(np.float32)
    train, num_items, k = settings["train"], int(settings["num_items"]), int(settings["k"])
    model = TimedTIGER(**settings["tiger"])
    model.steps_per_epoch = steps_per_epoch(train, model.batch_size)
    start = time.perf_counter()
    model.fit(training_set(train, num_items, features))
    fit_seconds = time.perf_counter() - start
    ranked, start = [], time.perf_counter()
    for user, history in enumerate(settings["test"]):
        scores = model.score(user, history)
        top = np.argsort(-scores, kind="stable")[:k]
        ranked.append([int(item) for item in top])
    beam_seconds = time.perf_counter() - start
    return {
        "ranked": ranked, "fit_s": fit_seconds, "tokenizer_s": model.tokenizer_seconds,
        "seq2seq_s": model.seq2seq_seconds, "steps": len(model.step_times), "steps_per_epoch": model.steps_per_epoch,
        "beam_s": beam_seconds, "level_sizes": [int(s) for s in model.level_sizes],
        "collisions": int((model.sid_table[:, -1] > 0).sum()), "total_items": int(model.total_items),
        "parameters": sum(p.numel() for p in model.model.parameters() if p.requires_grad),
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    from importlib import metadata

    return {name: metadata.version(name) for name in ("cornac", "torch", "transformers", "numpy")} | {
        "python": sys.version.split()[0]}


if __name__ == "__main__":
    settings_path, result_path = (Path(arg) for arg in sys.argv[1:3])
    result = run(json.loads(settings_path.read_text()))
    result_path.write_text(json.dumps(result))
