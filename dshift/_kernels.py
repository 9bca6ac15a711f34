"""Chunk kernels: pure arithmetic on one block of points, no dask.

Each function takes a numpy block of rows and the (small) broadcast center set and returns
only small results. The inner loops are compiled with numba and work on tiles of
``TILE_ROWS`` points (transposed, so the loops over points vectorize); a call allocates a few
buffers of at most ``CELL_BLOCK_ROWS`` rows (plus one counter per center-grid cell) and
nothing per (point, center) pair, so a task's temporaries do not grow
with the chunk size or the number of centers: a 1e6-row chunk against 1000 centers never
builds a 1e6 x 1000 matrix. For the compact kernels (flat, Epanechnikov) a tile whose
bounding box lies farther than the bandwidth from a center is skipped for that center, and
with the flat kernel a tile wholly inside a center's ball is added from its count and offset
sum; both are exact and pay off when rows are spatially ordered. Rows in no spatial order
(streamed chunks) are first bucketed by the cells of a grid over the centers.

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
        Kernel-weighted sum of the points' offsets from the center, sum w (x - c). The new
        center is ``c + sums / weights``: offsets keep full precision near the center, and
        a center whose points all sit on it (bandwidth 0, duplicates) stays exactly put.
    weights : ndarray of shape (n_centers,), float64
        Sum of the kernel weights.
    counts : ndarray of shape (n_centers,), float64
        Number of points within the bandwidth (inclusive): the center's intensity.
    n_nonfinite : int
        Number of NaN or infinite values met in the chunk. When it is not 0 the sums are
        meaningless: the caller must raise (dshift does, after the first pass).
    bandwidths : ndarray of shape (n_centers,), float64
        With per-point bandwidths: sum of kernel weight x the point's bandwidth (divided by
        ``weights``, the local bandwidth at the center). Zeros otherwise.
    """

    sums: np.ndarray
    weights: np.ndarray
    counts: np.ndarray
    n_nonfinite: int
    bandwidths: np.ndarray


#: Rows handled together: the tile is transposed so the loops over points vectorize.
TILE_ROWS = 512
#: numba fast-math flags: reassociation lets the loops vectorize; no NaN/inf assumptions,
#: so non-finite values are still detected.
_FASTMATH = {"reassoc", "nsz", "arcp", "contract"}

