"""Neighbours: each point's nearest center (labels), and k-th nearest neighbour distances
(the bandwidth estimate and adaptive bandwidths)."""

from __future__ import annotations

import numba
import numpy as np

from dshift._limits import MAX_ABS, X_RANGE
from dshift.kernels._config import JIT, KNN_TILE_ELEMENTS, LABEL_TILE_ROWS

#: The error for data to label that hold NaN, inf or values out of range.
PREDICT_RANGE_MESSAGE = (
    f"X contains NaN or infinite values or values beyond dshift's range {X_RANGE}; remove or "
    "impute them before predicting."
)


@numba.njit(**JIT)
def _nearest(X, C, h2, cluster_all, labels):
    """labels[i] <- the nearest center of row i, -1 past its orphan radius (``h2``: each
    center's, squared) or for a row holding NaN, inf or out-of-range values; returns the
    number of those rows. Rows are taken ``LABEL_TILE_ROWS`` at a time, transposed, so
    that the loops over a tile's rows vectorize (distances are summed feature by feature,
    in order, as row by row)."""
    n, d = X.shape
    m = C.shape[0]
    b = max(1, min(n, LABEL_TILE_ROWS))
    T = np.empty((d, b))
    d2 = np.empty(b)
    best = np.empty(b)
    lab = np.empty(b, np.int32)
    bad = np.empty(b)  # per row: its values out of range
    nonfinite = 0
    for s in range(0, n, b):
        r = min(b, n - s)
        for i in range(r):
            best[i] = np.inf
            lab[i] = -1
        for i in range(r):
            flag = 0.0
            for k in range(d):
                v = np.float64(X[s + i, k])
                ok = abs(v) <= MAX_ABS  # false for NaN too
                T[k, i] = v if ok else 0.0  # the row is labelled -1: no overflow from it
                flag += 0.0 if ok else 1.0
            bad[i] = flag
        for j in range(m):
            for i in range(r):
                d2[i] = 0.0
            for k in range(d):
                c = C[j, k]
                tk = T[k]
                for i in range(r):
                    t = tk[i] - c
                    d2[i] += t * t
            for i in range(r):
                closer = d2[i] < best[i]
                best[i] = d2[i] if closer else best[i]
                lab[i] = j if closer else lab[i]
        for i in range(r):
            j = lab[i]
            if bad[i] > 0.0:
                nonfinite += 1
                j = -1
            elif j >= 0 and not cluster_all and best[i] > h2[j]:
                j = -1
            labels[s + i] = j
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
