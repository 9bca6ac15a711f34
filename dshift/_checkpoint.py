"""Checkpoints: the loop's state saved after every iteration, so a killed fit can resume.

A checkpoint is one ``.npz`` file with the loop's state, replaced atomically (written under
a temporary name in the same directory, flushed, then renamed), so a crash leaves the
previous iteration's file intact, and a directory ``PATH.steps`` with one file per
iteration's history record, each written once. It records a fingerprint of the parameters
that decide the result and of the input data, and is only ever resumed by a fit with the
same ones.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import dask
import dask.array as da
import numpy as np

from dshift._iterate import LoopState, Step, compute_tree

#: Version of the file layout; a checkpoint of another version is refused.
FORMAT = 1
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


def check_path(path: Any) -> None:
    """Refuse a checkpoint path that cannot be written atomically, before any data is read."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a file path or None, got {type(path).__name__}.")
    path = os.fspath(path)
    if "://" in path:
        raise ValueError(
            f"checkpoint must be a local file path, got {path!r}: a checkpoint is replaced by "
            "an atomic rename, which object stores do not offer."
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"The directory of checkpoint {path!r} does not exist; create {directory!r} first."
        )
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"checkpoint {path!r} is a directory; pass a file path such as {path}/fit.ckpt."
        )


def params_fingerprint(params: dict[str, Any]) -> dict[str, str]:
    """The parameters that decide the result, as comparable strings."""
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
        if isinstance(value, (Integral, Real)) and not isinstance(value, bool):
            value = float(value)
        out[name] = repr(value)
    return out


@dataclass
class Checkpoint:
    """What a fit needs to resume: the setup it chose and the loop's state."""

    params: dict[str, str]
    data: str
    bandwidth: float
    seeding: str
    seeds: np.ndarray
    state: LoopState
    history: list[Step] = field(default_factory=list)


def steps_dir(path: str | os.PathLike) -> str:
    """The directory beside a checkpoint that holds one file per iteration's step."""
    return os.fspath(path) + ".steps"


def _write_atomically(path: str, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` to a temporary file in the same directory, fsync, rename, fsync dir."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _step_file(path: str | os.PathLike, iteration: int) -> str:
    return os.path.join(steps_dir(path), f"{iteration:06d}.npz")


def save(path: str | os.PathLike, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically.

    The loop's state and the history's scalars go into ``path`` (rewritten each time); the
    history's per-iteration arrays go once each into ``path.steps/``, written before the
    state that refers to them, so the I/O per iteration stays O(n_seeds).
    """
    path = os.fspath(path)
    os.makedirs(steps_dir(path), exist_ok=True)
    h = ckpt.history
    if h:  # the step just done: earlier ones were written by earlier saves
        last = h[-1]
        _write_atomically(
            _step_file(path, last.iteration),
            {"centers": last.centers, "active": last.active, "alive": last.alive},
        )
    meta = {
        "format": FORMAT,
        "params": ckpt.params,
        "data": ckpt.data,
        "bandwidth": ckpt.bandwidth,
        "seeding": ckpt.seeding,
        "iteration": ckpt.state.iteration,
        "elapsed": ckpt.state.elapsed,
    }
    _write_atomically(
        path,
        {
            "meta": np.array(json.dumps(meta)),
            "seeds": ckpt.seeds,
            "centers": ckpt.state.centers,
            "active": ckpt.state.active,
            "alive": ckpt.state.alive,
            "n_iter": ckpt.state.n_iter,
            "intensity": ckpt.state.intensity,
            "local_bandwidth": ckpt.state.local_bandwidth,
            "h_iteration": np.array([s.iteration for s in h], dtype=np.int64),
            "h_n_computed": np.array([s.n_computed for s in h], dtype=np.int64),
            "h_max_shift": np.array([s.max_shift for s in h], dtype=np.float64),
            "h_elapsed": np.array([s.elapsed for s in h], dtype=np.float64),
        },
    )


def load(path: str | os.PathLike, params: dict[str, str], data: str) -> Checkpoint | None:
    """The checkpoint at ``path`` if it exists; refuse one made with other params or data."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays["meta"]))
        if not isinstance(meta, dict) or not isinstance(meta.get("params"), dict):
            raise ValueError("no dshift metadata")
        missing = [k for k in ("data", "iteration", "bandwidth", "seeding") if k not in meta]
        if missing:
            raise KeyError(f"missing {missing}")
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        EOFError,
        zipfile.BadZipFile,
    ) as exc:
        raise ValueError(
            f"Checkpoint {path!r} is not a readable dshift checkpoint ({exc!r}); delete it "
            "to start afresh, or pass another checkpoint path."
        ) from exc
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"Checkpoint {path!r} has format {meta.get('format')!r}, this dshift writes "
            f"{FORMAT}; delete it to start afresh."
        )
    changed = [
        f"{k}={meta['params'].get(k, '<unset>')} there, {v} now"
        for k, v in params.items()
        if meta["params"].get(k) != v
    ]
    if changed:
        raise ValueError(
            f"Checkpoint {path!r} was made with other parameters ({'; '.join(changed)}); "
            "it is not reused. Fit with the same parameters, or delete the checkpoint (or "
            "pass another path) to start afresh."
        )
    if meta["data"] != data:
        raise ValueError(
            f"Checkpoint {path!r} was made from other data ({meta['data']} there, {data} "
            "now); it is not reused. Fit the same data, or delete the checkpoint (or pass "
            "another path) to start afresh."
        )
    state = LoopState(
        centers=arrays["centers"],
        active=arrays["active"],
        alive=arrays["alive"],
        n_iter=arrays["n_iter"],
        intensity=arrays["intensity"],
        local_bandwidth=arrays["local_bandwidth"],
        iteration=int(meta["iteration"]),
        elapsed=float(meta["elapsed"]),
    )
    history = []
    for i, iteration in enumerate(arrays["h_iteration"].tolist()):
        try:
            with np.load(_step_file(path, iteration), allow_pickle=False) as f:
                step = {k: f[k] for k in ("centers", "active", "alive")}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(
                f"Checkpoint {path!r} lacks its record of iteration {iteration} in "
                f"{steps_dir(path)!r} ({exc!r}); delete the checkpoint and that directory to "
                "start afresh."
            ) from exc
        history.append(
            Step(
                iteration=iteration,
                n_computed=int(arrays["h_n_computed"][i]),
                max_shift=float(arrays["h_max_shift"][i]),
                elapsed=float(arrays["h_elapsed"][i]),
                **step,
            )
        )
    return Checkpoint(
        params=params,
        data=data,
        bandwidth=float(meta["bandwidth"]),
        seeding=str(meta["seeding"]),
        seeds=arrays["seeds"],
        state=state,
        history=history,
    )
