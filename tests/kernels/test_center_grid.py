"""kernels/_center_grid.py: rows in no spatial order meet only the centers of their cell."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from dshift import kernels
from dshift._columns import Columns
from dshift.kernels._center_grid import MAX_GRID_ENTRIES, center_grid, center_grid_sums
from dshift.kernels._config import CELL_BLOCK_ROWS
from dshift.kernels._groups import center_groups
from dshift.kernels._tile_sums import Centers, Sums
from tests.reference import packed, ref_near_box, size


def grid_sums(block, p: kernels.Plan, block_rows: int) -> tuple[Sums, int]:
    """center_grid_sums of a "center grid" plan, ``block_rows`` rows bucketed at a time."""
    m, d = p.centers.shape
    out = Sums(np.zeros((m, d)), np.zeros(m), np.zeros(m))
    wcol = p.columns.weight if p.columns.weighted else None
    centers = Centers(p.centers, p.bandwidth**2, p.kernel, out)
    bad = center_grid_sums(block, centers, wcol, p.grid, p.groups, block_rows)
    return out, bad


@pytest.mark.parametrize("kernel", ["flat", "epanechnikov"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("block_rows", [CELL_BLOCK_ROWS, size(1_000, 200), 7])
@pytest.mark.parametrize("d", [3, 2])
def test_center_grid_path_for_unsorted_rows_matches_the_tile_path(kernel, weighted, block_rows, d):
    """Rows in no spatial order are bucketed by the cells of a grid over the centers,
    a block of rows at a time; same sums, counts and NaN count as the tile path."""
    rng = np.random.default_rng(7)
    n = size(3_000, 300)
    X = np.vstack([rng.normal(c, 0.7, size=(n, 3)) for c in ([0, 0, 0], [4, 4, 0])])
    X = X[rng.permutation(len(X)), :d]
    C = np.vstack([X[rng.choice(len(X), 60)], np.full((1, d), 50.0)])  # one far center
    # a center exactly at distance bandwidth from a point counts it (inclusive), both ways
    X[100] = np.round(X[100] * 1024) / 1024  # X[100] + 1.5 is exact
    C = np.vstack([C, X[100] + np.eye(d)[0] * 1.5])
    w = rng.integers(0, 3, len(X)).astype(np.float64)
    w[100] = 1.0
    block = packed(X, w) if weighted else X
    code, columns = kernels.KERNELS[kernel], Columns(d, weighted)
    p = kernels.plan(C, 1.5, code, columns, strategy="center grid")
    assert p.grid is not None  # the grid path really runs
    grid, bad = grid_sums(block, p, block_rows)
    assert bad == 0
    # the tiles: short tiles (pointwise sums if weighted); long tiles for plain points
    paths = [kernels.plan(C, 1.5, code, columns)]
    if not weighted:
        paths.append(kernels.plan(C, 1.5, code, columns, strategy="long tiles"))
    tiles, *others = (kernels.chunk_stats(block, other) for other in [*paths, p])
    for got in (grid, *others):  # others: the grid plan, CELL_BLOCK_ROWS rows at a time
        assert_allclose(got.sums, tiles.sums, rtol=1e-12, atol=1e-9)
        assert_allclose(got.weights, tiles.weights, rtol=1e-12)
        assert_array_equal(got.counts, tiles.counts)
    assert grid.counts[-2] == 0 and grid.counts[-1] >= 1
    # non-finite values are counted the same way (the sums are then meaningless)
    block[[5, 17], [1, d - 1]] = [np.nan, np.inf]
    block[9] = np.nan
    with np.errstate(invalid="ignore"):  # without the JIT, numpy warns of inf - inf
        # features only: weights are checked before the fit
        assert grid_sums(block, p, block_rows)[1] == 2 + d
        for other in [*paths, p]:
            assert kernels.chunk_stats(block, other).n_nonfinite == 2 + d


def test_center_grid_refuses_huge_grids():
    C = np.array([[0.0, 0.0, 0.0], [1e6, 1e6, 1e6]])
    alone = np.full(len(C), -1)
    assert center_grid(C, 1.0, alone) is None  # too many cells
    assert center_grid(np.zeros((2, 9)), 1.0, alone) is None  # too many dimensions
    many = np.random.default_rng(0).normal(size=(MAX_GRID_ENTRIES // 3**8 + 1, 8))
    assert center_grid(many, 1.0, np.full(len(many), -1)) is None  # too many entries
    assert center_grid(C[:1], 0.0, alone[:1]) is None  # no bandwidth


def test_center_grid_lists_exactly_the_centers_within_reach_of_each_cell():
    """A cell lists its centers group by group (then by index), as the tile kernels take
    a group's members together."""
    rng = np.random.default_rng(3)
    C = rng.uniform(0, 10, size=(40, 2))
    C = np.vstack([C, C[:10] + rng.normal(0, 0.01, size=(10, 2))])  # and some groups
    group_of = center_groups(C, 1.3, 0.1).group_of
    assert (group_of >= 0).sum() >= 20
    lo, dims, start, members, edge = center_grid(C, 1.3, group_of)
    assert edge == 1.3 and len(start) == np.prod(dims) + 1
    for cell in range(int(np.prod(dims))):
        idx = np.array(np.unravel_index(cell, dims))
        listed = members[start[cell] : start[cell + 1]]
        assert set(listed.tolist()) == ref_near_box(C, lo + idx * 1.3, 1.3, 1.3)
        assert_array_equal(listed, sorted(listed, key=lambda j: (group_of[j], j)))