_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it puts an integer in the low mantissa bits
_MAGIC_BITS = int(np.array([_MAGIC]).view(np.int64)[0])


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _exp_nonpositive(x, scratch):  # pragma: no cover - compiled
    """x[i] <- exp(x[i]) for x[i] <= 0, vectorized (relative error < 1e-13; 0 below -708).

    Cody-Waite reduction exp(x) = 2^k exp(r), |r| <= ln2/2, a degree-11 polynomial in
    Estrin's form (short dependency chains), and 2^k assembled from its exponent bits.
    """
    bits = scratch.view(np.int64)
    for i in range(x.shape[0]):
        v = max(x[i], -708.0)
        k = np.floor(v * _LOG2E + 0.5)  # a float: int<->float casts do not vectorize
        r = (v - k * _LN2_HI) - k * _LN2_LO
        r2 = r * r
        r4 = r2 * r2
        q0 = (1.0 + r) + r2 * (0.5 + r * 0.16666666666666666)
        q1 = (0.041666666666666664 + r * 0.008333333333333333) + r2 * (
            0.001388888888888889 + r * 0.0001984126984126984
        )
        q2 = (2.48015873015873e-05 + r * 2.7557319223985893e-06) + r2 * (
            2.755731922398589e-07 + r * 2.505210838544172e-08
        )
        p = q0 + r4 * (q1 + r4 * q2)
        x[i] = p if x[i] >= -708.0 else 0.0
        scratch[i] = k + _MAGIC
    for i in range(x.shape[0]):
        bits[i] = (bits[i] - _MAGIC_BITS + 1023) << 52
    for i in range(x.shape[0]):
        x[i] = x[i] * scratch[i]


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _bounding_box(T, s, e, lo, hi):  # pragma: no cover - compiled
    """lo, hi <- the bounding box of the points ``T[:, s:e]``; returns their non-finite count."""
    nonfinite = 0
    for k in range(T.shape[0]):
        a = np.inf
        b = -np.inf
        for i in range(s, e):
            v = T[k, i]
            nonfinite += 0 if math.isfinite(v) else 1
            a = min(a, v)
            b = max(b, v)
        lo[k] = a
        hi[k] = b
    return nonfinite


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _accumulate(X, C, h2, kernel, wcol, hcol, sums, weights, counts, hsums):  # pragma: no cover
    n = X.shape[0]
    m, d = C.shape
    adaptive = hcol >= 0
    T = np.empty((d, TILE_ROWS))
    d2 = np.empty(TILE_ROWS)
    w = np.empty(TILE_ROWS)
    pw = np.ones(TILE_ROWS)
    ph = np.ones(TILE_ROWS)  # per-point bandwidth (adaptive)
    ph2 = np.ones(TILE_ROWS)
    pnorm = np.ones(TILE_ROWS)  # per-point weight / h^d (adaptive)
    scratch = np.empty(TILE_ROWS)
    lo = np.empty(d)
    hi = np.empty(d)
    inv_2h2 = 0.5 / h2 if h2 > 0 else 0.0
    inv_h2 = 1.0 / h2 if h2 > 0 else 0.0
    compact = kernel != GAUSSIAN
    log_href = 0.5 * math.log(h2) if h2 > 0 else 0.0  # reference for the adaptive weights
    nonfinite = 0
    for start in range(0, n, TILE_ROWS):
        t = min(TILE_ROWS, n - start)
        for i in range(t):
            for k in range(d):
                T[k, i] = np.float64(X[start + i, k])
        if wcol >= 0:  # point weights ride in a column after the features
            for i in range(t):
                pw[i] = np.float64(X[start + i, wcol])
        tile_h2 = h2
        if adaptive:  # and so do per-point bandwidths
            tile_h2 = 0.0
            for i in range(t):
                hv = np.float64(X[start + i, hcol])
                ph[i] = hv
                ph2[i] = hv * hv
                # w / (h_i / h)^d, in log space so that high dimensions cannot overflow
                pnorm[i] = pw[i] * math.exp(min(700.0, max(-700.0, d * (log_href - math.log(hv)))))
                tile_h2 = max(tile_h2, hv * hv)
        nonfinite += _bounding_box(T, 0, t, lo, hi)
        # A tile is skipped for a center only if its bounding box is farther than the
        # (largest) bandwidth by a margin that covers rounding: exact for compact kernels.
        prune_h2 = tile_h2 * (1.0 + 1e-9) + 1e-300
        for j in range(m):
            if compact:
                gap2 = 0.0
                for k in range(d):
                    g = max(lo[k] - C[j, k], C[j, k] - hi[k], 0.0)
                    gap2 += g * g
                if gap2 > prune_h2:
                    continue
            for i in range(t):
                d2[i] = 0.0
            for k in range(d):
                c = C[j, k]
                for i in range(t):
                    diff = T[k, i] - c
                    d2[i] += diff * diff
            if adaptive:
                inside = 0.0
                for i in range(t):
                    inside += pw[i] if d2[i] <= ph2[i] else 0.0
                total = 0.0
                if kernel == FLAT:
                    for i in range(t):
                        w[i] = pnorm[i] if d2[i] <= ph2[i] else 0.0
                elif kernel == GAUSSIAN:
                    for i in range(t):
                        w[i] = -0.5 * d2[i] / ph2[i]
                    _exp_nonpositive(w[:t], scratch[:t])
                    for i in range(t):
                        w[i] *= pnorm[i]
                else:
                    for i in range(t):
                        w[i] = (1.0 - d2[i] / ph2[i]) * pnorm[i] if d2[i] <= ph2[i] else 0.0
                hacc = 0.0
                for i in range(t):
                    total += w[i]
                    hacc += w[i] * ph[i]
                hsums[j] += hacc
            else:
                inside = 0.0
                for i in range(t):
                    inside += pw[i] if d2[i] <= h2 else 0.0
                if kernel == FLAT:
                    for i in range(t):
                        w[i] = pw[i] if d2[i] <= h2 else 0.0
                    total = inside
                elif kernel == GAUSSIAN:
                    for i in range(t):
                        w[i] = -d2[i] * inv_2h2
                    _exp_nonpositive(w[:t], scratch[:t])
                    total = 0.0
                    for i in range(t):
                        w[i] *= pw[i]
                        total += w[i]
                else:
                    total = 0.0
                    for i in range(t):
                        wi = (1.0 - d2[i] * inv_h2) * pw[i] if d2[i] <= h2 else 0.0
                        w[i] = wi
                        total += wi
            counts[j] += inside
            if total > 0.0:
                weights[j] += total
                for k in range(d):
                    c = C[j, k]
                    acc = 0.0
                    for i in range(t):
                        acc += w[i] * (T[k, i] - c)
                    sums[j, k] += acc
    return nonfinite


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _accumulate_plain(X, C, h2, kernel, sums, weights, counts):  # pragma: no cover - compiled
    # Unweighted, one bandwidth: kept apart from _accumulate, whose per-point weight and
    # bandwidth loads cost a third of the flat kernel's speed (measured 6.6 vs 4.4 G/s).
    n, d = X.shape
    m = C.shape[0]
    T = np.empty((d, TILE_ROWS))
    d2 = np.empty(TILE_ROWS)
    w = np.empty(TILE_ROWS)
    scratch = np.empty(TILE_ROWS)
    pw = np.empty(0)
    lo = np.empty(d)
    hi = np.empty(d)
    # A tile is skipped for a center only if its bounding box is farther than the bandwidth
    # by a margin that covers rounding: exact for the compact kernels.
    prune_h2 = h2 * (1.0 + 1e-9) + 1e-300
    # ... and taken whole if its farthest corner is inside by a margin that covers rounding.
    inner_h2 = h2 * (1.0 - 1e-9)
    rel = np.empty(d)
    compact = kernel != GAUSSIAN
    nonfinite = 0
    for start in range(0, n, TILE_ROWS):
        t = min(TILE_ROWS, n - start)
        for i in range(t):
            for k in range(d):
                T[k, i] = np.float64(X[start + i, k])
        nonfinite += _bounding_box(T, 0, t, lo, hi)
        summed = False
        for j in range(m):
            if compact:
                gap2 = 0.0
                far2 = 0.0
                for k in range(d):
                    c = C[j, k]
                    g = max(lo[k] - c, c - hi[k], 0.0)
                    gap2 += g * g
                    f = max(c - lo[k], hi[k] - c)
                    far2 += f * f
                if gap2 > prune_h2:
                    continue
                if kernel == FLAT and far2 <= inner_h2:
                    # The whole tile lies inside the ball: its count and its sum of
                    # offsets from the box corner give the center's sums in O(d).
                    if not summed:
                        for k in range(d):
                            acc = 0.0
                            for i in range(t):
                                acc += T[k, i] - lo[k]
                            rel[k] = acc
                        summed = True
                    counts[j] += t
                    weights[j] += t
                    for k in range(d):
                        sums[j, k] += rel[k] + t * (lo[k] - C[j, k])
                    continue
            _tile_sums(T, pw, 0, t, C, j, h2, kernel, False, d2, w, scratch, sums, weights, counts)
    return nonfinite


