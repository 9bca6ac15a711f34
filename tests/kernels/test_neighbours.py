"""kernels/_neighbours.py: nearest centers (labels) and k-th nearest neighbour distances."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from dshift import kernels
from dshift.kernels._config import KNN_TILE_ELEMENTS
from tests.reference import JIT, ref_kth, ref_nearest


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nearest_labels_matches_brute_force(dtype):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 3)).astype(dtype)
    C = rng.normal(size=(7, 3))
    labels = kernels.nearest_labels(X, C)
    assert labels.dtype == np.int32
    assert_array_equal(labels, ref_nearest(X, C))
    bw = 0.9
    orphans = kernels.nearest_labels(X, C, bw, cluster_all=False)
    expected = ref_nearest(X, C, bw, cluster_all=False)
    assert (expected == -1).any() and (expected >= 0).any()
    assert_array_equal(orphans, expected)


def test_nearest_labels_ties_go_to_first_center_and_boundary_is_inside():
    C = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 0.0]])  # centers 1 and 2 identical
    X = np.array([[1.0, 0.0], [2.0, 0.0], [5.0, 0.0], [2.0, 1.0], [2.0, 1.0000001]])
    assert kernels.nearest_labels(X, C).tolist() == [0, 1, 1, 1, 1]
    # cluster_all=False: distance exactly == bandwidth keeps the label, beyond gets -1
    assert kernels.nearest_labels(X, C, 1.0, cluster_all=False).tolist() == [0, 1, -1, 1, -1]
    # one orphan radius per center
    radii = np.array([1.0, 0.5, 3.0])
    assert kernels.nearest_labels(X, C, radii, cluster_all=False).tolist() == [0, 1, -1, -1, -1]


def test_nearest_labels_rejects_nonfinite_rows():
    C = np.zeros((2, 2))
    for bad in (np.nan, np.inf, -np.inf):
        X = np.array([[0.0, 0.0], [bad, 1.0]])
        with pytest.raises(ValueError, match="NaN or infinite"):
            kernels.nearest_labels(X, C)


@pytest.mark.parametrize("k", [1, 2, 9, 37])
def test_kth_neighbor_distances_of_a_sample_match_brute_force(k):
    rng = np.random.default_rng(6)
    S = rng.normal(size=(37, 4)).astype(np.float32)
    got = kernels.kth_distances(S, S, k)
    assert got.shape == (37,)
    assert_allclose(got, ref_kth(S, S, k), rtol=1e-12, atol=1e-12)
    if k == 1:
        assert_array_equal(got, 0.0)


@pytest.mark.skipif(not JIT, reason="millions of distances; the tile loop is not compiled")
@pytest.mark.parametrize("k", [1, 2, 9, 37])
def test_kth_distances_of_rows_spanning_several_tiles(k):
    """A tile holds at most KNN_TILE_ELEMENTS distances: rows of three tiles (the last one
    partial) get the same distances as the sample's own."""
    rng = np.random.default_rng(6)
    S = rng.normal(size=(37, 4)).astype(np.float32)
    reps = 2 * KNN_TILE_ELEMENTS // (37 * 37) + 3  # copies of S: two tiles and a part
    got = kernels.kth_distances(np.tile(S, (reps, 1)), S, k)
    assert_allclose(got, np.tile(ref_kth(S, S, k), reps), rtol=1e-12, atol=1e-12)


def test_kth_distances_to_a_sample_use_the_first_features_and_a_floor():
    rng = np.random.default_rng(2)
    X, S = rng.normal(size=(300, 3)), rng.normal(size=(50, 2))
    want = ref_kth(X[:, :2], S, 5)
    assert_allclose(kernels.kth_distances(X, S, 5, n_features=2), want, rtol=1e-12)
    floored = kernels.kth_distances(X, S, 5, floor=np.median(want), n_features=2)
    assert_array_equal(floored, np.maximum(want, np.median(want)))
