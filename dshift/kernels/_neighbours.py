"""Neighbours: each point's nearest center (labels), and k-th nearest neighbour distances
(the bandwidth estimate and adaptive bandwidths)."""

from __future__ import annotations

import numba
import numpy as np

from dshift._limits import MAX_ABS, X_RANGE
from dshift.kernels._config import JIT, KNN_TILE_ELEMENTS

#: The error for data to label that hold NaN, inf or values out of range.
PREDICT_RANGE_MESSAGE = (
    f"X contains NaN or infinite values or values beyond dshift's range {X_RANGE}; remove or "
    "impute them before predicting."
)


@numba.njit(**JIT)
def _nearest(X, C, h2, cluster_all, labels):
    # h2: squared orphan radius of each center
    n, d = X.shape
    m = C.shape[0]
    nonfinite = 0
    for i in range(n):
        best = np.inf
        best_j = -1
        in_range = True
        for k in range(d):
            in_range &= abs(np.float64(X[i, k])) <= MAX_ABS  # false for NaN and inf too
        for j in range(m if in_range else 0):
            d2 = 0.0
            for k in range(d):
                t = np.float64(X[i, k]) - C[j, k]
                d2 += t * t
            if d2 < best:
                best = d2
                best_j = j
        if best_j < 0:  # only when the row holds NaN, inf or values out of range
            nonfinite += 1
        elif not cluster_all and best > h2[best_j]:
            best_j = -1
        labels[i] = best_j
    return nonfinite


def nearest_labels(
    X: np.ndarray,
    centers: np.ndarray,
    bandwidth: float | np.ndarray = np.inf,
    cluster_all: bool = True,
) -> np.ndarray:
    """Index of the nearest center for each row (first one on ties).

    With ``cluster_all=False``, rows farther than ``bandwidth`` from their nearest center get
    -1 (``bandwidth`` may be one radius per center).

    Raises
    ------
    ValueError
        If a row holds NaN, infinite or out-of-range values (see :mod:`dshift._limits`).

    Examples
    --------
    >>> nearest_labels(np.array([[0.0], [2.9], [9.0]]), np.array([[0.0], [3.0]]), 1.0, False)
    array([ 0,  1, -1], dtype=int32)
    """
    labels = np.empty(X.shape[0], dtype=np.int32)
    C = np.ascontiguousarray(centers, dtype=np.float64)
    h2 = np.ascontiguousarray(
        np.broadcast_to(np.asarray(bandwidth, dtype=np.float64) ** 2, (len(C),))
    )
    if _nearest(np.ascontiguousarray(X), C, h2, bool(cluster_all), labels):
        raise ValueError(PREDICT_RANGE_MESSAGE)
    return labels


@numba.njit(**JIT)
def _sq_distances(A, B, out):
    for i in range(A.shape[0]):
        for j in range(B.shape[0]):
            d2 = 0.0
            for c in range(A.shape[1]):
                t = A[i, c] - B[j, c]
                d2 += t * t
            out[i, j] = d2


def kth_distances(
    X: np.ndarray,
    sample: np.ndarray,
    k: int,
    floor: float = 0.0,
    n_features: int | None = None,
) -> np.ndarray:
    """Distance from each row of X to its k-th nearest row of ``sample`` (at least ``floor``).

    Pass the sample as X for each sampled point's k-th neighbour distance (itself
    included). Computed a tile of rows at a time (at most ``KNN_TILE_ELEMENTS``
    distances), so memory stays bounded whatever the block size; time is O(n m d) for n
    rows and m sampled points. Only X's first ``n_features`` columns are used.

    Examples
    --------
    >>> kth_distances(np.array([[0.0], [10.0]]), np.array([[1.0], [3.0], [4.0]]), 2).tolist()
    [3.0, 7.0]
    >>> S = np.array([[0.0], [1.0], [3.0]])
    >>> kth_distances(S, S, 2).tolist()
    [1.0, 1.0, 2.0]
    """
    S = np.ascontiguousarray(sample, dtype=np.float64)
    n = X.shape[0]
    rows = max(1, KNN_TILE_ELEMENTS // len(S))
    out = np.empty(n, dtype=np.float64)
    tile = np.empty((min(rows, n), len(S)), dtype=np.float64)
    for start in range(0, n, rows):
        A = np.ascontiguousarray(X[start : start + rows, :n_features], dtype=np.float64)
        part = tile[: len(A)]
        _sq_distances(A, S, part)
        out[start : start + len(A)] = np.sqrt(np.partition(part, k - 1, axis=1)[:, k - 1])
    return np.maximum(out, floor)
