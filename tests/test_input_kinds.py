"""Inputs in kind: xarray DataArrays and Datasets, pandas and dask DataFrames and Series and
Parquet paths fit as the same points in a numpy array do, and give their labels back in
their own kind (lazy for dask-backed input, on the input's coordinates or index).

Every fit here is compared with the same fit on the numpy array (flat kernel, explicit
bandwidth: three well-separated blobs). The last tests fit 1e7 points from a dask DataFrame
and a dask-backed DataArray on a multi-process cluster and check that the client's memory
does not grow with the data.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import psutil
import pytest
import sklearn.cluster as skc
import xarray as xr
from numpy.testing import assert_allclose, assert_array_equal

from dshift import MeanShift

PARAMS = dict(bandwidth=3.0, kernel="flat")
BLOB_CENTERS = np.array([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]])
N = 600
NAMES = ["a", "b"]

#: dask's Parquet reader and writer call pandas methods with ``inplace=True``, which pandas
#: 3.1 deprecates (a dask incompatibility, not dshift's).
PARQUET_WARNINGS = pytest.mark.filterwarnings(
    "ignore:The inplace keyword in DataFrame:DeprecationWarning"
)


def _blobs(n: int = N, seed: int = 0) -> np.ndarray:
    """n points, point i from blob i % 3 (unit normal around its center)."""
    noise = np.random.default_rng(seed).normal(size=(n, 2))
    return BLOB_CENTERS[np.arange(n) % 3] + noise


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return _blobs()


@pytest.fixture(scope="module")
def ref(X) -> MeanShift:
    """The fit every input kind must reproduce."""
    model = MeanShift(**PARAMS).fit(X)
    assert len(model.cluster_centers_) == 3  # the data really has three clusters
    return model


@pytest.fixture(scope="module")
def frame(X) -> pd.DataFrame:
    return pd.DataFrame(X, columns=NAMES)


def _same_fit(model: MeanShift, ref: MeanShift) -> None:
    assert_allclose(model.cluster_centers_, ref.cluster_centers_, rtol=1e-12, atol=1e-12)
    assert_array_equal(model.cluster_sizes_, ref.cluster_sizes_)
    assert model.n_iter_ == ref.n_iter_


def _is_lazy_series(labels) -> bool:
    return isinstance(labels, dd.Series) and labels.name == "labels"


# -- xarray ------------------------------------------------------------------------------


def _sample_array(X: np.ndarray) -> xr.DataArray:
    """X as a (sample, feature) DataArray with coordinates on both dimensions."""
    return xr.DataArray(
        X,
        dims=("sample", "feature"),
        coords={"sample": np.arange(len(X)) * 2 + 100, "feature": NAMES},
    )


@pytest.mark.parametrize("backing", ["numpy", "dask"])
def test_a_2d_dataarray_fits_as_its_array_and_labels_its_samples(X, ref, backing):
    arr = _sample_array(X)
    if backing == "dask":
        arr = arr.chunk({"sample": 150})
    model = MeanShift(**PARAMS).fit(arr)
    _same_fit(model, ref)
    assert model.feature_names_in_.tolist() == NAMES
    labels = model.labels_
    assert isinstance(labels, xr.DataArray) and labels.dims == ("sample",)
    assert_array_equal(labels["sample"], arr["sample"])
    if backing == "dask":
        assert isinstance(labels.data, da.Array)  # lazy
    else:
        assert isinstance(labels.data, np.ndarray) and labels.dtype == np.int64
    assert_array_equal(labels.values, ref.labels_)


def _image(X: np.ndarray, ny: int = 30, nx: int = 20) -> xr.DataArray:
    """X as an image (y, x, band): pixel (i, j) is point i * nx + j."""
    assert ny * nx == len(X)
    lat = 50.0 + np.arange(ny)[:, None] * 0.1 + np.zeros(nx)[None, :]
    return xr.DataArray(
        X.reshape(ny, nx, 2),
        dims=("y", "x", "band"),
        coords={
            "y": np.linspace(1000.0, 700.0, ny),
            "x": np.arange(nx) * 10.0 + 5.0,
            "band": NAMES,
            "lat": (("y", "x"), lat),  # a 2-d coordinate over the sample dimensions
            "wavelength": ("band", [665.0, 842.0]),  # a coordinate of the features
        },
    )


def test_an_image_clusters_its_pixels_and_labels_them_lazily_on_y_and_x(X, ref):
    img = _image(X).chunk({"y": 10, "x": 7})
    model = MeanShift(**PARAMS).fit(img)
    _same_fit(model, ref)
    assert model.feature_names_in_.tolist() == NAMES
    labels = model.labels_
    assert isinstance(labels, xr.DataArray)
    assert labels.dims == ("y", "x") and labels.shape == (30, 20)
    assert isinstance(labels.data, da.Array)  # lazy
    for coord in ("y", "x", "lat"):
        assert_array_equal(labels[coord], img[coord])
    assert labels["lat"].dims == ("y", "x")
    assert "wavelength" not in labels.coords and "band" not in labels.coords
    assert_array_equal(labels.values, ref.labels_.reshape(30, 20))


def test_a_feature_dim_that_is_not_the_last_dimension(X, ref):
    img = _image(X).transpose("band", "y", "x").chunk({"y": 10})
    model = MeanShift(feature_dim="band", **PARAMS).fit(img)
    _same_fit(model, ref)
    assert model.labels_.dims == ("y", "x")
    assert isinstance(model.labels_.data, da.Array)
    assert_array_equal(model.labels_.values, ref.labels_.reshape(30, 20))
    # predict uses the same feature_dim
    assert_array_equal(model.predict(img).values, ref.labels_.reshape(30, 20))


def _dataset(X: np.ndarray) -> xr.Dataset:
    time = pd.date_range("2024-01-01", periods=len(X), freq="h")
    return xr.Dataset({"a": ("time", X[:, 0]), "b": ("time", X[:, 1])}, coords={"time": time})


@pytest.mark.parametrize("backing", ["numpy", "dask"])
def test_a_dataset_fits_its_data_variables_as_features(X, ref, backing):
    ds = _dataset(X)
    if backing == "dask":
        ds = ds.chunk({"time": 200})
    model = MeanShift(**PARAMS).fit(ds)
    _same_fit(model, ref)
    assert model.feature_names_in_.tolist() == ["a", "b"]
    labels = model.labels_
    assert isinstance(labels, xr.DataArray) and labels.dims == ("time",)
    assert_array_equal(labels["time"], ds["time"])
    assert isinstance(labels.data, da.Array if backing == "dask" else np.ndarray)
    assert_array_equal(labels.values, ref.labels_)


def test_dataset_variables_are_features_in_their_order(X, ref):
    """Variables b, a: the features are (b, a), and the centers' columns follow."""
    ds = xr.Dataset({"b": ("time", X[:, 1]), "a": ("time", X[:, 0])})
    model = MeanShift(**PARAMS).fit(ds)
    assert model.feature_names_in_.tolist() == ["b", "a"]
    assert_allclose(model.cluster_centers_, ref.cluster_centers_[:, ::-1], rtol=1e-12, atol=1e-12)
    assert_array_equal(model.labels_.values, ref.labels_)


