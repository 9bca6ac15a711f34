"""kernels/_tile_sums.py: one tile's sums for one center, and the tile's own bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from dshift import kernels
from dshift._columns import Columns
from dshift._limits import MAX_ABS
from dshift.kernels._config import work_buffer
from dshift.kernels._tile_sums import (
    Centers,
    Sums,
    bounding_box,
    box_reach,
    count_nonfinite,
    tile_sums,
    transpose,
)
from tests.reference import ref_chunk_stats, size

ABOVE = float(np.nextafter(MAX_ABS, np.inf))


@pytest.mark.parametrize("strategy", ["short tiles", "long tiles", "center grid"])
def test_chunk_stats_boundary_is_inclusive_and_kernel_values(strategy):
    # distances 0, 5, 10 from the center: exactly representable, one exactly on the boundary
    X = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    C = np.array([[0.0, 0.0]])

    def stats(kernel):
        return kernels.chunk_stats(X, kernels.plan(C, 5.0, kernel, Columns(2), strategy=strategy))

    flat = stats(kernels.FLAT)
    assert flat.counts.tolist() == [2.0]
    assert flat.weights.tolist() == [2.0]
    assert_allclose(flat.sums, [[3.0, 4.0]])

    epa = stats(kernels.EPANECHNIKOV)
    assert epa.counts.tolist() == [2.0]  # counted, though its weight 1 - 25/25 is 0
    assert_allclose(epa.weights, [1.0])
    assert_allclose(epa.sums, [[0.0, 0.0]], atol=1e-15)

    if strategy == "center grid":  # compact kernels only
        return
    gau = stats(kernels.GAUSSIAN)
    assert gau.counts.tolist() == [2.0]
    w = np.exp(-np.array([0.0, 25.0, 100.0]) / 50.0)
    assert_allclose(gau.weights, [w.sum()], rtol=1e-12)
    assert_allclose(gau.sums, [w @ X], rtol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("d", [3, 2, 5])
@pytest.mark.parametrize("kernel", list(kernels.KERNELS))
def test_tile_sums_of_a_slice_match_the_dense_sums(kernel, d, weighted):
    """tile_sums adds the points T[:, s:e] (features x points, with or without weights)
    for one center: three features take fused loops, others one pass per feature; a
    point exactly at distance bandwidth counts. The Gaussian's ``count`` 1 says every
    point is within the bandwidth and -1 none (known from the tile's box)."""
    rng = np.random.default_rng(d + 10 * weighted)
    n, bw = size(700, 120), 1.25
    X = rng.normal(size=(n, d))
    X[10] = np.round(X[10] * 1024) / 1024  # X[10] + bw is exact: on the boundary
    T = np.ascontiguousarray(X.T)
    s, e = 7, n - 5
    pw = rng.integers(0, 4, n).astype(np.float64) if weighted else None
    if pw is not None:
        pw[10] = 2.0  # the point on the boundary
    C = np.vstack([rng.normal(size=(3, d)), X[10] + bw * np.eye(d)[0], np.full((1, d), 9.0)])
    ref = ref_chunk_stats(X[s:e], C, bw, kernel, None if pw is None else pw[s:e])
    work = work_buffer(d, n)
    code = kernels.KERNELS[kernel]
    for count in (0, 1, -1) if kernel == "gaussian" else (0,):
        out = Sums(np.zeros((len(C), d)), np.zeros(len(C)), np.zeros(len(C)))
        for j in range(len(C)):
            tile_sums(T, pw, s, e, Centers(C, bw * bw, code, out), j, work, count)
        total = (e - s) if pw is None else pw[s:e].sum()
        assert_array_equal(out.counts, {0: ref.counts, 1: total, -1: 0.0}[count])
        assert_allclose(out.weights, ref.weights, rtol=1e-12, atol=1e-14)  # 1 - 1 to rounding
        assert_allclose(out.sums, ref.sums, rtol=1e-10, atol=1e-12)
    assert ref.counts[3] >= 1 and ref.counts[4] == 0


@pytest.mark.parametrize("d", [3, 2, 1])
def test_transpose_copies_rows_into_float64_columns(d):
    X = np.random.default_rng(d).normal(size=(50, d + 1)).astype(np.float32)
    R = np.full((d, 40), -1.0)
    transpose(X, 6, 30, R)
    assert_array_equal(R[:, :30], X[6:36, :d].T.astype(np.float64))
    assert (R[:, 30:] == -1.0).all()


def test_bounding_box_and_nonfinite_counts():
    T = np.array([[0.0, 2.0, -1.0, MAX_ABS, 5.0], [1.0, np.nan, ABOVE, -np.inf, 3.0]])
    assert count_nonfinite(T, 5) == 3 and count_nonfinite(T, 1) == 0
    assert count_nonfinite(T[:1], 5) == 0  # |x| = MAX_ABS is in range
    lo, hi = np.empty(2), np.empty(2)
    assert bounding_box(T, 0, 3, lo, hi) == 2  # NaN and ABOVE
    assert lo[0] == -1.0 and hi[0] == 2.0
    assert bounding_box(T[:, ::-1].copy(), 0, 2, lo, hi) == 1  # -inf
    assert lo.tolist() == [5.0, -np.inf] and hi.tolist() == [MAX_ABS, 3.0]


def test_box_reach_gives_the_nearest_and_farthest_corner():
    rng = np.random.default_rng(3)
    lo, hi = np.array([0.0, -1.0, 2.0]), np.array([1.0, 1.0, 2.0])
    P = rng.uniform(-3, 4, size=(200, 3))
    corners = np.array(np.meshgrid(*zip(lo, hi))).reshape(3, -1).T
    inside = rng.uniform(lo, hi, size=(20_000, 3))
    for r in range(len(P)):
        gap2, far2 = box_reach(lo, hi, P, r)
        assert_allclose(far2, ((corners - P[r]) ** 2).sum(axis=1).max(), rtol=1e-14)
        nearest = np.clip(P[r], lo, hi)
        assert_allclose(gap2, ((nearest - P[r]) ** 2).sum(), rtol=1e-14, atol=1e-300)
        assert gap2 <= ((inside - P[r]) ** 2).sum(axis=1).min()
