"""Chunk kernels: pure arithmetic on one block of points, no dask.

Each function takes a numpy block of rows and the (small) broadcast center set and returns
only small results. The inner loops are compiled with numba and allocate nothing per
(point, center) pair, so a task's temporaries do not grow with the chunk size or the number
of centers: a 1e6-row chunk against 1000 centers never builds a 1e6 x 1000 matrix.

Distances are computed as direct sums of squared differences in float64 (not through the
``|x|^2 - 2 x.c + |c|^2`` expansion), so a point exactly at distance ``bandwidth`` is counted
exactly as scikit-learn's tree-based neighbour search counts it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

FLAT, GAUSSIAN, EPANECHNIKOV = 0, 1, 2
KERNELS = {"flat": FLAT, "gaussian": GAUSSIAN, "epanechnikov": EPANECHNIKOV}

#: Rows of a block handled by one binning step: bounds the binning temporaries.
BIN_TILE_ROWS = 65_536


class ChunkStats(NamedTuple):
    """Partial sums of one or more chunks for a set of centers.

    Attributes
    ----------
    sums : ndarray of shape (n_centers, n_features), float64
        Kernel-weighted sum of the points.
    weights : ndarray of shape (n_centers,), float64
        Sum of the kernel weights.
    counts : ndarray of shape (n_centers,), float64
        Number of points within the bandwidth (inclusive): the center's intensity.
    n_nonfinite : int
        Number of NaN or infinite values met in the chunk (their rows are skipped).
    """

    sums: np.ndarray
    weights: np.ndarray
    counts: np.ndarray
    n_nonfinite: int


@numba.njit(nogil=True, cache=True)
def _accumulate(X, C, h2, kernel, sums, weights, counts):  # pragma: no cover - compiled
    n, d = X.shape
    m = C.shape[0]
    nonfinite = 0
    inv_2h2 = 0.5 / h2 if h2 > 0 else 0.0
    inv_h2 = 1.0 / h2 if h2 > 0 else 0.0
    for i in range(n):
        bad = 0
        for k in range(d):
            if not math.isfinite(X[i, k]):
                bad += 1
        if bad:
            nonfinite += bad
            continue
        for j in range(m):
            d2 = 0.0
            for k in range(d):
                t = np.float64(X[i, k]) - C[j, k]
                d2 += t * t
            inside = d2 <= h2
            if kernel == FLAT:
                w = 1.0 if inside else 0.0
            elif kernel == GAUSSIAN:
                w = math.exp(-d2 * inv_2h2)
            else:
                w = 1.0 - d2 * inv_h2 if inside else 0.0
            if inside:
                counts[j] += 1.0
            if w > 0.0:
                weights[j] += w
                for k in range(d):
                    sums[j, k] += w * np.float64(X[i, k])
    return nonfinite


def chunk_stats(X: np.ndarray, centers: np.ndarray, bandwidth: float, kernel: int) -> ChunkStats:
    """Kernel-weighted sums of one block of points for every center.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features), float32 or float64
    centers : ndarray of shape (n_centers, n_features), float64
    bandwidth : float
    kernel : int
        One of ``FLAT``, ``GAUSSIAN``, ``EPANECHNIKOV``.

    Returns
    -------
    ChunkStats

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [3.0]])
    >>> s = chunk_stats(X, np.array([[0.5]]), 1.0, FLAT)
    >>> s.sums, s.weights, s.counts, s.n_nonfinite
    (array([[1.]]), array([2.]), array([2.]), 0)
    """
    m, d = centers.shape
    sums = np.zeros((m, d), dtype=np.float64)
    weights = np.zeros(m, dtype=np.float64)
    counts = np.zeros(m, dtype=np.float64)
    X = np.ascontiguousarray(X)
    C = np.ascontiguousarray(centers, dtype=np.float64)
    nonfinite = _accumulate(X, C, float(bandwidth) ** 2, kernel, sums, weights, counts)
    return ChunkStats(sums, weights, counts, int(nonfinite))


def add_stats(*parts: ChunkStats) -> ChunkStats:
    """Add partial :class:`ChunkStats` (the combine step of the tree reduction)."""
    first = parts[0]
    sums, weights, counts = first.sums.copy(), first.weights.copy(), first.counts.copy()
    nonfinite = first.n_nonfinite
    for p in parts[1:]:
        sums += p.sums
        weights += p.weights
        counts += p.counts
        nonfinite += p.n_nonfinite
    return ChunkStats(sums, weights, counts, nonfinite)


@numba.njit(nogil=True, cache=True)
def _nearest(X, C, h2, cluster_all, labels):  # pragma: no cover - compiled
    n, d = X.shape
    m = C.shape[0]
    nonfinite = 0
    for i in range(n):
        best = np.inf
        best_j = -1
        for j in range(m):
            d2 = 0.0
            for k in range(d):
                t = np.float64(X[i, k]) - C[j, k]
                d2 += t * t
            if d2 < best:
                best = d2
                best_j = j
        if best_j < 0:  # only when the row holds NaN
            nonfinite += 1
        elif not cluster_all and best > h2:
            best_j = -1
        labels[i] = best_j
    return nonfinite


def nearest_labels(
    X: np.ndarray, centers: np.ndarray, bandwidth: float = np.inf, cluster_all: bool = True
) -> np.ndarray:
    """Index of the nearest center for each row (first one on ties).

    With ``cluster_all=False``, rows farther than ``bandwidth`` from every center get -1.

    Raises
    ------
    ValueError
        If a row holds NaN or infinite values.

    Examples
    --------
    >>> import numpy as np
    >>> nearest_labels(np.array([[0.0], [2.9], [9.0]]), np.array([[0.0], [3.0]]), 1.0, False)
    array([ 0,  1, -1], dtype=int32)
    """
    labels = np.empty(X.shape[0], dtype=np.int32)
    C = np.ascontiguousarray(centers, dtype=np.float64)
    bad = _nearest(np.ascontiguousarray(X), C, float(bandwidth) ** 2, bool(cluster_all), labels)
    if bad or not np.isfinite(X).all():
        raise ValueError(
            "X contains NaN or infinite values; remove or impute them before predicting."
        )
    return labels


def bin_cells(X: np.ndarray, bin_size: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Occupied grid cells ``round(x / bin_size)`` of a block and their point counts.

    The block is processed in tiles of ``BIN_TILE_ROWS`` rows, so temporaries are bounded
    by the tile and the number of distinct cells, whatever the block size. Rows holding NaN
    or infinite values are skipped and counted.

    Returns
    -------
    cells : ndarray of shape (n_cells, n_features), float64, sorted lexicographically
    counts : ndarray of shape (n_cells,), int64
    n_nonfinite : int

    Examples
    --------
    >>> import numpy as np
    >>> cells, counts, bad = bin_cells(np.array([[0.1, 0.2], [0.4, 0.3], [2.0, np.nan]]), 1.0)
    >>> cells.tolist(), counts.tolist(), bad
    ([[0.0, 0.0]], [2], 1)
    """
    d = X.shape[1]
    cells = np.empty((0, d), dtype=np.float64)
    counts = np.empty(0, dtype=np.int64)
    nonfinite = 0
    for start in range(0, X.shape[0], BIN_TILE_ROWS):
        tile = np.asarray(X[start : start + BIN_TILE_ROWS], dtype=np.float64)
        finite = np.isfinite(tile)
        nonfinite += int(finite.size - np.count_nonzero(finite))
        tile = tile[finite.all(axis=1)]
        tile_cells, tile_counts = np.unique(
            np.round(tile / bin_size), axis=0, return_counts=True
        )
        cells, counts, _ = merge_cells((cells, counts, 0), (tile_cells, tile_counts, 0))
    return cells, counts, nonfinite