# -- pandas ------------------------------------------------------------------------------


def test_a_pandas_dataframe_gives_feature_names_and_numpy_int64_labels(frame, ref):
    indexed = frame.set_axis(pd.Index(np.arange(N) * 7 + 3, name="id"))
    model = MeanShift(**PARAMS).fit(indexed)
    _same_fit(model, ref)
    assert isinstance(model.feature_names_in_, np.ndarray)
    assert model.feature_names_in_.tolist() == NAMES
    assert type(model.labels_) is np.ndarray and model.labels_.dtype == np.int64
    assert_array_equal(model.labels_, ref.labels_)


def test_a_pandas_series_is_one_feature(X):
    series = pd.Series(X[:, 0], name="a")
    model = MeanShift(**PARAMS).fit(series)
    _same_fit(model, MeanShift(**PARAMS).fit(X[:, :1]))
    assert model.n_features_in_ == 1 and model.feature_names_in_.tolist() == ["a"]
    assert type(model.labels_) is np.ndarray and model.labels_.dtype == np.int64


# -- dask DataFrames and Series ----------------------------------------------------------


def _offset(frame: pd.DataFrame) -> dd.DataFrame:
    return dd.from_pandas(frame.set_axis(frame.index + 10_000), npartitions=4)


def _set_index(frame: pd.DataFrame) -> dd.DataFrame:
    keyed = frame.assign(key=np.arange(N) * 3 + 7)
    return dd.from_pandas(keyed, npartitions=4).set_index("key")


