"""Full fits checked against the dense reference of tests/reference.py: a plain per-seed
loop over the whole (small) data set, with the kernels written from their textbook
definitions, and scikit-learn's post-processing rules."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from dshift import MeanShift
from tests.reference import ref_mean_shift


def stop_iterations(history, n_seeds):
    """0-based iteration at which each seed became inactive, read from history_."""
    out = np.full(n_seeds, -1)
    for step in history:
        newly = (~step.active) & (out < 0)
        out[newly] = step.iteration
    return out


def blobs(n_per=60, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [4.0, 4.0], [0.0, 5.0]])
    X = np.concatenate([rng.normal(m, 0.5, size=(n_per, 2)) for m in means])
    return X.astype(dtype)


def assert_fit_matches_reference(ms, X, seeds, ref):
    last = ms.history_[-1]
    alive = ref["alive"]
    assert_array_equal(last.alive, alive)
    # per-seed final positions, pre-deduplication
    assert_allclose(last.centers[alive], ref["finals"][alive], rtol=1e-9, atol=1e-9)
    # per-seed stop iterations and the overall count
    assert_array_equal(stop_iterations(ms.history_, len(seeds))[alive], ref["n_iter"][alive])
    assert ms.n_iter_ == ref["n_iter"].max()
    assert len(ms.history_) == ms.n_iter_ + 1
    # per-seed trajectories: every step's position of every seed still moving
    for j in np.flatnonzero(alive):
        traj = ref["runs"][j][0]
        for it, pos in enumerate(traj):
            assert_allclose(ms.history_[it].centers[j], pos, rtol=1e-9, atol=1e-9)
    # after deduplication
    assert_allclose(ms.cluster_centers_, ref["centers"], rtol=1e-9, atol=1e-9)
    assert_array_equal(ms.intensity_, ref["intensity"])
    assert_array_equal(ms.labels_, ref["labels"])
    assert_array_equal(ms.cluster_sizes_, np.bincount(ref["labels"], minlength=len(ref["centers"])))


@pytest.mark.parametrize("kernel", ["gaussian", "epanechnikov", "flat"])
def test_fit_with_seeds_matches_dense_reference(kernel):
    X = blobs()
    rng = np.random.default_rng(7)
    seeds = np.concatenate([X[rng.choice(len(X), 10, replace=False)], [[40.0, 40.0]]])
    bw = 1.5
    ref = ref_mean_shift(X, seeds, bw, kernel)
    # row_chunks=15 -> 12 chunks, so the tree reduction has two levels
    ms = MeanShift(kernel=kernel, bandwidth=bw, seeds=seeds, row_chunks=15).fit(X)
    assert ms.seeding_ == "given"
    if kernel != "gaussian":  # the far seed has no point within reach of a compact kernel
        assert not ref["alive"][-1]
    assert len(ref["centers"]) == 3
    assert_fit_matches_reference(ms, X, seeds, ref)


def test_textbook_example_gaussian_matches_dense_reference():
    X = np.array([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]], dtype=np.float64)
    ref = ref_mean_shift(X, X, 2.0, "gaussian")
    ms = MeanShift(kernel="gaussian", bandwidth=2.0, seeding="all").fit(X)
    assert ms.seeding_ == "all"
    assert_array_equal(ms.seeds_, X)
    assert_fit_matches_reference(ms, X, X, ref)
    assert ms.cluster_centers_.dtype == np.float64


def test_textbook_example_default_seeding_is_all_points():
    X = np.array([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]], dtype=np.float64)
    ref = ref_mean_shift(X, X, 2.0, "gaussian", max_iter=20)
    ms = MeanShift(kernel="gaussian", bandwidth=2.0, max_iter=20).fit(X)
    assert ms.seeding_ == "all"
    assert_fit_matches_reference(ms, X, X, ref)


def test_flat_kernel_matches_scikit_learn():
    from sklearn.cluster import MeanShift as SkMeanShift

    X = blobs(n_per=40, seed=8)
    sk = SkMeanShift(bandwidth=1.2).fit(X)
    ms = MeanShift(kernel="flat", bandwidth=1.2, row_chunks=32).fit(X)
    assert_allclose(ms.cluster_centers_, sk.cluster_centers_, rtol=1e-9, atol=1e-12)
    assert_array_equal(ms.labels_, sk.labels_)
    assert ms.n_iter_ == sk.n_iter_


@pytest.mark.parametrize("kernel", ["gaussian", "epanechnikov"])
def test_float32_input_keeps_float32_centers(kernel):
    X32 = blobs(n_per=30, seed=9, dtype=np.float32)
    seeds = X32[::15].astype(np.float64)
    ms = MeanShift(kernel=kernel, bandwidth=1.5, seeds=seeds).fit(X32)
    assert ms.cluster_centers_.dtype == np.float32
    ref = ref_mean_shift(X32, seeds, 1.5, kernel)
    assert_allclose(ms.cluster_centers_, ref["centers"].astype(np.float32), rtol=1e-6)
    assert_array_equal(ms.labels_, ref["labels"])
