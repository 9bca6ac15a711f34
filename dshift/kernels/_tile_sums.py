"""The sums of one tile of points for one center, and the tile's own bookkeeping.

A tile is a few hundred points transposed into a (features x points) array ``T``, so that
the loops over points vectorize. A tile's routines take ``T`` with the range ``s:e`` of its
points, their weights ``pw`` (``None`` for unweighted points: numba compiles a separate,
weight-free variant, and the ``pw is None`` branches vanish from it; they only vanish for an
argument, so ``pw`` is passed on as one, never inside a record), the :class:`Centers`, and a
work buffer laid out as :mod:`dshift.kernels._config` names it.

Distances are direct sums of squared differences in float64 (not the ``|x|^2 - 2 x.c +
|c|^2`` expansion), so a point exactly at distance ``bandwidth`` is counted exactly as
scikit-learn's tree-based neighbour search counts it.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from dshift._limits import MAX_ABS
from dshift.kernels._config import D2, FASTMATH, FLAT, GAUSSIAN, JIT, SCRATCH, WEIGHT
from dshift.kernels._exp import exp_nonpositive


class Sums(NamedTuple):
    """The accumulators a tile's routines add to, one row per center.

    Attributes
    ----------
    sums : ndarray (n_centers, n_features), float64
        Kernel-weighted sum of the points' offsets from the center.
    weights : ndarray (n_centers,), float64
        Sum of the kernel weights.
    counts : ndarray (n_centers,), float64
        (Weighted) number of points within the bandwidth.
    """

    sums: np.ndarray
    weights: np.ndarray
    counts: np.ndarray


class Centers(NamedTuple):
    """The centers a block's sums are for, how they weigh points, and the sums they add to.

    The routines unpack it once, at their top: an array taken from a tuple inside a loop
    over centers or points costs a reference count update each time.

    Attributes
    ----------
    C : ndarray (n_centers, n_features), float64
    h2 : float
        The squared bandwidth.
    kernel : int
        ``FLAT``, ``GAUSSIAN`` or ``EPANECHNIKOV``.
    out : Sums
        The accumulators, one row per center.
    """

    C: np.ndarray
    h2: float
    kernel: int
    out: Sums


@numba.njit(**JIT, fastmath=FASTMATH)
def transpose(X, first, rows, R):
    """R[:, :rows] <- the first R.shape[0] columns of X[first:first + rows], as float64."""
    d = R.shape[0]
    if d == 3:  # unrolled: three times faster than the loop over features
        for i in range(rows):
            R[0, i] = np.float64(X[first + i, 0])
            R[1, i] = np.float64(X[first + i, 1])
            R[2, i] = np.float64(X[first + i, 2])
    else:
        for i in range(rows):
            for k in range(d):
                R[k, i] = np.float64(X[first + i, k])


@numba.njit(**JIT, fastmath=FASTMATH)
def count_nonfinite(T, n):
    """Number of NaN, infinite or out-of-range (``|x| > MAX_ABS``) values in ``T[:, :n]``:
    one vectorized comparison per value (false for NaN and inf too), counted in a float."""
    count = 0.0
    for k in range(T.shape[0]):
        row = T[k, :n]
        for i in range(n):
            count += 0.0 if abs(row[i]) <= MAX_ABS else 1.0
    return int(count)


@numba.njit(**JIT, fastmath=FASTMATH)
def bounding_box(T, s, e, lo, hi):
    """lo, hi <- the bounding box of the points ``T[:, s:e]``; returns their count of NaN,
    infinite or out-of-range values (see :func:`count_nonfinite`)."""
    nonfinite = 0
    for k in range(T.shape[0]):
        a = np.inf
        b = -np.inf
        for i in range(s, e):
            v = T[k, i]
            nonfinite += 0 if abs(v) <= MAX_ABS else 1
            a = min(a, v)
            b = max(b, v)
        lo[k] = a
        hi[k] = b
    return nonfinite


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def box_reach(lo, hi, P, r):
    """Squared distances from the point P[r] to the nearest and farthest corner of a box."""
    gap2 = 0.0
    far2 = 0.0
    for k in range(lo.shape[0]):
        c = P[r, k]
        a = max(lo[k] - c, c - hi[k], 0.0)
        gap2 += a * a
        f = max(c - lo[k], hi[k] - c)
        far2 += f * f
    return gap2, far2


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def flat3(T, s, e, c0, c1, c2, h2):
    """Flat kernel, 3-d, unweighted: (count, (offset sums)) of T[:, s:e] for one center."""
    t0, t1, t2 = T[0, s:e], T[1, s:e], T[2, s:e]
    inside = 0.0
    a0 = a1 = a2 = 0.0
    for i in range(e - s):
        u0 = t0[i] - c0
        u1 = t1[i] - c1
        u2 = t2[i] - c2
        wi = 1.0 if u0 * u0 + u1 * u1 + u2 * u2 <= h2 else 0.0
        inside += wi
        a0 += wi * u0
        a1 += wi * u1
        a2 += wi * u2
    return inside, (a0, a1, a2)


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def add3(sums, weights, counts, j, count, weight, offsets):
    """Add a count, a weight and 3-d offset sums (a tuple) to center j's sums."""
    a0, a1, a2 = offsets
    counts[j] += count
    weights[j] += weight
    sums[j, 0] += a0
    sums[j, 1] += a1
    sums[j, 2] += a2


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _squared_distances(T, s, e, C, j, d2):
    """d2[:e - s] <- squared distances of the points T[:, s:e] to the center C[j]."""
    d = C.shape[1]
    n = e - s
    if d == 3:
        c0, c1, c2 = C[j, 0], C[j, 1], C[j, 2]
        t0, t1, t2 = T[0, s:e], T[1, s:e], T[2, s:e]
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


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _gaussian_weights(d2, pw, s, n, h2, count, w, scratch):
    """w[:n] <- Gaussian weights from the squared distances; returns (count, total)."""
    inside = 0.0
    total = 0.0
    inv_2h2 = 0.5 / h2 if h2 > 0 else 0.0
    if count >= 0:
        if pw is not None:
            for i in range(n):
                inside += pw[s + i] if d2[i] <= h2 or count == 1 else 0.0
        elif count == 1:
            inside = float(n)
        else:
            for i in range(n):
                inside += 1.0 if d2[i] <= h2 else 0.0
    for i in range(n):
        w[i] = -d2[i] * inv_2h2
    exp_nonpositive(w[:n], scratch[:n])
    if pw is not None:
        for i in range(n):
            w[i] *= pw[s + i]
    for i in range(n):
        total += w[i]
    return inside, total


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _compact_weights(d2, pw, s, n, h2, kernel, w):
    """w[:n] <- flat or Epanechnikov weights from the squared distances; (count, total)."""
    inside = 0.0
    total = 0.0
    inv_h2 = 1.0 / h2 if h2 > 0 else 0.0
    epan = kernel != FLAT
    for i in range(n):
        q = d2[i]
        p = 1.0 if pw is None else pw[s + i]
        inside += p if q <= h2 else 0.0
        wi = ((1.0 - q * inv_h2) * p if epan else p) if q <= h2 else 0.0
        w[i] = wi
        total += wi
    return inside, total


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _add_offsets(T, s, e, C, j, w, sums):
    """sums[j] += the w-weighted offsets of the points T[:, s:e] from the center C[j]."""
    d = C.shape[1]
    n = e - s
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


