"""dshift.MeanShift as a scikit-learn estimator, and as a drop-in for sklearn.cluster's.

scikit-learn's own MeanShift scenarios (sklearn/cluster/tests/test_mean_shift.py) run here
on both implementations, and the answers are compared, not written down.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse
import sklearn.cluster as skc
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone, is_clusterer
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score, v_measure_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator
from sklearn.utils.validation import check_is_fitted

import dshift
from dshift import MeanShift

# scikit-learn's test data for MeanShift
CENTERS = np.array([[1, 1], [-1, -1], [1, -1]]) + 10
X_SK, _ = make_blobs(
    n_samples=300, n_features=2, centers=CENTERS, cluster_std=0.4, shuffle=True, random_state=11
)
DTYPES = [np.float32, np.float64]


def demo_data(seed=0):
    """scikit-learn's mean shift demo (plot_mean_shift.py): three blobs, 10,000 points."""
    return make_blobs(
        n_samples=10_000, centers=[[1, 1], [-1, -1], [1, -1]], cluster_std=0.6, random_state=seed
    )


# ---------------------------------------------------------------------------------------
# The estimator protocol
# ---------------------------------------------------------------------------------------


def test_check_estimator_passes_every_check():
    results = check_estimator(MeanShift(), on_fail=None, on_skip=None)
    assert len(results) > 40
    not_passed = {r["check_name"]: r for r in results if r["status"] != "passed"}
    # The only check not run is the array API one, which scikit-learn itself skips unless
    # SCIPY_ARRAY_API is set (MeanShift does not claim array API support).
    assert set(not_passed) <= {"check_array_api_input"}, {
        name: repr(r["exception"]) for name, r in not_passed.items()
    }
    for r in not_passed.values():
        assert r["status"] == "skipped"


def test_tags_make_it_a_clusterer_with_an_html_repr():
    ms = MeanShift(bandwidth=2.0)
    assert is_clusterer(ms)
    assert ms.__sklearn_tags__().estimator_type == "clusterer"
    assert not ms.__sklearn_tags__().input_tags.allow_nan
    html = ms._repr_html_()
    assert "MeanShift" in html and "bandwidth" in html


def test_not_fitted_is_scikit_learns_error():
    ms = MeanShift()
    with pytest.raises(NotFittedError):
        check_is_fitted(ms)
    with pytest.raises(NotFittedError, match="This MeanShift instance is not fitted yet"):
        ms.predict(X_SK)
    assert dshift.NotFittedError is NotFittedError
    check_is_fitted(ms.fit(X_SK))


