"""Parity with scikit-learn, the oracle: ``kernel="flat"`` is scikit-learn's mean shift.

For the same data and seeds, dshift must give what ``sklearn.cluster.MeanShift`` gives:
the same number of centers, centers equal to floating point (checked within
``1e-3 * bandwidth``), identical labels with the same numbering (centers ordered by
intensity, ties by the center tuple), identical ``n_iter_``, the same errors; and
``get_bin_seeds`` / ``estimate_bandwidth`` / ``mean_shift`` must match their scikit-learn
namesakes. The results must not depend on the chunking of X nor on the scheduler (threads
or the multi-process cluster).

scikit-learn's fits are cached per case (its per-seed Python loop is the slow part), so a
case compared under several chunkings or schedulers runs scikit-learn once.
"""

from __future__ import annotations

import functools
import math

import dask.array as da
import numpy as np
import pytest
from distributed import get_task_stream
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import cluster as skc
from sklearn.datasets import load_digits, load_iris, load_wine, make_blobs

import dshift

# -- data -------------------------------------------------------------------------------------


def _blobs(n: int, d: int, centers: int, seed: int, std: float = 1.0) -> np.ndarray:
    X, _ = make_blobs(
        n_samples=n, n_features=d, centers=centers, cluster_std=std, random_state=seed
    )
    return X


def _standardized(X: np.ndarray) -> np.ndarray:
    return (X - X.mean(axis=0)) / X.std(axis=0)


def _grid() -> np.ndarray:
    """Integer lattice (7 x 5) plus a shifted copy: many pairs exactly 1, sqrt2, 2 apart."""
    g = np.array([[i, j] for i in range(7) for j in range(5)], dtype=np.float64)
    return np.vstack([g, g + [20.0, 3.0]])


def _line_ties() -> np.ndarray:
    """1-d integers 0..11, each three times: duplicates and neighbours exactly 1 apart."""
    return np.repeat(np.arange(12.0), 3)[:, None]


def _duplicates() -> np.ndarray:
    rng = np.random.default_rng(7)
    base = rng.normal(scale=3.0, size=(25, 2))
    counts = rng.integers(1, 8, size=25)
    return np.repeat(base, counts, axis=0)


def _gauss_1d() -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.concatenate([rng.normal(0.0, 1.0, 90), rng.normal(6.0, 0.7, 60)])[:, None]


def _zero_bw() -> np.ndarray:
    """3 points with 10 exact copies each: the 9th neighbour (quantile 0.3 of 30) is a
    copy, so the estimated bandwidth is 0.

    Values are exactly representable and so are their means (the mean of 10 copies of an
    integer is exact in any summation order): the zero-bandwidth fixed points are exact.
    """
    return np.repeat(np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 5.0]]), 10, axis=0)


DATASETS = {
    "blobs2d": lambda: _blobs(200, 2, 3, 0, 0.8),
    "blobs3d": lambda: _blobs(180, 3, 4, 1),
    "blobs8d": lambda: _blobs(150, 8, 3, 2),
    "blobs2d_big": lambda: _blobs(1000, 2, 5, 4, 0.9),
    "blobs3d_big": lambda: _blobs(800, 3, 4, 5),
    "iris": lambda: load_iris().data,
    "wine_std": lambda: _standardized(load_wine().data),
    "digits": lambda: load_digits().data[:240],
    "grid": _grid,
    "grid_int": lambda: _grid().astype(np.int64),
    "line_ties_1d": _line_ties,
    "duplicates": _duplicates,
    "gauss_1d": _gauss_1d,
    "zero_bw": _zero_bw,
    "blobs2d_head30": lambda: _blobs(200, 2, 3, 0, 0.8)[:30],
}


@functools.cache
def data(name: str) -> np.ndarray:
    """The dataset, read-only (so no implementation can modify the shared copy)."""
    X = np.ascontiguousarray(DATASETS[name]())
    X.setflags(write=False)
    return X


