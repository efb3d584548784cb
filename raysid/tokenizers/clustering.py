"""The one faiss k-means every tokenizer uses: codebook initialisation, k-means levels, product quantization.

faiss is imported when k-means runs, so the tokenizer configs beside their models parse without it.
"""

from __future__ import annotations

import numpy as np


def kmeans_centroids(points: np.ndarray, k: int, niter: int, seed: int, plus_plus: bool = False) -> np.ndarray:
    """k centroids (k, dim) float32 of points (n, dim) by faiss k-means, single-threaded for determinism.

    ``plus_plus`` seeds with k-means++ instead of faiss's random sample (the k-means tokenizers use it: with
    the random start, 37 of 40 seeds merged two of 6 well-separated clusters). With fewer points than
    centroids (k-means on a first batch may see as few points as codes), the centroids are points drawn
    with replacement plus small seeded noise. ``min_points_per_centroid=1`` only silences faiss's warning.
    """
    import faiss

    points = np.ascontiguousarray(points, dtype=np.float32)
    if len(points) < k:
        rng = np.random.default_rng(seed)
        picked = points[rng.integers(len(points), size=k)]
        scale = 1e-3 * max(float(points.std()), 1e-3)
        return (picked + scale * rng.standard_normal(picked.shape)).astype(np.float32)
    options = {"init_method": faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS} if plus_plus else {}
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        kmeans = faiss.Kmeans(points.shape[1], k, niter=niter, seed=seed, min_points_per_centroid=1, **options)
        kmeans.train(points)
    finally:
        faiss.omp_set_num_threads(threads)
    return kmeans.centroids.reshape(k, -1).astype(np.float32)