def test_grid_search_and_pipeline():
    X, y = demo_data()
    X = X[::10]
    pipe = make_pipeline(StandardScaler(), MeanShift(bandwidth=1.0))
    labels = pipe.fit_predict(X)
    assert_array_equal(labels, pipe.predict(X))
    assert_array_equal(labels, pipe[-1].labels_)

    def ari(estimator, X, y):
        return adjusted_rand_score(y, estimator.predict(X))

    grid = {"bandwidth": [0.1, 0.8, 5.0]}
    search = GridSearchCV(MeanShift(), grid, scoring=ari, cv=2).fit(X, y[::10])
    ref = GridSearchCV(skc.MeanShift(), grid, scoring=ari, cv=2).fit(X, y[::10])
    assert search.best_params_ == ref.best_params_ == {"bandwidth": 0.8}
    assert_allclose(search.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"])
    assert isinstance(search.best_estimator_, MeanShift)
    assert_allclose(
        search.best_estimator_.cluster_centers_, ref.best_estimator_.cluster_centers_, atol=1e-6
    )


def test_clone_keeps_the_drop_in_parameters():
    ms = MeanShift(bin_seeding=True, n_jobs=2, feature_dim="band")
    copy = clone(ms)
    assert copy.get_params() == ms.get_params()
    assert "bin_seeding=True" in repr(ms) and "n_jobs=2" in repr(ms)


# ---------------------------------------------------------------------------------------
# Drop-in: the same arguments give the same answers
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_drop_in_on_scikit_learns_demo(seed):
    X, _ = demo_data(seed)
    bandwidth = skc.estimate_bandwidth(X, quantile=0.2, n_samples=500)
    assert dshift.estimate_bandwidth(X, quantile=0.2, n_samples=500) == pytest.approx(
        bandwidth, rel=0.15
    )  # another random sample of 500 points
    ref = skc.MeanShift(bandwidth=bandwidth, bin_seeding=True).fit(X)
    ours = MeanShift(bandwidth=bandwidth, bin_seeding=True).fit(X)
    assert len(ours.cluster_centers_) == len(ref.cluster_centers_) == 3
    assert_allclose(ours.cluster_centers_, ref.cluster_centers_, atol=1e-6)
    assert_array_equal(ours.labels_, ref.labels_)
    assert ours.n_iter_ == ref.n_iter_
    assert ours.labels_.dtype == ref.labels_.dtype
    assert ours.seeding_ == "bin"


def test_every_default_matches_scikit_learn():
    X = X_SK[::3]
    ref = skc.MeanShift().fit(X)
    ours = MeanShift().fit(X)
    assert_allclose(ours.cluster_centers_, ref.cluster_centers_, atol=1e-6)
    assert_array_equal(ours.labels_, ref.labels_)
    assert ours.n_iter_ == ref.n_iter_


def test_gaussian_estimated_bandwidth_finds_the_demo_clusters():
    X, y = demo_data()
    flat = MeanShift(bin_seeding=True).fit(X)
    gauss = MeanShift(kernel="gaussian", bin_seeding=True).fit(X)
    assert gauss.bandwidth_ == pytest.approx(flat.bandwidth_ / 4)
    assert len(gauss.cluster_centers_) == 3
    assert adjusted_rand_score(y, gauss.labels_) > 0.75


def test_bin_seeding_is_seeding_bin_and_refuses_a_contradiction():
    X = X_SK
    a = MeanShift(bandwidth=1.2, bin_seeding=True).fit(X)
    b = MeanShift(bandwidth=1.2, seeding="bin").fit(X)
    assert a.seeding_ == b.seeding_ == "bin"
    assert_array_equal(a.seeds_, b.seeds_)
    with pytest.raises(ValueError, match=r"bin_seeding=True asks for bin seeds, but seeding='all'"):
        MeanShift(bandwidth=1.2, bin_seeding=True, seeding="all").fit(X)
    with pytest.raises(ValueError, match="bin_seeding must be True or False"):
        MeanShift(bin_seeding="yes").fit(X)


def test_n_jobs_sets_the_local_schedulers_threads():
    import dask

    seen = []

    class Spy(dask.callbacks.Callback):
        def _start(self, dsk):
            seen.append(dask.config.get("num_workers", None))

    with Spy():
        MeanShift(bandwidth=1.2, n_jobs=1).fit(X_SK)
    assert seen and set(seen) == {1}
    seen.clear()
    with Spy():
        MeanShift(bandwidth=1.2).fit(X_SK).predict(X_SK)
    assert seen and set(seen) == {None}
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="n_jobs must be None or an integer other than 0"):
            MeanShift(n_jobs=bad).fit(X_SK)


# ---------------------------------------------------------------------------------------
# scikit-learn's own MeanShift tests, run on both implementations
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_estimate_bandwidth_returns_what_scikit_learn_returns(dtype):
    X = X_SK.astype(dtype)
    ours, ref = dshift.estimate_bandwidth(X), skc.estimate_bandwidth(X)
    assert type(ours) is type(ref)
    assert ours == pytest.approx(ref, rel=1e-5)
    assert dshift.estimate_bandwidth(X, n_samples=1) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("bandwidth", "cluster_all"), [(1.2, True), (1.2, False)])
def test_mean_shift_labels_and_centers(dtype, bandwidth, cluster_all):
    X = X_SK.astype(dtype)
    ref = skc.MeanShift(bandwidth=bandwidth, cluster_all=cluster_all).fit(X)
    ours = MeanShift(bandwidth=bandwidth, cluster_all=cluster_all).fit(X)
    assert_array_equal(ours.labels_, ref.labels_)
    assert ours.cluster_centers_.dtype == ref.cluster_centers_.dtype == dtype
    assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-5)
    ref_centers, ref_labels = skc.mean_shift(X, cluster_all=cluster_all)
    centers, labels = dshift.mean_shift(X, cluster_all=cluster_all)
    assert type(centers) is type(ref_centers) and type(labels) is type(ref_labels)
    assert labels.dtype == ref_labels.dtype
    assert_array_equal(labels, ref_labels)
    assert_allclose(centers, ref_centers, rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_parallel_and_predict(dtype):
    X = X_SK[:50].astype(dtype)
    one, many = MeanShift(n_jobs=2).fit(X), MeanShift().fit(X)
    assert_allclose(one.cluster_centers_, many.cluster_centers_)
    assert_array_equal(one.labels_, many.labels_)
    ms = MeanShift(bandwidth=1.2)
    assert_array_equal(ms.fit_predict(X_SK), ms.predict(X_SK))
    assert_array_equal(ms.predict(X_SK), skc.MeanShift(bandwidth=1.2).fit(X_SK).predict(X_SK))


def test_all_orphans_and_unfitted():
    for cls in (skc.MeanShift, MeanShift):
        with pytest.raises(ValueError, match="No point was within bandwidth=0.1"):
            cls(bandwidth=0.1, seeds=[[-9, -9], [-10, -10]]).fit(X_SK)
        ms = cls()
        assert not hasattr(ms, "cluster_centers_") and not hasattr(ms, "labels_")


@pytest.mark.parametrize("dtype", DTYPES)
def test_cluster_intensity_tie(dtype):
    a = np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]], dtype=dtype)
    b = np.array([[4, 7], [3, 5], [3, 6], [1, 1], [2, 1], [1, 0]], dtype=dtype)
    for X in (a, b):
        assert_array_equal(
            MeanShift(bandwidth=2).fit(X).labels_, skc.MeanShift(bandwidth=2).fit(X).labels_
        )