#: Most cells of the center grid used for rows in no spatial order (else the tile path).
MAX_GRID_CELLS = 2**22
#: Most (cell, center) entries of the center grid (it is broadcast to every task).
MAX_GRID_ENTRIES = 2**21


def center_grid(centers: np.ndarray, bandwidth: float):
    """A uniform grid of edge ``bandwidth`` over the centers, and each cell's candidates.

    A cell lists the centers whose distance to the cell's box is at most the bandwidth,
    so a point needs to be compared only with its own cell's list; points outside the grid
    are farther than the bandwidth from every center. Built once per iteration on the
    client, one of the 3^d neighbouring offsets at a time (temporaries O(n_centers x d)).
    Returns None when the grid would be too large (many dimensions or centers, far-flung
    centers): the tile path is used then.

    Returns
    -------
    lo : ndarray (d,), origin; dims : ndarray (d,), cells per axis;
    start : ndarray (n_cells + 1,), CSR offsets; members : ndarray, center indices

    Examples
    --------
    >>> lo, dims, start, members = center_grid(np.array([[0.0], [5.0]]), 1.0)
    >>> dims.tolist(), np.diff(start).tolist()
    ([8], [1, 1, 1, 0, 0, 1, 1, 1])
    """
    C = np.asarray(centers, dtype=np.float64)
    m, d = C.shape
    if bandwidth <= 0 or d > 8 or 3**d * m > MAX_GRID_ENTRIES:
        return None
    lo = C.min(axis=0) - bandwidth
    dims = (np.floor((C.max(axis=0) + bandwidth - lo) / bandwidth) + 1).astype(np.int64)
    n_cells = float(np.prod(dims.astype(np.float64)))
    if n_cells > MAX_GRID_CELLS:
        return None
    strides = np.ones(d, dtype=np.int64)
    strides[:-1] = np.cumprod(dims[::-1])[::-1][1:]
    base = np.floor((C - lo) / bandwidth).astype(np.int64)
    cells, owners = [], []
    limit = bandwidth**2 * (1 + 1e-9) + 1e-300
    for offset in np.ndindex(*([3] * d)):
        idx = base + (np.array(offset) - 1)
        box_lo = lo + idx * bandwidth
        gap = np.maximum(np.maximum(box_lo - C, C - box_lo - bandwidth), 0)
        near = ((gap**2).sum(axis=1) <= limit) & ((idx >= 0) & (idx < dims)).all(axis=1)
        cells.append(idx[near] @ strides)
        owners.append(np.flatnonzero(near))
    cell = np.concatenate(cells)
    owner = np.concatenate(owners)
    order = np.argsort(cell, kind="stable")
    start = np.zeros(int(n_cells) + 1, dtype=np.int64)
    np.cumsum(np.bincount(cell, minlength=int(n_cells)), out=start[1:])
    return lo, dims, start, owner[order].astype(np.int64)


