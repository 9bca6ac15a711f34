"""Spatial order: rows sorted along a Z-order (Morton) curve, so that a tile's points are
close together and its bounding box is small enough to skip far centers."""

from __future__ import annotations

import numba
import numpy as np

from dshift._limits import MAX_ABS
from dshift.kernels._config import JIT


@numba.njit(**JIT)
def _morton_codes(X, d, bits, lo, scale):
    # Bit b of feature k's quantized value goes to bit b * d + k of the row's code.
    n = X.shape[0]
    top = float(2**bits - 1)
    codes = np.empty(n, np.uint64)
    for i in range(n):
        code = np.uint64(0)
        for k in range(d):
            q = np.uint64(min(max((np.float64(X[i, k]) - lo[k]) * scale[k], 0.0), top))
            for b in range(bits):
                code |= ((q >> np.uint64(b)) & np.uint64(1)) << np.uint64(b * d + k)
        codes[i] = code
    return codes


@numba.njit(**JIT)
def radix_argsort(codes, n_bits):
    """Stable least-significant-digit radix sort of unsigned codes, 11 bits per pass."""
    n = codes.shape[0]
    order = np.arange(n)
    keys = codes.copy()
    order2 = np.empty(n, np.int64)
    keys2 = np.empty(n, np.uint64)
    shift = 0
    while shift < n_bits:
        count = np.zeros(2049, np.int64)
        for i in range(n):
            count[((keys[i] >> np.uint64(shift)) & np.uint64(2047)) + 1] += 1
        for v in range(2048):
            count[v + 1] += count[v]
        for i in range(n):
            digit = (keys[i] >> np.uint64(shift)) & np.uint64(2047)
            p = count[digit]
            count[digit] = p + 1
            order2[p] = order[i]
            keys2[p] = keys[i]
        order, order2 = order2, order
        keys, keys2 = keys2, keys
        shift += 11
    return order


@numba.njit(**JIT)
def _finite_bounds(X, d):
    """(all in range?, lower corner, upper corner) of the first d columns of X, in one pass
    (in range: every column's ``|x| <= MAX_ABS``, false for NaN and inf)."""
    lo = np.full(d, np.inf)
    hi = np.full(d, -np.inf)
    finite = True
    for i in range(X.shape[0]):
        for k in range(X.shape[1]):
            v = np.float64(X[i, k])
            finite &= abs(v) <= MAX_ABS  # false for NaN and inf too
            if k < d:
                lo[k] = min(lo[k], v)
                hi[k] = max(hi[k], v)
    return finite, lo, hi


@numba.njit(**JIT)
def _take_rows(X, order):
    out = np.empty_like(X)
    for i in range(order.shape[0]):  # value by value: a row assignment compiles numba's
        r = order[i]  # shape-mismatch error message (string formatting: ~1.5 s, first run)
        for k in range(X.shape[1]):
            out[i, k] = X[r, k]
    return out


def _morton(X: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    n, d = X.shape[0], lo.shape[0]
    bits = max(1, min(10, 63 // max(d, 1)))  # 1024 levels per feature: plenty for tiles
    span = hi - lo
    span[~(span > 0)] = 1.0
    codes = _morton_codes(X, d, bits, lo, float(2**bits - 1) / span)
    return radix_argsort(codes, bits * d) if n else np.arange(0)


def morton_order(X: np.ndarray) -> np.ndarray:
    """Row order that follows a Z-order (Morton) curve through the block's bounding box.

    Consecutive rows in this order are close in space, so a tile has a small bounding box
    and the compact kernels can skip it for far centers. Each feature is quantized to
    ``min(10, 63 // n_features)`` bits (at least 1) over the block's range; the interleaved
    codes are sorted by a stable radix sort (compiled).

    Examples
    --------
    >>> X = np.array([[9.0, 9.0], [0.0, 0.0], [9.0, 0.0], [0.0, 9.0]])
    >>> morton_order(X).tolist()
    [1, 2, 3, 0]
    """
    X = np.ascontiguousarray(X)
    _, lo, hi = _finite_bounds(X, X.shape[1])
    return _morton(X, lo, hi)


def spatially_sorted(X: np.ndarray, n_features: int | None = None) -> np.ndarray:
    """The rows of a block in :func:`morton_order` of their first ``n_features`` columns
    (all by default; extra columns, such as weights, move with their row). Blocks with
    NaN, inf or out-of-range values are returned as they are.

    Examples
    --------
    >>> spatially_sorted(np.array([[9.0, 1.0], [0.0, 2.0]]), 1).tolist()
    [[0.0, 2.0], [9.0, 1.0]]
    """
    X = np.ascontiguousarray(X)
    if X.shape[0] == 0:  # nothing to sort: dask's call on an empty block to learn the
        return X  # result's type then compiles nothing on the client
    d = X.shape[1] if n_features is None else n_features
    finite, lo, hi = _finite_bounds(X, d)
    if not finite:
        return X  # the fit raises on the first pass anyway
    return _take_rows(X, _morton(X, lo, hi))
