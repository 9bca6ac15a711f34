"""Reading Zarr inputs so that no read can silently return data the user did not store.

Zarr answers a read of a chunk that has no stored object with the array's fill value, and
nothing in a path says whether the content behind it changed. So every Zarr input dshift
reads is opened through :func:`open_input`, which

- makes a local path absolute on the client (a worker may run in another directory);
- lists the array's stored objects once, with their size and version (modification time in
  nanoseconds and inode on a file system; ETag, generation or modification time on an
  object store): a *manifest*. A chunk of the array's grid that is not in it is an error
  before anything is computed;
- with a distributed client, has every worker open the array and compares the shape,
  dtype and listing it sees with the client's (:func:`check_workers_read`);
- names the dask keys of the reads after the manifest, so new content gets new keys and a
  cluster never hands a fit the cached chunks of an older version of the same path;
- checks, in every read, that each stored chunk it covers still has the size and version
  of the manifest (one ``stat``, or one metadata request on an object store, per stored
  chunk read): a chunk deleted or rewritten during a fit is an error, never a fill value;
- offers :meth:`ZarrInput.verify_unchanged`, one more listing, which a fit runs at its end
  and :func:`dshift.write_result` runs before publishing, so a change that raced with a
  read still fails the fit instead of producing a mixed result.

None of this reads the data: the cost is two listings of the array's objects per fit and
one metadata lookup per stored chunk read.
"""

from __future__ import annotations

import hashlib
import os
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import zarr
from dask.base import tokenize
from zarr.storage import FsspecStore, LocalStore

from dshift import _raw_read
from dshift._cluster import current_client

#: Stored chunks named in one error message; the rest are counted.
_SHOWN = 3
#: The open inputs by the name of their dask read layer (see :func:`inputs_of`).
_BY_LAYER: weakref.WeakValueDictionary[str, ZarrInput] = weakref.WeakValueDictionary()


def _sync(coroutine):
    from zarr.core.sync import sync

    return sync(coroutine)


def absolute(url: str | os.PathLike) -> str:
    """A local path made absolute (URLs are returned as they are).

    >>> absolute("s3://bucket/x.zarr")
    's3://bucket/x.zarr'
    >>> os.path.isabs(absolute("data/x.zarr"))
    True
    """
    url = os.fspath(url)
    return url if "://" in url else os.path.abspath(url)


def open_zarr_array(
    url: str | os.PathLike, storage_options: dict[str, Any] | None = None
) -> zarr.Array:
    """Open a Zarr array read-only from a local path (made absolute) or an fsspec URL.

    Parameters
    ----------
    url : str or path-like
        ``"data/points.zarr"``, ``"file:///abs/points.zarr"``, ``"s3://bucket/points.zarr"``...
    storage_options : dict, optional
        Passed to the URL's fsspec file system (credentials, ``endpoint_url``...); ignored
        for local paths.

    Returns
    -------
    array : zarr.Array
    """
    url = absolute(url)
    remote = {"storage_options": storage_options} if storage_options and "://" in url else {}
    try:
        node = zarr.open(url, mode="r", **remote)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"No Zarr array at {url!r}: the path does not exist. Check the path, or create "
            "the data first (for example with dshift.datasets.make_blobs)."
        ) from exc
    if isinstance(node, zarr.Group):
        names = sorted(node.array_keys())
        hint = ""
        if names:
            hint = f" It holds the arrays {names}; pass e.g. {url.rstrip('/')}/{names[0]}."
        raise ValueError(f"{url!r} is a Zarr group, not an array.{hint}")
    return node


def _with_absolute_root(array: zarr.Array) -> zarr.Array:
    """The same array, on a local store whose root is absolute (workers resolve it alike)."""
    store = array.store
    if isinstance(store, LocalStore) and not os.path.isabs(str(store.root)):
        store = LocalStore(os.path.abspath(store.root), read_only=True)
        return zarr.open_array(store, path=array.path, mode="r")
    return array


