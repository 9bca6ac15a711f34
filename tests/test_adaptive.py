"""Adaptive (per-point) bandwidths: variable-bandwidth mean shift."""

from __future__ import annotations

import functools

import dask.array as da
import numpy as np
import pytest
import zarr
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.metrics import adjusted_rand_score

from dshift import MeanShift, kernels
from dshift._columns import Columns
from tests.reference import packed, ref_chunk_stats, ref_kth


@functools.cache
def dense_and_sparse() -> tuple[np.ndarray, np.ndarray]:
    """Three tight clusters close together and one wide cluster far away."""
    rng = np.random.default_rng(0)
    parts = [rng.normal(c, 0.15, size=(4_000, 2)) for c in ([0, 0], [1.2, 0], [0, 1.2])]
    parts.append(rng.normal([8, 8], 1.5, size=(1_500, 2)))
    X = np.vstack(parts)
    y = np.repeat(np.arange(4), [4_000, 4_000, 4_000, 1_500])
    X.setflags(write=False)
    return X, y


@pytest.mark.parametrize("kernel", ["flat", "gaussian", "epanechnikov"])
def test_adaptive_chunk_stats_match_a_dense_reference(kernel):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1_500, 3))
    w = rng.integers(0, 3, len(X)).astype(float)
    h = rng.uniform(0.3, 1.5, len(X))
    C = rng.normal(size=(7, 3))
    p = kernels.plan(C, 0.0, kernels.KERNELS[kernel], Columns(3, weighted=True, adaptive=True))
    got = kernels.chunk_stats(packed(X, w, h), p)
    sums, weights, counts, _, hsums = ref_chunk_stats(X, C, 0.0, kernel, w, h)
    assert_allclose(got.sums, sums, rtol=1e-10, atol=1e-10)
    assert_allclose(got.weights, weights, rtol=1e-10)
    assert_allclose(got.counts, counts)
    assert_allclose(got.bandwidths, hsums, rtol=1e-10)


def test_kth_distances_to_a_sample():
    rng = np.random.default_rng(2)
    X, S = rng.normal(size=(300, 2)), rng.normal(size=(50, 2))
    want = ref_kth(X, S, 5)
    assert_allclose(kernels.kth_distances(X, S, 5), want)
    assert (kernels.kth_distances(X, S, 5, floor=10.0) == 10.0).all()


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_constant_point_bandwidths_equal_the_fixed_bandwidth(kernel):
    X, _ = dense_and_sparse()
    fixed = MeanShift(bandwidth=0.8, kernel=kernel, seeding="bin").fit(X)
    adaptive = MeanShift(kernel=kernel, seeding="bin").fit(X, point_bandwidth=np.full(len(X), 0.8))
    if kernel == "flat":
        assert_allclose(adaptive.cluster_centers_, fixed.cluster_centers_, rtol=0, atol=1e-9)
        assert adaptive.n_iter_ == fixed.n_iter_
    else:  # per-point bandwidths take no Gaussian shortcuts: the same modes, in more steps
        atol = 10 * 1e-3 * 0.8  # within the convergence test's resolution
        assert_allclose(adaptive.cluster_centers_, fixed.cluster_centers_, rtol=0, atol=atol)
        assert adaptive.n_iter_ > fixed.n_iter_
    assert_array_equal(adaptive.labels_, fixed.labels_)
    assert_allclose(adaptive.center_bandwidths_, 0.8)
    assert adaptive.bandwidth_ == pytest.approx(0.8)


def test_adaptive_bandwidth_finds_dense_and_sparse_clusters(scheduler):
    X, y = dense_and_sparse()
    adaptive = MeanShift(adaptive_k=100, kernel="gaussian", seeding="bin").fit(X)
    assert len(adaptive.cluster_centers_) == 4
    assert adjusted_rand_score(y, adaptive.labels_) > 0.99
    # the sparse cluster's center has a much larger local bandwidth than the dense ones
    assert adaptive.center_bandwidths_.max() > 5 * np.median(adaptive.center_bandwidths_)
    # any one fixed bandwidth merges the dense clusters or shatters the sparse one
    for bw in (0.3, 0.6, 1.0, 2.0):
        fixed = MeanShift(bandwidth=bw, kernel="gaussian", seeding="bin").fit(X)
        shattered = len(fixed.cluster_centers_) > 6
        merged = adjusted_rand_score(y, fixed.labels_) < 0.5
        assert shattered or merged, bw


def test_point_bandwidth_from_dask_and_zarr(tmp_path):
    X, _ = dense_and_sparse()
    h = np.where(np.arange(len(X)) < 12_000, 0.2, 1.5)
    path = str(tmp_path / "h.zarr")
    zarr.create_array(path, shape=h.shape, chunks=(1_000,), dtype="f8")[:] = h
    params = dict(kernel="gaussian", seeding="bin", row_chunks=2_000)
    reference = MeanShift(**params).fit(X, point_bandwidth=h)
    Xd = da.from_array(X, chunks=(3_000, 2))
    for given in (da.from_array(h, chunks=777), path):
        model = MeanShift(**params).fit(Xd, point_bandwidth=given)
        assert_allclose(model.cluster_centers_, reference.cluster_centers_, atol=1e-9)
        assert_array_equal(model.labels_.compute(), reference.labels_)


