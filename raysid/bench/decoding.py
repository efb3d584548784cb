"""Constrained decoding benchmark: raysid's vectorised trie beam search against ``transformers`` generation.

``benchmark_model`` builds the built-in catalog at a given size, gives every track a random 'v0'
identifier (``levels`` codes of ``codebook_size`` plus the tie-break digit) and trains a ``T5Recommender``
at a named size (``raysid.presets``: ``spine``, the config defaults, or ``paper``, TIGER's 4 + 4 layers of
width 128 over 20 history items) for one epoch on a few playlists, so that its distributions are no longer
uniform.
``compare_decoders`` decodes the same test histories, in the same batches and from the same encoder
inputs, twice:

(a) ``T5Recommender.beam_search`` — one tensor op per step for all beams of all users, the encoder
    output and cross-attention keys/values kept once per user (``raysid.recommenders.t5.BeamDecoder``);
(b) ``model.generate(num_beams=B, num_return_sequences=B, prefix_allowed_tokens_fn=fn)`` — ``fn`` walks
    a dict trie of token prefixes once per beam per step, in Python. The decoder starts with pad and after
    an identifier's last position only eos is allowed. ``renormalize_logits=True`` re-applies log-softmax
    after the prefix mask, so every step's score is the log-probability renormalised over the trie node's
    children, as in (a); the forced eos step then adds exactly 0. ``length_penalty=0`` makes a hypothesis'
    score its summed log-probability, and every identifier has the same length, so all B hypotheses finish
    at the same step and ``early_stopping`` cannot cut anything.

Both therefore rank by the same score and keep the same B prefixes at every step; rankings must be
identical (items and order). Where a user's two rankings differ, ``exact_scores`` (teacher forcing)
decides whether the difference is a float near-tie — at every position the two items' exact scores are
within ``tie_tolerance`` — or a real disagreement. Speed is printed, never asserted.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from raysid.bench.tokenizers import catalog_config
from raysid.data.catalog import generate_catalog
from raysid.data.splits import leave_one_out
from raysid.presets import recommender_config
from raysid.recommenders.base import RecommenderInputs
from raysid.recommenders.exact import exact_scores, generated_items
from raysid.recommenders.t5 import Samples, T5Recommender
from raysid.semantic_ids.table import SemanticIds
from raysid.semantic_ids.vocab import EOS

TIE_TOLERANCE = 1e-4  # exact-score gap below which two items count as tied in float32


def benchmark_model(
    num_tracks: int,
    beam_size: int = 20,
    codebook_size: int = 64,
    levels: int = 3,
    train_playlists: int = 64,
    seed: int = 0,
    preset: str = "spine",
) -> tuple[T5Recommender, list[np.ndarray]]:
    """A T5Recommender at ``preset`` trained for one epoch on ``train_playlists`` playlists, and the catalog's
    test histories."""
    if levels < 1 or codebook_size < 1 or train_playlists < 1:
        raise ValueError(
            f"levels, codebook_size and train_playlists must be positive, got {levels}, {codebook_size}, {train_playlists}"
        )
    dataset = generate_catalog(catalog_config(num_tracks, seed))
    splits = leave_one_out(dataset.sequences)
    codes = np.random.default_rng(seed).integers(0, codebook_size, size=(num_tracks, levels))
    names = tuple(f"r{level}" for level in range(1, levels + 1))
    sids = SemanticIds.from_codes(codes, names, (codebook_size,) * levels, tie_break=True)
    updates = {"epochs": 1, "beam_size": beam_size, "eval_batch_size": 1 << 20, "device": "cpu", "seed": seed}
    config = recommender_config(preset, "t5", updates)
    recommender = T5Recommender(config, sids).fit(RecommenderInputs(splits.train[:train_playlists]))
    return recommender, splits.test.histories


def allowed_tokens_table(item_tokens: np.ndarray) -> dict[tuple[int, ...], list[int]]:
    """Token prefix (without the decoder start) -> sorted allowed next tokens; a whole identifier -> [eos]."""
    children: dict[tuple[int, ...], set[int]] = {}
    for row in np.asarray(item_tokens).tolist():
        for depth, token in enumerate(row):
            children.setdefault(tuple(row[:depth]), set()).add(token)
        children[tuple(row)] = {EOS}
    return {prefix: sorted(tokens) for prefix, tokens in children.items()}


def prefix_allowed_tokens_fn(table: dict[tuple[int, ...], list[int]]):
    """The ``transformers`` callback: (batch id, decoder tokens so far incl. the start token) -> allowed tokens."""

    def allowed(batch_id: int, sent: torch.Tensor) -> list[int]:
        prefix = tuple(sent[1:].tolist())
        if prefix not in table:
            raise ValueError(f"decoder prefix {prefix} of batch row {batch_id} is not a prefix of any identifier")
        return table[prefix]

    return allowed


def generate_constrained(
    recommender: T5Recommender, histories: list[np.ndarray], fn
) -> tuple[np.ndarray, np.ndarray]:
    """(users, beam_size) items and float32 scores from ``transformers`` beam search with ``fn``; one batch."""
    beams, positions = recommender.config.beam_size, recommender.sids.num_positions
    samples = Samples.from_histories(histories, None, recommender.device)
    index = torch.arange(len(histories), device=recommender.device)
    input_ids, mask = recommender.encoder_inputs(samples.history_items(index, recommender.config.max_history))
    with torch.no_grad():
        out = recommender.model.eval().generate(
            input_ids=input_ids, attention_mask=mask, num_beams=beams, num_return_sequences=beams,
            prefix_allowed_tokens_fn=fn, renormalize_logits=True, length_penalty=0.0, early_stopping=True,
            max_new_tokens=positions + 1, min_new_tokens=0, do_sample=False,
            output_scores=True, return_dict_in_generate=True,
        )
    sequences = out.sequences.cpu().numpy()  # (users*beams, 1 + positions + 1): start, identifier, eos
    if sequences.shape[1] != positions + 2 or (sequences[:, -1] != EOS).any():
        raise RuntimeError(f"transformers returned sequences of shape {sequences.shape} not ending in eos")
    items = generated_items(recommender.sids, sequences[:, 1 : 1 + positions]).reshape(len(histories), beams)
    return items, out.sequences_scores.float().cpu().numpy().reshape(len(histories), beams)


def compare_decoders(
    recommender: T5Recommender, histories: list[np.ndarray], batch_size: int, repeats: int = 3,
    tie_tolerance: float = TIE_TOLERANCE,
) -> dict[str, Any]:
    """Decode ``histories`` in batches with both decoders; best-of-``repeats`` timings, agreement, mismatch reasons."""
    if batch_size < 1 or repeats < 1 or not histories:
        raise ValueError(
            f"need positive batch_size and repeats and at least one history, got {batch_size}, {repeats}, {len(histories)}"
        )
    fn = prefix_allowed_tokens_fn(allowed_tokens_table(recommender.vocab.encode(np.arange(recommender.num_items))))
    batches = [histories[i : i + batch_size] for i in range(0, len(histories), batch_size)]
    recommender.beam_search(batches[0][:2])  # warm-up of both code paths
    generate_constrained(recommender, batches[0][:2], fn)
    ours_s, theirs_s = [math.inf, math.inf], [math.inf, math.inf]  # best (wall, process CPU) seconds
    for _ in range(repeats):  # alternate the two and keep each one's best times: the machine may be shared
        ours, ours_s = _timed(lambda: [recommender.beam_search(batch) for batch in batches], ours_s)
        theirs, theirs_s = _timed(lambda: [generate_constrained(recommender, batch, fn) for batch in batches], theirs_s)
    items, scores = (np.concatenate(parts) for parts in zip(*ours))
    hf_items, hf_scores = (np.concatenate(parts) for parts in zip(*theirs))
    same = (items == hf_items).all(axis=1)  # (users,)
    mismatched = np.flatnonzero(~same)
    ties = tie_explained(recommender, histories, mismatched, items, hf_items, tie_tolerance)
    return {
        "num_items": recommender.num_items, "positions": recommender.sids.num_positions,
        "beam_size": recommender.config.beam_size, "batch_size": batch_size, "users": len(histories),
        "repeats": repeats, "raysid_s": ours_s[0], "transformers_s": theirs_s[0], "speedup": theirs_s[0] / ours_s[0],
        "raysid_cpu_s": ours_s[1], "transformers_cpu_s": theirs_s[1], "cpu_speedup": theirs_s[1] / ours_s[1],
        "identical_users": int(same.sum()), "mismatched_users": mismatched.tolist(), "tie_explained": ties,
        "max_score_diff": float(np.abs(scores - hf_scores)[same].max()) if same.any() else float("nan"),
    }


def tie_explained(
    recommender: T5Recommender, histories: list[np.ndarray], users: np.ndarray,
    ours: np.ndarray, theirs: np.ndarray, tolerance: float = TIE_TOLERANCE,
) -> list[bool]:
    """Per user in ``users``: is every position's item in ``ours`` within ``tolerance`` of the exact score of
    the item at the same position in ``theirs`` (both (all users, beams))? Then the rankings differ only
    where float rounding decides between near-equal scores."""
    if len(users) == 0:
        return []
    exact = exact_scores(recommender, [histories[u] for u in users])  # (len(users), items)
    explained = []
    for row, user in enumerate(users):
        if (theirs[user] < 0).any():  # a dead beam where the other decoder found an item
            explained.append(False)
            continue
        gaps = np.abs(exact[row, ours[user]] - exact[row, theirs[user]])
        explained.append(bool(gaps.max() <= tolerance))
    return explained


def _timed(call: Callable[[], Any], best: list[float]) -> tuple[Any, list[float]]:
    """``call()`` and the element-wise minimum of ``best`` and its [wall, process CPU] seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = call()
    seconds = [time.perf_counter() - wall, time.process_time() - cpu]
    return value, [min(b, s) for b, s in zip(best, seconds)]