class _Files:
    """The stored objects under one array's prefix: listing and per-object versions.

    Local stores are read with ``os``; fsspec stores with their file system; other stores
    (memory, zip...) can only say whether a key exists, and have no versions.
    """

    def __init__(self, array: zarr.Array) -> None:
        self.store = array.store
        self.prefix = array.path
        if isinstance(self.store, LocalStore):
            self.kind, self.base = "local", os.path.join(str(self.store.root), self.prefix)
        elif isinstance(self.store, FsspecStore):
            self.kind, self.base = "fsspec", f"{self.store.path}/{self.prefix}".rstrip("/")
        else:
            self.kind, self.base = "other", self.prefix

    @property
    def versioned(self) -> bool:
        return self.kind != "other"

    def listing(self) -> dict[str, tuple[Any, ...]]:
        """Every stored object's key (relative to the array) and (size, version)."""
        if self.kind == "local":
            out = {}
            for top, _, files in os.walk(self.base):
                for name in files:
                    path = os.path.join(top, name)
                    key = os.path.relpath(path, self.base).replace(os.sep, "/")
                    st = os.stat(path)
                    out[key] = (st.st_size, st.st_mtime_ns, st.st_ino)
            return out
        if self.kind == "fsspec":
            infos = _sync(self.store.fs._find(self.base, detail=True))
            start = len(self.base.rstrip("/")) + 1
            return {
                path[start:] if path.startswith(self.base) else path: _fsspec_stamp(info)
                for path, info in infos.items()
            }
        return {}

    def stamp(self, key: str) -> tuple[Any, ...] | None:
        """(size, version) of one stored object now, None if it is not stored."""
        if self.kind == "local":
            try:
                st = os.stat(os.path.join(self.base, key))
            except FileNotFoundError:
                return None
            return (st.st_size, st.st_mtime_ns, st.st_ino)
        if self.kind == "fsspec":
            try:
                return _fsspec_stamp(_sync(self.store.fs._info(f"{self.base}/{key}")))
            except FileNotFoundError:
                return None
        full = f"{self.prefix}/{key}" if self.prefix else key
        return () if _sync(self.store.exists(full)) else None


def _fsspec_stamp(info: dict[str, Any]) -> tuple[Any, ...]:
    version = None
    for name in ("ETag", "etag", "md5Hash", "generation", "mtime", "LastModified", "created"):
        if info.get(name) is not None:
            version = str(info[name])
            break
    return (info.get("size"), version)