#: Rows of a block bucketed by grid cell at a time: bounds the cell path's temporaries.
CELL_BLOCK_ROWS = 65_536


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _tile_sums(
    T, pw, s, e, C, j, h2, kernel, weighted, d2, w, scratch, sums, weights, counts
):  # pragma: no cover - compiled
    """Add the kernel sums of the points ``T[:, s:e]`` (features x points) for center j.

    ``pw`` holds point weights when ``weighted``; ``d2``, ``w``, ``scratch`` are buffers of
    at least ``e - s`` values. Three dimensions get fused loops (no per-feature passes).
    """
    d = C.shape[1]
    n = e - s
    if d == 3:
        c0, c1, c2 = C[j, 0], C[j, 1], C[j, 2]
        t0, t1, t2 = T[0, s:e], T[1, s:e], T[2, s:e]
        if kernel == FLAT and not weighted:  # the common case: one pass, all in registers
            inside = 0.0
            a0 = a1 = a2 = 0.0
            for i in range(n):
                u0 = t0[i] - c0
                u1 = t1[i] - c1
                u2 = t2[i] - c2
                wi = 1.0 if u0 * u0 + u1 * u1 + u2 * u2 <= h2 else 0.0
                inside += wi
                a0 += wi * u0
                a1 += wi * u1
                a2 += wi * u2
            if inside > 0.0:
                counts[j] += inside
                weights[j] += inside
                sums[j, 0] += a0
                sums[j, 1] += a1
                sums[j, 2] += a2
            return
        for i in range(n):
            u0 = t0[i] - c0
            u1 = t1[i] - c1
            u2 = t2[i] - c2
            d2[i] = u0 * u0 + u1 * u1 + u2 * u2
    else:
        for i in range(n):
            d2[i] = 0.0
        for k in range(d):
            c = C[j, k]
            tk = T[k, s:e]
            for i in range(n):
                diff = tk[i] - c
                d2[i] += diff * diff
    inside = 0.0
    total = 0.0
    if kernel == GAUSSIAN:
        inv_2h2 = 0.5 / h2 if h2 > 0 else 0.0
        if weighted:
            for i in range(n):
                inside += pw[s + i] if d2[i] <= h2 else 0.0
        else:
            for i in range(n):
                inside += 1.0 if d2[i] <= h2 else 0.0
        for i in range(n):
            w[i] = -d2[i] * inv_2h2
        _exp_nonpositive(w[:n], scratch[:n])
        if weighted:
            for i in range(n):
                w[i] *= pw[s + i]
        for i in range(n):
            total += w[i]
    else:
        inv_h2 = 1.0 / h2 if h2 > 0 else 0.0
        epan = kernel != FLAT
        for i in range(n):
            q = d2[i]
            p = pw[s + i] if weighted else 1.0
            inside += p if q <= h2 else 0.0
            wi = ((1.0 - q * inv_h2) * p if epan else p) if q <= h2 else 0.0
            w[i] = wi
            total += wi
    counts[j] += inside
    if total > 0.0:
        weights[j] += total
        if d == 3:
            c0, c1, c2 = C[j, 0], C[j, 1], C[j, 2]
            t0, t1, t2 = T[0, s:e], T[1, s:e], T[2, s:e]
            a0 = a1 = a2 = 0.0
            for i in range(n):
                a0 += w[i] * (t0[i] - c0)
                a1 += w[i] * (t1[i] - c1)
                a2 += w[i] * (t2[i] - c2)
            sums[j, 0] += a0
            sums[j, 1] += a1
            sums[j, 2] += a2
        else:
            for k in range(d):
                c = C[j, k]
                tk = T[k, s:e]
                acc = 0.0
                for i in range(n):
                    acc += w[i] * (tk[i] - c)
                sums[j, k] += acc


