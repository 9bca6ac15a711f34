"""The inputs PyData users have, as a row-chunked dask array, and their labels in kind.

:func:`read_points` turns xarray DataArrays and Datasets, dask and pandas DataFrames and
Series, and Parquet paths into the 2-d array :func:`dshift._io.as_dask_array` checks;
everything else (numpy, dask arrays, Zarr) goes to it directly. The :class:`Kind` it
returns gives labels back in the input's kind: a lazy DataArray with the sample coordinates
for xarray, a dask Series on the same index for a dask DataFrame, numpy int64 for in-memory
input (as scikit-learn). Nothing of size n_samples is computed here: a dask DataFrame's
partition lengths are computed chunk-wise (one pass; a Parquet file's are read with it).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np

from dshift._io import as_dask_array
from dshift._zarr_input import open_zarr_array

#: Suffixes of a path read as Parquet (anything else is opened as a Zarr array).
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class Kind:
    """How X came in: whether it was in memory, its feature names, and how labels go out.

    Attributes
    ----------
    in_memory : bool
        X was in the client's memory (numpy, pandas, numpy-backed xarray).
    feature_names : ndarray of str or None
        The features' names (DataFrame columns, Dataset variables, the feature dimension's
        coordinate), when they are all strings.
    wrap : callable
        Turns labels (numpy for in-memory input, else a lazy dask array, one per row) into
        the input's kind.
    """

    in_memory: bool
    feature_names: np.ndarray | None = None
    wrap: Callable[[Any], Any] | None = None

    def labels(self, labels: np.ndarray | da.Array) -> Any:
        """Labels in the input's kind: numpy int64 for in-memory input, else lazy int32.

        Examples
        --------
        >>> Kind(in_memory=True).labels(np.array([0, 1], dtype=np.int32))
        array([0, 1])
        """
        if isinstance(labels, np.ndarray):
            labels = labels.astype(np.int64, copy=False)
        return labels if self.wrap is None else self.wrap(labels)


def read_points(
    X: Any,
    *,
    row_chunks: int | None = None,
    name: str = "X",
    n_features: int | None = None,
    feature_dim: Hashable | None = None,
    storage_options: dict[str, Any] | None = None,
) -> tuple[da.Array, Kind]:
    """X as a checked, row-chunked 2-d dask array, and its kind.

    Parameters
    ----------
    X : array-like, dask array, zarr.Array, xarray, DataFrame, Series, str or path-like
        A string or path ending in ``.parquet`` or ``.pq`` is read with
        ``dask.dataframe.read_parquet``; any other string or path is a Zarr array.
    row_chunks : int, optional
        Rows per chunk for input that dshift chunks itself (numpy, pandas, Zarr).
    name : str
        The name used in error messages.
    n_features : int, optional
        The number of features X must have (``predict`` after ``fit``).
    feature_dim : hashable, optional
        xarray input: the dimension holding the features (default: the last one); every
        other dimension is stacked into samples.
    storage_options : dict, optional
        For a URL: passed to its fsspec file system (credentials, endpoint...).

    Returns
    -------
    X : dask.array.Array of shape (n_samples, n_features)
    kind : Kind

    Examples
    --------
    >>> import pandas as pd
    >>> Xd, kind = read_points(pd.DataFrame({"a": [0.0, 1.0], "b": [2.0, 3.0]}))
    >>> Xd.shape, kind.in_memory, kind.feature_names.tolist()
    ((2, 2), True, ['a', 'b'])
    """
    X = opened(X, storage_options)
    module = type(X).__module__.split(".")[0]
    if module == "xarray":
        return _from_xarray(X, row_chunks, name, n_features, feature_dim)
    if module in ("dask", "dask_expr") and hasattr(X, "to_dask_array"):
        return _from_dask_frame(X, row_chunks, name, n_features)
    if module == "pandas":
        return _from_pandas(X, row_chunks, name, n_features)
    Xd, in_memory = as_dask_array(X, row_chunks=row_chunks, name=name, n_features=n_features)
    return Xd, Kind(in_memory)


def opened(value: Any, storage_options: dict[str, Any] | None = None) -> Any:
    """A path or URL opened: Parquet (by its suffix) as a dask DataFrame, anything else as
    a Zarr array; other values are returned as they are.

    Examples
    --------
    >>> opened([1.0, 2.0])
    [1.0, 2.0]
    """
    if not isinstance(value, (str, os.PathLike)):
        return value
    if not os.fspath(value).lower().endswith(PARQUET_SUFFIXES):
        return open_zarr_array(value, storage_options)
    try:
        import dask.dataframe as dd
    except ImportError as exc:
        raise ImportError(
            "Reading Parquet needs dask.dataframe and pyarrow: pip install 'dshift[dataframe]'."
        ) from exc
    path = os.fspath(value)
    return dd.read_parquet(
        path if "://" in path else os.path.abspath(path), storage_options=storage_options
    )


def _string_names(names: Any) -> np.ndarray | None:
    """The names as an array of str when every one is a string, None when none is
    (scikit-learn's rule); a mix is refused, as scikit-learn does."""
    names = list(names)
    strings = [isinstance(n, str) for n in names]
    if names and all(strings):
        return np.asarray([str(n) for n in names], dtype=object)
    if any(strings):
        raise TypeError(
            "Feature names are only supported if all input features have string names, "
            f"but the input has {sorted({type(n).__name__ for n in names})} as feature name "
            "types; convert them all to strings, e.g. X.columns = X.columns.astype(str)."
        )
    return None


def _check_numeric(dtypes: Any, name: str) -> None:
    """Refuse non-numeric columns by name, from the frame's metadata."""
    # pandas' extension dtypes (str, category, Int64...) are no numpy dtypes: their kind
    bad = [
        f"{col!r} ({dt})" for col, dt in dtypes.items() if getattr(dt, "kind", "O") not in "fiub"
    ]
    if bad:
        raise TypeError(
            f"{name} has non-numeric columns {', '.join(bad)}; dshift needs real numbers. "
            "Select the numeric columns or convert them first."
        )


def _numpy_dtypes(frame: Any) -> Any:
    """The frame with pandas' numeric extension columns (Int64, Float64...) as float64
    (their missing values as NaN, which the fit refuses), numpy columns as they are."""
    extension = [c for c, dt in frame.dtypes.items() if not isinstance(dt, np.dtype)]
    return frame.astype(dict.fromkeys(extension, np.float64)) if extension else frame


def _from_pandas(X: Any, row_chunks: int | None, name: str, n_features: int | None):
    frame = X.to_frame() if X.ndim == 1 else X
    _check_numeric(frame.dtypes, name)
    frame = _numpy_dtypes(frame)
    Xd, _ = as_dask_array(frame.to_numpy(), row_chunks=row_chunks, name=name, n_features=n_features)
    return Xd, Kind(True, _string_names(frame.columns))


def _from_dask_frame(X: Any, row_chunks: int | None, name: str, n_features: int | None):
    import dask.dataframe as dd

    frame = X.to_frame() if X.ndim == 1 else X
    _check_numeric(frame.dtypes, name)
    frame = _numpy_dtypes(frame).optimize()  # (the index's graph after set_index: its keys)
    # one chunk-wise pass: each partition's length (the array's row chunks)
    try:
        arr = frame.to_dask_array(lengths=True)
    except ValueError as exc:
        if "number of partitions" not in str(exc):
            raise
        raise ValueError(
            f"dask cannot count the partitions of {name} consistently ({exc}); this happens "
            "with dd.read_parquet(..., columns=[...]) over small files, which dask merges "
            "after counting them. Read the Parquet data with all its columns (or pass its "
            "path), or write the selected columns to their own Parquet or Zarr data first."
        ) from exc
    Xd, _ = as_dask_array(arr, row_chunks=row_chunks, name=name, n_features=n_features)
    index = frame.index

    def wrap(labels: da.Array) -> Any:  # lazy: a dask frame is never in memory
        return dd.from_dask_array(labels, columns="labels", index=index)

    return Xd, Kind(False, _string_names(frame.columns), wrap)


def _from_xarray(
    X: Any,
    row_chunks: int | None,
    name: str,
    n_features: int | None,
    feature_dim: Hashable | None,
):
    import xarray as xr

    if isinstance(X, xr.Dataset):
        _check_numeric({v: X[v].dtype for v in X.data_vars}, name)
        X = X.to_dataarray(dim="variable" if feature_dim is None else feature_dim)
        feature_dim = X.dims[0]
    fdim = X.dims[-1] if feature_dim is None else feature_dim
    if fdim not in X.dims:
        raise ValueError(
            f"feature_dim={fdim!r} is not a dimension of {name} (its dimensions are "
            f"{list(X.dims)}); pass the dimension that holds the features."
        )
    sample_dims = [d for d in X.dims if d != fdim]
    if not sample_dims:
        raise ValueError(
            f"{name} has only the feature dimension {fdim!r}; it needs at least one more "
            "dimension for the samples."
        )
    shape = tuple(X.sizes[d] for d in sample_dims)
    data = X.transpose(*sample_dims, fdim).data
    lazy = isinstance(data, da.Array)
    flat = (data if lazy else np.asarray(data)).reshape(math.prod(shape), X.sizes[fdim])
    Xd, _ = as_dask_array(flat, row_chunks=row_chunks, name=name, n_features=n_features)
    coords = {k: c for k, c in X.coords.items() if fdim not in c.dims}
    names = _string_names(X[fdim].values) if fdim in X.coords else None

    def wrap(labels: Any) -> Any:
        return xr.DataArray(labels.reshape(shape), dims=sample_dims, coords=coords, name="labels")

    return Xd, Kind(not lazy, names, wrap)


def label_array(labels: Any) -> da.Array:
    """Labels of any kind dshift returns (numpy, dask, xarray, a dask or pandas Series) as
    a 1-d dask array, without computing lazy ones.

    Examples
    --------
    >>> label_array(np.array([0, 1, 1])).chunks
    ((3,),)
    """
    if type(labels).__module__.split(".")[0] == "xarray":
        labels = labels.data.reshape(-1)
    elif hasattr(labels, "to_dask_array") and hasattr(labels, "npartitions"):
        labels = labels.to_dask_array(lengths=True)  # partition lengths: a pass over them
    elif hasattr(labels, "to_numpy"):
        labels = labels.to_numpy()
    if isinstance(labels, da.Array):
        return labels
    labels = np.asarray(labels)
    return da.from_array(labels, chunks=max(1, min(len(labels), 1_000_000)), name=False)


def columns_stand_in(feature_names: np.ndarray | None, n_features: int) -> Any:
    """An empty stand-in for X with its columns (names, or just their number), for
    scikit-learn's checks of feature names and counts (``validate_data`` with
    ``skip_check_array=True``), so that they never touch the data.

    Examples
    --------
    >>> columns_stand_in(None, 3).shape
    (0, 3)
    >>> list(columns_stand_in(np.array(["a", "b"], dtype=object), 2).columns)
    ['a', 'b']
    """
    if feature_names is None:
        return np.empty((0, n_features))
    import pandas as pd

    return pd.DataFrame(columns=feature_names)
