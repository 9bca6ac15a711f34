"""Turn user input (numpy, dask, zarr, a path or URL) into a row-chunked dask array.

Everything here is lazy: shapes and dtypes are checked from metadata, never by reading the
data. Non-finite values are found later, inside the first real pass over the data.
"""

from __future__ import annotations

import math
import os
import uuid
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr
from dask.utils import funcname

from dshift import _limits
from dshift._cluster import checked_client, free_memory, scheduler_options
from dshift._zarr_input import open_input, open_zarr_array, read_rows

#: Target size of one row chunk when dshift chooses the chunking itself, for float32
#: points; a float64 chunk holds as many rows (twice the bytes), so both dtypes make as
#: many chunks and pay an iteration's per-chunk costs as often (1e7 3-d float64 points
#: on 2 workers: 16 iterations over 15 chunks of 16 MiB took 5-6% longer than over 8).
TARGET_CHUNK_BYTES = 16 * 2**20
#: The item size ``TARGET_CHUNK_BYTES`` counts in (float32).
TARGET_ITEMSIZE = 4
#: ... at most this fraction of a worker's free memory: a chunk read from Zarr takes up to
#: ~3x its size while its stored chunks are read, decoded and assembled.
CHUNK_SHARE_OF_FREE_MEMORY = 1 / 16
#: ... and at least this much, however little the workers have free (a full worker would
#: otherwise get chunks of a row or so: millions of tasks).
MIN_CHUNK_BYTES = 2**20
#: Smallest row chunk dshift makes by itself (fewer rows do not pay for a task).
MIN_CHUNK_ROWS = 20_000


def _describe(X: Any) -> str:
    return f"{type(X).__module__}.{type(X).__qualname__}"


def target_chunk_bytes(client: Any, itemsize: int = TARGET_ITEMSIZE) -> int:
    """Bytes per row chunk of ``itemsize``-byte values when dshift chooses:
    ``TARGET_CHUNK_BYTES`` per ``TARGET_ITEMSIZE`` bytes of a value, less on a cluster
    whose smallest worker has under 16 times that free (see
    :func:`~dshift._cluster.free_memory`), but at least ``MIN_CHUNK_BYTES``.

    >>> target_chunk_bytes(None) == TARGET_CHUNK_BYTES
    True
    >>> target_chunk_bytes(None, 8) == 2 * TARGET_CHUNK_BYTES  # float64: as many rows
    True
    """
    target = TARGET_CHUNK_BYTES * max(1, itemsize) // TARGET_ITEMSIZE
    if client is None:
        return target
    free = free_memory(client)
    if not free:
        return target
    share = int(min(free) * CHUNK_SHARE_OF_FREE_MEMORY)
    return max(MIN_CHUNK_BYTES, min(target, share))