@numba.njit(nogil=True, cache=True)
def _accumulate_cells(
    X, C, h2, size, kernel, wcol, lo, dims, start, members, block, sums, weights, counts
):  # pragma: no cover - compiled
    # Rows are bucketed by their center-grid cell, CELL_BLOCK_ROWS at a time (a counting
    # sort into a transposed buffer); each bucket then runs, a tile at a time, against only
    # its cell's centers, with the same bounding-box pruning as the tile path. Spatially
    # unordered rows thus get the vectorized tile kernel on small, dense boxes.
    n = X.shape[0]
    d = C.shape[1]
    weighted = wcol >= 0
    inv = 1.0 / size
    n_cells = start.shape[0] - 1
    b = max(1, min(n, block))
    edge = dims.astype(np.float64)
    fill = np.zeros(n_cells, np.int32)  # per cell: its row count, then its write position
    cell_of = np.empty(b, np.int64)
    touched = np.empty(b, np.int64)
    begin = np.empty(b + 1, np.int64)
    T = np.empty((d, b))
    pw = np.ones(b)
    d2 = np.empty(TILE_ROWS)
    w = np.empty(TILE_ROWS)
    scratch = np.empty(TILE_ROWS)
    box_lo = np.empty(d)
    box_hi = np.empty(d)
    prune_h2 = h2 * (1.0 + 1e-9) + 1e-300
    args = (h2, kernel, weighted, d2, w, scratch, sums, weights, counts)
    nonfinite = 0
    for first in range(0, n, b):
        rows = min(b, n - first)
        n_touched = 0
        for i in range(rows):  # branch-free (in or out is unpredictable): vectorizes
            cell = 0
            inside = True
            for k in range(d):
                v = np.float64(X[first + i, k])
                nonfinite += not math.isfinite(v)
                x = (v - lo[k]) * inv
                inside &= (x >= 0.0) & (x < edge[k])  # NaN is outside too
                cell = cell * dims[k] + np.int64(min(max(x, 0.0), edge[k] - 1.0))
            cell_of[i] = cell if inside else -1
        for i in range(rows):
            cell = cell_of[i]
            if cell >= 0 and start[cell + 1] > start[cell]:
                if fill[cell] == 0:
                    touched[n_touched] = cell
                    n_touched += 1
                fill[cell] += 1
            else:
                cell_of[i] = -1  # outside the grid, or in a cell no center reaches
        pos = 0
        for t in range(n_touched):
            cell = touched[t]
            begin[t] = pos
            pos, fill[cell] = pos + fill[cell], pos
        begin[n_touched] = pos
        for i in range(rows):
            cell = cell_of[i]
            if cell >= 0:
                p = fill[cell]
                fill[cell] = p + 1
                for k in range(d):
                    T[k, p] = np.float64(X[first + i, k])
                if weighted:
                    pw[p] = np.float64(X[first + i, wcol])
        for t in range(n_touched):
            cell = touched[t]
            fill[cell] = 0
            for s in range(begin[t], begin[t + 1], TILE_ROWS):
                e = min(s + TILE_ROWS, begin[t + 1])
                _bounding_box(T, s, e, box_lo, box_hi)  # its NaNs are counted above
                for p in range(start[cell], start[cell + 1]):
                    j = members[p]
                    gap2 = 0.0
                    for k in range(d):
                        g = max(box_lo[k] - C[j, k], C[j, k] - box_hi[k], 0.0)
                        gap2 += g * g
                    if gap2 <= prune_h2:
                        _tile_sums(T, pw, s, e, C, j, *args)
    return nonfinite


