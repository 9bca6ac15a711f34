"""algorithm="grid": the loop runs on occupied grid cells standing for their points."""

from __future__ import annotations

import functools

import dask.array as da
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import cdist
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from dshift import MeanShift, _grid
from dshift.kernels import bin_points
from tests.reference import ref_cells


@functools.cache
def blobs() -> np.ndarray:
    X, _ = make_blobs(n_samples=40_000, n_features=3, centers=5, random_state=2)
    X.setflags(write=False)
    return X


@pytest.mark.parametrize("weighted", [False, True])
def test_grid_cells_sum_the_points_of_each_cell(weighted):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3_000, 2)) * 3
    w = rng.integers(0, 3, len(X)).astype(float) if weighted else np.ones(len(X))
    block = np.column_stack([X, w]) if weighted else X
    cells, weights, sums, bad = bin_points(block, 0.7, weighted, sums=True)
    want = ref_cells(X, 0.7, w, nearest=False)
    assert bad == 0
    assert_array_equal(cells, want.cells)
    assert_allclose(sums, want.sums, atol=1e-9)
    assert_allclose(weights, want.counts)


def test_grid_summary_does_not_depend_on_the_chunking():
    X = blobs()
    cells1, one = _grid.grid_summary(da.from_array(X, chunks=(len(X), 3)), 0.5)
    cells2, many = _grid.grid_summary(da.from_array(X, chunks=(777, 3)), 0.5)
    assert_array_equal(cells1, cells2)
    assert_allclose(one, many, rtol=1e-12)
    assert one[:, -1].sum() == len(X)
    assert (np.floor(one[:, :3] / 0.5) == cells1).all()  # each mean lies in its cell


def test_grid_fit_is_close_to_the_exact_fit(scheduler):
    X = blobs()
    params = dict(bandwidth=2, kernel="flat", seeding="bin")
    exact = MeanShift(**params).fit(X)
    grid = MeanShift(algorithm="grid", grid_fraction=0.25, **params).fit(X)
    assert len(grid.cluster_centers_) == len(exact.cluster_centers_)
    error = cdist(grid.cluster_centers_, exact.cluster_centers_).min(axis=1)
    assert error.max() < 0.25 * 2  # under one cell edge
    assert adjusted_rand_score(exact.labels_, grid.labels_) > 0.99
    # labels are the nearest center of every point (not of its cell)
    nearest = cdist(X, grid.cluster_centers_).argmin(axis=1)
    assert_array_equal(grid.labels_, nearest)
    assert grid.cluster_sizes_.sum() == len(X)


def test_grid_of_repeated_lattice_points_is_exact():
    """When every cell holds copies of one point, the cells are the points, weighted."""
    rng = np.random.default_rng(3)
    lattice = rng.integers(0, 12, size=(300, 2)).astype(float)
    X = np.repeat(lattice, rng.integers(1, 5, len(lattice)), axis=0)
    params = dict(bandwidth=2.5, kernel="flat", seeding="bin")
    exact = MeanShift(**params).fit(X)
    grid = MeanShift(algorithm="grid", grid_fraction=0.2, **params).fit(X)
    assert_allclose(grid.cluster_centers_, exact.cluster_centers_, atol=1e-12)
    assert_array_equal(grid.labels_, exact.labels_)
    assert grid.n_iter_ == exact.n_iter_
    assert_allclose(grid.intensity_, exact.intensity_)


def test_grid_with_weights_equals_grid_on_repeated_points():
    X = blobs()[:5_000]
    w = np.random.default_rng(4).integers(0, 3, len(X))
    params = dict(bandwidth=2, kernel="gaussian", algorithm="grid", seeding="bin", max_iter=50)
    weighted = MeanShift(**params).fit(X, sample_weight=w)
    repeated = MeanShift(**params).fit(np.repeat(X, w, axis=0))
    assert_allclose(weighted.cluster_centers_, repeated.cluster_centers_, atol=1e-9)
    assert weighted.n_iter_ == repeated.n_iter_


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(algorithm="fast"), r"algorithm must be one of \['exact', 'grid'\]"),
        (dict(algorithm="grid", grid_fraction=0), r"grid_fraction must be a number in \(0, 1\]"),
        (dict(algorithm="grid", grid_fraction=1.5), "grid_fraction must be"),
        (dict(algorithm="grid", grid_fraction=float("nan")), "grid_fraction must be"),
    ],
)
def test_bad_grid_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        MeanShift(bandwidth=1, **params).fit(blobs())


def test_grid_reports_nan_from_its_pass():
    X = blobs().copy()
    X[5, 1] = np.nan
    with pytest.raises(ValueError, match="X contains 1 NaN or infinite value"):
        MeanShift(bandwidth=2, algorithm="grid").fit(X)


def test_too_many_cells_are_refused(monkeypatch):
    monkeypatch.setattr(_grid, "MAX_CELLS", 100)
    with pytest.raises(ValueError, match="more than 100 occupied cells.*raise grid_fraction"):
        MeanShift(bandwidth=2, algorithm="grid").fit(blobs())


def test_grid_sample_seeding_draws_cells_by_weight():
    """A tight cluster in few cells among many noise cells still gets seeds."""
    rng = np.random.default_rng(6)
    tight = rng.normal(0, 0.02, size=(20_000, 2))
    noise = rng.uniform(5, 400, size=(60_000, 2))
    X = np.vstack([tight, noise])
    model = MeanShift(
        bandwidth=1.0,
        kernel="flat",
        algorithm="grid",
        seeding="sample",
        n_seeds=50,
        random_state=0,
    ).fit(X)
    near_tight = np.sqrt((model.seeds_**2).sum(axis=1)) < 1
    assert near_tight.any()  # its few cells hold 25% of the weight; drawn uniformly: ~0.3%
    assert (np.abs(model.cluster_centers_[0]) < 0.1).all()  # the most intense center
