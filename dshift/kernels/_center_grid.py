"""The center grid: points in no spatial order meet only the centers of their own cell.

A uniform grid of edge ``bandwidth`` over the centers lists, for each cell, the centers
within the bandwidth of the cell's box. The rows of a block are bucketed by cell
(``CELL_BLOCK_ROWS`` at a time, a counting sort into a transposed buffer), and each bucket
runs, a tile at a time, through :func:`~dshift.kernels._tiles.points_sums` against its
cell's centers only, with the same bounding-box pruning as spatially ordered tiles. Streamed
chunks thus get the vectorized tile kernel on small, dense boxes.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from dshift._limits import MAX_ABS
from dshift.kernels._config import FASTMATH, INNER, JIT, TILE_ROWS, work_buffer
from dshift.kernels._tile_sums import bounding_box, transpose
from dshift.kernels._tiles import Tile, points_sums

#: Most cells of the center grid (else the tile path is used).
MAX_GRID_CELLS = 2**22
#: Most (cell, center) entries of the center grid (it is broadcast to every task).
MAX_GRID_ENTRIES = 2**21


class CenterGrid(NamedTuple):
    """A uniform grid of edge ``size`` over the centers (see :func:`center_grid`).

    Attributes
    ----------
    lo : ndarray (d,), the grid's origin
    dims : ndarray (d,), cells per axis
    start : ndarray (n_cells + 1,), each cell's first entry in ``members`` (CSR offsets)
    members : ndarray, the center indices of each cell, group by group
    size : float, the cells' edge (the bandwidth)
    """

    lo: np.ndarray
    dims: np.ndarray
    start: np.ndarray
    members: np.ndarray
    size: float


def center_grid(centers: np.ndarray, bandwidth: float, group_of: np.ndarray) -> CenterGrid | None:
    """A uniform grid of edge ``bandwidth`` over the centers, and each cell's candidates.

    A cell lists the centers whose distance to the cell's box is at most the bandwidth,
    ordered by their group (``group_of``, see
    :func:`~dshift.kernels._groups.center_groups`) then index, so a point needs to be
    compared only with its own cell's list; points outside the grid are farther than the
    bandwidth from every center. Built once per iteration on the client, one of the 3^d
    neighbouring offsets at a time (temporaries O(n_centers x d)). Returns None when the
    grid would be too large (many dimensions or centers, far-flung centers).

    Examples
    --------
    >>> grid = center_grid(np.array([[0.0], [5.0]]), 1.0, np.array([-1, -1]))
    >>> grid.dims.tolist(), np.diff(grid.start).tolist()
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
    # a cell lists its centers group by group (the kernels take a group's centers together)
    order = np.lexsort((owner, group_of[owner], cell))
    start = np.zeros(int(n_cells) + 1, dtype=np.int64)
    np.cumsum(np.bincount(cell, minlength=int(n_cells)), out=start[1:])
    return CenterGrid(lo, dims, start, owner[order].astype(np.int64), float(bandwidth))


@numba.njit(**INNER, fastmath=FASTMATH)
def _cell_of_rows(R, rows, lo, inv, edge, cellf, cell_of):
    """cell_of[i] <- the center-grid cell of the point R[:, i], -1 outside (NaN too).

    Computed feature by feature in floating point (exact below 2^53 cells), so that every
    loop vectorizes; returns the number of NaN, infinite or out-of-range values.
    """
    nonfinite = 0
    for i in range(rows):
        cellf[i] = 0.0
    for k in range(R.shape[0]):
        low = lo[k]
        e = edge[k]
        r = R[k]
        for i in range(rows):
            v = r[i]
            nonfinite += 0 if abs(v) <= MAX_ABS else 1
            x = (v - low) * inv
            c = cellf[i] * e + np.floor(min(max(x, 0.0), e - 1.0))
            cellf[i] = c if (x >= 0.0) & (x < e) else -1e300  # stays negative
    for i in range(rows):
        c = cellf[i]
        cell_of[i] = np.int32(c) if c >= 0.0 else -1
    return nonfinite


