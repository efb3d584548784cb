"""Reconstruction quality (3MToken, Table 2): MSE and cosine similarity of decoded features.

3MToken compares each original modality vector x with its reconstruction x̂ = g(ẑ_q) on the test
items: lower MSE and higher cosine similarity mean the tokens keep more of the features. Both
matrices are (items, dim) with item ids as rows, as ``Tokenizer.decode`` returns them.
"""

from __future__ import annotations

import numpy as np


def reconstruction_metrics(
    original: dict[str, np.ndarray],
    reconstructed: dict[str, np.ndarray],
    items: np.ndarray | None = None,
) -> dict[str, float]:
    """Per-modality and mean MSE / cosine over ``items`` (row indices; all rows if None).

    Keys: ``recon/{modality}/mse`` (mean squared error over all elements), ``recon/{modality}/cosine``
    (mean over items of the row-wise cosine similarity), and their unweighted means over modalities,
    ``recon/mse`` and ``recon/cosine``. A row where the original or the reconstruction has zero norm
    has no defined cosine: it scores 0 and still counts in the mean, so a decoder that outputs zeros
    is penalised rather than ignored. Modalities of ``original`` absent from ``reconstructed`` are
    skipped (a tokenizer may only rebuild a fused embedding); with none in common the result is {}.
    Raises ValueError naming the modality and both shapes unless they are equal and 2-D.
    """
    metrics: dict[str, float] = {}
    mses, cosines = [], []
    for modality in sorted(original.keys() & reconstructed.keys()):
        x, x_hat = np.asarray(original[modality]), np.asarray(reconstructed[modality])
        if x.shape != x_hat.shape or x.ndim != 2:
            raise ValueError(
                f"modality {modality!r}: original shape {x.shape} and reconstructed shape {x_hat.shape} "
                "must be equal and 2-D (items, dim)"
            )
        mse, cosine = _scores(_rows(x, items), _rows(x_hat, items))
        metrics[f"recon/{modality}/mse"], metrics[f"recon/{modality}/cosine"] = mse, cosine
        mses.append(mse)
        cosines.append(cosine)
    if mses:
        metrics["recon/mse"], metrics["recon/cosine"] = float(np.mean(mses)), float(np.mean(cosines))
    return metrics


def reconstruction_metric_names(modalities: tuple[str, ...] = ("*",)) -> set[str]:
    """The keys ``reconstruction_metrics`` returns for ``modalities`` ("*": any modality's name)."""
    return {"recon/mse", "recon/cosine"} | {f"recon/{name}/{m}" for name in modalities for m in ("mse", "cosine")}


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each pair of rows, shape (items,); 0 where either row has zero norm."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)  # (items,)
    dots = np.einsum("ij,ij->i", a, b)
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def _scores(x: np.ndarray, x_hat: np.ndarray) -> tuple[float, float]:
    """(MSE over elements, mean row cosine) of two equal-shape matrices; NaN for both with no rows."""
    if x.shape[0] == 0:
        return float("nan"), float("nan")
    return float(np.mean((x - x_hat) ** 2)), float(np.mean(row_cosine(x, x_hat)))


def _rows(matrix: np.ndarray, items: np.ndarray | None) -> np.ndarray:
    """The selected rows as float64 (so squared errors of float32 features do not lose precision)."""
    rows = matrix if items is None else matrix[np.asarray(items, dtype=np.int64)]
    return rows.astype(np.float64, copy=False)