def chunk_stats(
    X: np.ndarray,
    centers: np.ndarray,
    bandwidth: float,
    kernel: int,
    weighted: bool = False,
    adaptive: bool = False,
    grid: tuple | None = None,
) -> ChunkStats:
    """Kernel-weighted sums of one block of points for every center.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features) or (n_rows, n_features + 1), float32/float64
        The points; with ``weighted``, a last column of point weights (>= 0).
    centers : ndarray of shape (n_centers, n_features), float64
    bandwidth : float
    kernel : int
        One of ``FLAT``, ``GAUSSIAN``, ``EPANECHNIKOV``.
    weighted : bool, default=False
        A point of weight w counts as w points (in the sums, weights and counts).
    adaptive : bool, default=False
        X's last column holds each point's own bandwidth h_i (after the weight column if
        ``weighted``), used instead of ``bandwidth``: a point's kernel weight is
        ``K(|x - c| / h_i) (bandwidth / h_i)^d`` (``bandwidth`` only scales all weights
        alike, keeping them finite), and it counts in ``counts`` when ``|x - c| <= h_i``.
    grid : tuple, default=None
        :func:`center_grid` of the centers (compact kernels, fixed bandwidth): the rows are
        bucketed by grid cell (``CELL_BLOCK_ROWS`` at a time) and each bucket runs through
        the tile kernel against its cell's centers only. Several times faster on rows in
        no spatial order (streamed data); same result.

    Returns
    -------
    ChunkStats

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [3.0]])
    >>> s = chunk_stats(X, np.array([[0.5]]), 1.0, FLAT)
    >>> s.sums, s.weights, s.counts, s.n_nonfinite
    (array([[0.]]), array([2.]), array([2.]), 0)
    """
    m, d = centers.shape
    sums = np.zeros((m, d), dtype=np.float64)
    weights = np.zeros(m, dtype=np.float64)
    counts = np.zeros(m, dtype=np.float64)
    hsums = np.zeros(m, dtype=np.float64)
    X = np.ascontiguousarray(X)
    C = np.ascontiguousarray(centers, dtype=np.float64)
    h2 = float(bandwidth) ** 2
    wcol = d if weighted else -1
    hcol = d + int(weighted) if adaptive else -1
    if grid is not None and kernel != GAUSSIAN and not adaptive:
        lo, dims, start, members = grid
        args = (kernel, wcol, lo, dims, start, members, CELL_BLOCK_ROWS, sums, weights, counts)
        bad = _accumulate_cells(X, C, h2, float(bandwidth), *args)
    elif not weighted and not adaptive:
        bad = _accumulate_plain(X, C, h2, kernel, sums, weights, counts)
    else:
        bad = _accumulate(X, C, h2, kernel, wcol, hcol, sums, weights, counts, hsums)
    return ChunkStats(sums, weights, counts, int(bad), hsums)


def add_stats(*parts: ChunkStats) -> ChunkStats:
    """Add partial :class:`ChunkStats` (the combine step of the tree reduction)."""
    first = parts[0]
    sums, weights, counts = first.sums.copy(), first.weights.copy(), first.counts.copy()
    hsums = first.bandwidths.copy()
    nonfinite = first.n_nonfinite
    for p in parts[1:]:
        sums += p.sums
        weights += p.weights
        counts += p.counts
        hsums += p.bandwidths
        nonfinite += p.n_nonfinite
    return ChunkStats(sums, weights, counts, nonfinite, hsums)


@numba.njit(nogil=True, cache=True)
def _nearest(X, C, h2, cluster_all, labels):  # pragma: no cover - compiled
    # h2: squared orphan radius of each center
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
        If a row holds NaN or infinite values.

    Examples
    --------
    >>> import numpy as np
    >>> nearest_labels(np.array([[0.0], [2.9], [9.0]]), np.array([[0.0], [3.0]]), 1.0, False)
    array([ 0,  1, -1], dtype=int32)
    """
    labels = np.empty(X.shape[0], dtype=np.int32)
    C = np.ascontiguousarray(centers, dtype=np.float64)
    h2 = np.ascontiguousarray(
        np.broadcast_to(np.asarray(bandwidth, dtype=np.float64) ** 2, (len(C),))
    )
    bad = _nearest(np.ascontiguousarray(X), C, h2, bool(cluster_all), labels)
    if bad or not np.isfinite(X).all():
        raise ValueError(
            "X contains NaN or infinite values; remove or impute them before predicting."
        )
    return labels


def bin_cells(
    X: np.ndarray, bin_size: float, weighted: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """Occupied grid cells ``round(x / bin_size)`` of a block and their point counts.

    With ``weighted``, the last column of X holds point weights and a cell's count is the
    sum of its points' weights (float64).

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
    d = X.shape[1] - 1 if weighted else X.shape[1]
    cells = np.empty((0, d), dtype=np.float64)
    counts = np.empty(0, dtype=np.float64 if weighted else np.int64)
    nonfinite = 0
    for start in range(0, X.shape[0], BIN_TILE_ROWS):
        tile = np.asarray(X[start : start + BIN_TILE_ROWS], dtype=np.float64)
        finite = np.isfinite(tile)
        nonfinite += int(finite.size - np.count_nonzero(finite))
        tile = tile[finite.all(axis=1)]
        q = np.round(tile[:, :d] / bin_size)
        if weighted:
            tile_cells, inverse = np.unique(q, axis=0, return_inverse=True)
            tile_counts = np.bincount(inverse.ravel(), tile[:, d], minlength=len(tile_cells))
        else:
            tile_cells, tile_counts = _unique_rows(q)
        cells, counts, _ = merge_cells((cells, counts, 0), (tile_cells, tile_counts, 0))
    return cells, counts, nonfinite


