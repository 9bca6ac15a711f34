"""Fingerprints of a fit's parameters and of its input data, as comparable strings.

A checkpoint records both, and only a fit whose fingerprints are equal resumes it. The
data's is its shape, dtype and a content hash computed chunk by chunk, the same whatever the
chunking and different when any value or the order of the rows changes; the parameters'
compares integers exactly and an integral float as the same integer.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import dask
import dask.array as da
import numpy as np

from dshift._iterate import compute_tree

#: Rows hashed at a time (bounds the temporaries of the fingerprint pass).
_TILE_ROWS = 65_536
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def hash_rows(block: np.ndarray, first_row: int) -> np.uint64:
    """Sum (mod 2**64) of one hash per row, each mixing the row's bytes and its index.

    The sum over all rows does not depend on how the rows are chunked, and changes when any
    value or the order of the rows changes.

    >>> a = np.arange(12.0).reshape(4, 3)
    >>> int(hash_rows(a, 0)) == (int(hash_rows(a[:1], 0)) + int(hash_rows(a[1:], 1))) % 2**64
    True
    >>> bool(hash_rows(a, 0) == hash_rows(a[::-1], 0))
    False
    """
    words = np.ascontiguousarray(block)
    words = words.view(np.uint64 if words.dtype.itemsize == 8 else np.uint32)
    total = np.uint64(0)
    columns = np.arange(1, words.shape[1] + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        for start in range(0, len(words), _TILE_ROWS):
            tile = words[start : start + _TILE_ROWS].astype(np.uint64)
            h = _mix(tile ^ columns).sum(axis=1, dtype=np.uint64)
            index = np.arange(first_row + start, first_row + start + len(tile), dtype=np.uint64)
            h = _mix(h ^ _mix(index + np.uint64(1)))
            total = np.uint64((int(total) + int(h.sum(dtype=np.uint64))) & int(_MASK))
    return total


def _add_hashes(*parts: np.uint64) -> np.uint64:
    return np.uint64(sum(int(p) for p in parts) & int(_MASK))


def data_fingerprint(X: da.Array) -> str:
    """Shape, dtype and a content hash of X, computed in one chunk-wise pass.

    Examples
    --------
    >>> import dask.array as da
    >>> a = da.arange(12.0, chunks=5).reshape(4, 3)
    >>> data_fingerprint(a) == data_fingerprint(a.rechunk((1, 3)))
    True
    """
    offsets = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]]).astype(int)
    hashed = dask.delayed(hash_rows, pure=True)
    parts = [hashed(b, int(o)) for b, o in zip(X.to_delayed().ravel(), offsets)]
    digest = compute_tree(parts, _add_hashes)
    return f"{X.shape[0]}x{X.shape[1]} {X.dtype} {int(digest):016x}"


def _number(value: Any) -> Any:
    """A number as it decides the result: integers exactly (2**53 + 1 is not 2**53), and an
    integral float as the same integer (bandwidth=2 and 2.0 fit alike)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return value
    if isinstance(value, Integral):
        return int(value)
    value = float(value)
    return int(value) if value.is_integer() else value


def params_fingerprint(params: dict[str, Any]) -> dict[str, str]:
    """The parameters that decide the result, as comparable strings.

    Examples
    --------
    >>> params_fingerprint({"bandwidth": 2.0}) == params_fingerprint({"bandwidth": 2})
    True
    >>> seed = {"random_state": 2**53}
    >>> params_fingerprint(seed) == params_fingerprint({"random_state": 2**53 + 1})
    False
    """
    out = {}
    for name, value in sorted(params.items()):
        if isinstance(value, np.random.Generator):
            raise ValueError(
                "checkpoint needs random_state to be an int or None (a Generator's state "
                "cannot be compared between runs); pass random_state=SEED."
            )
        if isinstance(value, (list, tuple)) or hasattr(value, "__array__"):
            arr = np.asarray(value)
            if arr.ndim:
                arr = np.ascontiguousarray(arr, dtype=np.float64).reshape(len(arr), -1)
                value = f"array{arr.shape} {hash_rows(arr, 0):016x}"
            else:
                value = arr.item()
        out[name] = repr(_number(value))
    return out