def row_chunks_for(
    n_samples: int,
    n_features: int,
    itemsize: int,
    n_cores: int = 1,
    chunk_bytes: int = TARGET_CHUNK_BYTES,
) -> int:
    """Rows per chunk when dshift chooses: ``chunk_bytes`` chunks, enough chunks to use
    the cores.

    >>> row_chunks_for(10_000_000, 3, 4)
    1398101
    >>> row_chunks_for(1000, 3, 8)
    1000
    """
    by_bytes = max(1, chunk_bytes // max(1, n_features * itemsize))
    by_cores = max(MIN_CHUNK_ROWS, math.ceil(n_samples / max(1, 2 * n_cores)))
    return int(max(1, min(n_samples, by_bytes, by_cores)))


def _check_dtype(dtype: np.dtype, where: str) -> np.dtype:
    """Return the float dtype dshift computes in, or raise for non-numeric input."""
    dtype = np.dtype(dtype)
    if dtype.kind in "fiub":
        if dtype == np.float32 or dtype == np.float64:
            return dtype
        return np.dtype(np.float32) if dtype == np.float16 else np.dtype(np.float64)
    if dtype.kind == "c":
        raise ValueError(
            f"Complex data not supported: {where} has dtype {dtype}; stack {where}.real and "
            f"{where}.imag as features if both parts matter."
        )
    kind = {
        "O": "object",
        "U": "string",
        "T": "string",
        "S": "bytes",
        "M": "datetime",
    }.get(dtype.kind, str(dtype))
    raise TypeError(
        f"{where} has dtype {dtype} ({kind}); dshift needs real numbers. Convert it first, "
        "e.g. X.astype('float64')."
    )


def as_dask_array(
    X: Any,
    *,
    row_chunks: int | None = None,
    name: str = "X",
    n_features: int | None = None,
) -> tuple[da.Array, bool]:
    """Validate ``X`` from its metadata and return it as a 2-d, row-chunked dask array.

    Parameters
    ----------
    X : array-like, dask array, zarr.Array, str or path-like
        The points, of shape (n_samples, n_features). A string or path is opened as a Zarr
        array (local path or fsspec URL).
    row_chunks : int, optional
        Rows per chunk for input that dshift chunks itself (numpy and Zarr). A dask array
        keeps its row chunks; unknown ones (after boolean indexing) are computed first,
        chunk by chunk (one pass over X, only the lengths come back). Zarr chunks are
        rounded down to a multiple of the stored chunk rows (at least one stored chunk), so
        no stored chunk is read by two tasks.
    name : str
        The name used in error messages.
    n_features : int, optional
        If given, the number of columns X must have (``predict`` after ``fit``).

    Returns
    -------
    X : dask.array.Array
        Float32 or float64, a single chunk along the columns.
    in_memory : bool
        True if the input was an in-memory (numpy-like) array.

    Examples
    --------
    >>> import numpy as np
    >>> X, in_memory = as_dask_array(np.ones((5, 2)))
    >>> X.shape, X.dtype, in_memory
    ((5, 2), dtype('float64'), True)
    """
    client = checked_client()  # before any task: the workers must run this dshift
    in_memory = False
    if isinstance(X, (str, os.PathLike, zarr.Array)):
        array = X if isinstance(X, zarr.Array) else open_zarr_array(X)
        shape = array.shape
        dtype = _check_dtype(array.dtype, name)  # metadata first, then the stored chunks
        _check_shape(shape, name, n_features)
        source = open_input(array)
        stored = source.grid_rows
        rows = row_chunks or row_chunks_for(
            shape[0],
            shape[1],
            dtype.itemsize,
            chunk_bytes=target_chunk_bytes(client, dtype.itemsize),
        )
        rows = max(stored, (rows // stored) * stored)
        arr = read_rows(source, (rows, shape[1]))
    elif isinstance(X, da.Array):
        arr = X
        dtype = _check_dtype(arr.dtype, name)
        if any(math.isnan(c) for axis in arr.chunks[1:] for c in axis):
            raise ValueError(
                f"{name} has unknown sizes along its features; call "
                f"{name}.compute_chunk_sizes() first."
            )
        if any(math.isnan(c) for c in arr.chunks[0]):
            # rows after boolean indexing: each chunk's length, computed where it lies (one
            # pass over the chunks; only their lengths reach the client), on a copy
            arr = arr.copy().compute_chunk_sizes()
        _check_shape(arr.shape, name, n_features)
        if arr.numblocks[1] != 1:
            arr = arr.rechunk({1: -1})
    elif type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"Sparse data was passed for {name}, but dense data is required: mean shift "
            f"averages points. Use {name}.toarray() if it fits in memory, or a dask array."
        )
    else:
        if hasattr(X, "__array__") or isinstance(X, (list, tuple)):
            try:
                X = np.asarray(X)
            except ValueError as exc:
                raise ValueError(
                    f"{name} could not be turned into a 2-d array ({exc}); pass a "
                    "rectangular array of shape (n_samples, n_features)."
                ) from exc
        else:
            raise TypeError(
                f"{name} must be a numpy, dask or Zarr array, or a path/URL of a Zarr array; "
                f"got {_describe(X)}."
            )
        if X.dtype == object:
            try:
                X = X.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"{name} is an object array whose values are not all numbers ({exc}); "
                    "convert it with X.astype('float64') after cleaning it."
                ) from exc
        dtype = _check_dtype(X.dtype, name)
        _check_shape(X.shape, name, n_features)
        in_memory = True
        rows = row_chunks or row_chunks_for(
            X.shape[0],
            X.shape[1],
            dtype.itemsize,
            _n_cores(),
            target_chunk_bytes(client, dtype.itemsize),
        )
        arr = row_blocks(X, rows)
    if arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr, in_memory


def row_blocks(X: np.ndarray, rows: int) -> da.Array:
    """A 2-d numpy array as a dask array of ``rows``-row blocks that are views of it.

    ``da.from_array`` first copies the whole array (twice the memory, 0.2 s per 240 MB of
    fresh pages) and hashing every byte for a name would take longer still (0.7 s per
    240 MB); the blocks here are slices of X under a fresh name.

    >>> A = np.arange(10.0).reshape(5, 2)
    >>> B = row_blocks(A, 2)
    >>> B.chunks, np.shares_memory(dict(B.dask)[B.name, 2, 0], A)
    (((2, 2, 1), (2,)), True)
    """
    X = np.ascontiguousarray(X)  # a copy only if X is not row-major (kernels need rows)
    name = f"array-{uuid.uuid4().hex}"
    starts = range(0, X.shape[0], rows) if X.shape[0] else range(1)
    graph = {(name, i, 0): X[start : start + rows] for i, start in enumerate(starts)}
    chunks = (tuple(graph[name, i, 0].shape[0] for i in range(len(starts))), (X.shape[1],))
    return da.Array(graph, name, chunks, dtype=X.dtype)


def _n_cores() -> int:
    return os.cpu_count() or 1


def _check_shape(shape: tuple[int, ...], name: str, n_features: int | None) -> None:
    if len(shape) != 2:
        hint = (
            f"Reshape your data with {name}.reshape(-1, 1) if it holds one feature, or "
            f"{name}.reshape(1, -1) if it is one sample"
            if len(shape) == 1
            else f"Reshape your data to (n_samples, n_features), e.g. "
            f"{name}.reshape(-1, {name}.shape[-1])"
        )
        raise ValueError(
            f"{name} must be 2-d of shape (n_samples, n_features), got {len(shape)}-d with "
            f"shape {tuple(shape)}: {hint}."
        )
    for axis, what in enumerate(("sample(s)", "feature(s)")):
        if shape[axis] == 0:
            raise ValueError(
                f"Found array with 0 {what} (shape={tuple(shape)}) while a minimum of 1 is "
                f"required by MeanShift: {name} is empty."
            )
    if n_features is not None and shape[1] != n_features:
        raise ValueError(
            f"{name} has {shape[1]} features, but MeanShift is expecting {n_features} "
            "features as input (as in fit); pass data with the same columns as in fit."
        )


def aligned_column(X: da.Array, values: Any, name: str, *, positive: bool) -> da.Array:
    """One value per row of X (numpy, dask, Zarr or a path), checked, chunked like X's rows.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
    values : array-like, dask array or Series, zarr.Array, str or path-like of shape (n_samples,)
    name : str
        Name in messages (``"sample_weight"``, ``"point_bandwidth"``).
    positive : bool
        Values are bandwidths: each must be within dshift's bandwidth range [1e-150, 1e150].
        Else they are weights: each must be finite and >= 0, and their total within the
        range [1e-150, 1e150] (see :mod:`dshift._limits`), so weighted sums stay finite.

    Returns
    -------
    column : dask.array.Array of shape (n_samples,), float64

    Raises
    ------
    ValueError
        If the values have another length, hold values out of range, NaN or inf, or (weights)
        sum to 0 or to a total out of range (found in one pass over the values, before X is
        read).

    Examples
    --------
    >>> aligned_column(da.ones((3, 2), chunks=2), [1, 0, 2.5], "w", positive=False).chunks
    ((2, 1),)
    """
    n = X.shape[0]
    if hasattr(values, "to_dask_array") and hasattr(values, "npartitions"):
        values = values.to_dask_array(lengths=True)  # a dask Series: its lengths, one pass
    if isinstance(values, (str, os.PathLike, zarr.Array)):
        array = values if isinstance(values, zarr.Array) else open_zarr_array(values)
        shape, dtype, col = array.shape, array.dtype, None
    elif isinstance(values, da.Array):
        shape, dtype, col = values.shape, values.dtype, values
    else:
        col = np.asarray(values)
        shape, dtype = col.shape, col.dtype
    if np.dtype(dtype).kind not in "fiub":
        raise TypeError(f"{name} has dtype {dtype}; it must hold real numbers (one per row).")
    if len(shape) != 1 or shape[0] != n:
        raise ValueError(
            f"{name} must have shape ({n},), one value per row of X, got shape {tuple(shape)}."
        )
    if col is None:
        col = read_rows(open_input(array), (X.chunks[0],))
    elif not isinstance(col, da.Array):
        col = da.from_array(col, chunks=(X.chunks[0],), name=False)
    else:
        col = col.rechunk((X.chunks[0],))
    col = col.astype(np.float64)
    if positive:  # bandwidths
        low, high = _limits.MIN_BANDWIDTH, _limits.MAX_BANDWIDTH
    else:  # weights: none above the largest total
        low, high = 0.0, _limits.MAX_TOTAL_WEIGHT
    ok = (col >= low) & (col <= high)  # false for NaN and inf too
    # the total of the values in range only: it cannot overflow
    bad, total = dask.compute((~ok).sum(), da.where(ok, col, 0.0).sum(), **scheduler_options())
    if bad and positive:
        raise ValueError(
            f"{name} contains {int(bad)} non-positive, NaN, infinite or out-of-range value(s); "
            f"every value must be in dshift's bandwidth range {_limits.BANDWIDTH_RANGE}."
        )
    if bad:
        raise ValueError(
            f"{name} contains {int(bad)} negative, NaN or infinite value(s) or value(s) above "
            f"{high:g}; every value must be finite and >= 0, and their total in dshift's range "
            f"{_limits.WEIGHT_RANGE} (multiply the weights by a constant to bring it there)."
        )
    if total <= 0:
        raise ValueError(
            f"{name} is zero for every point; give at least one point a positive value."
        )
    if not positive and not _limits.MIN_TOTAL_WEIGHT <= total <= _limits.MAX_TOTAL_WEIGHT:
        raise ValueError(
            f"{name} sums to {total:g}, outside dshift's supported range {_limits.WEIGHT_RANGE} "
            "for the total weight (see dshift._limits); multiply the weights by a constant "
            "(the centers and labels stay the same, intensity_ and cluster_sizes_ scale with it)."
        )
    return col


def with_weights(X: da.Array, sample_weight: Any) -> da.Array:
    """X with a last column of point weights, checked and aligned with X's row chunks.

    A point of weight w counts as w points. See :func:`aligned_column` for the checks.

    Examples
    --------
    >>> XW = with_weights(da.ones((3, 2), chunks=2), [1, 0, 2.5])
    >>> XW.compute()[:, -1].tolist(), XW.chunks
    ([1.0, 0.0, 2.5], ((2, 1), (3,)))
    """
    w = aligned_column(X, sample_weight, "sample_weight", positive=False)
    return append_columns(X, w)


def append_columns(X: da.Array, *columns: da.Array) -> da.Array:
    """X with extra columns, as float64 (weights and bandwidths keep their precision: a
    float32 cast would turn 1e39 into inf and 16777217 into 16777216), one column chunk."""
    cols = [c.astype(np.float64)[:, None] for c in columns]
    return da.concatenate([X.astype(np.float64), *cols], axis=1).rechunk({1: -1})


def row_values(X: da.Array, fn: Any, *args: Any, dtype: Any) -> da.Array:
    """The lazy 1-d array of ``fn(block, *args)`` over X's row blocks (one value per row),
    chunked like X's rows. ``args`` may hold dask delayed objects (computed once).

    Each call gets its block as it is held. ``X.map_blocks(fn, drop_axis=1)`` would
    first join the block's column chunks (one, here) into a copy: a chunk's worth of
    fresh memory written for every block, and twice a float32 block's for float64.

    Examples
    --------
    >>> X = da.from_array(np.arange(6.0).reshape(3, 2), chunks=(2, 2))
    >>> row_values(X, np.sum, 1, dtype=np.float64).compute().tolist()
    [1.0, 5.0, 9.0]
    """
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    args_and_indices = [item for arg in args for item in (arg, None)]
    return da.blockwise(
        _on_row_block,
        "i",
        X,
        "ij",
        fn,
        None,
        *args_and_indices,
        concatenate=False,
        dtype=dtype,
        meta=np.empty(0, dtype=dtype),
        token=funcname(fn),  # tasks named after fn, as map_blocks names them
    )


def _on_row_block(blocks: list[np.ndarray], fn: Any, *args: Any) -> np.ndarray:
    """``fn(block, *args)`` for the one block of a row of blocks (see :func:`row_values`)."""
    (block,) = blocks
    return fn(block, *args)
