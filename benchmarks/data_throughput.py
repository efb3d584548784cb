"""Import and feature-extraction throughput and peak memory on the MPD subset.

    python benchmarks/data_throughput.py [--path ../shared/data/mpd/mpd_subset_5365.jsonl.gz] [--threads 2]

Each phase runs in a fresh process (spawned), so its peak RSS is its own: the process's peak resident set
at the end of the phase, and the same process's RSS after its imports, before the work (the baseline).
Phases: the import itself (stream the gzip JSONL into the canonical dataset); text embeddings of
"track by artist" for a sample of tracks (all-MiniLM-L6-v2 on CPU); one epoch of skip-gram co-occurrence
training on the leave-one-out training sequences of the tracks in at least ``--min-item-count`` playlists.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "mpd" / "mpd_subset_5365.jsonl.gz"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def phase_import(path: str, threads: int) -> dict:
    from raysid.data.importers import import_dataset

    baseline = _current_rss_mib()
    start = time.perf_counter()
    imported = import_dataset("mpd", path, "bench")
    seconds = time.perf_counter() - start
    counts = imported.counts
    return {"phase": "import (mpd, gzip JSONL)", "seconds": seconds, "baseline": baseline, "peak": _rss_mib(),
            "rate": f"{counts['sequences'] / seconds:,.0f} playlists/s, {counts['interactions'] / seconds:,.0f} entries/s",
            "work": f"{counts['sequences']:,} playlists, {counts['items']:,} tracks, {counts['interactions']:,} entries"}


def phase_text(path: str, threads: int, items: int) -> dict:
    import numpy as np
    import torch

    from raysid.data.importers import import_dataset
    from raysid.features.text import TextConfig, embed_texts, item_texts, load_model

    torch.set_num_threads(threads)
    frame = import_dataset("mpd", path, "bench").dataset.items
    rows = np.sort(np.random.default_rng(0).choice(frame.height, min(items, frame.height), replace=False))
    texts = item_texts(frame[rows.tolist()], "{title} by {artist}")
    load_model()
    baseline = _current_rss_mib()
    start = time.perf_counter()
    embed_texts(texts, TextConfig(), progress=False)
    seconds = time.perf_counter() - start
    return {"phase": f"text (MiniLM, {threads} threads)", "seconds": seconds, "baseline": baseline, "peak": _rss_mib(),
            "rate": f"{len(texts) / seconds:,.0f} texts/s", "work": f"{len(texts):,} 'track by artist' texts"}


def phase_cooccurrence(path: str, threads: int, min_item_count: int) -> dict:
    import numpy as np
    import torch

    from raysid.data.importers import import_dataset
    from raysid.data.importers.source import ImportedConfig, build_view
    from raysid.data.splits import leave_one_out
    from raysid.features.cooccurrence import (
        CooccurrenceConfig,
        _keep_probability,
        cooccurrence_embeddings,
        skipgram_pairs,
    )

    torch.set_num_threads(threads)
    view, _ = build_view(import_dataset("mpd", path, "bench").dataset, None,
                         ImportedConfig(name="bench", min_item_count=min_item_count))
    train = leave_one_out(view.sequences).train
    config = CooccurrenceConfig(epochs=1)
    pairs = skipgram_pairs(train, config.window)
    counts = np.bincount(np.concatenate(train), minlength=view.num_items)
    kept = float(_keep_probability(counts, config.subsample)[pairs[:, 0]].sum())  # expected pairs after subsampling
    baseline = _current_rss_mib()
    start = time.perf_counter()
    cooccurrence_embeddings(train, view.num_items, config)
    seconds = time.perf_counter() - start
    return {"phase": f"cooccurrence (SGNS 128-d, 1 epoch, {threads} threads)", "seconds": seconds, "baseline": baseline,
            "peak": _rss_mib(), "rate": f"{kept / seconds:,.0f} pairs/s",
            "work": f"{view.num_items:,} tracks in >= {min_item_count} playlists, {len(pairs):,} pairs (~{kept:,.0f} after subsampling)"}


def _run(target, *args) -> dict:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(target, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default=str(DEFAULT), help="MPD slice/JSONL file or folder")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the feature phases")
    parser.add_argument("--text-items", type=int, default=5000, help="tracks whose text is embedded")
    parser.add_argument("--min-item-count", type=int, default=10, help="co-occurrence: tracks in at least this many playlists")
    args = parser.parse_args()
    results = [
        _run(phase_import, args.path, args.threads),
        _run(phase_text, args.path, args.threads, args.text_items),
        _run(phase_cooccurrence, args.path, args.threads, args.min_item_count),
    ]
    print(f"{'phase':<44} {'seconds':>8} {'peak RSS':>10} {'(baseline)':>11}  throughput; work")
    for r in results:
        print(f"{r['phase']:<44} {r['seconds']:>8.1f} {r['peak']:>7.0f} MiB {r['baseline']:>7.0f} MiB  {r['rate']}; {r['work']}")


if __name__ == "__main__":
    main()
