"""Reading rows of an uncompressed local Zarr array straight from its chunk files.

A Zarr 3 array on a local store whose chunks span every column, with no compressor, no
filter, no sharding and the bytes codec in this machine's byte order stores each chunk as
its C-ordered values, padded to the full chunk shape. Rows ``start:stop`` are then byte
ranges of a few files, read with one ``preadv`` per chunk into the output array: one copy
from the page cache instead of zarr's two (file to bytes, bytes to array), and no round trip
through zarr's event loop (docs/performance.md has the figures).

Every other array (compressed, sharded, remote, split along columns, another byte order)
is read by zarr. A chunk that is not a regular file of the full chunk's size is an error,
as zarr's read of it would be (or would hang, on a FIFO).

Examples
--------
>>> import tempfile, os, numpy as np, zarr
>>> path = os.path.join(tempfile.mkdtemp(), "x.zarr")
>>> z = zarr.create_array(path, shape=(5, 2), chunks=(2, 2), dtype="f4", compressors=None)
>>> z[:] = np.arange(10, dtype="f4").reshape(5, 2)
>>> layout = raw_layout(z)
>>> read_file_rows(layout, 1, 5).tolist()
[[2.0, 3.0], [4.0, 5.0], [6.0, 7.0], [8.0, 9.0]]
"""

from __future__ import annotations

import os
import stat
import sys
from typing import Any, NamedTuple

import numpy as np
import zarr
from zarr.codecs import BytesCodec
from zarr.storage import LocalStore

#: Bytes asked for in one read (macOS refuses reads whose length overflows 32 bits).
_MAX_READ = 2**30


class RawLayout(NamedTuple):
    """Where an uncompressed local array's rows are (see :func:`raw_layout`).

    Attributes
    ----------
    base : str
        The array's directory.
    encoding : zarr's chunk key encoding of the array (keys relative to ``base``)
    chunk_rows : int
        Rows per chunk.
    shape : tuple of int
    dtype : numpy dtype (native byte order)
    """

    base: str
    encoding: Any
    chunk_rows: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def chunk_bytes(self) -> int:
        """Size of every stored chunk file (edge chunks are stored whole)."""
        return self.chunk_rows * self.row_bytes


def raw_layout(array: zarr.Array) -> RawLayout | None:
    """The layout of an array whose rows can be read straight from its files, else None."""
    store = array.store
    if not hasattr(os, "preadv") or not hasattr(os, "O_NONBLOCK"):  # Windows
        return None
    if not isinstance(store, LocalStore) or array.metadata.zarr_format != 3:
        return None
    if array.ndim < 1 or array.shards is not None or array.order != "C":
        return None
    if array.compressors or array.filters:
        return None
    serializer = array.serializer
    dtype = np.dtype(array.dtype)
    if type(serializer) is not BytesCodec or dtype.kind not in "biuf" or 0 in array.shape:
        return None
    native = dtype.itemsize == 1 or (
        serializer.endian is not None and serializer.endian.value == sys.byteorder
    )
    if not native or tuple(array.chunks[1:]) != tuple(array.shape[1:]):
        return None
    chunk_rows = int(array.chunks[0])
    base = os.path.join(str(store.root), array.path)
    encoding = array.metadata.chunk_key_encoding
    return RawLayout(base, encoding, chunk_rows, tuple(array.shape), dtype.newbyteorder("="))


def read_file_rows(layout: RawLayout, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` (``0 <= start <= stop <= shape[0]``), read from the chunk files.

    Raises
    ------
    OSError
        A chunk file is missing, not a regular file, not of the full chunk's size, or
        ends before the rows read.
    """
    out = np.empty((max(0, stop - start), *layout.shape[1:]), dtype=layout.dtype)
    if stop <= start:
        return out
    view = memoryview(out.reshape(-1).view(np.uint8))
    row_bytes, rows = layout.row_bytes, layout.chunk_rows
    done = 0
    for i in range(start // rows, -(-stop // rows)):
        first = max(start, i * rows)
        last = min(stop, (i + 1) * rows)
        key = layout.encoding.encode_chunk_key((i,) + (0,) * (len(layout.shape) - 1))
        path = os.path.join(layout.base, key)
        want = (last - first) * row_bytes
        # O_NONBLOCK: a FIFO in the store must not hang the read (no effect on files)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(f"{path} is not a regular file")
            if st.st_size != layout.chunk_bytes():
                raise OSError(
                    f"{path} holds {st.st_size} bytes where a chunk of this array holds "
                    f"{layout.chunk_bytes()}"
                )
            offset, got = (first - i * rows) * row_bytes, 0
            while got < want:  # a read may return fewer bytes than asked for
                part = view[done + got : done + min(want, got + _MAX_READ)]
                n = os.preadv(fd, [part], offset + got)
                if not n:
                    raise OSError(f"{path}: the file ended after {got} of {want} bytes")
                got += n
        finally:
            os.close(fd)
        done += want
    return out