def _repartitioned(frame: pd.DataFrame) -> dd.DataFrame:
    return dd.from_pandas(frame, npartitions=6).repartition(npartitions=3)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda f: dd.from_pandas(f, npartitions=4), id="default-index"),
        pytest.param(_offset, id="offset-index"),
        pytest.param(_set_index, id="set_index"),
        pytest.param(_repartitioned, id="repartition"),
    ],
)
def test_a_dask_dataframe_gives_a_lazy_labels_series_on_its_index(frame, ref, make):
    ddf = make(frame)
    model = MeanShift(**PARAMS).fit(ddf)
    _same_fit(model, ref)
    assert model.feature_names_in_.tolist() == NAMES
    labels = model.labels_
    assert _is_lazy_series(labels)
    assert labels.npartitions == ddf.npartitions and labels.divisions == ddf.divisions
    computed = labels.compute()
    expected_index = ddf.index.compute()
    pd.testing.assert_index_equal(computed.index, expected_index)
    assert computed.dtype.kind == "i"
    assert_array_equal(computed.to_numpy(), ref.labels_)


def test_a_dask_series_is_one_feature_with_lazy_labels(X):
    series = dd.from_pandas(pd.Series(X[:, 1], name="b", index=np.arange(N) + 5), npartitions=3)
    model = MeanShift(**PARAMS).fit(series)
    expected = MeanShift(**PARAMS).fit(X[:, 1:])
    _same_fit(model, expected)
    assert model.n_features_in_ == 1 and model.feature_names_in_.tolist() == ["b"]
    assert _is_lazy_series(model.labels_) and model.labels_.divisions == series.divisions
    computed = model.labels_.compute()
    pd.testing.assert_index_equal(computed.index, series.index.compute())
    assert_array_equal(computed.to_numpy(), expected.labels_)


@PARQUET_WARNINGS
@pytest.mark.parametrize("write_index", [True, False], ids=["with-index", "without-index"])
def test_a_parquet_path_is_read_as_a_dask_dataframe(tmp_path, frame, ref, write_index):
    path = tmp_path / "x.parquet"
    indexed = frame.set_axis(pd.Index(np.arange(N) + 500, name="id"))
    dd.from_pandas(indexed, npartitions=3).to_parquet(path, write_index=write_index)
    model = MeanShift(**PARAMS).fit(str(path))
    _same_fit(model, ref)
    assert model.feature_names_in_.tolist() == NAMES
    labels = model.labels_
    assert _is_lazy_series(labels) and labels.npartitions == 3
    computed = labels.compute()
    if write_index:
        pd.testing.assert_index_equal(computed.index, indexed.index)
    else:
        assert len(computed) == N
    assert_array_equal(computed.to_numpy(), ref.labels_)


@PARQUET_WARNINGS
def test_a_parquet_frame_dask_cannot_count_is_a_clear_error(tmp_path, frame):
    path = tmp_path / "x.parquet"
    dd.from_pandas(frame.assign(c=1.0), npartitions=3).to_parquet(path)
    # dask merges the small files after counting them (3 partitions, 2 blocks)
    with pytest.raises(ValueError, match=r"dask cannot count the partitions of X consistently"):
        MeanShift(**PARAMS).fit(dd.read_parquet(path, columns=NAMES))


