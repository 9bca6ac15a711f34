"""The naive dask mean shift dshift is measured against: per chunk, a dense numpy
(rows x seeds) kernel matrix for *all* seeds, every iteration, until every seed has moved
less than tol * bandwidth. No freezing, no merging, no pruning, no fused kernel.

The squared distances use the ``|x|^2 - 2 x.c + |c|^2`` expansion (one matrix product, as
scikit-learn's ``euclidean_distances`` does) rather than a (rows x seeds x features)
broadcast, so the baseline is the fast way to write it in plain numpy, not a strawman. The
arithmetic runs in the dtype of X's chunks (float32 chunks: float32 products and exp,
twice the float64 speed), each chunk's sums are returned in float64.
"""

from __future__ import annotations

import dask
import numpy as np


def _dense_block(X, centers, bandwidth, kernel):
    X = np.asarray(X)
    centers = centers.astype(X.dtype)
    d2 = X @ centers.T
    d2 *= -2.0
    d2 += (X * X).sum(axis=1)[:, None]
    d2 += (centers * centers).sum(axis=1)[None, :]
    np.maximum(d2, 0.0, out=d2)
    if kernel == "flat":
        W = (d2 <= bandwidth**2).astype(X.dtype)
    else:
        d2 *= X.dtype.type(-1.0 / (2 * bandwidth**2))
        W = np.exp(d2, out=d2)
    return (W.T @ X).astype(np.float64), W.sum(axis=0, dtype=np.float64)


def _add(*parts):
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def naive_mean_shift(X, seeds, bandwidth, kernel="gaussian", max_iter=300, tol=1e-3):
    """Return (centers for every seed, number of iterations)."""
    centers = np.asarray(seeds, dtype=np.float64)
    blocks = X.to_delayed().ravel()
    block = dask.delayed(_dense_block, pure=True)
    add = dask.delayed(_add, pure=True)
    it = 0
    for it in range(max_iter + 1):  # noqa: B007 - the last value is returned
        parts = [block(b, centers, bandwidth, kernel) for b in blocks]
        while len(parts) > 1:
            parts = [add(*parts[i : i + 8]) for i in range(0, len(parts), 8)]
        ((sums, weights),) = dask.compute(parts[0])
        ok = weights > 0
        new = centers.copy()
        new[ok] = sums[ok] / weights[ok, None]
        shift = np.sqrt(((new - centers) ** 2).sum(axis=1)).max()
        centers = new
        if shift <= tol * bandwidth:
            break
    return centers, it
