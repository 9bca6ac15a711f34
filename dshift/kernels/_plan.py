"""The plan of an iteration: how the chunks compute their sums for the centers, decided once.

:func:`plan` looks at the centers, the kernel, the packed columns and the rows' order and
picks a strategy; it also builds what that strategy needs (center groups, the center grid,
the axis lattice). The client calls it once per iteration and ships the :class:`Plan` with
the chunk tasks; :func:`chunk_stats` only executes it. Tests and benchmarks choose a
strategy (or a group radius) through ``plan``'s explicit arguments.

Strategies (every one gives the same sums, but for rounding):

``"short tiles"``
    Tiles of ``TILE_ROWS`` points with their bounding box: far tiles are skipped, tiles
    inside a flat ball added in O(d), and centers grouped (plain points, rows in spatial
    order; and the Gaussian's tiles, whose groups need small boxes).
``"long tiles"``
    Tiles of ``UNSORTED_TILE_ROWS`` points and no box (plain points in no spatial order,
    few center units, or flat centers crowded on few modes in groups of
    ``WIDE_GROUP_RADIUS``): fewer, longer tiles save the fixed cost per (tile, center).
``"center grid"``
    Rows bucketed by the cell of a grid over the centers, each bucket against its cell's
    centers only (compact kernels, rows in no spatial order, many centers).
``"lattice"``
    Gaussian weights as products of per-axis factors (plain points, centers on a lattice:
    bin seeds before they move).
``"pointwise"``
    Every center over every boxed tile's points (weighted or adaptive points).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dshift._columns import Columns
from dshift.kernels._center_grid import CenterGrid, center_grid, center_grid_sums
from dshift.kernels._config import (
    CELL_BLOCK_ROWS,
    EPANECHNIKOV,
    FLAT,
    GAUSSIAN,
    TILE_ROWS,
    UNSORTED_TILE_ROWS,
)
from dshift.kernels._gaussian import Lattice, axis_lattice, lattice_sums
from dshift.kernels._groups import (
    GAUSSIAN_GROUP_RADIUS,
    GROUP_RADIUS,
    CenterGroups,
    center_groups,
)
from dshift.kernels._tile_sums import Centers, Sums
from dshift.kernels._tiles import tile_loop

STRATEGIES = ("short tiles", "long tiles", "center grid", "lattice", "pointwise")
#: Rows in no spatial order use the center grid from this many center units (a group of
#: centers, or a center alone); fewer run through long tiles.
GRID_MIN_UNITS = 20
#: Flat kernel, plain rows in no spatial order: when centers have crowded in on their modes
#: so that groups of this radius (a fraction of the bandwidth) leave fewer than
#: ``GRID_MIN_UNITS`` units, those wide groups run through long tiles instead of the grid.
#: (A 2e6-row chunk of 5 blobs with 249 bin seeds, iterations 5 and 6: 37 and 28 ms against
#: 82 and 44 ms for the grid's groups of ``GROUP_RADIUS``.)
WIDE_GROUP_RADIUS = 1 / 4


class Plan(NamedTuple):
    """Everything a chunk task needs, besides its rows, to compute its sums.

    Attributes
    ----------
    centers : ndarray (n_centers, n_features), float64, C-contiguous
    bandwidth : float
    kernel : int
        ``FLAT``, ``GAUSSIAN`` or ``EPANECHNIKOV``.
    columns : Columns
        Where the rows keep their weights and bandwidths.
    strategy : str
        One of ``STRATEGIES`` (see the module's docstring).
    groups : CenterGroups
        Centers close together (no groups: every center alone).
    grid : CenterGrid or None
        With the ``"center grid"`` strategy.
    lattice : Lattice or None
        With the ``"lattice"`` strategy (see :func:`axis_lattice`).
    """

    centers: np.ndarray
    bandwidth: float
    kernel: int
    columns: Columns
    strategy: str
    groups: CenterGroups
    grid: CenterGrid | None = None
    lattice: Lattice | None = None


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
        Number of NaN, infinite or out-of-range (``|x| > MAX_ABS``, see :mod:`dshift._limits`)
        values met in the chunk. When it is not 0 the sums are meaningless: the caller must
        raise (dshift does, after the first pass).
    bandwidths : ndarray of shape (n_centers,), float64
        With per-point bandwidths: sum of kernel weight x the point's bandwidth (divided by
        ``weights``, the local bandwidth at the center). Zeros otherwise.
    """

    sums: np.ndarray
    weights: np.ndarray
    counts: np.ndarray
    n_nonfinite: int
    bandwidths: np.ndarray


def sorts_rows(kernel: int, columns: Columns) -> bool:
    """Whether spatially ordered rows pay off (worth one sorting pass over data kept in
    memory): compact kernels skip far tiles, and the Gaussian shares one exp per point
    among nearby centers in small tiles of plain points."""
    return kernel != GAUSSIAN or not (columns.weighted or columns.adaptive)


def _default_radius(kernel: int, plain: bool) -> float:
    if kernel == FLAT:
        return GROUP_RADIUS
    return GAUSSIAN_GROUP_RADIUS if kernel == GAUSSIAN and plain else 0.0


def _units(groups: CenterGroups) -> int:
    """Center units: the groups, and the centers alone."""
    return len(groups.leaders) + int((groups.group_of < 0).sum())


def _crowded_groups(C: np.ndarray, bandwidth: float, groups: CenterGroups) -> CenterGroups:
    """The groups of ``WIDE_GROUP_RADIUS`` if they leave fewer than ``GRID_MIN_UNITS``
    units where ``groups`` leave more (flat kernel, plain rows in no spatial order)."""
    if _units(groups) < GRID_MIN_UNITS:
        return groups
    wide = center_groups(C, bandwidth, WIDE_GROUP_RADIUS)
    return wide if _units(wide) < GRID_MIN_UNITS else groups


def _choose(C, bandwidth, kernel, columns, groups, rows_sorted):
    """Today's best strategy (and the center grid it needs, if any)."""
    plain = not (columns.weighted or columns.adaptive)
    if columns.adaptive:
        return "pointwise", None
    if not rows_sorted and kernel != GAUSSIAN:
        units = len(C)
        if kernel == FLAT and plain:  # a group closing in on a mode costs about one center
            units = _units(groups)
        if units >= GRID_MIN_UNITS:
            grid = center_grid(C, bandwidth, groups.group_of)
            if grid is not None:
                return "center grid", grid
            rows_sorted = True  # too large a grid: short tiles, which may prune
    if kernel == GAUSSIAN and plain and len(C) >= 4 and axis_lattice(C) is not None:
        return "lattice", None
    if not plain:
        return "pointwise", None
    return ("short tiles" if rows_sorted or kernel == GAUSSIAN else "long tiles"), None


def _refuse(strategy: str, kernel: int, columns: Columns) -> str | None:
    """Why a forced strategy cannot run these sums, or None."""
    plain = not (columns.weighted or columns.adaptive)
    if strategy not in STRATEGIES:
        return f"strategy must be one of {STRATEGIES} or None"
    if strategy in ("short tiles", "long tiles", "lattice") and not plain:
        return f"{strategy!r} needs unweighted points with one bandwidth"
    if strategy == "pointwise" and plain:
        return "'pointwise' needs weighted points or per-point bandwidths"
    if strategy == "center grid" and (kernel == GAUSSIAN or columns.adaptive):
        return "'center grid' needs a compact kernel and one bandwidth"
    if strategy == "lattice" and kernel != GAUSSIAN:
        return "'lattice' needs the Gaussian kernel"
    return None


def plan(
    centers: np.ndarray,
    bandwidth: float,
    kernel: int,
    columns: Columns,
    *,
    rows_sorted: bool = True,
    strategy: str | None = None,
    group_radius: float | None = None,
) -> Plan:
    """Decide how the chunks compute their sums for these centers.

    Parameters
    ----------
    centers : ndarray of shape (n_centers, n_features)
    bandwidth : float
    kernel : int
    columns : Columns
        The rows' packed columns (weights, per-point bandwidths).
    rows_sorted : bool, default=True
        Whether the rows are in spatial order within chunks (see ``spatially_sorted``).
    strategy : str, default=None
        Force one of ``STRATEGIES`` (tests, benchmarks); None picks the best.
    group_radius : float, default=None
        Force the center groups' radius, as a fraction of the bandwidth (0: no groups;
        groups serve the flat and the Gaussian kernel).

    Returns
    -------
    Plan

    Raises
    ------
    ValueError
        If a forced strategy cannot compute these sums.

    Examples
    --------
    >>> C = np.array([[0.0, 0.0], [0.01, 0.0], [5.0, 5.0]])
    >>> p = plan(C, 1.0, FLAT, Columns(2))
    >>> p.strategy, p.groups.group_of.tolist()
    ('short tiles', [0, 0, -1])
    >>> plan(C, 1.0, FLAT, Columns(2), rows_sorted=False).strategy
    'long tiles'
    >>> plan(C, 1.0, FLAT, Columns(2, weighted=True)).strategy
    'pointwise'
    """
    C = np.ascontiguousarray(centers, dtype=np.float64)
    plain = not (columns.weighted or columns.adaptive)
    radius = _default_radius(kernel, plain) if group_radius is None else group_radius
    if radius > 0 and kernel == EPANECHNIKOV:  # its tiles would sum the groups as flat ones
        raise ValueError(
            "Cannot plan with group_radius > 0 for the Epanechnikov kernel: center groups "
            "serve the flat and Gaussian kernels only; pass group_radius=0 or None."
        )
    groups = center_groups(C, bandwidth, radius)
    grid = lattice = None
    if strategy is None and group_radius is None and kernel == FLAT and plain and not rows_sorted:
        groups = _crowded_groups(C, bandwidth, groups)
    if strategy is None:
        strategy, grid = _choose(C, bandwidth, kernel, columns, groups, rows_sorted)
    elif (why := _refuse(strategy, kernel, columns)) is not None:
        raise ValueError(f"Cannot plan with strategy={strategy!r}: {why}.")
    elif strategy == "center grid":
        grid = center_grid(C, bandwidth, groups.group_of)
        if grid is None:
            raise ValueError("Cannot plan with strategy='center grid': the grid is too large.")
    if strategy == "lattice":
        lattice = axis_lattice(C)
        if lattice is None:
            raise ValueError("Cannot plan with strategy='lattice': the centers are no lattice.")
    return Plan(C, float(bandwidth), kernel, columns, strategy, groups, grid, lattice)


def chunk_stats(X: np.ndarray, plan: Plan) -> ChunkStats:
    """Kernel-weighted sums of one block of points for every center of the plan.

    Parameters
    ----------
    X : ndarray of shape (n_rows, plan.columns.width), float32/float64
        The points, with their weights and bandwidths as ``plan.columns`` places them. A
        point of weight w counts as w points (in the sums, weights and counts). With
        per-point bandwidths h_i, a point's kernel weight is ``K(|x - c| / h_i)
        (bandwidth / h_i)^d`` (``bandwidth`` only scales all weights alike, keeping them
        finite), and it counts in ``counts`` when ``|x - c| <= h_i``.
    plan : Plan

    Returns
    -------
    ChunkStats

    Examples
    --------
    >>> X = np.array([[0.0], [1.0], [3.0]])
    >>> s = chunk_stats(X, plan(np.array([[0.5]]), 1.0, FLAT, Columns(1)))
    >>> s.sums, s.weights, s.counts, s.n_nonfinite
    (array([[0.]]), array([2.]), array([2.]), 0)
    """
    C, bandwidth, kernel, columns, strategy, groups, grid, lattice = plan
    m, d = C.shape
    out = Sums(np.zeros((m, d)), np.zeros(m), np.zeros(m))
    hsums = np.zeros(m)
    X = np.ascontiguousarray(X)
    h2 = float(bandwidth) ** 2
    centers = Centers(C, h2, kernel, out)
    wcol = columns.weight if columns.weighted else None
    hcol = columns.bandwidth if columns.adaptive else None
    if strategy == "center grid":
        bad = center_grid_sums(X, centers, wcol, grid, groups, CELL_BLOCK_ROWS)
    elif strategy == "lattice":
        bad = lattice_sums(X, centers, lattice)
    else:
        tile_rows = UNSORTED_TILE_ROWS if strategy == "long tiles" else TILE_ROWS
        boxed = strategy != "long tiles"
        bad = tile_loop(X, centers, groups, tile_rows, boxed, wcol, hcol, hsums)
    return ChunkStats(out.sums, out.weights, out.counts, int(bad), hsums)


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
