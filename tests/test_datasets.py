import numpy as np
import pytest
import zarr

from dshift import datasets


def test_blobs_chunks_are_deterministic_and_independent_of_chunking():
    X1, y1, c1 = datasets.blobs(1000, n_features=3, centers=4, chunk_rows=250, random_state=3)
    X2, y2, c2 = datasets.blobs(1000, n_features=3, centers=4, chunk_rows=250, random_state=3)
    np.testing.assert_array_equal(X1.compute(), X2.compute())
    np.testing.assert_array_equal(y1.compute(), y2.compute())
    np.testing.assert_array_equal(c1, c2)
    X3, _, _ = datasets.blobs(1000, n_features=3, centers=4, chunk_rows=250, random_state=4)
    assert not np.array_equal(X1.compute(), X3.compute())


def test_blobs_points_sit_around_their_true_centers():
    X, y, c = datasets.blobs(20_000, n_features=2, centers=3, cluster_std=0.5, chunk_rows=7000)
    X, y = X.compute(), y.compute()
    assert set(np.unique(y)) == {0, 1, 2}
    for k in range(3):
        np.testing.assert_allclose(X[y == k].mean(axis=0), c[k], atol=0.05)
        np.testing.assert_allclose(X[y == k].std(axis=0), 0.5, atol=0.05)


def test_make_blobs_writes_group_with_aligned_chunks(tmp_path, scheduler):
    out = tmp_path / "blobs.zarr"
    path = datasets.make_blobs(out, 5000, n_features=3, centers=4, chunk_rows=1200)
    X = zarr.open_array(path, mode="r")
    y = zarr.open_array(str(out / "y"), mode="r")
    assert X.shape == (5000, 3) and X.chunks == (1200, 3) and X.dtype == np.float32
    assert y.shape == (5000,) and y.chunks == (1200,) and y.dtype == np.int32
    lazy, truth, centers = datasets.blobs(5000, n_features=3, centers=4, chunk_rows=1200)
    np.testing.assert_array_equal(X[:], lazy.compute())
    np.testing.assert_array_equal(y[:], truth.compute())
    group = zarr.open_group(str(out), mode="r")
    assert group.attrs["n_samples"] == 5000
    np.testing.assert_array_equal(group["centers"][:], centers)


def test_make_blobs_refuses_to_overwrite_without_flag(tmp_path):
    out = tmp_path / "blobs.zarr"
    datasets.make_blobs(out, 100, chunk_rows=50, random_state=1)
    before = zarr.open_array(str(out / "X"))[:]
    with pytest.raises(FileExistsError, match="overwrite"):
        datasets.make_blobs(out, 100, chunk_rows=50, random_state=2)
    np.testing.assert_array_equal(zarr.open_array(str(out / "X"))[:], before)
    datasets.make_blobs(out, 100, chunk_rows=50, random_state=2, overwrite=True)
    assert not np.array_equal(zarr.open_array(str(out / "X"))[:], before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blobs.zarr"]


def test_make_blobs_rejects_bad_sizes(tmp_path):
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        datasets.make_blobs(tmp_path / "x.zarr", 0)
    assert not (tmp_path / "x.zarr").exists()
