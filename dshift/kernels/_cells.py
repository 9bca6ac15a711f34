"""Binning: the occupied cells of a grid over the points, and lookups by cell.

One implementation serves bin seeding (cells ``round(x / bin_size)`` with their point
counts), grid mode and mode labels (cells ``floor(x / cell_size)`` with their points' sums
and weights), and their merges across chunks. A block is binned ``BIN_TILE_ROWS`` rows at a
time, so temporaries are bounded by the tile and the number of occupied cells.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from dshift._limits import MAX_ABS
from dshift.kernels._config import BIN_TILE_ROWS, JIT
from dshift.kernels._neighbours import PREDICT_RANGE_MESSAGE, nearest_labels


class Cells(NamedTuple):
    """Occupied cells of a block and what they hold.

    Attributes
    ----------
    cells : ndarray (n_cells, n_features), float64
        Integer-valued cell coordinates, sorted lexicographically.
    counts : ndarray (n_cells,)
        Points per cell (int64), or their total weight (float64) when weighted or with sums.
    sums : ndarray (n_cells, n_features) or None
        The (weighted) sum of each cell's points, when asked for.
    n_nonfinite : int
        NaN, infinite or out-of-range (``|x| > MAX_ABS``) values met; their rows are skipped.
    """

    cells: np.ndarray
    counts: np.ndarray
    sums: np.ndarray | None
    n_nonfinite: int


#: Keys in range per row up to which :func:`unique_rows` counts the rows' keys in a table
#: (bounded by the rows, like the other temporaries) rather than sorting them.
DENSE_KEYS_PER_ROW = 4
#: Largest tables (bytes) :func:`bin_points` counts a whole block's cells in, in one pass.
TABLE_BYTES = 2**23


@numba.njit(inline="always")
def _out_of_range(X, i):
    """How many values of row i of X are NaN, infinite or beyond ``MAX_ABS``."""
    bad = 0
    for k in range(X.shape[1]):
        bad += not abs(np.float64(X[i, k])) <= MAX_ABS  # true for NaN and inf too
    return bad


@numba.njit(inline="always")
def _cell(v, cell_size, nearest):
    """The cell index of the value v: ``round(v / cell_size)`` or ``floor(v / cell_size)``."""
    return np.rint(v / cell_size) if nearest else np.floor(v / cell_size)


@numba.njit(**JIT)
def _cell_bounds(X, d, cell_size, nearest):
    """The values out of range in X, and the lower and upper corners of the cells of the
    rows whose values are all in range (``inf`` and ``-inf`` if there is none)."""
    lo = np.full(d, np.inf)
    hi = np.full(d, -np.inf)
    bad = 0
    for i in range(X.shape[0]):
        row_bad = _out_of_range(X, i)
        bad += row_bad
        if row_bad:
            continue
        for k in range(d):
            c = _cell(np.float64(X[i, k]), cell_size, nearest)
            lo[k] = min(lo[k], c)
            hi[k] = max(hi[k], c)
    return bad, lo, hi


@numba.njit(**JIT)
def _count_cells(X, d, cell_size, nearest, lo, radix, rows, weights, sums):
    """Add each row of X whose values are all in range to its cell's entries (the key of
    cell c is ``sum((c - lo) * radix)``): 1 to ``rows``; its weight (X's column d, or 1)
    to ``weights`` and its (weighted) point to ``sums``, for tables that have entries."""
    weighted = X.shape[1] > d
    for i in range(X.shape[0]):
        if _out_of_range(X, i):
            continue
        key = 0
        for k in range(d):
            c = _cell(np.float64(X[i, k]), cell_size, nearest)
            key += np.int64(c - lo[k]) * radix[k]
        rows[key] += 1
        w = np.float64(X[i, d]) if weighted else 1.0
        if weights.shape[0]:
            weights[key] += w
        if sums.shape[0]:
            for k in range(d):
                sums[key, k] += np.float64(X[i, k]) * w


def _in_one_table(
    X: np.ndarray, d: int, cell_size: float, nearest: bool, weighted: bool, sums: bool
) -> Cells | None:
    """:func:`bin_points` counted in tables of every cell in the block's range, in two
    passes over X (the range, then the counts); None if those tables would be larger than
    ``TABLE_BYTES``, or than ``DENSE_KEYS_PER_ROW`` entries per row."""
    bad, lo, hi = _cell_bounds(X, d, cell_size, nearest)
    if not np.isfinite(lo).all():  # no row in range
        counts = np.empty(0, dtype=np.float64 if weighted or sums else np.int64)
        return Cells(np.empty((0, d)), counts, np.empty((0, d)) if sums else None, bad)
    span = hi - lo + 1
    size = float(np.prod(span))
    per_key = 8 * (1 + (weighted or sums) + d * sums)
    if size * per_key > TABLE_BYTES or size > DENSE_KEYS_PER_ROW * X.shape[0]:
        return None
    n = int(size)
    radix = np.ones(d, dtype=np.int64)
    radix[:-1] = np.cumprod(span[::-1].astype(np.int64))[::-1][1:]
    rows = np.zeros(n, dtype=np.int64)
    weights = np.zeros(n if weighted or sums else 0)
    in_cells = np.zeros((n if sums else 0, d))
    _count_cells(X, d, cell_size, nearest, lo, radix, rows, weights, in_cells)
    keys = np.flatnonzero(rows)
    cells = ((keys[:, None] // radix) % span.astype(np.int64) + lo).astype(np.float64)
    counts = weights[keys] if weighted or sums else rows[keys]
    return Cells(cells, counts, in_cells[keys] if sums else None, bad)


@numba.njit(**JIT)
def _quantize(X, start, stop, d, cell_size, nearest, points, q, w):
    """Rows ``start:stop`` of X whose values are all in range, packed at the front of the
    buffers: their first d columns as float64 (``points``), their cells (``q``) and, if X
    has one more column, that column (``w``). Returns the values out of range met, the rows
    kept and the kept cells' lower and upper corners."""
    lo = np.full(d, np.inf)
    hi = np.full(d, -np.inf)
    bad = kept = 0
    for i in range(start, stop):
        row_bad = _out_of_range(X, i)
        bad += row_bad
        if row_bad:
            continue
        for k in range(d):
            v = np.float64(X[i, k])
            c = _cell(v, cell_size, nearest)
            points[kept, k] = v
            q[kept, k] = c
            lo[k] = min(lo[k], c)
            hi[k] = max(hi[k], c)
        if X.shape[1] > d:
            w[kept] = X[i, d]
        kept += 1
    return bad, kept, lo, hi


@numba.njit(**JIT)
def _row_keys(q, lo, radix, keys):
    """Each row of q as one int64 in mixed radix from the lower corner ``lo``."""
    for i in range(q.shape[0]):
        key = 0
        for k in range(q.shape[1]):
            key += np.int64(q[i, k] - lo[k]) * radix[k]
        keys[i] = key


def unique_rows(
    q: np.ndarray,
    lo: np.ndarray | None = None,
    hi: np.ndarray | None = None,
    scratch: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(q, axis=0, return_inverse=True)`` for integer-valued float rows, fast.

    Rows are encoded as one int64 key in mixed radix (first column most significant, so the
    order stays lexicographic) when the ranges between the columns' minima ``lo`` and maxima
    ``hi`` (computed if not given) allow; otherwise numpy's row unique. When the keys in
    range are few (at most ``DENSE_KEYS_PER_ROW`` per row) the occupied ones are found by
    counting into a table of all of them, else by sorting.

    Examples
    --------
    >>> cells, inverse = unique_rows(np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0]]))
    >>> cells.tolist(), inverse.tolist()
    ([[0.0, 2.0], [1.0, 0.0]], [1, 0, 1])
    """
    if len(q) == 0:
        return q, np.empty(0, dtype=np.intp)
    if lo is None or hi is None:
        lo, hi = q.min(axis=0), q.max(axis=0)
    span = hi - lo + 1
    # keys fit an int64, and every span is exact (beyond 2**52 the + 1 can be lost)
    if float(np.prod(span)) >= 2.0**62 or (hi - lo).max() >= 2.0**52:
        cells, inverse = np.unique(q, axis=0, return_inverse=True)
        return cells, inverse.ravel()
    radix = np.ones(q.shape[1], dtype=np.int64)
    radix[:-1] = np.cumprod(span[::-1].astype(np.int64))[::-1][1:]
    if scratch is None:
        scratch = np.empty((2, len(q)), dtype=np.int64)
    row_keys = scratch[0, : len(q)]
    _row_keys(q, lo, radix, row_keys)
    size = int(np.prod(span))
    if size <= DENSE_KEYS_PER_ROW * len(q):  # a table of every key in range: no sort
        keys = np.flatnonzero(np.bincount(row_keys, minlength=size))
        lookup = np.empty(size, dtype=np.intp)
        lookup[keys] = np.arange(len(keys))
        inverse = np.take(lookup, row_keys, out=scratch[1, : len(q)])
    else:
        keys, inverse = np.unique(row_keys, return_inverse=True)
    cells = (keys[:, None] // radix) % span.astype(np.int64) + lo
    return cells.astype(np.float64), inverse


def _column_sums(inverse: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per-cell sums of each column of ``values`` (rows assigned by ``inverse``)."""
    columns = [np.bincount(inverse, values[:, k], n) for k in range(values.shape[1])]
    return np.stack(columns, axis=1).reshape(n, values.shape[1])