@numba.njit(**JIT, fastmath=FASTMATH)
def tile_sums(T, pw, s, e, centers, j, work, count):
    """Add the kernel sums of the points ``T[:, s:e]`` (features x points) for center j of
    the :class:`Centers`.

    ``pw`` holds point weights, or is None; ``work`` has at least 3 rows of ``e - s``
    values. Three dimensions get fused loops (no per-feature passes). Gaussian kernel:
    ``count`` 0 counts the points within the bandwidth one by one, 1 says all of them are,
    -1 none (known from the tile's box).
    """
    C, h2, kernel, out = centers
    sums, weights, counts = out
    d2, w, scratch = work[D2], work[WEIGHT], work[SCRATCH]
    n = e - s
    if C.shape[1] == 3 and kernel == FLAT and pw is None:  # one pass, all in registers
        inside, offsets = flat3(T, s, e, C[j, 0], C[j, 1], C[j, 2], h2)
        if inside > 0.0:
            add3(sums, weights, counts, j, inside, inside, offsets)
        return
    _squared_distances(T, s, e, C, j, d2)
    if kernel == GAUSSIAN:
        inside, total = _gaussian_weights(d2, pw, s, n, h2, count, w, scratch)
    else:
        inside, total = _compact_weights(d2, pw, s, n, h2, kernel, w)
    counts[j] += inside
    if total > 0.0:
        weights[j] += total
        _add_offsets(T, s, e, C, j, w, sums)