@contextlib.contextmanager
def _threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def decoding_benchmark(
    catalog_sizes: Sequence[int] = (2_000, 20_000),
    batch_sizes: Sequence[int] = (16, 128),
    users: int = 256,
    beam_size: int = 20,
    codebook_size: int = 64,
    levels: int = 3,
    threads: int = 1,
    repeats: int = 3,
    train_playlists: int = 64,
    seed: int = 0,
    preset: str = "spine",
) -> list[dict[str, Any]]:
    """One ``compare_decoders`` row per (catalogue size, batch size) on the first ``users`` test histories, the
    T5 at ``preset``."""
    rows = []
    with _threads(threads):
        for num_tracks in catalog_sizes:
            recommender, histories = benchmark_model(
                num_tracks, beam_size, codebook_size, levels, train_playlists, seed, preset)
            if len(histories) < users:
                raise ValueError(f"the {num_tracks}-track catalog has {len(histories)} test users, fewer than {users}")
            model = {"threads": threads, "preset": preset, "parameters": recommender.num_parameters(),
                     "d_model": recommender.config.d_model, "num_layers": recommender.config.num_layers,
                     "max_history": recommender.config.max_history}
            for batch_size in batch_sizes:
                rows.append({**compare_decoders(recommender, histories[:users], batch_size, repeats), **model})
    return rows


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width table of ``decoding_benchmark`` rows and a line per mismatched user."""
    header = (
        f"{'items':>8}{'ids':>5}{'beam':>6}{'batch':>7}{'users':>7}{'raysid s':>10}{'HF s':>8}{'speedup':>9}"
        f"{'CPU speedup':>13}{'identical':>11}{'max |dscore|':>14}"
    )
    lines = [header, "-" * len(header)]
    notes = []
    for row in rows:
        lines.append(
            f"{row['num_items']:>8,}{row['positions']:>5}{row['beam_size']:>6}{row['batch_size']:>7}{row['users']:>7}"
            f"{row['raysid_s']:>10.2f}{row['transformers_s']:>8.2f}{row['speedup']:>8.1f}x{row['cpu_speedup']:>12.1f}x"
            f"{row['identical_users']:>7}/{row['users']:<3}{row['max_score_diff']:>14.1e}"
        )
        for user, tie in zip(row["mismatched_users"], row["tie_explained"]):
            reason = "float near-tie (same exact scores)" if tie else "REAL MISMATCH (different exact scores)"
            notes.append(f"  {row['num_items']:,} items, batch {row['batch_size']}: user {user} differs: {reason}")
    for row in {(r["preset"], r["num_items"]): r for r in rows if "preset" in r}.values():
        notes.append(f"T5 at preset {row['preset']} on {row['num_items']:,} items: {row['parameters']:,} parameters, "
                     f"d_model {row['d_model']}, {row['num_layers']} + {row['num_layers']} layers, "
                     f"{row['max_history']} history items, {row['threads']} thread(s)")
    notes.append("speedup = transformers / raysid wall time; CPU speedup the same with process CPU time (best of "
                 f"{rows[0]['repeats'] if rows else 0}); identical = users whose whole ranking (items and order) agrees")
    return "\n".join(lines + notes)
