"""label_method="mode": every point takes the center its own trajectory reaches."""

from __future__ import annotations

import functools

import dask.array as da
import numpy as np
import pytest
import zarr
from numpy.testing import assert_array_equal
from sklearn.datasets import make_blobs, make_moons
from sklearn.metrics import adjusted_rand_score

from dshift import MeanShift


@functools.cache
def moons() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_moons(n_samples=20_000, noise=0.06, random_state=0)
    X.setflags(write=False)
    return X, y


MOONS = dict(bandwidth=0.3, kernel="gaussian", seeding="bin")


def test_mode_labels_keep_non_convex_clusters_whole():
    X, y = moons()
    nearest = MeanShift(**MOONS).fit(X)
    mode = MeanShift(label_method="mode", **MOONS).fit(X)
    assert_array_equal(mode.cluster_centers_, nearest.cluster_centers_)  # same fit
    assert len(mode.cluster_centers_) == 2
    ari_nearest = adjusted_rand_score(y, nearest.labels_)
    ari_mode = adjusted_rand_score(y, mode.labels_)
    assert ari_mode > 0.85
    assert ari_mode > ari_nearest + 0.3
    assert mode.cluster_sizes_.sum() == len(X)
    assert_array_equal(np.bincount(mode.labels_, minlength=2), mode.cluster_sizes_)


def _brute_force_modes(X, centers, bandwidth, max_iter=300, tol=1e-3):
    """Each point's own flat-kernel trajectory over all points, then its nearest center."""
    P = X.copy()
    for _ in range(max_iter):
        d2 = ((P[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
        inside = d2 <= bandwidth**2
        new = inside @ X / inside.sum(axis=1, keepdims=True)
        shift = np.sqrt(((new - P) ** 2).sum(axis=1)).max()
        P = new
        if shift <= tol * bandwidth:
            break
    return ((P[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)


def test_mode_labels_agree_with_each_points_own_trajectory():
    X, _ = make_moons(n_samples=800, noise=0.05, random_state=1)
    model = MeanShift(
        bandwidth=0.35, kernel="flat", seeding="bin", label_method="mode", grid_fraction=0.05
    ).fit(X)
    truth = _brute_force_modes(X, model.cluster_centers_, 0.35)
    agree = np.mean(truth == model.labels_)
    assert agree > 0.97, agree
    # and they are not simply the nearest-center labels
    nearest = MeanShift(bandwidth=0.35, kernel="flat", seeding="bin").fit(X).labels_
    assert np.mean(truth == nearest) < agree


def test_mode_labels_equal_nearest_labels_on_separated_blobs():
    X, _ = make_blobs(n_samples=20_000, n_features=3, centers=4, cluster_std=0.5, random_state=3)
    params = dict(bandwidth=1.5, kernel="flat", seeding="bin")
    nearest = MeanShift(**params).fit(X)
    mode = MeanShift(label_method="mode", **params).fit(X)
    assert adjusted_rand_score(nearest.labels_, mode.labels_) == 1.0


def test_mode_labels_out_of_core_are_lazy_and_equal(tmp_path, dask_client):
    X, _ = moons()
    path = str(tmp_path / "moons.zarr")
    zarr.create_array(path, shape=X.shape, chunks=(3_000, 2), dtype=X.dtype)[:] = X
    reference = MeanShift(label_method="mode", **MOONS).fit(X)
    for source in (path, da.from_array(X, chunks=(2_500, 2))):
        model = MeanShift(label_method="mode", row_chunks=6_000, persist=False, **MOONS)
        model.fit(source)
        assert isinstance(model.labels_, da.Array) and model.labels_.numblocks[0] > 1
        assert_array_equal(model.labels_.compute(), reference.labels_)
        assert_array_equal(model.cluster_sizes_, reference.cluster_sizes_)


def test_an_isolated_point_is_an_orphan_without_cluster_all():
    X, _ = make_blobs(n_samples=2_000, n_features=2, centers=2, cluster_std=0.4, random_state=0)
    X = np.vstack([X, [[40.0, 40.0]]])
    params = dict(bandwidth=1.0, kernel="flat", seeding="bin", min_bin_freq=5)
    model = MeanShift(label_method="mode", cluster_all=False, **params).fit(X)
    assert model.labels_[-1] == -1
    assert (model.labels_[:-1] >= 0).all()
    clustered = MeanShift(label_method="mode", **params).fit(X)
    assert clustered.labels_[-1] >= 0


def test_mode_labels_with_weights_equal_repeated_points():
    X, _ = moons()
    X = X[:4_000]
    w = np.random.default_rng(5).integers(0, 3, len(X))
    params = dict(label_method="mode", **MOONS)
    weighted = MeanShift(**params).fit(X, sample_weight=w)
    repeated = MeanShift(**params).fit(np.repeat(X, w, axis=0))
    assert_array_equal(np.repeat(weighted.labels_, w), repeated.labels_)


def test_unknown_label_method_is_refused():
    with pytest.raises(ValueError, match=r"label_method must be one of \['nearest', 'mode'\]"):
        MeanShift(bandwidth=1, label_method="basin").fit(np.zeros((3, 2)))
