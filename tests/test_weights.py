"""sample_weight: a point of weight w counts as w points; weight 0 is as if the point were
absent; bad weights are refused before anything is read."""

from __future__ import annotations

import functools

import dask.array as da
import numpy as np
import pytest
import zarr
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_blobs

from dshift import MeanShift


@functools.cache
def data() -> tuple[np.ndarray, np.ndarray]:
    X, _ = make_blobs(n_samples=2_500, n_features=2, centers=4, random_state=0)
    w = np.random.default_rng(1).integers(0, 4, len(X))
    X.setflags(write=False)
    w.setflags(write=False)
    return X, w


def _same(a: MeanShift, b: MeanShift) -> None:
    assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=0, atol=1e-12)
    assert a.n_iter_ == b.n_iter_
    assert_allclose(a.intensity_, b.intensity_)
    assert_allclose(a.cluster_sizes_, b.cluster_sizes_)


@pytest.mark.parametrize(
    "kernel, seeding",
    [(k, s) for k in ["flat", "gaussian", "epanechnikov"] for s in ["bin", "all"]],
)
def test_integer_weights_equal_repeated_points(kernel, seeding):
    _check_integer_weights(kernel, seeding)


def test_integer_weights_equal_repeated_points_on_the_cluster(dask_client):
    _check_integer_weights("flat", "bin")


def _check_integer_weights(kernel, seeding):
    X, w = data()
    params = dict(bandwidth=1.0, kernel=kernel, seeding=seeding, row_chunks=600)
    weighted = MeanShift(**params).fit(X, sample_weight=w)
    repeated = MeanShift(**params).fit(np.repeat(X, w, axis=0))
    _same(weighted, repeated)
    # every copy of a point gets the label the weighted fit gives the point
    assert_array_equal(np.repeat(weighted.labels_, w), repeated.labels_)
    assert weighted.cluster_sizes_.sum() == w.sum()


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_zero_weights_equal_removed_points(kernel):
    X, w = data()
    keep = w > 0
    params = dict(bandwidth=1.0, kernel=kernel, seeding="all")
    weighted = MeanShift(**params).fit(X, sample_weight=keep.astype(float))
    removed = MeanShift(**params).fit(X[keep])
    _same(weighted, removed)
    assert_array_equal(weighted.labels_[keep], removed.labels_)
    assert len(weighted.labels_) == len(X)  # zero-weight points are labelled too


def test_unit_weights_change_nothing():
    X, _ = data()
    params = dict(bandwidth=1.0, kernel="flat", seeding="bin")
    plain = MeanShift(**params).fit(X)
    ones = MeanShift(**params).fit(X, sample_weight=np.ones(len(X)))
    assert_array_equal(plain.cluster_centers_, ones.cluster_centers_)
    assert_array_equal(plain.labels_, ones.labels_)
    assert_array_equal(plain.intensity_, ones.intensity_)


def test_fractional_weights_move_the_mean():
    """Two points; the center sits at their weighted mean."""
    X = np.array([[0.0], [1.0]])
    model = MeanShift(bandwidth=5, kernel="flat", seeds=[[0.5]]).fit(X, sample_weight=[3, 1])
    assert_allclose(model.cluster_centers_, [[0.25]])
    assert_allclose(model.intensity_, [4.0])


def test_dask_and_zarr_weights_equal_numpy_weights(scheduler, tmp_path):
    X, w = data()
    path = str(tmp_path / "w.zarr")
    zarr.create_array(path, shape=w.shape, chunks=(700,), dtype="f8")[:] = w
    params = dict(bandwidth=1.0, kernel="flat", seeding="bin", row_chunks=500)
    reference = MeanShift(**params).fit(X, sample_weight=w)
    Xd = da.from_array(X, chunks=(900, 2))
    for weights in (da.from_array(w, chunks=333), path, zarr.open_array(path, mode="r")):
        model = MeanShift(**params).fit(Xd, sample_weight=weights)
        _same(model, reference)
        assert_array_equal(model.labels_.compute(), reference.labels_)