def bin_points(
    X: np.ndarray,
    cell_size: float,
    weighted: bool = False,
    *,
    nearest: bool = False,
    sums: bool = False,
) -> Cells:
    """The occupied cells of a block, with their counts (and sums).

    When the block's cells span a small enough range (``TABLE_BYTES``), they are counted in
    one table of every cell in it, in two compiled passes over the block. Otherwise the
    block is read ``BIN_TILE_ROWS`` rows at a time into buffers made once per call, so the
    temporaries are bounded by the tile and reused from one tile to the next (a worker of a
    distributed cluster returns freed memory to the system at once, so fresh temporaries
    for every tile would cost their page faults every time).

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features) (+1 column of point weights if ``weighted``)
    cell_size : float
    weighted : bool, default=False
        Count each point's weight (the last column) instead of 1.
    nearest : bool, default=False
        Cells ``round(x / cell_size)`` (bin seeding, as scikit-learn's ``get_bin_seeds``)
        instead of ``floor(x / cell_size)`` (grid mode, mode labels).
    sums : bool, default=False
        Also sum each cell's (weighted) points; the counts are then float64 weights.

    Returns
    -------
    Cells

    Examples
    --------
    >>> X = np.array([[0.1, 0.2], [0.4, 0.3], [2.0, np.nan]])
    >>> b = bin_points(X, 1.0, nearest=True)
    >>> b.cells.tolist(), b.counts.tolist(), b.n_nonfinite
    ([[0.0, 0.0]], [2], 1)
    >>> g = bin_points(np.array([[0.1], [0.3], [1.5]]), 1.0, sums=True)
    >>> g.cells.ravel().tolist(), g.sums.ravel().tolist(), g.counts.tolist()
    ([0.0, 1.0], [0.4, 1.5], [2.0, 1.0])
    """
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    X = np.ascontiguousarray(X)
    d = X.shape[1] - 1 if weighted else X.shape[1]
    whole = _in_one_table(X, d, cell_size, nearest, weighted, sums)
    if whole is not None:
        return whole
    counts = np.empty(0, dtype=np.float64 if weighted or sums else np.int64)
    out = Cells(np.empty((0, d)), counts, np.empty((0, d)) if sums else None, 0)
    rows = min(BIN_TILE_ROWS, X.shape[0])
    points, q, w = np.empty((rows, d)), np.empty((rows, d)), np.ones(rows)
    scratch = np.empty((2, rows), dtype=np.int64)
    for start in range(0, X.shape[0], BIN_TILE_ROWS):
        stop = min(start + BIN_TILE_ROWS, X.shape[0])
        bad, kept, lo, hi = _quantize(X, start, stop, d, cell_size, nearest, points, q, w)
        cells, inverse = unique_rows(q[:kept], lo, hi, scratch)
        n = len(cells)
        weights = w[:kept] if weighted or sums else None
        in_cells = None
        if sums:
            in_cells = _column_sums(inverse, points[:kept] * weights[:, None], n)
        out = merge_cells(out, Cells(cells, np.bincount(inverse, weights, n), in_cells, bad))
    return out