@pytest.mark.parametrize("partitions", [3, 5], ids=["same-partitions", "other-partitions"])
def test_a_dask_series_of_sample_weights(X, frame, partitions):
    weights = np.random.default_rng(3).uniform(0.2, 3.0, N)
    weights[::10] = 0.0
    ddf = dd.from_pandas(frame, npartitions=3)
    w = dd.from_pandas(pd.Series(weights), npartitions=partitions)
    model = MeanShift(**PARAMS).fit(ddf, sample_weight=w)
    expected = MeanShift(**PARAMS).fit(X, sample_weight=weights)
    assert_allclose(model.cluster_centers_, expected.cluster_centers_, rtol=1e-12, atol=1e-12)
    assert_allclose(model.cluster_sizes_, expected.cluster_sizes_, rtol=1e-12)
    assert_allclose(model.intensity_, expected.intensity_, rtol=1e-12)
    # the weights matter: the weighted centers are not the unweighted ones
    unweighted = MeanShift(**PARAMS).fit(X)
    assert not np.allclose(model.cluster_centers_, unweighted.cluster_centers_, atol=1e-6)
    assert_array_equal(model.labels_.compute().to_numpy(), expected.labels_)


def test_a_dask_series_of_sample_weights_of_another_length_is_refused(frame):
    w = dd.from_pandas(pd.Series(np.ones(N - 1)), npartitions=3)
    with pytest.raises(ValueError, match=rf"sample_weight must have shape \({N},\)"):
        MeanShift(**PARAMS).fit(dd.from_pandas(frame, npartitions=3), sample_weight=w)


# -- predict -----------------------------------------------------------------------------


def _labels_as_numpy(labels) -> np.ndarray:
    if isinstance(labels, dd.Series):
        return labels.compute().to_numpy()
    if isinstance(labels, xr.DataArray):
        return labels.values.ravel()
    return np.asarray(labels)


KINDS = {
    "numpy DataArray": lambda X: _sample_array(X),
    "dask DataArray": lambda X: _sample_array(X).chunk({"sample": 100}),
    "Dataset": lambda X: _dataset(X),
    "dask Dataset": lambda X: _dataset(X).chunk({"time": 100}),
    "pandas DataFrame": lambda X: pd.DataFrame(X, columns=NAMES),
    "dask DataFrame": lambda X: dd.from_pandas(pd.DataFrame(X, columns=NAMES), npartitions=3),
}