def far_and_near_seeds(X: np.ndarray) -> np.ndarray:
    """Every 9th point, a point off the data, and two seeds far from everything."""
    lo, hi = X.min(axis=0), X.max(axis=0)
    far = np.vstack([hi + 50 * (hi - lo + 1), lo - 80 * (hi - lo + 1)])
    return np.vstack([X[::9], X[:1] + 0.3, far])


def every_6th_point(X: np.ndarray) -> np.ndarray:
    return X[::6]


SEEDS = {"far_and_near": far_and_near_seeds, "every_6th": every_6th_point}


# -- fitting both ----------------------------------------------------------------------------


@functools.cache
def sk_fit(
    name: str,
    bandwidth: float | None,
    *,
    bin_seeding: bool = False,
    min_bin_freq: int = 1,
    cluster_all: bool = True,
    max_iter: int = 300,
    seeds: str | None = None,
    dtype: str | None = None,
) -> skc.MeanShift:
    """scikit-learn's fit of a named case (cached)."""
    X = data(name) if dtype is None else data(name).astype(dtype)
    return skc.MeanShift(
        bandwidth=bandwidth,
        seeds=None if seeds is None else SEEDS[seeds](data(name)),
        bin_seeding=bin_seeding,
        min_bin_freq=min_bin_freq,
        cluster_all=cluster_all,
        max_iter=max_iter,
    ).fit(X)


def ds_fit(
    X,
    bandwidth: float | None,
    *,
    bin_seeding: bool = False,
    seeds=None,
    **params,
) -> dshift.MeanShift:
    """dshift's flat-kernel fit with the seeding that matches scikit-learn's options."""
    seeding = "bin" if bin_seeding else "all"
    return dshift.MeanShift(
        bandwidth=bandwidth, kernel="flat", seeding=seeding, seeds=seeds, **params
    ).fit(X)


def labels_of(model: dshift.MeanShift) -> np.ndarray:
    labels = model.labels_
    if isinstance(labels, da.Array):
        labels = labels.compute()
    assert isinstance(labels, np.ndarray)
    return labels


def assert_parity(sk: skc.MeanShift, ds: dshift.MeanShift) -> None:
    """Same centers (to 1e-3 bandwidth), same labels and numbering, same n_iter_."""
    bw = ds.bandwidth_
    atol = 1e-3 * bw if bw > 0 else 1e-12 * max(1.0, float(np.abs(sk.cluster_centers_).max()))
    assert ds.cluster_centers_.shape == sk.cluster_centers_.shape, (
        f"{len(ds.cluster_centers_)} centers, scikit-learn has {len(sk.cluster_centers_)}"
    )
    assert_allclose(ds.cluster_centers_, sk.cluster_centers_, atol=atol, rtol=0)
    labels = labels_of(ds)
    assert labels.shape == sk.labels_.shape
    assert_array_equal(labels, sk.labels_)
    assert ds.n_iter_ == sk.n_iter_
    assert ds.n_features_in_ == sk.n_features_in_
    # Independent check of the reported sizes: count scikit-learn's labels.
    sizes = np.bincount(sk.labels_[sk.labels_ >= 0], minlength=len(sk.cluster_centers_))
    assert_array_equal(ds.cluster_sizes_, sizes)