def merge_cells(*parts: Cells) -> Cells:
    """Union of :class:`Cells`, adding the counts (and sums) of shared cells.

    Examples
    --------
    >>> a = Cells(np.array([[0.0], [1.0]]), np.array([2, 1]), None, 0)
    >>> b = Cells(np.array([[1.0], [4.0]]), np.array([5, 1]), None, 3)
    >>> m = merge_cells(a, b)
    >>> m.cells.ravel().tolist(), m.counts.tolist(), m.n_nonfinite
    ([0.0, 1.0, 4.0], [2, 6, 1], 3)
    """
    cells = np.concatenate([p.cells for p in parts])
    counts = np.concatenate([p.counts for p in parts])
    sums = None if parts[0].sums is None else np.concatenate([p.sums for p in parts])
    bad = sum(p.n_nonfinite for p in parts)
    if len(cells) == 0:
        return Cells(cells, counts, sums, bad)
    merged, inverse = np.unique(cells, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    n = len(merged)
    summed = np.bincount(inverse, counts, n).astype(counts.dtype)
    return Cells(merged, summed, None if sums is None else _column_sums(inverse, sums, n), bad)


def _void_rows(a: np.ndarray) -> np.ndarray:
    """Each row of an integer-valued float array as one opaque value (sortable, comparable).

    The keys stay float64 (adding 0.0 turns -0.0 into 0.0, so equal values have equal
    bytes): a cell index beyond 2**63 (``|x| / cell_size`` can reach 1e300 in dshift's
    range) would not survive a cast to int64.
    """
    a = np.ascontiguousarray(a, dtype=np.float64) + 0.0
    return a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).ravel()


