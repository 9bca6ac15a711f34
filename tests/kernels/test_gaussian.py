"""kernels/_gaussian.py: exps shared by a group of centers, and by centers on a lattice."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import cdist

from dshift import kernels
from dshift._columns import Columns
from dshift.kernels._gaussian import axis_lattice
from dshift.kernels._groups import GAUSSIAN_GROUP_RADIUS, center_groups
from tests.reference import ref_chunk_stats, size


def gaussian(X, C, bw, **forced) -> kernels.ChunkStats:
    p = kernels.plan(C, bw, kernels.GAUSSIAN, Columns(C.shape[1]), **forced)
    return kernels.chunk_stats(X, p)


@pytest.mark.parametrize("d", [3, 2, 5])
@pytest.mark.parametrize("sort_rows", [True, False])
def test_gaussian_groups_give_the_per_center_sums(d, sort_rows):
    """Gaussian centers closing in on a mode share one exp per point (a Taylor polynomial
    per member): the sums match the dense reference and the per-center path, the counts
    exactly, also for a point exactly at distance bandwidth from a member. Groups of
    several radii use the degree-9 and degree-13 polynomials, and far tiles the exp."""
    rng = np.random.default_rng(300 + d)
    modes = np.array([np.zeros(d), np.full(d, 4.0)])
    X = np.vstack([rng.normal(m, 1.0, size=(size(4_000, 800), d)) for m in modes])
    X = np.vstack([X, rng.uniform(-30, 30, size=(size(200, 40), d))])  # far tiles
    bw = 1.5
    spreads = (0.0005, 0.004, 0.012)  # group radii up to about GAUSSIAN_GROUP_RADIUS * bw
    n_group = size(8, 4)
    C = np.vstack([rng.normal(m, s, size=(n_group, d)) for m in modes for s in spreads])
    C = np.vstack([C, rng.normal(size=(5, d))])  # and a few loose centers
    on_edge = [3, 2 * n_group + n_group // 2]  # members of the tightest and widest groups
    C[on_edge] = np.round(C[on_edge] * 1024) / 1024  # c +- bw is exact
    X[7] = C[on_edge[0]] + np.eye(d)[0] * bw  # exactly on a member's boundary
    X[8] = C[on_edge[1]] - np.eye(d)[-1] * bw
    if sort_rows:
        X = kernels.spatially_sorted(X)
    groups = center_groups(C, bw, GAUSSIAN_GROUP_RADIUS)
    n_grouped = 2 * len(spreads) * n_group
    assert (groups.group_of[:n_grouped] >= 0).sum() >= 5 / 6 * n_grouped  # groups form
    sums, weights, counts, *_ = ref_chunk_stats(X, C, bw, "gaussian")
    direct = (cdist(X, C, "sqeuclidean") <= bw * bw).sum(axis=0)
    grouped = gaussian(X, C, bw)
    single = gaussian(X, C, bw, group_radius=0.0)
    for got in (grouped, single):
        assert_array_equal(got.counts, direct)
        assert_array_equal(got.counts, counts)
        assert_allclose(got.weights, weights, rtol=1e-13)
        assert_allclose(got.sums, sums, rtol=1e-11, atol=1e-11 * weights.max())
    assert counts[on_edge[0]] >= 1 and counts[on_edge[1]] >= 1
    assert not np.array_equal(grouped.weights, single.weights)  # the groups were used


@pytest.mark.parametrize("d", [3, 2, 4])
def test_gaussian_centers_on_a_lattice_give_the_per_center_sums(d):
    """Bin seeds lie on a lattice: the Gaussian weights come from per-axis factors, and
    match the dense reference and the per-center path, counts exactly. A center whose
    exponent is past exp's underflow (-708) gets weight 0 on both paths, although its
    per-axis factors are not 0."""
    rng = np.random.default_rng(400 + d)
    X = np.vstack([rng.normal(0.0, 1.0, size=(size(3_000, 500), d)), np.zeros((1, d))])
    # values per axis: few enough for the lattice (without the JIT, few enough centers)
    axis = np.linspace(-6.0, 6.0, size(9, {2: 9, 3: 5}.get(d, 3)))
    C = np.array(np.meshgrid(*[axis] * d)).reshape(d, -1).T
    X[3] = C[40] + np.eye(d)[0] * 1.5  # exactly at distance bandwidth from a center
    # a far center whose nearest point has exponent -725: past exp's cut-off at -708, yet
    # the product of its two per-axis factors would still be a (subnormal) double
    offset = np.r_[[1.0, 1.0], np.zeros(d - 2)]
    b = min(np.linspace(30, 70, 4001), key=lambda b: abs(cdist(X, [-b * offset]).min() - 57.12))
    C = np.vstack([C, -b * offset])
    assert axis_lattice(C) is not None
    sums, weights, counts, *_ = ref_chunk_stats(X, C, 1.5, "gaussian")
    p = kernels.plan(C, 1.5, kernels.GAUSSIAN, Columns(d))
    assert p.strategy == "lattice"
    lattice = kernels.chunk_stats(X, p)
    single = gaussian(X, C, 1.5, strategy="short tiles")
    for got in (lattice, single):
        assert_array_equal(got.counts, counts)
        assert_allclose(got.weights, weights, rtol=1e-13, atol=1e-300)  # numpy: subnormals
        assert_allclose(got.sums, sums, rtol=1e-11, atol=1e-11 * weights.max())
    assert counts[40] >= 1
    exponents = ((X - C[-1]) ** 2).sum(axis=1) / (2 * 1.5**2)
    assert 708 < exponents.min() < 740 and np.exp(-exponents.min() / 2) ** 2 > 0
    assert lattice.weights[-1] == single.weights[-1] == 0.0
    assert not np.array_equal(lattice.weights, single.weights)  # the lattice was used
    # points at distance bandwidth in random directions: the same count as the plain path
    # (the squared distance is summed in the same order)
    u = rng.normal(size=(size(2_000, 300), d))
    Y = C[rng.integers(0, len(C) - 1, len(u))] + 1.5 * u / np.linalg.norm(u, axis=1)[:, None]
    one_by_one = gaussian(Y, C, 1.5, strategy="short tiles").counts
    assert_array_equal(gaussian(Y, C, 1.5).counts, one_by_one)


def test_axis_lattice_lists_each_axis_values_once():
    C = np.array([[0.0, 5.0], [1.0, 5.0], [0.0, 7.0], [1.0, 7.0]] * 4)
    values, index = axis_lattice(C)  # 4 values, 16 centers
    assert values.tolist() == [0.0, 1.0, 5.0, 7.0]
    assert_array_equal(values[index], C)
    assert axis_lattice(C[:15]) is None  # more values than a quarter of the centers
