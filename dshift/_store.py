"""Writing Zarr groups so that a reader never sees a half-written result.

Nothing in Zarr is atomic, so a group is written under a hidden temporary sibling name and
published by a rename once complete. On a local file system the rename is atomic; on object
stores (``s3://``...) fsspec copies then deletes, which is as close as they allow. An
existing output is replaced only with ``overwrite=True``, and only after the new one is
complete.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import dask.array as da
import fsspec
import zarr


def _normalize(path: str | os.PathLike) -> str:
    url = os.fspath(path).rstrip("/")
    return url if "://" in url else os.path.abspath(url)


def check_writable(path: str | os.PathLike, *, overwrite: bool = False) -> str:
    """Raise ``FileExistsError`` if ``path`` exists and ``overwrite`` is False.

    Call it before any long computation whose result goes to ``path``.
    """
    url = _normalize(path)
    fs, root = fsspec.core.url_to_fs(url)
    if fs.exists(root) and not overwrite:
        raise FileExistsError(
            f"Output {os.fspath(path)!r} already exists; pass overwrite=True (CLI: "
            "--overwrite) to replace it, or choose another output path."
        )
    return url


def _sibling(url: str, prefix: str) -> str:
    head, _, name = url.rpartition("/")
    return f"{head}/.{name}.{prefix}-{uuid.uuid4().hex[:12]}"


@contextmanager
def atomic_group(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[zarr.Group]:
    """Context manager yielding a new Zarr group that appears at ``path`` only on success.

    If the block raises (or the process dies), ``path`` is untouched: an existing output is
    kept, and the temporary group is removed (or, after a hard kill, left as a hidden
    ``.name.tmp-*`` sibling that no reader opens).
    """
    url = check_writable(path, overwrite=overwrite)
    fs, root = fsspec.core.url_to_fs(url)
    tmp_url = _sibling(url, "tmp")
    tmp_root = fsspec.core.url_to_fs(tmp_url)[1]
    try:
        yield zarr.open_group(tmp_url, mode="w-")
        check_writable(path, overwrite=overwrite)
        if fs.exists(root):
            old_root = fsspec.core.url_to_fs(_sibling(url, "old"))[1]
            fs.mv(root, old_root, recursive=True)
            try:
                fs.mv(tmp_root, root, recursive=True)
            except BaseException:
                fs.mv(old_root, root, recursive=True)
                raise
            fs.rm(old_root, recursive=True)
        else:
            fs.mv(tmp_root, root, recursive=True)
    finally:
        if fs.exists(tmp_root):
            fs.rm(tmp_root, recursive=True)


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
    da.store(arr, target, lock=False, compute=True)
    return target