class Buckets(NamedTuple):
    """A block's rows sorted by center-grid cell (see :func:`_bucket`).

    Attributes
    ----------
    T : ndarray (n_features, block rows), float64
        The rows, transposed, cell after cell.
    pw : ndarray (block rows,), float64
        Their weights (ones for unweighted points).
    touched : ndarray (block rows,), int64
        The cells the rows fall in, in the order of their first row.
    begin : ndarray (block rows + 1,), int64
        Where each touched cell's rows begin in ``T`` (and, last, where they end).
    fill : ndarray (n_cells,), int32
        Per cell of the grid: its rows, then the next write position (zero between
        blocks: the caller resets the touched cells').
    """

    T: np.ndarray
    pw: np.ndarray
    touched: np.ndarray
    begin: np.ndarray
    fill: np.ndarray


@numba.njit(**INNER)
def _bucket(X, first, rows, R, cell_of, start, wcol, buckets):
    """Sort the rows ``R[:, :rows]`` (with their weights from X's column ``wcol``) by their
    cells ``cell_of`` into the :class:`Buckets` (``start``: the grid's CSR offsets, a cell
    no center reaches gets no rows); returns the number of touched cells."""
    T, pw, touched, begin, fill = buckets
    d = R.shape[0]
    n_touched = 0
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
            if d == 3:
                T[0, p] = R[0, i]
                T[1, p] = R[1, i]
                T[2, p] = R[2, i]
            else:
                for k in range(d):
                    T[k, p] = R[k, i]
            if wcol is not None:
                pw[p] = np.float64(X[first + i, wcol])
    return n_touched


@numba.njit(**JIT)
def center_grid_sums(X, centers, wcol, grid, groups, block):
    """Add the sums of the block X for the :class:`~dshift.kernels._tile_sums.Centers`
    through the center grid ``grid`` (a :class:`CenterGrid`; ``groups``: the centers'
    :class:`~dshift.kernels._groups.CenterGroups`), ``block`` rows at a time; ``wcol``: the
    weight column or None; returns the count of NaN, infinite or out-of-range values."""
    n = X.shape[0]
    d = centers.C.shape[1]
    lo, dims, start, members, size = grid
    inv = 1.0 / size
    b = max(1, min(n, block))
    edge = dims.astype(np.float64)
    fill = np.zeros(start.shape[0] - 1, np.int32)  # per cell: its rows, then write position
    R = np.empty((d, b))  # the block's rows, transposed
    cellf = np.empty(b)
    cell_of = np.empty(b, np.int32)
    touched = np.empty(b, np.int64)
    begin = np.empty(b + 1, np.int64)
    T = np.empty((d, b))  # ... and bucketed by cell
    pw = np.ones(b)
    buckets = Buckets(T, pw, touched, begin, fill)
    work = work_buffer(d, TILE_ROWS)
    box_lo = np.empty(d)
    box_hi = np.empty(d)
    nonfinite = 0
    for first in range(0, n, b):
        rows = min(b, n - first)
        transpose(X, first, rows, R)
        nonfinite += _cell_of_rows(R, rows, lo, inv, edge, cellf, cell_of)
        n_touched = _bucket(X, first, rows, R, cell_of, start, wcol, buckets)
        for t in range(n_touched):
            cell = touched[t]
            fill[cell] = 0
            listed = members[start[cell] : start[cell + 1]]  # the cell's centers
            for s in range(begin[t], begin[t + 1], TILE_ROWS):
                e = min(s + TILE_ROWS, begin[t + 1])
                bounding_box(T, s, e, box_lo, box_hi)  # its NaNs are counted above
                if wcol is None:
                    tile = Tile(T, None, s, e, box_lo, box_hi)
                    points_sums(tile, centers, groups, listed, work)
                else:
                    tile = Tile(T, pw, s, e, box_lo, box_hi)
                    points_sums(tile, centers, groups, listed, work)
    return nonfinite