def test_orphans_use_each_centers_own_bandwidth():
    X, _ = dense_and_sparse()
    X = np.vstack([X, [[0.6, 0.6]], [[8.0, 9.0]]])  # between the dense ones; in the sparse one
    model = MeanShift(adaptive_k=100, kernel="gaussian", seeding="bin", cluster_all=False).fit(X)
    assert model.labels_[-2] == -1  # farther than the dense centers' small radii
    assert model.labels_[-1] >= 0  # within the sparse center's large radius


def test_resume_with_adaptive_bandwidths(tmp_path):
    X, _ = dense_and_sparse()
    params = dict(adaptive_k=100, kernel="gaussian", seeding="bin")
    reference = MeanShift(**params).fit(X)
    ckpt = tmp_path / "fit.ckpt"
    fit = MeanShift(checkpoint=ckpt, **params).iter_fit(X)
    next(fit), next(fit)
    fit.close()
    resumed = MeanShift(checkpoint=ckpt, **params).fit(X)
    assert resumed.resumed_from_ == 2
    assert_array_equal(resumed.cluster_centers_, reference.cluster_centers_)
    assert_array_equal(resumed.center_bandwidths_, reference.center_bandwidths_)


@pytest.mark.parametrize(
    "params, given, error, match",
    [
        (dict(adaptive_k=0), None, ValueError, "adaptive_k must be an integer >= 2"),
        (dict(adaptive_k=1), None, ValueError, "the 1st neighbour is the point"),
        (dict(adaptive_k=5), lambda n: np.ones(n), ValueError, "either adaptive_k or point_"),
        (dict(adaptive_k=10, bandwidth=1.0), None, ValueError, "bandwidth must be None"),
        (dict(adaptive_k=10, algorithm="grid"), None, ValueError, "algorithm='exact' and"),
        (dict(adaptive_k=10, label_method="mode"), None, ValueError, "label_method='nearest'"),
        (dict(adaptive_k=20_000), None, ValueError, "exceeds the 5000 points"),
        (dict(), lambda n: np.zeros(n), ValueError, "contains 13500 non-positive"),
        (dict(), lambda n: np.r_[np.nan, np.ones(n - 1)], ValueError, "1 non-positive, NaN"),
        (dict(), lambda n: np.ones(n + 1), ValueError, r"point_bandwidth must have shape"),
    ],
    ids=[
        "k0",
        "k1",
        "both",
        "with-bandwidth",
        "grid",
        "mode",
        "k-too-big",
        "zero",
        "nan",
        "length",
    ],
)
def test_bad_adaptive_settings_are_refused(params, given, error, match):
    X, _ = dense_and_sparse()
    with pytest.raises(error, match=match):
        MeanShift(**params).fit(X, point_bandwidth=None if given is None else given(len(X)))


def test_cli_adaptive_and_mode_options(tmp_path):
    from click.testing import CliRunner

    from dshift.cli import main

    X, y = dense_and_sparse()
    data = str(tmp_path / "X.zarr")
    zarr.create_array(data, shape=X.shape, chunks=(3_000, 2), dtype="f8")[:] = X
    base = ["fit", data, "--kernel", "gaussian", "--seeding", "bin", "--workers", "1"]
    out = tmp_path / "adaptive.zarr"
    result = CliRunner().invoke(main, [*base[:2], str(out), *base[2:], "--adaptive-k", "100"])
    assert result.exit_code == 0, result.output
    labels = zarr.open_group(str(out), mode="r")["labels"][:]
    assert adjusted_rand_score(y, labels) > 0.99

    out2 = tmp_path / "mode.zarr"
    args = [*base[:2], str(out2), *base[2:], "--bandwidth", "0.5", "--label-method", "mode"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    reference = MeanShift(bandwidth=0.5, kernel="gaussian", seeding="bin", label_method="mode")
    assert_array_equal(zarr.open_group(str(out2), mode="r")["labels"][:], reference.fit(X).labels_)

    bad = CliRunner().invoke(
        main,
        [*base[:2], str(tmp_path / "x.zarr"), *base[2:], "--adaptive-k", "5", "--bandwidth", "1"],
    )
    assert bad.exit_code == 1 and "Error: bandwidth must be None" in bad.output
    assert not (tmp_path / "x.zarr").exists()


@pytest.mark.parametrize("scale", [1e-3, 30.0])
def test_adaptive_weights_stay_finite_in_high_dimensions(scale):
    """(h_ref / h_i)^d is computed in log space: no overflow to inf or 0 with d = 200."""
    rng = np.random.default_rng(4)
    X = np.vstack([rng.normal(0, scale, (300, 200)), rng.normal(50 * scale, scale, (300, 200))])
    h = np.r_[np.full(300, 20 * scale), np.full(300, 25 * scale)]
    model = MeanShift(kernel="gaussian", seeding="bin", max_iter=50).fit(X, point_bandwidth=h)
    assert np.isfinite(model.cluster_centers_).all()
    assert len(model.cluster_centers_) == 2
    assert adjusted_rand_score(np.repeat([0, 1], 300), model.labels_) == 1.0