def assert_same_rows(a: np.ndarray, b: np.ndarray) -> None:
    """Equal as sets of rows (each side holds distinct rows)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert len(np.unique(a, axis=0)) == len(a)
    assert_array_equal(np.unique(a, axis=0), np.unique(b, axis=0))


# -- 1. flat kernel == scikit-learn ---------------------------------------------------------

# (dataset, bandwidth, scikit-learn options). bandwidth None: estimated by both.
PARITY_CASES = {
    # every point a seed (scikit-learn's default)
    "blobs2d": ("blobs2d", 1.0, {}),
    "blobs3d": ("blobs3d", 1.5, {}),
    "blobs8d": ("blobs8d", 3.0, {}),
    "iris": ("iris", 0.8, {}),
    "wine_std": ("wine_std", 2.5, {}),
    "digits-64d": ("digits", 25.0, {"seeds": "every_6th"}),
    # ties: lattice points exactly at distance == bandwidth are inside (inclusive)
    "grid-bw1": ("grid", 1.0, {}),
    "grid-bw-sqrt2": ("grid", math.sqrt(2.0), {}),
    "grid-bw2": ("grid", 2.0, {}),
    "grid-int64": ("grid_int", 1.0, {}),
    "line-ties-1d-bw1": ("line_ties_1d", 1.0, {}),
    "line-ties-1d-bw2": ("line_ties_1d", 2.0, {}),
    "duplicates": ("duplicates", 1.0, {}),
    "gauss-1d": ("gauss_1d", 1.0, {}),
    # orphans
    "blobs2d-cluster_all-False": ("blobs2d", 0.5, {"cluster_all": False}),
    # stopped by max_iter
    "blobs2d-max_iter1": ("blobs2d", 1.0, {"max_iter": 1}),
    "blobs2d-max_iter2": ("blobs2d", 1.0, {"max_iter": 2}),
    "blobs2d-max_iter3": ("blobs2d", 1.0, {"max_iter": 3}),
    # bin seeding
    "bin-blobs2d_big": ("blobs2d_big", 1.0, {"bin_seeding": True}),
    "bin-blobs3d_big": ("blobs3d_big", 1.5, {"bin_seeding": True}),
    "bin-iris": ("iris", 0.8, {"bin_seeding": True}),
    "bin-duplicates": ("duplicates", 1.0, {"bin_seeding": True}),
    "bin-gauss-1d": ("gauss_1d", 1.0, {"bin_seeding": True}),
    "bin-min_bin_freq3": ("blobs2d_big", 1.0, {"bin_seeding": True, "min_bin_freq": 3}),
    "bin-min_bin_freq8": ("blobs2d_big", 0.7, {"bin_seeding": True, "min_bin_freq": 8}),
    "bin-min_bin_freq8-cluster_all-False": (
        "blobs2d_big",
        0.7,
        {"bin_seeding": True, "min_bin_freq": 8, "cluster_all": False},
    ),
    "bin-max_iter2": ("blobs3d_big", 1.5, {"bin_seeding": True, "max_iter": 2}),
    # estimated bandwidth
    "estimated-blobs2d": ("blobs2d", None, {}),
    "estimated-iris": ("iris", None, {}),
    "estimated-gauss-1d": ("gauss_1d", None, {}),
    "estimated-bin-blobs2d_big": ("blobs2d_big", None, {"bin_seeding": True}),
    "estimated-bin-wine_std": ("wine_std", None, {"bin_seeding": True}),
    # explicit seeds, some far from every point (dropped, as in scikit-learn)
    "seeds-blobs2d": ("blobs2d", 1.0, {"seeds": "far_and_near"}),
    "seeds-blobs8d": ("blobs8d", 3.0, {"seeds": "far_and_near"}),
    "seeds-iris-cluster_all-False": (
        "iris",
        0.5,
        {"seeds": "far_and_near", "cluster_all": False},
    ),
}


@pytest.mark.parametrize("case", list(PARITY_CASES))
def test_flat_kernel_matches_sklearn(case):
    name, bandwidth, options = PARITY_CASES[case]
    X = data(name)
    sk = sk_fit(name, bandwidth, **options)
    params = dict(options)
    if "seeds" in params:
        params["seeds"] = SEEDS[params["seeds"]](X)
    ds = ds_fit(X, bandwidth, **params)

    assert_parity(sk, ds)
    expected_bw = skc.estimate_bandwidth(X) if bandwidth is None else bandwidth
    assert_allclose(ds.bandwidth_, expected_bw, rtol=1e-12, atol=0)

    # the seeds actually used are scikit-learn's
    if "seeds" in options:
        assert ds.seeding_ == "given"
        assert_array_equal(ds.seeds_, params["seeds"])
    elif options.get("bin_seeding"):
        assert ds.seeding_ == "bin"
        expected = skc.get_bin_seeds(X, float(ds.bandwidth_), options.get("min_bin_freq", 1))
        assert len(expected) < len(X)
        assert_same_rows(ds.seeds_, expected)
    else:
        assert ds.seeding_ == "all"
        assert_array_equal(ds.seeds_, X)

    # the cases are what their names claim
    if "max_iter" in options:
        assert sk.n_iter_ == options["max_iter"]  # the seeds were stopped by max_iter
    if options.get("cluster_all") is False:
        assert (sk.labels_ == -1).any()  # there are orphans
        assert (sk.labels_ >= 0).any()
    if name in ("grid", "grid_int", "line_ties_1d"):
        # some pairs of points lie exactly at distance == bandwidth
        d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=-1).astype(np.float64)
        assert (np.sqrt(d2) == bandwidth).any()


def test_tie_cases_depend_on_inclusive_boundary():
    """The lattice cases are sensitive to ``<=`` vs ``<``: a hair below the bandwidth,
    scikit-learn's answer changes, so the tie cases above really test the boundary."""
    X = data("grid")
    at = sk_fit("grid", 1.0)
    below = skc.MeanShift(bandwidth=1.0 - 1e-9).fit(X)
    assert len(at.cluster_centers_) != len(below.cluster_centers_) or not np.array_equal(
        at.labels_, below.labels_
    )
    ds_below = ds_fit(X, 1.0 - 1e-9)
    assert_parity(below, ds_below)