def merge_cells(
    *parts: tuple[np.ndarray, np.ndarray, int],
) -> tuple[np.ndarray, np.ndarray, int]:
    """Union of (cells, counts, n_nonfinite) sets, adding the counts of shared cells.

    >>> import numpy as np
    >>> a = (np.array([[0.0], [1.0]]), np.array([2, 1]), 0)
    >>> b = (np.array([[1.0], [4.0]]), np.array([5, 1]), 3)
    >>> cells, counts, bad = merge_cells(a, b)
    >>> cells.ravel().tolist(), counts.tolist(), bad
    ([0.0, 1.0, 4.0], [2, 6, 1], 3)
    """
    cells = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    nonfinite = sum(p[2] for p in parts)
    if len(cells) == 0:
        return cells, counts, nonfinite
    merged, inverse = np.unique(cells, axis=0, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=counts, minlength=len(merged))
    return merged, summed.astype(np.int64), nonfinite


@numba.njit(nogil=True, cache=True)
def _sq_distances(A, B, out):  # pragma: no cover - compiled
    for i in range(A.shape[0]):
        for j in range(B.shape[0]):
            d2 = 0.0
            for c in range(A.shape[1]):
                t = A[i, c] - B[j, c]
                d2 += t * t
            out[i, j] = d2


#: Elements of the (rows x sample) distance tile in kth_neighbor_distances.
KNN_TILE_ELEMENTS = 2**22


def kth_neighbor_distances(sample: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of ``sample`` to its k-th nearest row, itself included.

    Distances are computed a tile of rows at a time (at most ``KNN_TILE_ELEMENTS`` values),
    so memory stays bounded; time is O(n^2 d) for n rows.

    Examples
    --------
    >>> import numpy as np
    >>> kth_neighbor_distances(np.array([[0.0], [1.0], [3.0]]), 2).tolist()
    [1.0, 1.0, 2.0]
    """
    S = np.ascontiguousarray(sample, dtype=np.float64)
    n = len(S)
    rows = max(1, KNN_TILE_ELEMENTS // n)
    out = np.empty(n, dtype=np.float64)
    tile = np.empty((min(rows, n), n), dtype=np.float64)
    for start in range(0, n, rows):
        part = tile[: min(rows, n - start)]
        _sq_distances(S[start : start + rows], S, part)
        out[start : start + len(part)] = np.sqrt(np.partition(part, k - 1, axis=1)[:, k - 1])
    return out