#: The type predict's labels come in, and whether they are lazy.
PREDICTED = {
    "numpy DataArray": (xr.DataArray, False),
    "dask DataArray": (xr.DataArray, True),
    "Dataset": (xr.DataArray, False),
    "dask Dataset": (xr.DataArray, True),
    "pandas DataFrame": (np.ndarray, False),
    "dask DataFrame": (dd.Series, True),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_predict_returns_labels_in_the_kind_of_its_input(X, ref, kind):
    model = MeanShift(**PARAMS).fit(KINDS[kind](X))
    new = _blobs(90, seed=11)
    labels = model.predict(KINDS[kind](new))
    cls, lazy = PREDICTED[kind]
    assert isinstance(labels, cls)
    if cls is xr.DataArray:
        assert isinstance(labels.data, da.Array) == lazy
        assert labels.dims == (("sample",) if "DataArray" in kind else ("time",))
    if not lazy:
        assert _labels_as_numpy(labels).dtype == np.int64
    assert_array_equal(_labels_as_numpy(labels), ref.predict(new))
    # the points of the fit get their labels again
    assert_array_equal(_labels_as_numpy(model.predict(KINDS[kind](X))), ref.labels_)


def test_predict_on_an_image_gives_a_y_x_dataarray(X, ref):
    model = MeanShift(**PARAMS).fit(_image(X).chunk({"y": 10}))
    lazy = model.predict(_image(X).chunk({"y": 15}))
    assert lazy.dims == ("y", "x") and isinstance(lazy.data, da.Array)
    in_memory = model.predict(_image(X))
    assert in_memory.dims == ("y", "x") and isinstance(in_memory.data, np.ndarray)
    assert_array_equal(lazy.values, in_memory.values)
    assert_array_equal(in_memory.values.ravel(), ref.labels_)


def test_predict_on_series_and_parquet(tmp_path, X):
    pandas_model = MeanShift(**PARAMS).fit(pd.Series(X[:, 0], name="a"))
    pred = pandas_model.predict(pd.Series(X[:30, 0], name="a"))
    assert type(pred) is np.ndarray and pred.dtype == np.int64
    assert_array_equal(pred, pandas_model.labels_[:30])

    dask_series = dd.from_pandas(pd.Series(X[:, 0], name="a"), npartitions=2)
    dask_model = MeanShift(**PARAMS).fit(dask_series)
    lazy = dask_model.predict(dask_series)
    assert _is_lazy_series(lazy)
    assert_array_equal(lazy.compute().to_numpy(), pandas_model.labels_)


@PARQUET_WARNINGS
def test_predict_on_a_parquet_path(tmp_path, frame, ref):
    path = tmp_path / "new.parquet"
    new = pd.DataFrame(_blobs(90, seed=12), columns=NAMES)
    dd.from_pandas(new, npartitions=2).to_parquet(path)
    model = MeanShift(**PARAMS).fit(frame)
    labels = model.predict(str(path))
    assert _is_lazy_series(labels) and labels.npartitions == 2
    assert_array_equal(labels.compute().to_numpy(), ref.predict(new.to_numpy()))


SWAPPED = {
    "pandas DataFrame": lambda X: pd.DataFrame(X, columns=NAMES[::-1]),
    "dask DataFrame": lambda X: dd.from_pandas(pd.DataFrame(X, columns=NAMES[::-1]), npartitions=2),
    "DataArray": lambda X: _sample_array(X).assign_coords(feature=NAMES[::-1]),
    "Dataset": lambda X: xr.Dataset({"b": ("t", X[:, 0]), "a": ("t", X[:, 1])}),
    "other names": lambda X: pd.DataFrame(X, columns=["a", "c"]),
}


@pytest.mark.parametrize("kind", list(SWAPPED))
def test_predict_refuses_other_feature_names(frame, kind):
    model = MeanShift(**PARAMS).fit(frame)
    with pytest.raises(ValueError, match="The feature names should match"):
        model.predict(SWAPPED[kind](_blobs(30)))


def test_predict_warns_when_one_side_has_no_feature_names(X, frame):
    model = MeanShift(**PARAMS).fit(frame)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        labels = model.predict(X[:30])
    assert_array_equal(labels, model.labels_[:30])

    unnamed = MeanShift(**PARAMS).fit(X)
    with pytest.warns(UserWarning, match="fitted without feature names"):
        unnamed.predict(frame.iloc[:30])
    # an unnamed feature dimension has no names: no warning either way
    no_names = xr.DataArray(X[:30], dims=("sample", "feature"))
    assert_array_equal(unnamed.predict(no_names).values, unnamed.labels_[:30])


# -- errors ------------------------------------------------------------------------------


def _with_text(frame: pd.DataFrame, dtype) -> pd.DataFrame:
    return frame.assign(name=pd.Series(["x"] * N, dtype=dtype))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda f: _with_text(f, object), id="pandas-object"),
        pytest.param(
            lambda f: f.assign(when=pd.date_range("2024", periods=N)), id="pandas-datetime"
        ),
        pytest.param(lambda f: _with_text(f, "str"), id="pandas-str"),
        pytest.param(lambda f: _with_text(f, "category"), id="pandas-category"),
        pytest.param(lambda f: dd.from_pandas(_with_text(f, "str"), npartitions=2), id="dask-str"),
    ],
)
def test_a_non_numeric_column_is_a_type_error_naming_it(frame, make):
    bad = make(frame)
    column = bad.columns[-1]
    with pytest.raises(TypeError, match=f"non-numeric columns '{column}'"):
        MeanShift(**PARAMS).fit(bad)


