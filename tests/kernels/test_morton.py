"""kernels/_morton.py: rows in spatial (Z-order) order."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from dshift import kernels
from dshift._columns import Columns
from dshift.kernels._morton import radix_argsort
from tests.reference import ref_morton_codes, size


@pytest.mark.parametrize("n_bits", [3, 30, 63])
def test_radix_argsort_is_a_stable_argsort(n_bits):
    rng = np.random.default_rng(n_bits)
    codes = rng.integers(0, 2**n_bits, size=size(5_000, 2_000), dtype=np.uint64)
    codes[::7] = codes[0]  # many ties: their order must be kept
    order = radix_argsort(codes, n_bits)
    assert_array_equal(order, np.argsort(codes, kind="stable"))


def test_morton_order_sorts_rows_by_their_interleaved_codes():
    rng = np.random.default_rng(8)
    X = rng.uniform(-3, 7, size=(size(3_000, 1_000), 3)).astype(np.float32)
    order = kernels.morton_order(X)
    assert sorted(order.tolist()) == list(range(len(X)))
    assert_array_equal(order, np.argsort(ref_morton_codes(X, 10), kind="stable"))


@pytest.mark.parametrize(("d", "bits"), [(1, 10), (6, 10), (7, 9), (24, 2), (63, 1)])
def test_morton_order_in_32_and_64_bit_codes(d, bits):
    # up to 32 bits (d <= 3, or 7 features of 9 bits: 63) the codes are uint32
    rng = np.random.default_rng(d)
    X = rng.normal(size=(size(2_000, 700), d))
    X[::5] = X[1]  # ties keep their order
    assert_array_equal(
        kernels.morton_order(X), np.argsort(ref_morton_codes(X, bits), kind="stable")
    )


def test_morton_order_of_more_than_63_features_follows_the_first_63():
    # one bit each: bit k of the 63-bit code is feature k's (no shift past the code's width)
    rng = np.random.default_rng(70)
    X = rng.normal(size=(size(2_000, 700), 70))
    expected = np.argsort(ref_morton_codes(X[:, :63], 1), kind="stable")
    assert_array_equal(kernels.morton_order(X), expected)


def test_spatially_sorted_is_a_row_permutation_that_keeps_the_stats():
    rng = np.random.default_rng(13)
    X = rng.uniform(-5, 5, size=(4096, 2))
    S = kernels.spatially_sorted(X)
    assert S.shape == X.shape and S.flags.c_contiguous
    assert_array_equal(S[np.lexsort(S.T[::-1])], X[np.lexsort(X.T[::-1])])  # same rows
    C = rng.uniform(-5, 5, size=(6, 2))
    for kernel in kernels.KERNELS.values():
        p = kernels.plan(C, 1.0, kernel, Columns(2))
        a = kernels.chunk_stats(X, p)
        b = kernels.chunk_stats(S, p)
        assert_array_equal(a.counts, b.counts)
        assert_allclose(a.sums, b.sums, rtol=1e-10)
        assert_allclose(a.weights, b.weights, rtol=1e-10)

    # consecutive rows are close in space: 512-row tiles have small bounding boxes
    def mean_tile_area(A):
        tiles = A.reshape(-1, 512, 2)
        return np.prod(tiles.max(axis=1) - tiles.min(axis=1), axis=1).mean()

    assert mean_tile_area(S) < 0.35 * mean_tile_area(X)  # ~0.2 measured; random ~1
    # blocks holding non-finite values are returned unchanged (the fit raises anyway)
    Y = X.copy()
    Y[7, 1] = np.nan
    assert_array_equal(kernels.spatially_sorted(Y), Y)


def test_spatially_sorted_moves_the_extra_columns_with_their_rows():
    rng = np.random.default_rng(9)
    X = np.column_stack([rng.uniform(size=(1_000, 2)), np.arange(1_000.0)])
    S = kernels.spatially_sorted(X, 2)
    assert_array_equal(S[:, 2], kernels.morton_order(X[:, :2]))
    assert_array_equal(S, X[S[:, 2].astype(int)])