@dataclass(eq=False)
class ZarrInput:
    """One Zarr array read by a fit, with the manifest of its stored objects at open.

    Attributes
    ----------
    array : zarr.Array
        Opened read-only (a local store with an absolute root).
    name : str
        Absolute path or URL, for messages and for comparing with outputs.
    manifest : dict
        Stored object key -> (size, version) when opened (empty for stores that cannot
        list: every read then checks that its chunks exist, and keys are unique per open).
    token : str
        Digest of the metadata and manifest, part of every dask key that reads the array.
    """

    array: zarr.Array
    name: str
    manifest: dict[str, tuple[Any, ...]]
    token: str

    @property
    def files(self) -> _Files:
        return _Files(self.array)

    @property
    def grid_rows(self) -> int:
        """Rows per stored object (the shard if the array is sharded, else the chunk)."""
        return (self.array.shards or self.array.chunks)[0]

    def chunk_keys(self, start: int, stop: int) -> list[tuple[str, int, int]]:
        """(key, first row, last row + 1) of every stored object holding rows start:stop."""
        grid = self.array.shards or self.array.chunks
        shape = self.array.shape
        if 0 in shape:  # no chunk is stored
            return []
        per_row = [range(-(-n // c)) for n, c in zip(shape[1:], grid[1:])]
        out = []
        for i in range(start // grid[0], -(-min(stop, shape[0]) // grid[0])):
            for rest in np.ndindex(*[len(r) for r in per_row]):
                key = self.array.metadata.encode_chunk_key((i, *rest))
                out.append((key, i * grid[0], min(shape[0], (i + 1) * grid[0])))
        return out

    def check_complete(self) -> None:
        """Raise if a stored object of the array's grid is missing from the manifest."""
        if not self.files.versioned:
            return
        missing = [c for c in self.chunk_keys(0, self.array.shape[0]) if c[0] not in self.manifest]
        if missing:
            raise ValueError(self._missing_message(missing, "has no stored data for"))

    def check_rows(self, start: int, stop: int) -> None:
        """Raise unless the stored objects of rows start:stop are those of the manifest."""
        files = self.files
        missing, changed = [], []
        for chunk in self.chunk_keys(start, stop):
            now = files.stamp(chunk[0])
            if now is None:
                missing.append(chunk)
            elif files.versioned and now != self.manifest.get(chunk[0]):
                changed.append(chunk)
        if missing:
            raise ValueError(self._missing_message(missing, "no longer has stored data for"))
        if changed:
            key, first, last = changed[0]
            raise ValueError(
                f"The Zarr array {self.name!r} changed while dshift was reading it (rows "
                f"{first}:{last}, chunk {key!r}, was rewritten after the fit opened the "
                "array); nothing was written. Fit again once nothing writes to the input."
            )

    def verify_unchanged(self) -> None:
        """Raise if the array's stored objects differ from the manifest (one listing)."""
        if not self.files.versioned:
            return
        now = self.files.listing()
        keys = set(now) | set(self.manifest)
        diff = sorted(k for k in keys if now.get(k) != self.manifest.get(k))
        if diff:
            shown = ", ".join(repr(k) for k in diff[:_SHOWN])
            more = f" and {len(diff) - _SHOWN} more" if len(diff) > _SHOWN else ""
            raise ValueError(
                f"The Zarr array {self.name!r} changed during the fit ({len(diff)} stored "
                f"object(s) added, removed or rewritten since it was opened: {shown}{more}); "
                "no result was written. Fit again once nothing writes to the input."
            )

    def _missing_message(self, missing: list[tuple[str, int, int]], what: str) -> str:
        key, first, last = missing[0]
        more = f" and {len(missing) - 1} more stored chunk(s)" if len(missing) > 1 else ""
        fill = self.array.metadata.fill_value
        fill = fill.item() if hasattr(fill, "item") else fill
        return (
            f"The Zarr array {self.name!r} {what} rows {first}:{last} (chunk {key!r}{more}): "
            f"Zarr would read them as the fill value {fill!r}. Rewrite the missing rows or "
            "restore the array from a copy (if a chunk was left unwritten because it held "
            "only the fill value, write it with zarr.config.set({'array.write_empty_chunks': "
            "True}))."
        )


def _name(array: zarr.Array) -> str:
    store = array.store
    if isinstance(store, LocalStore):
        root = str(store.root)
    elif isinstance(store, FsspecStore):
        protocol = store.fs.protocol
        protocol = protocol[0] if isinstance(protocol, (tuple, list)) else protocol
        root = f"{protocol}://{store.path}" if protocol not in ("file", "local") else store.path
    else:
        root = str(store)
    return f"{root.rstrip('/')}/{array.path}".rstrip("/")


def open_input(source: str | os.PathLike | zarr.Array) -> ZarrInput:
    """Open a Zarr input (path, URL or array), list its stored objects, check it is whole.

    Raises
    ------
    FileNotFoundError
        Nothing at the path.
    ValueError
        A group rather than an array, or a chunk of the array's grid has no stored object.
    """
    array = open_zarr_array(source) if isinstance(source, (str, os.PathLike)) else source
    array = _with_absolute_root(array)
    files = _Files(array)
    manifest = files.listing() if files.versioned else {}
    digest = hashlib.sha256(repr(sorted(manifest.items())).encode()).hexdigest()
    if not files.versioned:  # no versions to compare: never share keys between opens
        digest = uuid.uuid4().hex
    token = tokenize(_name(array), array.metadata.to_dict(), digest)
    source_input = ZarrInput(array=array, name=_name(array), manifest=manifest, token=token)
    source_input.check_complete()
    check_workers_read([source_input])
    return source_input


class CheckedZarrReader:
    """Reads row blocks of a Zarr input; a failed or unsafe read names the array, the rows
    and a fix.

    Before reading, the rows' stored chunks are checked against the input's manifest
    (:meth:`ZarrInput.check_rows`). A corrupt or truncated chunk otherwise surfaces as a codec
    error from deep inside a worker (``RuntimeError: Zstd decompression error``) that says
    nothing about which data is at fault.
    """

    def __init__(self, source: ZarrInput) -> None:
        self.source = source
        self.shape = source.array.shape
        self.dtype = source.array.dtype
        self.ndim = source.array.ndim
        self.layout = _raw_read.raw_layout(source.array)

    def __getitem__(self, key: Any) -> np.ndarray:
        rows = key[0] if isinstance(key, tuple) else key
        start, stop, step = rows.indices(self.shape[0]) if isinstance(rows, slice) else (0, 0, 1)
        self.source.check_rows(start, stop)
        try:
            if self.layout is not None and _whole_rows(key, self.shape) and step == 1:
                return _raw_read.read_file_rows(self.layout, start, stop)
            return np.asarray(self.source.array[key])
        except Exception as exc:
            where = f"rows {start}:{stop}" if isinstance(rows, slice) else "a block"
            raise ValueError(
                f"Could not read {where} of the Zarr array {self.source.name!r} "
                f"({type(exc).__name__}: {exc}): the store is corrupt, incomplete or "
                "unreachable; rewrite the damaged chunks or restore the array from a copy."
            ) from exc


def _whole_rows(key: Any, shape: tuple[int, ...]) -> bool:
    """Whether an index selects every column of a slice of rows."""
    rows, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
    return (
        isinstance(rows, slice)
        and all(isinstance(k, slice) and k.indices(n) == (0, n, 1) for k, n in zip(rest, shape[1:]))
        and len(rest) <= len(shape) - 1
    )


def read_rows(source: ZarrInput, chunks: tuple[int, ...] | tuple[tuple[int, ...], ...]) -> da.Array:
    """A lazy dask array over a Zarr input with checked reads, keyed by its content.

    ``chunks`` are dask chunks (rows first; one chunk along the other axes).
    """
    array = source.array
    name = "read-zarr-" + tokenize(source.token, chunks)
    out = da.from_array(
        CheckedZarrReader(source),
        chunks=chunks,
        name=name,
        asarray=False,
        lock=False,
        meta=np.empty((0,) * array.ndim, dtype=array.dtype),
    )
    _BY_LAYER[name] = source
    return out


def inputs_of(*arrays: Any) -> list[ZarrInput]:
    """The Zarr inputs that the graphs of these dask arrays read (others are ignored)."""
    found: dict[int, ZarrInput] = {}
    for arr in arrays:
        if isinstance(arr, da.Array):
            for layer in arr.dask.layers:
                source = _BY_LAYER.get(layer)
                if source is not None:
                    found[id(source)] = source
    return list(found.values())


def verify_unchanged(inputs: Iterable[ZarrInput]) -> None:
    """Raise if any of these inputs changed since it was opened."""
    for source in inputs:
        source.verify_unchanged()


def check_workers_read(inputs: Iterable[ZarrInput]) -> None:
    """With a distributed client, check that every worker opens each input with the same
    shape, dtype and stored objects as the client; raise one line naming what differs."""
    inputs = list(inputs)
    client = current_client()
    if not inputs or client is None:
        return
    expected = [_fingerprint(s.array) for s in inputs]
    seen = client.run(_worker_fingerprints, [s.array for s in inputs])
    for worker, got in sorted(seen.items()):
        for source, want, have in zip(inputs, expected, got):
            if have == want:
                continue
            if isinstance(have, str):
                problem = f"cannot open it ({have})"
            elif have[:2] != want[:2]:
                problem = f"sees shape {have[0]} and dtype {have[1]}, not {want[0]} and {want[1]}"
            else:
                problem = "sees other stored objects (another copy of the data?)"
            raise ValueError(
                f"Worker {worker} {problem} for the Zarr array {source.name!r}: the workers "
                "must read the same store as this client. Use a path on a file system every "
                "worker mounts at the same place, or an object store URL."
            )


def _fingerprint(array: zarr.Array) -> tuple[Any, ...]:
    files = _Files(array)
    listing = files.listing() if files.versioned else {}
    digest = hashlib.sha256(repr(sorted(listing.items())).encode()).hexdigest()
    return (tuple(array.shape), str(array.dtype), digest)


def _worker_fingerprints(arrays: list[zarr.Array]) -> list[tuple[Any, ...] | str]:
    """Run on each worker: reopen each array from its store, fingerprint it."""
    out: list[tuple[Any, ...] | str] = []
    for array in arrays:
        try:
            fresh = zarr.open_array(array.store, path=array.path, mode="r")
            out.append(_fingerprint(fresh))
        except Exception as exc:  # reported to the client as one line
            out.append(f"{type(exc).__name__}: {exc}")
    return out