@pytest.mark.parametrize("seeding", ["all", "bin"])
def test_float32_input(seeding):
    name, bw = ("iris", 0.8) if seeding == "all" else ("blobs2d_big", 1.0)
    X = data(name).astype(np.float32)
    sk = sk_fit(name, bw, bin_seeding=seeding == "bin", dtype="float32")
    ds = ds_fit(X, bw, bin_seeding=seeding == "bin")
    assert ds.cluster_centers_.dtype == np.float32
    assert_parity(sk, ds)


def test_integer_input_gives_float64_centers():
    X = data("grid_int")
    assert X.dtype.kind == "i"
    ds = ds_fit(X, 2.0)
    assert ds.cluster_centers_.dtype == np.float64
    assert_parity(sk_fit("grid_int", 2.0), ds)


def test_explicit_seeds_as_nested_lists():
    X = data("iris")
    seeds = X[::25].tolist()
    sk = skc.MeanShift(bandwidth=0.9, seeds=seeds).fit(X)
    ds = dshift.MeanShift(bandwidth=0.9, kernel="flat", seeds=seeds).fit(X.tolist())
    assert ds.seeding_ == "given"
    assert_parity(sk, ds)


def test_seeds_override_seeding():
    """Explicit seeds win over ``seeding=`` (scikit-learn: seeds win over bin_seeding)."""
    X = data("blobs2d")
    seeds = far_and_near_seeds(X)
    sk = skc.MeanShift(bandwidth=1.0, seeds=seeds, bin_seeding=True).fit(X)
    ds = dshift.MeanShift(bandwidth=1.0, kernel="flat", seeds=seeds, seeding="bin").fit(X)
    assert ds.seeding_ == "given"
    assert_parity(sk, ds)


def test_binning_failure_warns_and_seeds_from_every_point():
    """Every lattice point in its own bin: both warn and fall back to all points."""
    X = data("grid")
    with pytest.warns(UserWarning, match="Binning data failed"):
        sk = skc.MeanShift(bandwidth=1.0, bin_seeding=True).fit(X)
    with pytest.warns(UserWarning, match="Binning data failed"):
        ds = ds_fit(X, 1.0, bin_seeding=True)
    assert_array_equal(ds.seeds_, X)
    assert_parity(sk, ds)


def test_predict_matches_sklearn():
    X = data("blobs3d")
    sk, ds = sk_fit("blobs3d", 1.5), ds_fit(X, 1.5)
    rng = np.random.default_rng(11)
    lo, hi = X.min(axis=0), X.max(axis=0)
    new = rng.uniform(lo - 2, hi + 2, size=(300, X.shape[1]))
    assert_array_equal(ds.predict(new), sk.predict(new))
    assert_array_equal(ds.predict(X), sk.predict(X))