def cell_table(cells: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort (cell, label) pairs for :func:`cell_labels`' lookups.

    Parameters
    ----------
    cells : ndarray of shape (n_cells, n_features), integer-valued
    labels : ndarray of shape (n_cells,), int32

    Returns
    -------
    keys : ndarray of shape (n_cells, n_features), float64 (integer-valued), in lookup order
    labels : ndarray of shape (n_cells,), int32, in the same order
    """
    keys = np.ascontiguousarray(cells, dtype=np.float64)
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
    """Label of each row: the label of its cell ``floor(x / cell_size)`` in the table.

    Rows whose cell is not in the table get their nearest center (as
    :func:`~dshift.kernels._neighbours.nearest_labels`). Works a tile of ``BIN_TILE_ROWS``
    rows at a time.

    Examples
    --------
    >>> keys, labels = cell_table(np.array([[0], [1]]), np.array([1, 0]))
    >>> cell_labels(np.array([[0.5], [1.2], [7.0]]), 1.0, keys, labels, np.array([[1.0], [0.0]]))
    array([1, 0, 0], dtype=int32)
    """
    table = _void_rows(keys)
    out = np.empty(X.shape[0], dtype=np.int32)
    for start in range(0, X.shape[0], BIN_TILE_ROWS):
        tile = np.asarray(X[start : start + BIN_TILE_ROWS], dtype=np.float64)
        if not (np.abs(tile) <= MAX_ABS).all():  # false for NaN and inf too
            raise ValueError(PREDICT_RANGE_MESSAGE)
        query = _void_rows(np.floor(tile / cell_size))
        idx = np.minimum(np.searchsorted(table, query), len(table) - 1)
        found = table[idx] == query
        part = out[start : start + len(tile)]
        part[found] = labels[idx[found]]
        if not found.all():
            part[~found] = nearest_labels(tile[~found], centers, bandwidth, cluster_all)
    return out