def _unique_rows(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(q, axis=0, return_counts=True)`` for integer-valued float rows, fast.

    Rows are encoded as one int64 key in mixed radix (first column most significant, so the
    order stays lexicographic) when the tile's ranges allow; otherwise numpy's row unique.
    """
    if len(q) == 0:
        return q, np.empty(0, dtype=np.int64)
    lo = q.min(axis=0)
    span = q.max(axis=0) - lo + 1
    if float(np.prod(span)) >= 2.0**62:
        return np.unique(q, axis=0, return_counts=True)
    radix = np.ones(q.shape[1], dtype=np.int64)
    radix[:-1] = np.cumprod(span[::-1].astype(np.int64))[::-1][1:]
    keys, counts = np.unique((q - lo).astype(np.int64) @ radix, return_counts=True)
    cells = (keys[:, None] // radix) % span.astype(np.int64) + lo
    return cells.astype(np.float64), counts


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
    return merged, summed.astype(counts.dtype), nonfinite


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


def morton_order(X: np.ndarray) -> np.ndarray:
    """Row order that follows a Z-order (Morton) curve through the block's bounding box.

    Consecutive rows in this order are close in space, so a tile of ``TILE_ROWS`` rows
    has a small bounding box and the compact kernels can skip it for far centers. Each
    feature is quantized to ``min(10, 63 // n_features)`` bits (at least 1) over the block's range.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[9.0, 9.0], [0.0, 0.0], [9.0, 0.0], [0.0, 9.0]])
    >>> morton_order(X).tolist()
    [1, 2, 3, 0]
    """
    n, d = X.shape
    bits = max(1, min(10, 63 // d))  # 1024 levels per feature: plenty for 512-row tiles
    lo = X.min(axis=0)
    span = X.max(axis=0) - lo
    span[~(span > 0)] = 1.0
    levels = float(2**bits - 1)
    q = ((X - lo) / span * levels).astype(np.uint64)
    code = np.zeros(n, dtype=np.uint64)
    for b in range(bits):
        for k in range(d):
            code |= ((q[:, k] >> np.uint64(b)) & np.uint64(1)) << np.uint64(b * d + k)
    return np.argsort(code, kind="stable")


def spatially_sorted(X: np.ndarray, n_features: int | None = None) -> np.ndarray:
    """The rows of a block in :func:`morton_order` of their first ``n_features`` columns
    (all by default; extra columns, such as weights, move with their row). Blocks with
    NaN/inf are returned as they are."""
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        return X  # the fit raises on the first pass anyway
    return np.ascontiguousarray(X[morton_order(X[:, :n_features])])


def grid_cells(
    X: np.ndarray, cell_size: float, weighted: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Occupied cells ``floor(x / cell_size)`` of a block, with their points' sums and weights.

    With ``weighted``, the last column of X holds point weights. The block is processed in
    tiles of ``BIN_TILE_ROWS`` rows, so temporaries are bounded by the tile and the number
    of occupied cells. Rows holding NaN/inf are skipped and counted.

    Returns
    -------
    cells : ndarray of shape (n_cells, n_features), float64 (integer-valued), sorted
    sums : ndarray of shape (n_cells, n_features), float64
        Weighted sum of the points in each cell.
    weights : ndarray of shape (n_cells,), float64
        Sum of the points' weights (their number when unweighted).
    n_nonfinite : int

    Examples
    --------
    >>> import numpy as np
    >>> cells, sums, w, bad = grid_cells(np.array([[0.1], [0.3], [1.5]]), 1.0)
    >>> cells.ravel().tolist(), sums.ravel().tolist(), w.tolist(), bad
    ([0.0, 1.0], [0.4, 1.5], [2.0, 1.0], 0)
    """
    d = X.shape[1] - 1 if weighted else X.shape[1]
    out = (np.empty((0, d)), np.empty((0, d)), np.empty(0), 0)
    for start in range(0, X.shape[0], BIN_TILE_ROWS):
        tile = np.asarray(X[start : start + BIN_TILE_ROWS], dtype=np.float64)
        finite = np.isfinite(tile)
        bad = int(finite.size - np.count_nonzero(finite))
        tile = tile[finite.all(axis=1)]
        points = tile[:, :d]
        w = tile[:, d] if weighted else np.ones(len(tile))
        cells, inverse = _unique_rows_inverse(np.floor(points / cell_size))
        sums = np.stack(
            [np.bincount(inverse, points[:, k] * w, len(cells)) for k in range(d)], axis=1
        ).reshape(len(cells), d)
        part = (cells, sums, np.bincount(inverse, w, len(cells)), bad)
        out = merge_grid_cells(out, part)
    return out


def _unique_rows_inverse(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(q, axis=0, return_inverse=True)`` for integer-valued float rows, fast
    (one int64 key per row in mixed radix when the ranges allow, as in ``_unique_rows``)."""
    if len(q) == 0:
        return q, np.empty(0, dtype=np.intp)
    lo = q.min(axis=0)
    span = q.max(axis=0) - lo + 1
    if float(np.prod(span)) >= 2.0**62:
        cells, inverse = np.unique(q, axis=0, return_inverse=True)
        return cells, inverse.ravel()
    radix = np.ones(q.shape[1], dtype=np.int64)
    radix[:-1] = np.cumprod(span[::-1].astype(np.int64))[::-1][1:]
    keys, inverse = np.unique((q - lo).astype(np.int64) @ radix, return_inverse=True)
    cells = (keys[:, None] // radix) % span.astype(np.int64) + lo
    return cells.astype(np.float64), inverse


def merge_grid_cells(
    *parts: tuple[np.ndarray, np.ndarray, np.ndarray, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Union of :func:`grid_cells` results, adding the sums and weights of shared cells."""
    cells = np.concatenate([p[0] for p in parts])
    sums = np.concatenate([p[1] for p in parts])
    weights = np.concatenate([p[2] for p in parts])
    bad = sum(p[3] for p in parts)
    if len(cells) == 0:
        return cells, sums, weights, bad
    merged, inverse = np.unique(cells, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    d = cells.shape[1]
    summed = np.stack(
        [np.bincount(inverse, sums[:, k], len(merged)) for k in range(d)], axis=1
    ).reshape(len(merged), d)
    return merged, summed, np.bincount(inverse, weights, len(merged)), bad


def _void_rows(a: np.ndarray) -> np.ndarray:
    """Each row of a C-contiguous int64 array as one opaque value (sortable, comparable)."""
    a = np.ascontiguousarray(a, dtype=np.int64)
    return a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).ravel()


def cell_table(cells: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort (cell, label) pairs for :func:`cell_labels`' lookups.

    Parameters
    ----------
    cells : ndarray of shape (n_cells, n_features), integer-valued
    labels : ndarray of shape (n_cells,), int32

    Returns
    -------
    keys : ndarray of shape (n_cells, n_features), int64, in lookup order
    labels : ndarray of shape (n_cells,), int32, in the same order
    """
    keys = np.ascontiguousarray(cells, dtype=np.int64)
    order = np.argsort(_void_rows(keys), kind="stable")
    return keys[order], np.asarray(labels, dtype=np.int32)[order]


def cell_labels(
    X: np.ndarray,
    cell_size: float,
    keys: np.ndarray,
    labels: np.ndarray,
    centers: np.ndarray,
    bandwidth: float = np.inf,
    cluster_all: bool = True,
) -> np.ndarray:
    """Label of each row: the label of its grid cell ``floor(x / cell_size)`` in the table.

    Rows whose cell is not in the table get their nearest center (as
    :func:`nearest_labels`). Works a tile of ``BIN_TILE_ROWS`` rows at a time.

    Examples
    --------
    >>> import numpy as np
    >>> keys, labels = cell_table(np.array([[0], [1]]), np.array([1, 0]))
    >>> cell_labels(np.array([[0.5], [1.2], [7.0]]), 1.0, keys, labels, np.array([[1.0], [0.0]]))
    array([1, 0, 0], dtype=int32)
    """
    table = _void_rows(keys)
    out = np.empty(X.shape[0], dtype=np.int32)
    for start in range(0, X.shape[0], BIN_TILE_ROWS):
        tile = np.asarray(X[start : start + BIN_TILE_ROWS], dtype=np.float64)
        if not np.isfinite(tile).all():
            raise ValueError(
                "X contains NaN or infinite values; remove or impute them before predicting."
            )
        query = _void_rows(np.floor(tile / cell_size).astype(np.int64))
        idx = np.minimum(np.searchsorted(table, query), len(table) - 1)
        found = table[idx] == query
        part = out[start : start + len(tile)]
        part[found] = labels[idx[found]]
        if not found.all():
            part[~found] = nearest_labels(tile[~found], centers, bandwidth, cluster_all)
    return out


def kth_distances_to(
    X: np.ndarray, sample: np.ndarray, k: int, floor: float = 0.0, n_features: int | None = None
) -> np.ndarray:
    """Distance from each row of X to its k-th nearest row of ``sample`` (at least ``floor``).

    Computed a tile of rows at a time (at most ``KNN_TILE_ELEMENTS`` distances), so memory
    stays bounded whatever the block size. Only X's first ``n_features`` columns are used.

    Examples
    --------
    >>> import numpy as np
    >>> kth_distances_to(np.array([[0.0], [10.0]]), np.array([[1.0], [3.0], [4.0]]), 2).tolist()
    [3.0, 7.0]
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
