"""Writing Zarr groups so that a reader never sees a half-written result, and no input is
ever touched.

Nothing in Zarr is atomic, so a group is written under a hidden temporary sibling name and
published by a rename once complete. On a local file system the rename is atomic; on object
stores (``s3://``...) fsspec copies then deletes, which is as close as they allow. An
existing output is replaced only with ``overwrite=True``, and only after the new one is
complete. An output that is, holds or lies inside one of the inputs, a symbolic link, or a
path under a directory that cannot be written is refused before anything is computed
(:func:`check_writable`). An interrupted write (an error, Ctrl-C, SIGTERM) waits for the
chunk writes already running, then removes the temporary group.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import dask
import dask.array as da
import fsspec
import zarr
from fsspec.implementations.local import LocalFileSystem

from dshift._cluster import current_client

#: Seconds an interrupted write waits for the chunk writes already running on the workers.
DRAIN_SECONDS = 120.0
#: Seconds between two looks for a held interrupt while a store computes.
POLL_SECONDS = 0.1
#: The signals held while a group is written.
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: The signals received while held (None: not holding).
_held: list[int] | None = None


class _Interrupted(BaseException):
    """A store stopped for a held signal; the signal is delivered once the group is gone
    (its handler's exception, e.g. KeyboardInterrupt, then replaces this one)."""


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while a group is written, then deliver them.

    A Zarr call interrupted in this thread goes on writing in Zarr's I/O thread, and a
    dask task keeps running after its computation is cancelled: either can write into the
    temporary group after it was removed. So signals are held; :func:`run_to_the_end`
    looks for them while it waits, stops its tasks and raises; the group is removed; then
    the signal is delivered to its own handler (KeyboardInterrupt for Ctrl-C). Only the
    main thread can hold signals; elsewhere this does nothing. A signal the process
    ignores (a command started in the background ignores SIGINT) stays ignored.
    """
    global _held
    if _held is not None or threading.current_thread() is not threading.main_thread():
        yield
        return
    _held = pending = []
    previous = {
        sig: signal.signal(sig, lambda signum, frame: pending.append(signum))
        for sig in HELD_SIGNALS
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        _held = None
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in pending[:1]:
            signal.raise_signal(sig)


def _normalize(path: str | os.PathLike) -> str:
    url = os.fspath(path).rstrip("/")
    return url if "://" in url else os.path.abspath(url)


def _location(path: str | os.PathLike) -> str:
    """Where a path or URL points, for comparisons: symbolic links resolved on local paths."""
    url = _normalize(path)
    if url.startswith("file://"):
        url = url.removeprefix("file://")
    return os.path.realpath(url) if "://" not in url else url


def _relation(output: str, other: str) -> str | None:
    """How the output location relates to another one: "is", "holds", "lies inside", None."""
    if output == other:
        return "is"
    if other.startswith(output.rstrip("/") + "/"):
        return "holds"
    if output.startswith(other.rstrip("/") + "/"):
        return "lies inside"
    return None


def check_writable(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike | None] = (),
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Refuse an output that cannot or must not be written; return its absolute path or URL.

    Call it before any long computation whose result goes to ``path``.

    Parameters
    ----------
    path : str or path-like
        The output (local path or fsspec URL).
    overwrite : bool, default=False
        Whether an existing output may be replaced.
    inputs : iterable of str or path-like
        What the computation reads (None entries are ignored): the output may not be one
        of them, hold one, or lie inside one.
    storage_options : dict, optional
        For a URL: fsspec options of its file system (credentials, endpoint...).

    Raises
    ------
    ValueError
        The output is, holds or lies inside an input.
    FileExistsError
        The output exists and ``overwrite`` is False, or it is a symbolic link.
    PermissionError
        A local output whose nearest existing directory cannot be written.

    Examples
    --------
    >>> check_writable("/data/points.zarr", inputs=["/data/points.zarr/X"])
    Traceback (most recent call last):
    ...
    ValueError: Output '/data/points.zarr' holds the input '/data/points.zarr/X'; dshift ...
    """
    url = _normalize(path)
    target = _location(path)
    for source in inputs:
        if source is None:
            continue
        relation = _relation(target, _location(source))
        if relation is not None:
            raise ValueError(
                f"Output {os.fspath(path)!r} {relation} the input {os.fspath(source)!r}; "
                "dshift never writes over or inside its inputs: choose an output path "
                "outside them."
            )
    local = "://" not in url
    if local and os.path.islink(url):
        raise FileExistsError(
            f"Output {os.fspath(path)!r} is a symbolic link (to {os.readlink(url)!r}); dshift "
            "does not write through links it did not create: pass the target path itself, "
            "or another path."
        )
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    if fs.exists(root) and not overwrite:
        raise FileExistsError(
            f"Output {os.fspath(path)!r} already exists; pass overwrite=True (CLI: "
            "--overwrite) to replace it, or choose another output path."
        )
    if local:
        _check_directory_writable(url, path)
    return url


def _check_directory_writable(url: str, path: str | os.PathLike) -> None:
    """The nearest existing ancestor of ``url``'s directory must be a writable directory."""
    parent = os.path.dirname(url)
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise NotADirectoryError(
            f"Output {os.fspath(path)!r} cannot be created: {parent!r} is not a directory."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(
            f"Output {os.fspath(path)!r} cannot be written: the directory {parent!r} is "
            "read-only (permissions or a read-only file system); choose another output path."
        )


def _sibling(url: str, prefix: str) -> str:
    head, _, name = url.rpartition("/")
    return f"{head}/.{name}.{prefix}-{uuid.uuid4().hex[:12]}"


@contextmanager
def atomic_group(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike | None] = (),
    storage_options: dict[str, Any] | None = None,
) -> Iterator[zarr.Group]:
    """Context manager yielding a new Zarr group that appears at ``path`` only on success.

    If the block raises (or the process dies), ``path`` is untouched: an existing output is
    kept, and the temporary group is removed (or, after a hard kill, left as a hidden
    ``.name.tmp-*`` sibling that no reader opens). A SIGINT or SIGTERM that arrives before
    the group is published stops the write and keeps it unpublished; the signal is then
    delivered (see :func:`_interrupts_held`).
    """
    options = storage_options or {}
    url = check_writable(path, overwrite=overwrite, inputs=inputs, storage_options=options)
    fs, root = fsspec.core.url_to_fs(url, **options)
    tmp_url = _sibling(url, "tmp")
    tmp_root = fsspec.core.url_to_fs(tmp_url, **options)[1]
    remote = {"storage_options": options} if options and "://" in url else {}
    with _interrupts_held():
        try:
            yield zarr.open_group(tmp_url, mode="w-", **remote)
            if _held:  # a signal came while the group was written: it is not published
                raise _Interrupted(f"interrupted by signal {_held[0]}; nothing was written")
            check_writable(path, overwrite=overwrite, storage_options=options)
            if fs.exists(root):
                old_root = fsspec.core.url_to_fs(_sibling(url, "old"), **options)[1]
                _move_tree(fs, root, old_root)
                try:
                    _move_tree(fs, tmp_root, root)
                except BaseException:
                    _move_tree(fs, old_root, root)
                    raise
                fs.rm(old_root, recursive=True)
            else:
                _move_tree(fs, tmp_root, root)
        finally:
            if fs.exists(tmp_root):
                fs.rm(tmp_root, recursive=True)


def _move_tree(fs: Any, source: str, target: str) -> None:
    """Move a directory: one rename on a local disk; on object stores, which have no
    directories (and where fsspec's recursive move trips on the directory's own key), each
    object is copied, then the source removed."""
    if isinstance(fs, LocalFileSystem):
        fs.mv(source, target, recursive=True)
        return
    for key in fs.find(source):
        fs.copy(key, target + key[len(source) :])
    fs.rm(source, recursive=True)


def store_rows(
    group: zarr.Group,
    name: str,
    arr: da.Array,
    chunk_rows: int | None = None,
    compress: bool = True,
) -> zarr.Array:
    """Write a row-chunked dask array into a new array of ``group``, chunk-aligned.

    The Zarr array is created first with ``chunk_rows`` rows per chunk (default: the dask
    row chunks). Every dask chunk covers whole Zarr chunks (the dask array is rechunked if
    not), so no two tasks write the same Zarr chunk (see docs/architecture.md, zarr 3).
    ``compress=False`` stores raw chunks: random floats hardly compress, and reading
    them back is then about 3x faster.
    """
    rows = chunk_rows or arr.chunks[0][0]
    if any(c % rows for c in arr.chunks[0][:-1]):
        arr = arr.rechunk({0: rows})
    if arr.ndim > 1:
        arr = arr.rechunk({i: -1 for i in range(1, arr.ndim)})
    extra = {} if compress else {"compressors": None}
    target = group.create_array(
        name,
        shape=arr.shape,
        chunks=(rows, *arr.shape[1:]),
        dtype=arr.dtype,
        # every chunk stored, even one of fill values: readers refuse missing chunks
        config={"write_empty_chunks": True},
        **extra,
    )
    run_to_the_end(da.store(arr, target, lock=False, compute=False))
    return target


def run_to_the_end(work) -> None:
    """Compute ``work`` (a dask collection); if a signal is held meanwhile (see
    :func:`_interrupts_held`), stop it, wait for the tasks already running, and raise.

    With a distributed client the pending tasks are cancelled and the running ones are
    awaited on the workers (at most ``DRAIN_SECONDS``); on dask's threaded scheduler the
    thread pool is shut down, waiting for its running tasks. Either way no chunk is
    written after this returns or raises. The wait looks for held signals every
    ``POLL_SECONDS`` without raising anything meanwhile: an exception raised and caught
    in every poll would leave reference cycles holding the computation's future.
    """
    client = current_client()
    if client is not None:
        (work,) = dask.optimize(work)  # the keys the workers run (fusion renames them)
        future = client.compute(work, optimize_graph=False)
        keys = {str(key) for key in work.__dask_graph__()}
        _wait_or_stop(future, lambda: _drain(client, future, keys))
        return
    pool = ThreadPoolExecutor(os.cpu_count() or 1)
    with ThreadPoolExecutor(1) as runner:
        job = runner.submit(dask.compute, work, scheduler="threads", pool=pool)

        def stop() -> None:
            pool.shutdown(wait=True, cancel_futures=True)
            concurrent.futures.wait([job])  # it ends once its pool refuses new tasks

        try:
            _wait_or_stop(job, stop)
        finally:
            pool.shutdown(wait=True)


def _wait_or_stop(future, stop: Callable[[], None]) -> object:
    """Wait for ``future`` (distributed or concurrent.futures) and return its result; on a
    held signal (or any exception), ``stop()`` and raise."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    try:
        while not done.wait(POLL_SECONDS):
            if _held:
                raise _Interrupted(
                    f"interrupted by signal {_held[0]} while writing; nothing was written"
                )
        return future.result()
    except BaseException:
        stop()
        raise


def _drain(client, future, keys: set[str]) -> None:
    """Cancel ``future``, then wait until no task of ``keys`` runs in a worker's thread.

    A cancelled task that already runs is not stopped: the scheduler forgets it, but the
    worker's call stack (``Client.call_stack``) still shows it until it returns.
    """
    try:
        client.cancel(future)
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline:
            running = {str(k) for stacks in client.call_stack().values() for k in stacks}
            if not running & keys:
                return
            time.sleep(0.05)
    except Exception:  # the client or scheduler is gone: nothing more can be known
        return