def test_a_non_numeric_dask_column_without_string_conversion_is_named(frame):
    with dask.config.set({"dataframe.convert-string": False}):
        bad = dd.from_pandas(_with_text(frame, object), npartitions=2)
        with pytest.raises(TypeError, match="non-numeric columns 'name' \\(object\\)"):
            MeanShift(**PARAMS).fit(bad)


def test_a_non_numeric_dataset_variable_is_a_type_error_naming_it(X):
    ds = _dataset(X).assign(label=("time", np.array(["x"] * N)))
    with pytest.raises(TypeError, match="non-numeric columns 'label'"):
        MeanShift(**PARAMS).fit(ds)


def test_a_feature_dim_that_is_not_a_dimension_is_a_value_error(X):
    with pytest.raises(ValueError, match=r"feature_dim='band' is not a dimension of X"):
        MeanShift(feature_dim="band", **PARAMS).fit(_sample_array(X))


def test_a_1d_dataarray_of_only_the_feature_dimension_is_a_value_error(X):
    with pytest.raises(ValueError, match=r"only the feature dimension 'feature'"):
        MeanShift(**PARAMS).fit(xr.DataArray(X[:, 0], dims=("feature",)))


def test_predict_with_another_number_of_features_is_a_value_error(X):
    model = MeanShift(**PARAMS).fit(_image(X))
    three_bands = xr.DataArray(np.zeros((4, 5, 3)), dims=("y", "x", "band"))
    with pytest.raises(ValueError, match="3 features, but MeanShift is expecting 2"):
        model.predict(three_bands)


# -- out of core: nothing of size n_samples reaches the client ---------------------------

BIG_N = 10_000_000
BIG_CHUNK = 1_000_000
BIG_CENTERS = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
MB = 2**20


def _big_points(n: int = BIG_N, chunk: int = BIG_CHUNK) -> da.Array:
    """n x 2 float64 points, made on the workers: point i from blob i % 3 (unit normal).

    Built from dask's own operations only: a function of this module in the graph would
    be pickled by reference, and the workers cannot import the tests.
    """
    noise = da.random.default_rng(0).normal(size=(n, 2), chunks=(chunk, 2))
    blob = da.arange(n, chunks=chunk) % 3
    # blob 1 is shifted along the first feature, blob 2 along the second (BIG_CENTERS)
    offsets = (blob[:, None] == np.array([1, 2])) * 20.0
    return (noise + offsets).rechunk({1: -1})


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


