"""What a checkpoint's files may hold, checked as untrusted input before it is allocated.

The checks cover the metadata's fields, every member's ``.npy`` header (dtype, and shape
against the data and the other members) and the values, in the state file and in each
per-iteration record. A check raises :class:`~dshift._untrusted.Invalid` with a few words,
which the reader turns into a one-line ``ValueError`` naming the file
(:func:`~dshift._untrusted.refusing`).
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from typing import Any

import numpy as np

from dshift._centers import MAX_RELAX
from dshift._untrusted import Invalid, check_names, expect, one_line, read_member

#: Largest JSON metadata member accepted (bytes of its .npy data).
MAX_META_BYTES = 1 << 20
_SEEDINGS = ("given", "all", "bin", "sample")
_F4, _F8 = np.dtype(np.float32), np.dtype(np.float64)
_I8, _B1 = np.dtype(np.int64), np.dtype(np.bool_)
#: The members of a checkpoint after ``meta`` and ``seeds``: dtype, and shape in units of
#: "m" (seeds), "d" (features) and "t" (iterations done).
_STATE = {
    "centers": (_F8, "md"),
    "active": (_B1, "m"),
    "alive": (_B1, "m"),
    "n_iter": (_I8, "m"),
    "intensity": (_F8, "m"),
    "local_bandwidth": (_F8, "m"),
    "last_step": (_F8, "md"),
    "relax": (_F8, "m"),
    "h_iteration": (_I8, "t"),
    "h_n_computed": (_I8, "t"),
    "h_max_shift": (_F8, "t"),
    "h_elapsed": (_F8, "t"),
}
_STEP = {"centers": (_F8, "md"), "active": (_B1, "m"), "alive": (_B1, "m")}


def _check_meta_header(shape: tuple, dtype: np.dtype) -> None:
    if shape != () or dtype.kind != "U" or dtype.itemsize > MAX_META_BYTES:
        raise Invalid(
            f"member 'meta' has dtype {dtype} and shape {shape}, expected a string of at "
            f"most {MAX_META_BYTES} bytes"
        )


def read_meta(archive: zipfile.ZipFile) -> dict[str, Any]:
    """The member ``meta``: a JSON object, its size and header checked before it is read."""
    meta = json.loads(str(read_member(archive, "meta", _check_meta_header)[()]))
    if not isinstance(meta, dict):
        raise Invalid(f"member 'meta' holds a JSON {type(meta).__name__}, not an object")
    return meta


def is_number(value: Any, kinds: type | tuple[type, ...] = (int, float)) -> bool:
    """Whether a JSON value is a number of ``kinds`` (``True`` and ``False`` are not).

    >>> is_number(3, int), is_number(3.0, int), is_number(3.0), is_number(True)
    (True, False, True, False)
    """
    return isinstance(value, kinds) and not isinstance(value, bool)


def check_members_and_meta(
    archive: zipfile.ZipFile, meta: dict[str, Any], params: dict[str, str]
) -> None:
    """The state file holds exactly its members, and its metadata's fields are in range
    (the iteration at most ``max_iter`` + 1 of the fit's ``params``)."""
    check_names(archive, ["meta", "seeds", *_STATE])
    _check_meta(meta, _max_iter(params))


def _check_meta(meta: dict[str, Any], max_iter: int | None) -> None:
    """Field types and ranges of a checkpoint's metadata of the current format."""
    params = meta.get("params")
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        raise Invalid("meta 'params' is not an object of strings")
    if not isinstance(meta.get("data"), str):
        raise Invalid("meta 'data' is not a string")
    if meta.get("seeding") not in _SEEDINGS:
        raise Invalid(f"meta 'seeding' is {one_line(repr(meta.get('seeding')))}")
    for key in ("bandwidth", "elapsed"):
        value = meta.get(key)
        if not is_number(value) or not 0 <= value < math.inf:
            raise Invalid(f"meta {key!r} is {one_line(repr(value))}, not a number >= 0")
    iteration, last = meta.get("iteration"), math.inf if max_iter is None else max_iter + 1
    if not is_number(iteration, int) or not 0 <= iteration <= last:
        raise Invalid(
            f"meta 'iteration' is {one_line(repr(iteration))}, not an integer in [0, {last}]"
        )


def _max_iter(params: dict[str, str]) -> int | None:
    try:
        return int(params.get("max_iter", ""))
    except ValueError:
        return None


def feature_counts(data: str, n_features: int | None) -> tuple[int, range]:
    """Rows of the data and the possible numbers of features, from the data's fingerprint
    (whose columns may include a weight and a bandwidth column, always as float64)."""
    match = re.fullmatch(r"(\d+)x(\d+) (\S+) [0-9a-f]+", data)
    if match is None:
        raise ValueError(f"malformed data fingerprint {data!r}")
    rows, columns = int(match[1]), int(match[2])
    if n_features is not None:
        return rows, range(n_features, n_features + 1)
    extra = 2 if match[3] == "float64" else 0
    return rows, range(max(1, columns - extra), columns + 1)


def _seeds_check(rows: int, features: range, given: bool):
    """The header check of ``seeds``: (m, d) float32 or float64 (bin seeds are float32)
    with m <= rows (unless given)."""

    def check(shape: tuple, dtype: np.dtype) -> None:
        if dtype not in (_F4, _F8) or len(shape) != 2:
            raise Invalid(
                f"member 'seeds' has dtype {dtype} and shape {shape}, expected 2-d float32 "
                "or float64"
            )
        if shape[1] not in features:
            want = features[0] if len(features) == 1 else f"{features[0]} to {features[-1]}"
            raise Invalid(f"member 'seeds' has {shape[1]} columns, the data have {want} features")
        if not 1 <= shape[0] <= (math.inf if given else rows):
            raise Invalid(f"member 'seeds' has {shape[0]} rows, expected 1 to {rows}")

    return check


def _read_arrays(archive, specs, sizes: dict[str, int], why: str) -> dict[str, np.ndarray]:
    """Read the members ``specs`` (name: (dtype, dims)), each shaped from ``sizes``."""
    return {
        name: read_member(archive, name, expect(name, dtype, tuple(sizes[c] for c in dims), why))
        for name, (dtype, dims) in specs.items()
    }


def _check_values(arrays: dict[str, np.ndarray], iteration: int) -> None:
    """Values a dshift fit can produce: finite, in range and consistent."""
    finite = ("seeds", "centers", "intensity", "local_bandwidth", "last_step", "relax")
    for name in (*finite, "h_max_shift", "h_elapsed"):
        if name in arrays and not np.isfinite(arrays[name]).all():
            raise Invalid(f"member {name!r} holds NaN or infinite values")
    if "relax" in arrays and ((arrays["relax"] < 1) | (arrays["relax"] > MAX_RELAX)).any():
        raise Invalid(f"member 'relax' holds values outside [1, {MAX_RELAX}]")
    for name in ("intensity", "local_bandwidth", "h_max_shift", "h_elapsed"):
        if name in arrays and (arrays[name] < 0).any():
            raise Invalid(f"member {name!r} holds negative values")
    if (arrays["active"] & ~arrays["alive"]).any():
        raise Invalid("member 'active' marks seeds that 'alive' says were dropped")
    if "n_iter" not in arrays:
        return
    if ((arrays["n_iter"] < 0) | (arrays["n_iter"] > max(iteration - 1, 0))).any():
        raise Invalid(f"member 'n_iter' holds values outside [0, {max(iteration - 1, 0)}]")
    if not np.array_equal(arrays["h_iteration"], np.arange(iteration)):
        raise Invalid(f"member 'h_iteration' is not 0, 1, ..., {iteration - 1}")
    computed = arrays["h_n_computed"]
    if ((computed < 0) | (computed > len(arrays["seeds"]))).any():
        raise Invalid("member 'h_n_computed' holds values outside [0, n_seeds]")


def read_state(
    archive: zipfile.ZipFile, meta: dict[str, Any], rows: int, features: range
) -> dict[str, np.ndarray]:
    """The seeds, then every member shaped after them, then their values checked."""
    given = meta["seeding"] == "given"
    seeds = read_member(archive, "seeds", _seeds_check(rows, features, given))
    m, d = seeds.shape
    sizes = {"m": m, "d": d, "t": meta["iteration"]}
    arrays = _read_arrays(archive, _STATE, sizes, f"{m} seeds, {d} features")
    arrays["seeds"] = seeds
    _check_values(arrays, meta["iteration"])
    return arrays


def read_step(archive: zipfile.ZipFile, iteration: int, m: int, d: int) -> dict[str, np.ndarray]:
    """The arrays of one iteration's record, of ``m`` seeds in ``d`` features."""
    check_names(archive, list(_STEP))
    step = _read_arrays(archive, _STEP, {"m": m, "d": d}, f"{m} seeds, {d} features")
    _check_values(step, iteration)
    return step
