"""kernels/_cells.py: the occupied cells of a block, their merges, and lookups by cell."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from dshift import kernels
from dshift._limits import MAX_ABS
from dshift.kernels import _cells
from dshift.kernels._config import BIN_TILE_ROWS
from tests.reference import ref_cells

ABOVE = float(np.nextafter(MAX_ABS, np.inf))


@pytest.fixture(params=["one table", "tiles"])
def binning(request, monkeypatch):
    """bin_points either way: counted in one table of the block's range, or tile by tile
    (as for blocks whose cells span too wide a range for a table)."""
    if request.param == "tiles":
        monkeypatch.setattr(_cells, "TABLE_BYTES", 0)
    return request.param


@pytest.mark.parametrize("tiles", [1, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bin_points_matches_dict_reference(tiles, dtype, binning):
    # several tiles of BIN_TILE_ROWS rows (the last one partial) exercise the tiled merge
    rng = np.random.default_rng(4)
    n = 300 if tiles == 1 else 2 * BIN_TILE_ROWS + 300
    X = rng.normal(scale=3.0, size=(n, 2)).astype(dtype)
    X[3, 0] = np.nan
    X[n // 2] = [np.inf, -np.inf]
    X[n - 1, 1] = np.nan
    cells, counts, sums, bad = kernels.bin_points(X, 1.5, nearest=True)
    ref = ref_cells(X, 1.5)
    assert cells.dtype == np.float64 and counts.dtype == np.int64 and sums is None
    assert_array_equal(cells, ref.cells)  # lexicographically sorted
    assert_array_equal(counts, ref.counts)
    assert bad == ref.n_nonfinite == 4
    assert counts.sum() == n - 3


def test_bin_points_rounds_half_to_even_like_numpy(binning):
    X = np.array([[0.5], [1.5], [2.5], [-0.5]])
    cells, counts, *_ = kernels.bin_points(X, 1.0, nearest=True)
    # np.round: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0
    assert cells.ravel().tolist() == [0.0, 2.0]
    assert counts.tolist() == [2, 2]


def test_merge_cells_matches_dict_reference():
    rng = np.random.default_rng(5)
    parts = []
    total: dict[tuple, int] = {}
    bad = 0
    for k in range(5):
        n = int(rng.integers(0, 12))
        cells = np.unique(rng.integers(-3, 3, size=(n, 3)).astype(np.float64), axis=0)
        counts = rng.integers(1, 50, size=len(cells)).astype(np.int64)
        parts.append(kernels.Cells(cells, counts, None, k))
        bad += k
        for c, v in zip(map(tuple, cells.tolist()), counts.tolist()):
            total[c] = total.get(c, 0) + v
    parts.append(kernels.Cells(np.empty((0, 3)), np.empty(0, dtype=np.int64), None, 4))
    bad += 4
    cells, counts, sums, n_bad = kernels.merge_cells(*parts)
    keys = sorted(total)
    assert [tuple(c) for c in cells.tolist()] == keys
    assert counts.tolist() == [total[k] for k in keys]
    assert counts.dtype == np.int64 and sums is None
    assert n_bad == bad


def test_merged_cells_with_sums_are_the_cells_of_the_whole_block(binning):
    rng = np.random.default_rng(6)
    X = rng.normal(size=(1_000, 2)) * 3
    w = rng.integers(0, 3, len(X)).astype(np.float64)
    block = np.column_stack([X, w])
    parts = [
        kernels.bin_points(block[s : s + 300], 0.7, True, sums=True) for s in range(0, 1_000, 300)
    ]
    merged = kernels.merge_cells(*parts)
    whole = kernels.bin_points(block, 0.7, True, sums=True)
    ref = ref_cells(X, 0.7, w, nearest=False)
    for got in (merged, whole):
        assert_array_equal(got.cells, ref.cells)
        assert_allclose(got.counts, ref.counts)
        assert_allclose(got.sums, ref.sums, atol=1e-9)
    assert merged.counts.dtype == np.float64


def test_binning_and_labelling_count_values_beyond_the_range(binning):
    rng = np.random.default_rng(15)
    X = rng.normal(size=(300, 2))
    X[3, 0] = ABOVE
    X[4] = [MAX_ABS, -MAX_ABS]  # in range: binned
    X[5, 1] = np.nan
    _, counts, _, bad = kernels.bin_points(X, 1.0, nearest=True)
    assert bad == 2 and counts.sum() == 298
    _, weights, _, bad = kernels.bin_points(X, 1.0, sums=True)
    assert bad == 2 and weights.sum() == 298
    C = np.zeros((1, 2))
    keys, labels = kernels.cell_table(np.zeros((1, 2)), np.zeros(1))
    assert kernels.nearest_labels(X[4:5], C).tolist() == [0]
    for row in ([ABOVE, 0.0], [0.0, -1e300]):  # the squared distances overflowed to inf
        with pytest.raises(ValueError, match=r"or values beyond dshift's range \|x\| <= 1e\+150"):
            kernels.nearest_labels(np.array([[0.0, 0.0], row]), C)
        with pytest.raises(ValueError, match=r"or values beyond dshift's range \|x\| <= 1e\+150"):
            kernels.cell_labels(np.array([[0.0, 0.0], row]), 1.0, keys, labels, C)
    # a block out of range is left in its order (the fit raises anyway)
    assert_array_equal(kernels.spatially_sorted(X), X)


def test_cell_labels_find_cells_beyond_int64():
    """Cell indices floor(x / cell_size) reach 1e300 within the range: they are kept as
    floats (an int64 cast overflowed), and -0.0 finds the cell 0."""
    size = 2.0**-100
    cells = np.array([[0.0], [2.0**70], [-(2.0**80)], [MAX_ABS / size]])
    keys, labels = kernels.cell_table(cells, np.array([0, 1, 2, 3]))
    X = np.array([[2.0**-30], [-(2.0**-20)], [MAX_ABS], [-0.0], [0.5 * size]])
    C = np.zeros((1, 1))
    assert kernels.cell_labels(X, size, keys, labels, C).tolist() == [1, 2, 3, 0, 0]


def test_blocks_without_a_finite_row_have_no_cells(binning):
    for X in (np.empty((0, 2)), np.full((5, 2), np.nan)):
        for options in (dict(nearest=True), dict(sums=True)):
            cells, counts, sums, bad = kernels.bin_points(X, 1.0, **options)
            assert cells.shape == (0, 2) and counts.shape == (0,)
            assert (sums is None) == ("nearest" in options)
            assert bad == np.isnan(X).sum()
    empty = kernels.Cells(np.empty((0, 2)), np.empty(0), np.empty((0, 2)), 2)
    merged = kernels.merge_cells(empty, empty._replace(n_nonfinite=3))
    assert merged.cells.shape == merged.sums.shape == (0, 2) and merged.n_nonfinite == 5


def test_cell_labels_give_rows_of_cells_not_in_the_table_their_nearest_center():
    keys, labels = kernels.cell_table(np.array([[0.0, 0.0]]), np.array([1]))
    C = np.array([[10.0, 0.0], [0.5, 0.5]])
    X = np.array([[0.2, 0.7], [9.0, 0.1], [3.0, 3.0]])
    assert kernels.cell_labels(X, 1.0, keys, labels, C).tolist() == [1, 0, 1]
    orphans = kernels.cell_labels(X, 1.0, keys, labels, C, 1.5, cluster_all=False)
    assert orphans.tolist() == [1, 0, -1]


@pytest.mark.parametrize(
    ("spread", "dense"),
    [(2, 0), (2, 4), (30, 10**6), (1_000, 4)],
    ids=["sorted", "counted in a table", "a wide table", "sorted: too many keys in range"],
)
def test_unique_rows_is_numpys_row_unique_either_way(monkeypatch, spread, dense):
    rng = np.random.default_rng(5)
    q = rng.integers(-spread, spread, size=(500, 3)).astype(np.float64)
    q[0] = [-0.0, 0.0, -0.0]  # np.round gives -0.0: the same cell as 0.0
    q[1] = [0.0, -0.0, 0.0]
    monkeypatch.setattr(_cells, "DENSE_KEYS_PER_ROW", dense)
    cells, inverse = _cells.unique_rows(q)
    ref, ref_inverse = np.unique(q, axis=0, return_inverse=True)
    assert_array_equal(cells, ref)
    assert_array_equal(inverse, ref_inverse.ravel())
    assert inverse[0] == inverse[1]


def test_cells_further_apart_than_float64_counts_exactly_stay_apart(binning):
    """Cell indices 0 and 2**53 (the span's + 1 is lost in float64) are two cells."""
    X = np.array([[0.0], [2.0**53], [2.0**53], [-(2.0**60)]])
    cells, counts, _, bad = kernels.bin_points(X, 1.0, nearest=True)
    assert cells.ravel().tolist() == [-(2.0**60), 0.0, 2.0**53]
    assert counts.tolist() == [1, 1, 2] and bad == 0