@contextmanager
def peak_rss_growth():
    """Yields a dict whose "bytes" is, on exit, the growth of this process's peak resident
    memory during the block: VmHWM reset through /proc/self/clear_refs (Linux >= 4.0),
    else the peak of RSS sampled every 5 ms by a background thread."""
    result = {}
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _status_bytes("VmRSS")
    except OSError:
        proc = psutil.Process()
        base = proc.memory_info().rss
        peak = [base]
        stop = threading.Event()

        def sample():
            while not stop.wait(0.005):
                peak[0] = max(peak[0], proc.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield result
        finally:
            stop.set()
            sampler.join()
        result["bytes"] = max(peak[0], proc.memory_info().rss) - base
        return
    yield result
    result["bytes"] = _status_bytes("VmHWM") - base


def test_the_peak_rss_measurement_sees_an_allocation():
    """The method's sanity check: 48 MB touched in the block are seen."""
    with peak_rss_growth() as grown:
        block = np.ones(6 * MB)
    del block
    assert grown["bytes"] >= 40 * MB, grown


#: Less than the labels' own size (int32): neither X nor its labels reach the client.
GROWTH_LIMIT = BIG_N * 4 * 3 // 4


@pytest.mark.cluster
@pytest.mark.parametrize("kind", ["dask DataFrame", "dask DataArray"])
def test_ten_million_points_fit_without_reaching_the_client(dask_client, kind):
    def as_kind(points: da.Array):
        if kind == "dask DataFrame":
            return dd.from_dask_array(points, columns=NAMES)
        return xr.DataArray(points, dims=("sample", "feature"), coords={"feature": NAMES})

    params = dict(bandwidth=3.0, kernel="flat", seeding="bin")
    # warm-up on small data of the same kind: imports and compilations are not growth
    MeanShift(**params).fit(as_kind(_big_points(60_000, 20_000)))

    X = as_kind(_big_points())
    with peak_rss_growth() as grown:
        model = MeanShift(**params).fit(X)
    print(f"\n{kind}: client peak RSS growth {grown['bytes'] / MB:.1f} MB")
    assert grown["bytes"] < GROWTH_LIMIT, f"{grown['bytes'] / MB:.1f} MB"

    # the fit really ran over all the points: three clusters of exactly i % 3's sizes
    assert model.seeding_ == "bin" and model.n_iter_ < model.max_iter
    assert len(model.cluster_centers_) == 3
    assert sorted(model.cluster_sizes_.tolist()) == [3_333_333, 3_333_333, 3_333_334]
    nearest = np.linalg.norm(BIG_CENTERS[:, None] - model.cluster_centers_[None], axis=2)
    blob_label = nearest.argmin(axis=1)  # the fitted cluster of each blob
    assert sorted(blob_label.tolist()) == [0, 1, 2]
    assert_allclose(model.cluster_centers_[blob_label], BIG_CENTERS, atol=0.01)
    assert model.feature_names_in_.tolist() == NAMES

    labels = model.labels_
    expected_head = blob_label[np.arange(12) % 3]
    if kind == "dask DataFrame":
        assert _is_lazy_series(labels)
        assert labels.npartitions == 10 and labels.divisions == X.divisions
        head = labels.head(12)  # computes the first partition only, on the workers
        assert_array_equal(head.index, np.arange(12))
        assert_array_equal(head.to_numpy(), expected_head)
        # every label, counted on the workers (tree reductions, no shuffle)
        counts = dask.compute(*[(labels == k).sum() for k in range(3)])
        assert list(counts) == model.cluster_sizes_.tolist()
    else:
        assert isinstance(labels, xr.DataArray) and labels.dims == ("sample",)
        assert isinstance(labels.data, da.Array) and labels.shape == (BIG_N,)
        assert_array_equal(labels[:12].values, expected_head)
        assert_array_equal(labels[-3:].values, blob_label[np.arange(BIG_N - 3, BIG_N) % 3])
        # the control: labels brought to the client are growth the limit sees
        with peak_rss_growth() as pulled:
            values = labels.values
        print(f"{kind}: client peak RSS growth computing the labels {pulled['bytes'] / MB:.1f} MB")
        assert pulled["bytes"] >= GROWTH_LIMIT, f"{pulled['bytes'] / MB:.1f} MB"
        assert np.bincount(values).tolist() == model.cluster_sizes_.tolist()


def test_mixed_column_name_types_are_refused_as_scikit_learn_does(frame):
    mixed = frame.set_axis(["a", 1], axis=1)
    with pytest.raises(TypeError, match="Feature names are only supported if all input features"):
        MeanShift(**PARAMS).fit(mixed)
    with pytest.raises(TypeError, match="Feature names are only supported"):
        skc.MeanShift(bandwidth=3).fit(mixed)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda X, frame: _image(X), id="image"),
        pytest.param(lambda X, frame: dd.from_pandas(frame, npartitions=4), id="dask-dataframe"),
        pytest.param(lambda X, frame: frame, id="pandas"),
    ],
)
def test_write_result_takes_labels_of_every_kind(tmp_path, X, frame, ref, make):
    import zarr

    from dshift import write_result

    model = MeanShift(**PARAMS).fit(make(X, frame))
    path = write_result(tmp_path / "result.zarr", model)
    group = zarr.open_group(path, mode="r")
    assert_array_equal(group["labels"][:], ref.labels_)
    assert_allclose(group["centers"][:], ref.cluster_centers_)
