"""Checkpoints: the loop's state saved after every iteration, so a killed fit can resume.

A checkpoint is one ``.npz`` file with the loop's state, replaced atomically (written under
a temporary name in the same directory, flushed, then renamed), so a crash leaves the
previous iteration's file intact, and a directory ``PATH.steps`` with one file per
iteration's history record, each written once. It records a fingerprint of the parameters
that decide the result and of the input data (:mod:`dshift._fingerprint`), and is only ever
resumed by a fit with the same ones.

Reading treats both as untrusted input: only regular files are opened (never a link, FIFO
or device), and every member's zip entry, ``.npy`` header (dtype, shape against the data
and the other members), the metadata's fields and the values are checked before anything
is allocated (:mod:`dshift._checkpoint_checks`); whatever is wrong is refused with a
one-line ``ValueError``.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dshift._checkpoint_checks import (
    check_members_and_meta,
    feature_counts,
    is_number,
    read_meta,
    read_state,
    read_step,
)
from dshift._iterate import LoopState, Step
from dshift._untrusted import file_kind, one_line, open_archive, refusing

#: Version of the file layout; a checkpoint of another version is refused. 2: integer
#: parameters are fingerprinted exactly (1 turned them into floats).
FORMAT = 3


def check_path(path: Any) -> None:
    """Refuse a checkpoint path that cannot be written atomically, before any data is read.

    The path must be a local file path whose directory exists; if something is there, it
    must be a regular file (not a directory, FIFO, device, socket or symbolic link: the
    checkpoint is replaced by a rename, which would replace a link rather than write
    through it), and ``PATH.steps``, if present, a directory (not a link).

    Parameters
    ----------
    path : str or path-like
        The checkpoint path given to the fit.

    Raises
    ------
    TypeError, ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError
        One line saying what is wrong with the path and what to pass instead.
    """
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
    kind = file_kind(path)
    if kind == "directory":
        raise IsADirectoryError(
            f"checkpoint {path!r} is a directory; pass a file path such as {path}/fit.ckpt."
        )
    if kind not in (None, "regular file"):
        raise ValueError(
            f"checkpoint {path!r} is a {kind}, not a regular file; pass the path of a "
            "checkpoint file (or of one to create), not a link or special file."
        )
    steps = steps_dir(path)
    kind = file_kind(steps)
    if kind not in (None, "directory"):
        raise NotADirectoryError(
            f"{steps!r} is a {kind}, not a directory; it holds the checkpoint's per-iteration "
            "records: move it away, or pass another checkpoint path."
        )


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
            "last_step": ckpt.state.last_step,
            "relax": ckpt.state.relax,
            "h_iteration": np.array([s.iteration for s in h], dtype=np.int64),
            "h_n_computed": np.array([s.n_computed for s in h], dtype=np.int64),
            "h_max_shift": np.array([s.max_shift for s in h], dtype=np.float64),
            "h_elapsed": np.array([s.elapsed for s in h], dtype=np.float64),
        },
    )


def load(
    path: str | os.PathLike,
    params: dict[str, str],
    data: str,
    *,
    n_features: int | None = None,
) -> Checkpoint | None:
    """The checkpoint at ``path`` if it exists; refuse one made with other params or data.

    The file is untrusted: its format, fingerprints, every member's size, dtype and shape
    (against the data and the other members) and its values are checked before any array
    is allocated, and so is every record in ``PATH.steps``.

    Parameters
    ----------
    path : str or path-like
        The checkpoint file.
    params : dict of str to str
        :func:`~dshift._fingerprint.params_fingerprint` of the fit's parameters.
    data : str
        :func:`~dshift._fingerprint.data_fingerprint` of the array the fit reads.
    n_features : int, optional
        The data's number of features. Without it, the fingerprint's column count bounds it
        (float64 data may also carry a weight and a bandwidth column).

    Returns
    -------
    Checkpoint or None
        None if nothing is at ``path``.

    Raises
    ------
    ValueError
        In one line: a checkpoint of another format, parameters or data, or a file that is
        damaged, naming the file, the member and what is wrong, and how to start afresh.
    """
    path = os.fspath(path)
    if not os.path.lexists(path):
        return None
    steps = steps_dir(path)
    refuse = functools.partial(
        refusing,
        f"Checkpoint {path!r} is not a readable dshift checkpoint",
        f"delete it and {steps!r} to start afresh, or pass another checkpoint path.",
    )
    with ExitStack() as stack:
        with refuse():
            archive = stack.enter_context(open_archive(path))
            meta = read_meta(archive)
        _check_format(path, meta)
        with refuse():
            check_members_and_meta(archive, meta, params)
        _check_origin(path, meta, params, data)
        features = feature_counts(data, n_features)
        with refuse():
            arrays = read_state(archive, meta, *features)
    m, d = arrays["seeds"].shape
    return Checkpoint(
        params=params,
        data=data,
        bandwidth=float(meta["bandwidth"]),
        seeding=meta["seeding"],
        seeds=arrays["seeds"],
        state=LoopState(
            **{k: arrays[k] for k in ("centers", "active", "alive", "n_iter", "intensity")},
            local_bandwidth=arrays["local_bandwidth"],
            last_step=arrays["last_step"],
            relax=arrays["relax"],
            iteration=meta["iteration"],
            elapsed=float(meta["elapsed"]),
        ),
        history=_read_history(path, arrays, m, d),
    )


def _check_format(path: str, meta: dict[str, Any]) -> None:
    if not is_number(meta.get("format"), int) or meta["format"] != FORMAT:
        raise ValueError(
            f"Checkpoint {path!r} has format {one_line(repr(meta.get('format')), 40)}, this "
            f"dshift reads format {FORMAT} only (older checkpoints hold less of the loop's "
            f"state); delete it and {steps_dir(path)!r} to start afresh."
        )


def _check_origin(path: str, meta: dict[str, Any], params: dict[str, str], data: str) -> None:
    """Refuse a checkpoint made with other parameters or from other data."""
    changed = [
        f"{k}={one_line(meta['params'].get(k, '<unset>'), 60)} there, {v} now"
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
            f"Checkpoint {path!r} was made from other data ({one_line(meta['data'], 80)} "
            f"there, {data} now); it is not reused. Fit the same data, or delete the "
            "checkpoint (or pass another path) to start afresh."
        )


def _read_history(path: str, arrays: dict[str, np.ndarray], m: int, d: int) -> list[Step]:
    """One Step per iteration done, from the scalars in ``arrays`` and ``PATH.steps/``."""
    history = []
    recover = f"delete the checkpoint and {steps_dir(path)!r} to start afresh."
    for i, iteration in enumerate(arrays["h_iteration"].tolist()):
        record = _step_file(path, iteration)
        if not os.path.lexists(record):
            raise ValueError(
                f"Checkpoint {path!r} lacks its record of iteration {iteration} "
                f"({record!r} does not exist); {recover}"
            )
        message = f"Checkpoint {path!r} has a damaged record of iteration {iteration}, {record!r}"
        with refusing(message, recover), open_archive(record) as archive:
            step = read_step(archive, iteration, m, d)
        history.append(
            Step(
                iteration=iteration,
                n_computed=int(arrays["h_n_computed"][i]),
                max_shift=float(arrays["h_max_shift"][i]),
                elapsed=float(arrays["h_elapsed"][i]),
                **step,
            )
        )
    return history