@pytest.mark.parametrize(
    "weights, error, match",
    [
        (lambda n: -np.ones(n), ValueError, r"contains \d+ negative, NaN or infinite"),
        (lambda n: np.r_[np.nan, np.ones(n - 1)], ValueError, "contains 1 negative, NaN"),
        (lambda n: np.r_[np.inf, np.ones(n - 1)], ValueError, "contains 1 negative, NaN"),
        (lambda n: da.from_array(np.r_[-1.0, np.ones(n - 1)]), ValueError, "contains 1 neg"),
        (lambda n: np.zeros(n), ValueError, "is zero for every point"),
        (lambda n: np.ones(n - 1), ValueError, r"must have shape \(2500,\), one value per"),
        (lambda n: np.ones((n, 1)), ValueError, r"got shape \(2500, 1\)"),
        (lambda n: np.ones(n, dtype=complex), TypeError, "must hold real numbers"),
        (lambda n: np.array(["a"] * n), TypeError, "must hold real numbers"),
    ],
    ids=["negative", "nan", "inf", "dask-negative", "all-zero", "short", "2-d", "complex", "str"],
)
def test_bad_weights_are_refused_before_x_is_read(weights, error, match):
    X, _ = data()

    def unreadable(block):
        raise AssertionError("X was read before the weights were checked")

    Xd = da.from_array(X, chunks=1000).map_blocks(unreadable, meta=np.empty((0, 0)))
    with pytest.raises(error, match=match):
        MeanShift(bandwidth=1.0).fit(Xd, sample_weight=weights(len(X)))


def test_checkpoint_of_other_weights_is_refused(tmp_path):
    X, w = data()
    ckpt = tmp_path / "fit.ckpt"
    MeanShift(bandwidth=1.0, kernel="flat", checkpoint=ckpt).fit(X, sample_weight=w)
    other = w.copy()
    other[7] += 1
    with pytest.raises(ValueError, match="other data"):
        MeanShift(bandwidth=1.0, kernel="flat", checkpoint=ckpt).fit(X, sample_weight=other)


def test_cli_fit_with_sample_weight(tmp_path):
    from click.testing import CliRunner

    from dshift.cli import main

    X, w = data()
    zarr.create_array(str(tmp_path / "X.zarr"), shape=X.shape, chunks=(500, 2), dtype="f8")[:] = X
    zarr.create_array(str(tmp_path / "w.zarr"), shape=w.shape, chunks=(500,), dtype="i8")[:] = w
    out = tmp_path / "out.zarr"
    args = ["fit", str(tmp_path / "X.zarr"), str(out), "--kernel", "flat", "--bandwidth", "1"]
    result = CliRunner().invoke(
        main, [*args, "--sample-weight", str(tmp_path / "w.zarr"), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    reference = MeanShift(bandwidth=1.0, kernel="flat").fit(X, sample_weight=w)
    got = zarr.open_group(str(out), mode="r")
    assert_allclose(got["centers"][:], reference.cluster_centers_, atol=1e-12)
    assert_array_equal(got["labels"][:], reference.labels_)
    assert_allclose(got["cluster_sizes"][:], reference.cluster_sizes_)

    args[2] = str(tmp_path / "out2.zarr")
    bad = CliRunner().invoke(main, [*args, "--sample-weight", str(tmp_path / "X.zarr")])
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines()[-1].startswith("Error: sample_weight must have shape")
    assert not (tmp_path / "out2.zarr").exists()


def test_float32_points_keep_weights_exact():
    """Weights are not squeezed into X's float32: 2**24 + 1 stays odd, 1e39 stays finite."""
    X = np.array([[0.0], [1.0]], dtype=np.float32)
    seeds = [[0.5]]
    exact = MeanShift(bandwidth=5, kernel="flat", seeds=seeds).fit(X, sample_weight=[2**24 + 1, 1])
    assert exact.cluster_centers_.dtype == np.float32
    assert exact.intensity_[0] == 2**24 + 2
    huge = MeanShift(bandwidth=5, kernel="flat", seeds=seeds).fit(X, sample_weight=[1e39, 1e39])
    assert_allclose(huge.cluster_centers_, [[0.5]])