# -- zero bandwidth -------------------------------------------------------------------------


@pytest.mark.parametrize("bin_seeding", [False, True])
def test_estimated_zero_bandwidth_matches_sklearn(bin_seeding):
    X = data("zero_bw")
    assert skc.estimate_bandwidth(X) == 0.0
    assert dshift.estimate_bandwidth(X) == 0.0
    sk = skc.MeanShift(bin_seeding=bin_seeding).fit(X)
    ds = ds_fit(X, None, bin_seeding=bin_seeding)
    assert ds.bandwidth_ == 0.0
    assert_parity(sk, ds)
    # every distinct point is its own center, reached at once
    assert_same_rows(ds.cluster_centers_, np.unique(X, axis=0))
    assert ds.n_iter_ == 0


@pytest.mark.parametrize("kernel", ["gaussian", "epanechnikov"])
def test_estimated_zero_bandwidth_needs_flat_kernel(kernel):
    with pytest.raises(ValueError, match="estimated bandwidth is 0"):
        dshift.MeanShift(kernel=kernel).fit(data("zero_bw"))


@pytest.mark.parametrize("copies", [8, 9, 10, 16, 17])
def test_estimated_zero_bandwidth_inexact_duplicates(copies):
    """Duplicates of values whose n-fold sum is not exact (0.1, 0.7, 2.3).

    With bandwidth 0 a seed only sees its own copies, so its mean must be exactly the seed
    (otherwise the center moves by an ulp, finds no point within 0 and is dropped).
    scikit-learn returns the three values as centers, at iteration 0, for these counts.
    """
    X = np.repeat(np.array([[0.1], [0.7], [2.3]]), copies, axis=0)
    sk = skc.MeanShift().fit(X)
    assert_same_rows(sk.cluster_centers_, np.unique(X, axis=0))  # the oracle is exact here
    ds = ds_fit(X, None)
    assert ds.bandwidth_ == 0.0
    assert_parity(sk, ds)


# -- 2. same errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["blobs2d", "iris", "gauss_1d"])
def test_no_point_within_bandwidth_raises_like_sklearn(name):
    X = data(name)
    seeds = far_and_near_seeds(X)[-2:]  # only the far seeds
    with pytest.raises(ValueError, match="No point was within bandwidth"):
        skc.MeanShift(bandwidth=0.5, seeds=seeds).fit(X)
    with pytest.raises(ValueError, match="No point was within bandwidth"):
        ds_fit(X, 0.5, seeds=seeds)


def test_no_bin_with_min_bin_freq_raises_like_sklearn():
    X = data("blobs2d")
    with pytest.raises(ValueError):
        skc.MeanShift(bandwidth=0.7, bin_seeding=True, min_bin_freq=10_000).fit(X)
    with pytest.raises(ValueError):
        ds_fit(X, 0.7, bin_seeding=True, min_bin_freq=10_000)


