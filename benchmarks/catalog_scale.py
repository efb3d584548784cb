"""Scale check of the synthetic catalog: 1M tracks, 200k playlists; prints wall time and peak RSS.

Run from the repository root: ``PYTHONPATH=. python benchmarks/catalog_scale.py [num_tracks] [num_playlists]``.
Not a test.
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np

from raysid.data.catalog import CatalogConfig, generate_catalog


def main(num_tracks: int = 1_000_000, num_playlists: int = 200_000) -> None:
    """Generate a large catalog and report time, peak memory and a few sanity statistics."""
    cfg = CatalogConfig(
        num_tracks=num_tracks,
        num_playlists=num_playlists,
        num_genres=20,
        subgenres_per_genre=10,
        num_artists=num_tracks // 10,
    )
    start = time.perf_counter()
    dataset = generate_catalog(cfg)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    entries = sum(len(s) for s in dataset.sequences)
    modality_mib = sum(m.nbytes for m in dataset.modalities.values()) / 2**20
    subgenre = dataset.items["subgenre"].to_numpy()
    flat = np.concatenate(dataset.sequences)
    ends = np.cumsum([len(s) for s in dataset.sequences])
    continues = np.ones(len(flat) - 1, dtype=bool)
    continues[ends[:-1] - 1] = False  # pairs across playlist boundaries
    same_subgenre = (subgenre[flat[:-1]] == subgenre[flat[1:]])[continues].mean()
    print(f"tracks={num_tracks:,} playlists={num_playlists:,} entries={entries:,}")
    print(f"modalities: {', '.join(f'{k} {v.shape}' for k, v in dataset.modalities.items())} = {modality_mib:.0f} MiB")
    print(f"consecutive same sub-genre: {same_subgenre:.3f}")
    print(f"generate_catalog: {seconds:.1f} s, peak RSS {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
