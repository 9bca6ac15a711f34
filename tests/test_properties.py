"""Property tests: the result does not depend on how X is chunked, and random data agrees
with scikit-learn.

Each iteration is a map/reduce over the row chunks, so the chunking may only change the
rounding of the sums: for any row chunking (1-row chunks, uneven chunks, one chunk) the
centers agree to 1e-9, and the labels, ``n_iter_``, intensities and sizes are identical to
the single-chunk fit. Hypothesis runs on dask's threaded scheduler (no function-scoped
fixtures inside ``@given``).
"""

from __future__ import annotations

import functools

import dask.array as da
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import cluster as skc
from sklearn.datasets import make_blobs

import dshift

N = 48
BANDWIDTH = 1.0


@functools.cache
def blobs() -> np.ndarray:
    X, _ = make_blobs(
        n_samples=N, n_features=2, centers=3, cluster_std=0.6, center_box=(-4, 4), random_state=5
    )
    X = np.ascontiguousarray(X)
    X.setflags(write=False)
    return X


def gaussian_seeds() -> np.ndarray:
    X = blobs()
    return np.vstack([X[::10], [[0.0, 0.0]]])


FITS = {
    "flat-all": {"kernel": "flat", "seeding": "all"},
    "flat-bin": {"kernel": "flat", "seeding": "bin"},
    "gaussian-seeds": {"kernel": "gaussian", "max_iter": 40, "seeds": "gaussian"},
}


def fit(X, which: str, **extra) -> dshift.MeanShift:
    params = dict(FITS[which], **extra)
    if params.get("seeds") == "gaussian":
        params["seeds"] = gaussian_seeds()
    return dshift.MeanShift(bandwidth=BANDWIDTH, **params).fit(X)


@functools.cache
def reference(which: str) -> dshift.MeanShift:
    """The single-chunk fit."""
    ref = fit(blobs(), which, row_chunks=N)
    assert ref.labels_.shape == (N,)
    return ref


def labels_of(model: dshift.MeanShift) -> np.ndarray:
    labels = model.labels_
    return labels.compute() if isinstance(labels, da.Array) else np.asarray(labels)


def assert_same_result(got: dshift.MeanShift, ref: dshift.MeanShift) -> None:
    assert got.cluster_centers_.shape == ref.cluster_centers_.shape
    assert_allclose(got.cluster_centers_, ref.cluster_centers_, atol=1e-9, rtol=0)
    assert_array_equal(labels_of(got), labels_of(ref))
    assert got.n_iter_ == ref.n_iter_
    assert_array_equal(got.intensity_, ref.intensity_)
    assert_array_equal(got.cluster_sizes_, ref.cluster_sizes_)
    assert got.seeding_ == ref.seeding_
    assert_array_equal(np.unique(got.seeds_, axis=0), np.unique(ref.seeds_, axis=0))


@st.composite
def row_chunks(draw, n: int = N) -> tuple[int, ...]:
    """A partition of n rows into chunks: any sizes, from n 1-row chunks to one chunk."""
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=n - 1)))
    bounds = [0, *cuts, n]
    return tuple(b - a for a, b in zip(bounds[:-1], bounds[1:]))


@pytest.mark.parametrize("which", list(FITS))
@settings(max_examples=8, deadline=None)
@given(chunks=row_chunks())
@example(chunks=(1,) * N)
@example(chunks=(N,))
@example(chunks=(1, N - 2, 1))
@example(chunks=(N - 1, 1))
@example(chunks=(5, 17, 1, 1, 24))
def test_dask_chunking_does_not_change_result(which, chunks):
    assert sum(chunks) == N
    X = da.from_array(blobs(), chunks=(chunks, 2))
    assert X.chunks[0] == chunks
    assert_same_result(fit(X, which), reference(which))


@pytest.mark.parametrize("which", list(FITS))
@settings(max_examples=6, deadline=None)
@given(rows=st.integers(1, N + 5))
@example(rows=1)
@example(rows=N - 1)
def test_numpy_row_chunks_do_not_change_result(which, rows):
    assert_same_result(fit(blobs(), which, row_chunks=rows), reference(which))


def test_references_are_nontrivial():
    """The fits compared above have several clusters and take several iterations."""
    for which in FITS:
        ref = reference(which)
        assert len(ref.cluster_centers_) >= 2
        assert ref.n_iter_ >= 3
        assert len(np.unique(labels_of(ref))) >= 2


# -- random data against scikit-learn --------------------------------------------------------


@st.composite
def datasets(draw) -> np.ndarray:
    """Small random point clouds (12+ points so scikit-learn's neighbour search is exact)."""
    n = draw(st.integers(12, 60))
    d = draw(st.integers(1, 3))
    n_blobs = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-5, 5, size=(n_blobs, d))
    X = centers[rng.integers(0, n_blobs, size=n)] + rng.normal(scale=0.7, size=(n, d))
    return X


@settings(max_examples=15, deadline=None)
@given(
    X=datasets(),
    quantile=st.sampled_from([0.2, 0.3, 0.5]),  # k >= 2 neighbours: bandwidth > 0
    bin_seeding=st.booleans(),
    cluster_all=st.booleans(),
    chunk_rows=st.integers(1, 60),
)
def test_flat_kernel_matches_sklearn_on_random_data(
    X, quantile, bin_seeding, cluster_all, chunk_rows
):
    bandwidth = skc.estimate_bandwidth(X, quantile=quantile)
    assert_allclose(dshift.estimate_bandwidth(X, quantile=quantile), bandwidth, rtol=1e-12)
    sk = skc.MeanShift(bandwidth=bandwidth, bin_seeding=bin_seeding, cluster_all=cluster_all)
    ds = dshift.MeanShift(
        bandwidth=bandwidth,
        kernel="flat",
        seeding="bin" if bin_seeding else "all",
        cluster_all=cluster_all,
        row_chunks=chunk_rows,
    )
    n_cells = len(np.unique(np.round(X / bandwidth), axis=0))
    binning_fails = bin_seeding and n_cells == len(X)
    if binning_fails:  # every point in its own cell: both warn and seed from every point
        with pytest.warns(UserWarning, match="Binning data failed"):
            sk.fit(X)
        with pytest.warns(UserWarning, match="Binning data failed"):
            ds.fit(X)
    else:
        sk.fit(X)
        ds.fit(X)
    assert ds.cluster_centers_.shape == sk.cluster_centers_.shape
    assert_allclose(ds.cluster_centers_, sk.cluster_centers_, atol=1e-3 * bandwidth, rtol=0)
    assert_array_equal(ds.labels_, sk.labels_)
    assert ds.n_iter_ == sk.n_iter_
