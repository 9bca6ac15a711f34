"""kernels/_tiles.py: tiles of spatially ordered rows, with the boxes that prune them."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from dshift import kernels
from dshift._columns import Columns
from tests.reference import ref_chunk_stats, size


def short_tiles(X, C, bw, kernel, d) -> kernels.ChunkStats:
    """The sums as plan picks them for spatially ordered plain rows: short tiles."""
    p = kernels.plan(C, bw, kernels.KERNELS[kernel], Columns(d))
    assert p.strategy == "short tiles"
    return kernels.chunk_stats(X, p)


@pytest.mark.parametrize("kernel", list(kernels.KERNELS))
def test_chunk_stats_is_exact_on_spatially_ordered_rows(kernel):
    """Rows sorted in space (whole tiles far from a center): compact kernels may skip those
    tiles, and the result must not change, including points exactly on the boundary."""
    rng = np.random.default_rng(11)
    X = np.sort(rng.uniform(0, 40, size=(3000, 2)), axis=0)  # tiles are narrow in x
    X[1500:1530] = [20.0, 20.0]
    C = np.array([[20.0, 25.0], [17.0, 16.0], [0.5, 0.5], [39.0, 1.0], [-10.0, -10.0]])
    bw = 5.0  # (20, 20) is exactly at distance 5 from both of the first two centers
    got = short_tiles(X, C, bw, kernel, 2)
    sums, weights, counts, *_ = ref_chunk_stats(X, C, bw, kernel)
    assert_array_equal(got.counts, counts)
    assert counts[0] >= 30 and counts[1] >= 30 and counts[4] == 0
    assert_allclose(got.weights, weights, rtol=1e-10, atol=1e-300)
    assert_allclose(got.sums, sums, rtol=1e-10, atol=1e-300)
    # whole tiles whose bounding box is a single point exactly on the boundary
    X2 = np.full((2000, 2), 20.0)
    X2[1000:] = [0.3, 0.1]
    X2[1000:, 0] += np.linspace(0, 1e-3, 1000)
    for c, bw2 in (([20.0, 25.0], 5.0), ([0.3, 0.1 + 0.7], 0.7), ([0.3 + 1e-3 + 0.2, 0.1], 0.2)):
        C2 = np.array([c])
        got = short_tiles(X2, C2, bw2, kernel, 2)
        ref = ref_chunk_stats(X2, C2, bw2, kernel)
        assert_array_equal(got.counts, ref.counts)
        assert ref.counts[0] > 0
        assert_allclose(got.weights, ref.weights, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("d", [2, 3, 5])
def test_tiles_wholly_inside_the_ball_are_summed_exactly(d):
    """Sorted dense clusters: many tiles lie wholly within the flat kernel's ball (their
    count and offset sum are used at once), others straddle it; same as the reference."""
    rng = np.random.default_rng(d)
    n = size(4_000, 1_000)
    X = np.vstack([rng.normal(m, 0.3, size=(n, d)) for m in (0.0, 3.0)])
    X = kernels.spatially_sorted(X)
    C = np.vstack([np.zeros(d), np.full(d, 3.0), np.full(d, 1.5), rng.normal(size=(5, d))])
    for bw in (0.4, 1.0, 2.5):
        got = short_tiles(X, C, bw, "flat", d)
        sums, weights, counts, *_ = ref_chunk_stats(X, C, bw, "flat")
        assert_array_equal(got.counts, counts)
        assert_array_equal(got.weights, weights)
        assert_allclose(got.sums, sums, rtol=1e-12, atol=1e-9)
    # a center whose points all sit exactly on it does not move, not even by rounding
    c = np.array([0.1, 1 / 3, 0.7, 2.9, -5.3][:d])
    got = short_tiles(np.tile(c, (1_500, 1)), c[None], 1.0, "flat", d)
    assert got.counts[0] == 1_500 and np.all(got.sums == 0.0)
