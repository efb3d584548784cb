"""Fit and encode throughput of every registered tokenizer on the built-in catalog, and the share of the
CPU's matmul rate that RQ-VAE training reaches.

Run from the repository root: ``PYTHONPATH=. python benchmarks/tokenizer_throughput.py --tracks 100000``.
Not a test. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import os
import time


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=100_000, help="catalog size (playlists = tracks/5)")
    parser.add_argument("--kinds", nargs="*", default=None, help="tokenizer kinds (default: all registered)")
    parser.add_argument("--threads", type=int, default=1, help="torch / BLAS threads")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the neural tokenizers")
    parser.add_argument("--device", default="cpu", help="device of the neural tokenizers")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before NumPy loads BLAS
        os.environ[name] = str(args.threads)
    from raysid.bench.tokenizers import format_share, format_table, matmul_share, tokenizer_throughput

    start = time.perf_counter()
    rows = tokenizer_throughput(args.tracks, args.kinds, args.threads, args.epochs, device=args.device)
    print(f"{args.tracks:,} tracks, {args.threads} thread(s), device {args.device}. fit s is the whole fit call; "
          "fit rate: item-epochs/s = train items x epochs / fit s (neural), pair-epochs/s = pairs_per_epoch x "
          "epochs / fit s (FusID), items/s = train items / fit s (k-means, random, external)")
    print(format_table(rows))
    print()
    print(format_share(matmul_share(args.threads)))
    print(f"\ntotal wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