@pytest.mark.parametrize("dtype", DTYPES)
def test_bin_seeds(dtype):
    X = np.array(
        [[1.0, 1.0], [1.4, 1.4], [1.8, 1.2], [2.0, 1.0], [2.1, 1.1], [0.0, 0.0]], dtype=dtype
    )
    for bin_size, min_bin_freq in [(1, 1), (1, 2)]:
        ours = dshift.get_bin_seeds(X, bin_size, min_bin_freq)
        ref = skc.get_bin_seeds(X, bin_size, min_bin_freq)
        assert {tuple(p) for p in ours} == {tuple(p) for p in ref}
        assert type(ours) is type(ref)
    with pytest.warns(UserWarning, match="Binning data failed"):
        assert dshift.get_bin_seeds(X, 0.01, 1) is X  # as scikit-learn: X itself
    blobs, _ = make_blobs(
        n_samples=100, n_features=2, centers=[[0, 0], [1, 1]], cluster_std=0.1, random_state=0
    )
    assert_array_equal(dshift.get_bin_seeds(blobs.astype(dtype), 1), [[0, 0], [1, 1]])


@pytest.mark.parametrize("max_iter", [1, 100])
def test_max_iter(max_iter):
    ref = skc.MeanShift(max_iter=max_iter).fit(X_SK)
    ours = MeanShift(max_iter=max_iter).fit(X_SK)
    centers, _ = dshift.mean_shift(X_SK, max_iter=max_iter)
    assert ours.n_iter_ == ref.n_iter_ <= max_iter
    assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-6)
    assert_allclose(centers, ours.cluster_centers_)


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_estimated_bandwidth(dtype):
    X = np.array([1, 1, 1, 2, 2, 2, 3, 3], dtype=dtype).reshape(-1, 1)
    assert dshift.estimate_bandwidth(X) == skc.estimate_bandwidth(X) == 0
    assert dshift.get_bin_seeds(X, bin_size=0) is X
    binning = MeanShift(bin_seeding=True, bandwidth=None).fit(X)
    no_binning = MeanShift(bin_seeding=False).fit(X)
    expected = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    assert v_measure_score(binning.labels_, expected) == pytest.approx(1)
    assert v_measure_score(no_binning.labels_, expected) == pytest.approx(1)
    assert_allclose(binning.cluster_centers_, no_binning.cluster_centers_)
    assert_allclose(no_binning.cluster_centers_, skc.MeanShift().fit(X).cluster_centers_)


def test_convergence_of_1d_constant_data():
    X = np.ones((10, 1))
    ours, ref = MeanShift().fit(X), skc.MeanShift().fit(X)
    assert ours.n_iter_ == ref.n_iter_ < ours.max_iter


def test_sparse_input_is_refused_with_a_type_error():
    with pytest.raises(TypeError, match="Sparse data was passed for X, but dense data is required"):
        MeanShift(bandwidth=1.0).fit(scipy.sparse.csr_matrix(X_SK))
    with pytest.raises(TypeError, match="dense data is required"):
        dshift.estimate_bandwidth(scipy.sparse.lil_matrix(X_SK))


def test_workers_do_not_import_scikit_learn():
    # a worker unpickles dshift's chunk tasks: importing those must not cost scikit-learn
    code = (
        "import sys, dshift, dshift._iterate, dshift.kernels, dshift._zarr_input;"
        "print('sklearn' in sys.modules);"
        "dshift.MeanShift;"
        "print('sklearn' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    assert out == ["False", "True"]
    assert {"MeanShift", "NotFittedError", "write_result"} <= set(dir(dshift))
    assert sorted(dshift.__all__) == sorted([*dshift._PUBLIC, "__version__"])
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dshift.nope  # noqa: B018
