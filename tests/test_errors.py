"""Bad input gives a clear error, naming the problem, before any heavy work where possible."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import sklearn.exceptions
import zarr
from numpy.testing import assert_allclose, assert_array_equal

import dshift
from dshift import MeanShift, NotFittedError, estimate_bandwidth, get_bin_seeds, mean_shift


def _boom(block):
    raise AssertionError("the data was read, but the error should be found from metadata")


def poisoned(n_rows: int, n_features: int, chunk_rows: int = 1000) -> da.Array:
    """A lazy dask array whose every chunk raises AssertionError when computed."""
    return da.zeros((n_rows, n_features), chunks=(chunk_rows, n_features)).map_blocks(
        _boom, dtype=np.float64
    )


def two_blobs() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(0, 0.3, (40, 2)), rng.normal(5, 0.3, (40, 2))])


def with_nonfinite() -> np.ndarray:
    X = two_blobs()
    X[3, 0] = np.nan
    X[50] = [np.inf, np.nan]  # two values in one row
    X[79, 1] = -np.inf
    return X  # 4 non-finite values


def test_poisoned_helper_really_raises():
    with pytest.raises(AssertionError, match="the data was read"):
        poisoned(10, 2).compute()
    with pytest.raises(AssertionError, match="the data was read"):  # a valid fit reads X
        MeanShift(bandwidth=1.0).fit(poisoned(10, 2))


# ---------------------------------------------------------------------------------------
# Non-finite values: found in the first pass, with their count
# ---------------------------------------------------------------------------------------

NONFINITE_CASES = {
    "bin": {"seeding": "bin"},
    "sample": {"seeding": "sample", "n_seeds": 5, "random_state": 0},
    "all": {"seeding": "all"},
    "seeds": {"seeds": [[0.0, 0.0], [5.0, 5.0]]},
}


@pytest.mark.parametrize("as_dask", [False, True], ids=["numpy", "dask"])
@pytest.mark.parametrize("case", list(NONFINITE_CASES))
def test_nonfinite_values_are_reported_with_their_count(case, as_dask):
    X = with_nonfinite()
    if as_dask:
        X = da.from_array(X, chunks=(16, 2))  # the bad values sit in 3 different chunks
    ms = MeanShift(bandwidth=1.0, **NONFINITE_CASES[case])
    with pytest.raises(ValueError, match=r"X contains 4 NaN or infinite value"):
        ms.fit(X)
    assert not hasattr(ms, "cluster_centers_")


@pytest.mark.parametrize("case", list(NONFINITE_CASES))
def test_nonfinite_values_are_found_in_the_first_pass(case):
    """No iteration completes: the count comes from the first pass over every chunk (the
    binning pass, the gathering of every point, or iteration 0 of the loop).

    With a sample of finite rows (or given seeds) nothing before the loop reads the bad rows,
    and the count is still the whole array's.
    """
    X = two_blobs()
    X[70:72] = np.nan  # rows never drawn by the sample below
    params = dict(NONFINITE_CASES[case])
    if case == "sample":
        chosen = np.sort(np.random.default_rng(0).choice(len(X), size=5, replace=False))
        assert not np.isin(chosen, [70, 71]).any()
    ms = MeanShift(bandwidth=1.0, **params)
    steps = ms.iter_fit(da.from_array(X, chunks=(20, 2)))
    with pytest.raises(ValueError, match=r"X contains 4 NaN or infinite value"):
        next(steps)


def test_nonfinite_with_estimated_bandwidth_is_reported():
    with pytest.raises(ValueError, match="NaN or infinite"):
        MeanShift().fit(with_nonfinite())
    with pytest.raises(ValueError, match=r"NaN or infinite values \(4 in a sample of 80 rows\)"):
        estimate_bandwidth(with_nonfinite())


def test_nonfinite_values_in_predict():
    ms = MeanShift(bandwidth=1.0).fit(two_blobs())
    with pytest.raises(ValueError, match="NaN or infinite"):
        ms.predict([[0.0, np.nan]])
    with pytest.raises(ValueError, match="NaN or infinite"):
        ms.predict(da.from_array(np.array([[0.0, 1.0], [np.inf, 0.0]]), chunks=1)).compute()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_seeds_are_rejected(bad):
    with pytest.raises(ValueError, match="seeds contain NaN or infinite"):
        MeanShift(bandwidth=1.0, seeds=[[0.0, bad]]).fit(two_blobs())


# ---------------------------------------------------------------------------------------
# Shape and dtype of X: found from metadata
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (
            np.empty((0, 2)),
            r"Found array with 0 sample\(s\) \(shape=\(0, 2\)\) while a minimum of 1",
        ),
        (
            np.empty((5, 0)),
            r"Found array with 0 feature\(s\) \(shape=\(5, 0\)\) while a minimum of 1",
        ),
        (
            np.ones(6),
            r"X must be 2-d .* got 1-d with shape \(6,\): Reshape your data .*reshape\(-1, 1\)",
        ),
        (np.ones((2, 3, 4)), r"X must be 2-d .* got 3-d with shape \(2, 3, 4\)"),
        ([[1.0, 2.0], [3.0]], "could not be turned into a 2-d array"),
    ],
    ids=["0-rows", "0-features", "1-d", "3-d", "ragged"],
)
def test_bad_shapes(X, match):
    with pytest.raises(ValueError, match=match):
        MeanShift(bandwidth=1.0).fit(X)


@pytest.mark.parametrize(
    ("shape", "match"),
    [((0, 2), "0 sample"), ((5, 0), "0 feature"), ((6,), "got 1-d"), ((2, 3, 4), "got 3-d")],
)
def test_bad_shapes_of_lazy_input_do_not_read_the_data(shape, match):
    X = da.zeros(shape).map_blocks(_boom, dtype=np.float64)
    with pytest.raises(ValueError, match=match):
        MeanShift(bandwidth=1.0).fit(X)


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.array([["a", "b"], ["c", "d"]]), r"dtype <U1 \(string\); dshift needs real numbers"),
        (np.array([[b"a"], [b"b"]]), r"\(bytes\); dshift needs real numbers"),
        (
            np.array([[object(), 1.0], [2.0, 3.0]], dtype=object),
            "object array whose values are not all numbers",
        ),
        (
            np.array([["x", 1.0], [2.0, 3.0]], dtype=object),
            "object array whose values are not all numbers",
        ),
        (
            np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]").reshape(2, 1),
            r"\(datetime\)",
        ),
    ],
    ids=["str", "bytes", "object", "object-str", "datetime"],
)
def test_non_numeric_dtypes(X, match):
    with pytest.raises(TypeError, match=match):
        MeanShift(bandwidth=1.0).fit(X)


def test_complex_data_is_refused_as_scikit_learn_does():
    with pytest.raises(ValueError, match=r"Complex data not supported: X has dtype complex128"):
        MeanShift(bandwidth=1.0).fit(np.ones((3, 2), dtype=complex))


def test_non_numeric_lazy_dtype_does_not_read_the_data():
    X = da.zeros((10, 2)).map_blocks(_boom, dtype=np.complex64)
    with pytest.raises(ValueError, match="Complex data not supported"):
        MeanShift(bandwidth=1.0).fit(X)
    X = da.zeros((10, 2)).map_blocks(_boom, dtype="datetime64[D]")
    with pytest.raises(TypeError, match="datetime"):
        MeanShift(bandwidth=1.0).fit(X)


def test_object_array_of_numbers_is_accepted():
    X = np.array([[0, 0.0], [0.1, 0], [5, 5], [5.1, 5]], dtype=object)
    ms = MeanShift(bandwidth=1.0, kernel="flat").fit(X)
    assert ms.cluster_centers_.dtype == np.float64
    assert len(ms.cluster_centers_) == 2


def test_unsupported_input_type():
    with pytest.raises(TypeError, match=r"must be a numpy, dask or Zarr array.*builtins\.dict"):
        MeanShift(bandwidth=1.0).fit({"a": 1})


# ---------------------------------------------------------------------------------------
# Parameters: checked before anything reads X
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bandwidth", [0, 0.0, -1.0, float("nan"), float("inf"), -float("inf"), True, False, "1.0"]
)
def test_bad_bandwidth(bandwidth):
    with pytest.raises(ValueError, match=r"bandwidth must be a positive finite number or None"):
        MeanShift(bandwidth=bandwidth).fit(poisoned(100, 2))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"kernel": "tophat"}, r"kernel must be one of \['epanechnikov', 'flat', 'gaussian'\]"),
        ({"kernel": "Gaussian"}, "kernel must be one of"),
        ({"seeding": "grid"}, r"seeding must be one of \['auto', 'all', 'bin', 'sample'\]"),
        ({"max_iter": 0}, r"max_iter must be an integer >= 1, got 0"),
        ({"max_iter": -5}, r"max_iter must be an integer >= 1"),
        ({"max_iter": 10.0}, r"max_iter must be an integer >= 1"),
        ({"max_iter": True}, r"max_iter must be an integer >= 1"),
        ({"min_bin_freq": 0}, r"min_bin_freq must be an integer >= 1, got 0"),
        ({"min_bin_freq": 2.5}, r"min_bin_freq must be an integer >= 1"),
        ({"n_seeds": 0}, r"n_seeds must be a positive integer or None"),
        ({"row_chunks": -1}, r"row_chunks must be a positive integer or None"),
        ({"bin_size": 0.0}, r"bin_size must be a positive number or None"),
        ({"bin_size": float("nan")}, r"bin_size must be a positive number or None"),
        ({"tol": -1e-3}, r"tol must be a non-negative number"),
        ({"tol": float("nan")}, r"tol must be a non-negative number"),
        ({"cluster_all": "yes"}, r"cluster_all must be True or False"),
        ({"persist": "yes"}, r"persist must be 'auto', True or False"),
        ({"persist": None}, r"persist must be 'auto', True or False"),
    ],
)
def test_bad_parameters_are_rejected_before_reading_x(params, match):
    with pytest.raises(ValueError, match=match):
        MeanShift(bandwidth=1.0, **params).fit(poisoned(100, 2))


@pytest.mark.parametrize(
    "seeds", [[[0.0, 0.0, 0.0]], [0.0, 0.0], np.zeros((0, 2)), np.zeros((2, 1))]
)
def test_seeds_with_wrong_shape(seeds):
    with pytest.raises(ValueError, match=r"seeds must have shape \(n_seeds, 2\) to match X's 2"):
        MeanShift(bandwidth=1.0, seeds=seeds).fit(two_blobs())


@pytest.mark.parametrize(
    ("params", "n_rows", "error"),
    [
        ({"seeds": [[0.0, 0.0, 0.0]]}, 100, "seeds must have shape"),
        ({"seeds": [[0.0, np.nan]]}, 100, "seeds contain NaN"),
        ({"seeding": "all"}, 20_001, "limited to 20000 points"),
    ],
    ids=["seeds-shape", "seeds-nan", "all-limit"],
)
@pytest.mark.parametrize("persist", ["auto", True, False])
def test_seed_errors_are_raised_before_reading_x(params, n_rows, error, persist):
    """These are known from X's metadata: X (lazy) must not be read, or kept in memory,
    before raising them, whatever ``persist`` says."""
    with pytest.raises(ValueError, match=error):
        MeanShift(bandwidth=1.0, persist=persist, **params).fit(poisoned(n_rows, 2))


def test_bad_params_through_mean_shift_function():
    with pytest.raises(ValueError, match="kernel must be one of"):
        mean_shift(poisoned(10, 2), bandwidth=1.0, kernel="cosine")
    with pytest.raises(TypeError):
        mean_shift(poisoned(10, 2), bandwidth=1.0, not_a_param=1)


# ---------------------------------------------------------------------------------------
# Fitted state
# ---------------------------------------------------------------------------------------


def test_predict_before_fit():
    ms = MeanShift(bandwidth=1.0)
    with pytest.raises(NotFittedError, match=r"This MeanShift instance is not fitted yet"):
        ms.predict([[0.0, 0.0]])
    for cls in (ValueError, AttributeError):
        with pytest.raises(cls):
            ms.predict([[0.0, 0.0]])
    assert issubclass(NotFittedError, ValueError)
    assert issubclass(NotFittedError, AttributeError)
    assert dshift.NotFittedError is sklearn.exceptions.NotFittedError
    assert not hasattr(ms, "labels_")


def test_predict_with_wrong_number_of_features():
    ms = MeanShift(bandwidth=1.0).fit(two_blobs())
    with pytest.raises(
        ValueError, match=r"X has 3 features, but MeanShift is expecting 2 features as input"
    ):
        ms.predict(np.zeros((4, 3)))
    with pytest.raises(
        ValueError, match=r"X has 1 features, but MeanShift is expecting 2 features as input"
    ):
        ms.predict(poisoned(50, 1))
    with pytest.raises(ValueError, match="got 1-d"):
        ms.predict(np.zeros(2))


# ---------------------------------------------------------------------------------------
# Zarr and dask specifics
# ---------------------------------------------------------------------------------------


def test_missing_zarr_path(tmp_path):
    missing = tmp_path / "nope.zarr"
    with pytest.raises(FileNotFoundError, match=r"No Zarr array at .*nope\.zarr.*does not exist"):
        MeanShift(bandwidth=1.0).fit(str(missing))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MeanShift(bandwidth=1.0).fit(missing)  # a pathlib.Path
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MeanShift(bandwidth=1.0).fit(missing.as_uri())  # file:// URL


def test_zarr_group_instead_of_array(tmp_path):
    path = tmp_path / "data.zarr"
    group = zarr.create_group(str(path))
    group.create_array("points", shape=(10, 2), dtype="float64")
    with pytest.raises(ValueError, match=r"is a Zarr group, not an array.*\['points'\]"):
        MeanShift(bandwidth=1.0).fit(str(path))
    # the suggested path works
    arr = zarr.open_array(str(path / "points"), mode="r+")
    arr[:] = np.arange(20.0).reshape(10, 2)
    MeanShift(bandwidth=1.0).fit(str(path / "points"))

    empty = tmp_path / "empty.zarr"
    zarr.create_group(str(empty))
    with pytest.raises(ValueError, match="is a Zarr group, not an array"):
        MeanShift(bandwidth=1.0).fit(str(empty))


def test_zarr_array_dtype_is_checked(tmp_path):
    path = str(tmp_path / "s.zarr")
    zarr.create_array(path, shape=(4, 2), chunks=(2, 2), dtype="int64")[:] = 1
    MeanShift(bandwidth=1.0).fit(path)  # integers are fine (converted to float64)
    path = str(tmp_path / "c.zarr")
    zarr.create_array(path, shape=(4, 2), chunks=(2, 2), dtype="complex128")
    with pytest.raises(ValueError, match="Complex data not supported"):
        MeanShift(bandwidth=1.0).fit(path)


def test_dask_array_with_unknown_chunk_sizes_is_resolved_chunk_wise():
    X = da.from_array(two_blobs(), chunks=(20, 2))
    Xu = X[X[:, 0] > 1]
    assert np.isnan(Xu.shape[0])
    ms = MeanShift(bandwidth=1.0).fit(Xu)
    assert np.isnan(Xu.shape[0])  # the caller's array is left as it was
    known = Xu.copy().compute_chunk_sizes()
    ref = MeanShift(bandwidth=1.0).fit(known.compute())
    assert_allclose(ms.cluster_centers_, ref.cluster_centers_)
    assert ms.labels_.chunks == known.chunks[:1]
    assert_array_equal(ms.labels_.compute(), ref.labels_)
    assert_array_equal(ms.predict(Xu).compute(), ref.labels_)


# ---------------------------------------------------------------------------------------
# Seeding
# ---------------------------------------------------------------------------------------


def test_seeding_all_above_the_limit_names_alternatives():
    X = da.zeros((20_001, 2), chunks=(5000, 2))
    with pytest.raises(ValueError, match=r"limited to 20000 points.*X has 20001") as info:
        MeanShift(bandwidth=1.0, seeding="all").fit(X)
    msg = str(info.value)
    assert "seeding='bin'" in msg
    assert "seeding='sample'" in msg
    assert "seeds" in msg.split("seeding='sample'")[1]
    # through get_bin_seeds(bin_size=0), which seeds from every point
    with pytest.raises(ValueError, match="limited to 20000 points"):
        get_bin_seeds(X, bin_size=0)


def test_seeding_all_at_the_limit_is_accepted():
    X = da.zeros((20_000, 2), chunks=(5000, 2))
    ms = MeanShift(bandwidth=1.0, seeding="all", kernel="flat").fit(X)
    assert ms.seeding_ == "all"
    assert ms.cluster_centers_.tolist() == [[0.0, 0.0]]


def test_min_bin_freq_too_large():
    X = two_blobs()  # 40 points per blob
    with pytest.raises(ValueError, match=r"No grid cell of bin_size=1 holds min_bin_freq=500"):
        MeanShift(bandwidth=1.0, seeding="bin", min_bin_freq=500).fit(X)
    with pytest.raises(ValueError, match="lower min_bin_freq or raise bin_size"):
        get_bin_seeds(X, bin_size=1.0, min_bin_freq=500)


def test_no_seed_reaches_any_point():
    X = two_blobs()
    with pytest.raises(ValueError, match="No point was within bandwidth"):
        MeanShift(bandwidth=1.0, kernel="flat", seeds=[[100.0, 100.0]]).fit(X)


def test_bad_get_bin_seeds_and_estimate_bandwidth_arguments():
    X = two_blobs()
    with pytest.raises(ValueError, match="bin_size must be a positive number"):
        get_bin_seeds(X, bin_size=-1.0)
    with pytest.raises(ValueError, match="quantile must be a number between 0 and 1"):
        estimate_bandwidth(X, quantile=1.5)
    with pytest.raises(ValueError, match="n_samples must be a positive integer or None"):
        estimate_bandwidth(X, n_samples=0)


def test_errors_under_a_dask_config_that_forbids_computing():
    """Metadata errors need no computation at all (this scheduler raises if it is used)."""

    def forbid(*args, **kwargs):
        raise AssertionError("a computation was started")

    X = da.zeros((30_000, 3), chunks=(10_000, 3))
    with dask.config.set(scheduler=forbid):
        with pytest.raises(AssertionError, match="a computation was started"):
            MeanShift(bandwidth=1.0, seeding="bin").fit(X)
        with pytest.raises(ValueError, match="limited to 20000"):
            MeanShift(bandwidth=1.0, seeding="all").fit(X)
        with pytest.raises(ValueError, match="seeds must have shape"):
            MeanShift(bandwidth=1.0, seeds=[[0.0, 0.0]]).fit(X)