# -- 3. get_bin_seeds and estimate_bandwidth --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "bin_size", "min_bin_freq"),
    [
        ("blobs2d_big", 1.0, 1),
        ("blobs2d_big", 1.0, 5),
        ("blobs2d_big", 0.37, 3),
        ("blobs3d_big", 1.5, 1),
        ("blobs3d_big", 2.5, 12),
        ("iris", 0.8, 1),
        ("iris", 0.8, 4),
        ("gauss_1d", 0.5, 1),
        ("gauss_1d", 0.5, 6),
        ("duplicates", 1.0, 2),
        ("line_ties_1d", 2.0, 1),  # x / bin_size exactly on .5: round half to even
        ("grid", 2.0, 1),
        ("grid_int", 3.0, 2),
    ],
)
def test_get_bin_seeds_matches_sklearn(name, bin_size, min_bin_freq):
    X = data(name)
    expected = skc.get_bin_seeds(X, bin_size, min_bin_freq)
    assert len(expected) < len(X)  # binning reduced the points
    got = dshift.get_bin_seeds(X, bin_size, min_bin_freq)
    assert got.dtype == expected.dtype
    assert_same_rows(got, expected)
    # chunk-wise: the per-chunk cell counts merge to the same seeds
    chunked = dshift.get_bin_seeds(
        da.from_array(X, chunks=(max(1, len(X) // 7), X.shape[1])), bin_size, min_bin_freq
    )
    assert_same_rows(chunked, expected)


def test_get_bin_seeds_float64_bin_size():
    X = data("blobs2d_big")
    bin_size = np.float64(0.9)
    expected = skc.get_bin_seeds(X, bin_size)
    got = dshift.get_bin_seeds(X, bin_size)
    assert expected.dtype == got.dtype == np.float64
    assert_same_rows(got, expected)


@pytest.mark.parametrize(("name", "bin_size"), [("grid", 1.0), ("blobs8d", 0.5)])
def test_get_bin_seeds_warns_when_binning_fails(name, bin_size):
    X = data(name)
    with pytest.warns(UserWarning, match="Binning data failed") as sk_record:
        expected = skc.get_bin_seeds(X, bin_size)
    with pytest.warns(UserWarning, match="Binning data failed") as ds_record:
        got = dshift.get_bin_seeds(X, bin_size)
    assert str(ds_record[0].message) == str(sk_record[0].message)
    assert_array_equal(expected, X)
    assert_array_equal(got, X)


def test_get_bin_seeds_zero_bin_size_returns_points():
    X = data("iris")
    assert_array_equal(dshift.get_bin_seeds(X, 0), skc.get_bin_seeds(X, 0))


@pytest.mark.parametrize(
    "name", ["blobs2d", "blobs8d", "iris", "wine_std", "digits", "gauss_1d", "duplicates"]
)
@pytest.mark.parametrize("quantile", [0.01, 0.1, 0.3, 0.5, 0.77, 1.0])
def test_estimate_bandwidth_matches_sklearn(name, quantile):
    X = data(name)
    expected = skc.estimate_bandwidth(X, quantile=quantile)
    got = dshift.estimate_bandwidth(X, quantile=quantile)
    assert isinstance(got, float)
    assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_estimate_bandwidth_on_dask_input():
    X = data("blobs3d")
    expected = skc.estimate_bandwidth(X, quantile=0.2)
    got = dshift.estimate_bandwidth(da.from_array(X, chunks=(17, 3)), quantile=0.2)
    assert_allclose(got, expected, rtol=1e-12)


# -- 4. the mean_shift function -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "bandwidth", "options"),
    [
        ("grid", 2.0, {}),
        ("blobs2d_big", 1.0, {"bin_seeding": True, "min_bin_freq": 3}),
        ("iris", 0.5, {"cluster_all": False}),
    ],
)
def test_mean_shift_function(name, bandwidth, options):
    X = data(name)
    params = {"seeding": "bin" if options.get("bin_seeding") else "all"}
    params.update({k: v for k, v in options.items() if k != "bin_seeding"})
    centers, labels = dshift.mean_shift(X, bandwidth=bandwidth, kernel="flat", **params)
    sk_centers, sk_labels = skc.mean_shift(X, bandwidth=bandwidth, **options)
    model = dshift.MeanShift(bandwidth=bandwidth, kernel="flat", **params).fit(X)
    assert_array_equal(centers, model.cluster_centers_)
    assert_array_equal(labels, model.labels_)
    assert centers.shape == sk_centers.shape
    assert_allclose(centers, sk_centers, atol=1e-3 * bandwidth, rtol=0)
    assert_array_equal(labels, sk_labels)


# -- 5. independent of chunking and scheduler -------------------------------------------------


def _uneven_chunks(n: int) -> tuple[int, ...]:
    sizes, i, step = [], 0, 1
    while i < n:
        size = min(step, n - i)
        sizes.append(size)
        i += size
        step = step * 3 % 61 + 1  # sizes 1, 4, 13, 40, 60, 59, 23 for n=200
    return tuple(sizes)


# name: (dataset, how X is passed)
CHUNKINGS = {
    "numpy-default": ("blobs2d", lambda X: (X, {})),
    "numpy-row_chunks-64": ("blobs2d", lambda X: (X, {"row_chunks": 64})),
    "numpy-row_chunks-1": ("blobs2d_head30", lambda X: (X, {"row_chunks": 1})),
    "dask-one-chunk": ("blobs2d", lambda X: (da.from_array(X, chunks=-1), {})),
    "dask-1-row-chunks": ("blobs2d_head30", lambda X: (da.from_array(X, chunks=(1, 2)), {})),
    "dask-uneven": (
        "blobs2d",
        lambda X: (da.from_array(X, chunks=(_uneven_chunks(len(X)), X.shape[1])), {}),
    ),
    "dask-columns-split": ("blobs2d", lambda X: (da.from_array(X, chunks=(45, 1)), {})),
    # row_chunks is for input dshift chunks itself: a dask array keeps its own chunks
    "dask-ignores-row_chunks": (
        "blobs2d",
        lambda X: (da.from_array(X, chunks=(70, 2)), {"row_chunks": 9}),
    ),
}


@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_parity_any_chunking(chunking):
    name, convert = CHUNKINGS[chunking]
    Xin, params = convert(data(name))
    ds = ds_fit(Xin, 1.0, **params)
    assert_parity(sk_fit(name, 1.0), ds)


def _run_on(scheduler, fit):
    """Run ``fit`` on the scheduler; on the cluster, check that tasks really ran there."""
    if scheduler is None:
        return fit()
    with get_task_stream(client=scheduler) as stream:
        result = fit()
    assert len(stream.data) > 0
    assert {t["worker"] for t in stream.data} <= set(scheduler.scheduler_info()["workers"])
    return result


# (parity case, how X is passed)
SCHEDULER_CASES = {
    "numpy-row_chunks-64": ("blobs2d", lambda X: X, {"row_chunks": 64}),
    "dask-uneven-bin-estimated": (
        "estimated-bin-blobs2d_big",
        lambda X: da.from_array(X, chunks=((1, 299, 300, 250, 150), (2,))),
        {},
    ),
    "dask-bin-min_bin_freq-orphans": (
        "bin-min_bin_freq8-cluster_all-False",
        lambda X: da.from_array(X, chunks=(401, 2)),
        {},
    ),
    "dask-seeds-8d": ("seeds-blobs8d", lambda X: da.from_array(X, chunks=(33, 8)), {}),
    # streamed (persist=False): rows in no spatial order, the center-grid kernel path
    "streamed-uneven-bin-estimated": (
        "estimated-bin-blobs2d_big",
        lambda X: da.from_array(X, chunks=((1, 299, 300, 250, 150), (2,))),
        {"persist": False},
    ),
    "streamed-bin-min_bin_freq-orphans": (
        "bin-min_bin_freq8-cluster_all-False",
        lambda X: da.from_array(X, chunks=(401, 2)),
        {"persist": False},
    ),
    "streamed-seeds-8d": (
        "seeds-blobs8d",
        lambda X: da.from_array(X, chunks=(33, 8)),
        {"persist": False},
    ),
}


@pytest.mark.cluster
@pytest.mark.parametrize("case", list(SCHEDULER_CASES))
def test_parity_on_scheduler(scheduler, case):
    """The same results on the threaded scheduler and on the multi-process cluster."""
    parity_case, convert, params = SCHEDULER_CASES[case]
    name, bandwidth, options = PARITY_CASES[parity_case]
    X = data(name)
    Xin = convert(X)
    fit_params = dict(options, **params)
    if "seeds" in fit_params:
        fit_params["seeds"] = SEEDS[fit_params["seeds"]](X)
    ds = _run_on(scheduler, lambda: ds_fit(Xin, bandwidth, **fit_params))
    if isinstance(Xin, da.Array):
        assert isinstance(ds.labels_, da.Array)  # lazy for dask input
    assert_parity(sk_fit(name, bandwidth, **options), ds)
    if bandwidth is None:
        assert_allclose(ds.bandwidth_, skc.estimate_bandwidth(X), rtol=1e-12)
