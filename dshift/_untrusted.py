"""Reading files dshift wrote as untrusted input: what is at a path, and ``.npz`` archives
whose every member is checked (zip entry, ``.npy`` header) before any data is allocated.

A file a user (or anyone with write access) may have changed is refused with one line:
readers raise :class:`Invalid` with a few words, and :func:`refusing` turns it, and any
error a damaged file can cause, into a ``ValueError`` naming the file and the remedy.
"""

from __future__ import annotations

import math
import os
import stat
import struct
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

#: Largest zip central directory accepted (a dozen entries take about 1 KiB), and most
#: entries (the exact members are checked once the format is known).
_MAX_DIRECTORY_BYTES = 1 << 16
_MAX_MEMBERS = 64

_KINDS = {
    stat.S_IFREG: "regular file",
    stat.S_IFDIR: "directory",
    stat.S_IFLNK: "symbolic link",
    stat.S_IFIFO: "FIFO (named pipe)",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}


def file_kind(path: str) -> str | None:
    """What is at ``path`` (symbolic links not followed), or None if nothing is."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    return _KINDS.get(stat.S_IFMT(mode), "special file")


#: What reading a damaged file can raise (zipfile, numpy's header parser, json, os).
READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    TypeError,
    IndexError,
    OverflowError,
    RuntimeError,  # an "encrypted" member, RecursionError in json
    struct.error,
    zipfile.BadZipFile,
    Warning,  # numpy's header parser warns of Python 2 headers (an error under -W error)
)


class Invalid(Exception):
    """What is wrong with a file, in a few words (becomes part of a one-line ValueError)."""


def one_line(text: Any, limit: int = 120) -> str:
    """``text`` on one line, cut to ``limit`` characters (it may come from the file)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def refusing(message: str, recover: str) -> Iterator[None]:
    """Turn any reading error into ``ValueError(f"{message} ({detail}); {recover}")``."""
    try:
        yield
    except Invalid as exc:
        raise ValueError(f"{message} ({one_line(exc, 300)}); {recover}") from exc
    except READ_ERRORS as exc:
        detail = one_line(f"{type(exc).__name__}: {exc}", 300)
        raise ValueError(f"{message} ({detail}); {recover}") from exc


@contextmanager
def open_archive(path: str) -> Iterator[zipfile.ZipFile]:
    """The zip archive at ``path``: a regular file (no link, FIFO or device is opened),
    whose central directory lists a few entries in a few KiB."""
    kind = file_kind(path)
    if kind != "regular file":
        raise Invalid(f"it is a {kind}, not a regular file" if kind else "it does not exist")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    # non-blocking: a FIFO swapped in since the check above is not waited on
    with open(os.open(path, flags), "rb") as f:
        status = os.fstat(f.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise Invalid("it is not a regular file")
        _check_directory(f.fileno(), status.st_size)
        with zipfile.ZipFile(f) as archive:
            yield archive


def _check_directory(fd: int, size: int) -> None:
    """Read the zip's end records (as zipfile will) and refuse a directory of more than
    ``_MAX_MEMBERS`` entries or ``_MAX_DIRECTORY_BYTES``, before zipfile parses it."""
    if size < 22:
        raise Invalid(f"{size} bytes, too short for a zip archive (truncated?)")
    signature, *_, count, directory, _, comment = struct.unpack(
        "<4s4H2LH", os.pread(fd, 22, size - 22)
    )
    if signature != b"PK\x05\x06" or comment:
        raise Invalid("no zip end record at its end (truncated, or not a .npz file)")
    if size >= 22 + 20 + 56 and os.pread(fd, 4, size - 42) == b"PK\x06\x07":
        record = os.pread(fd, 56, size - 98)  # zip64: zipfile reads its counts instead
        if record[:4] != b"PK\x06\x06":
            raise Invalid("a damaged zip64 end record")
        count, directory = struct.unpack("<2Q", record[32:48])
    if count > _MAX_MEMBERS or directory > _MAX_DIRECTORY_BYTES:
        raise Invalid(
            f"its zip directory lists {count} members in {directory} bytes, at most "
            f"{_MAX_MEMBERS} in {_MAX_DIRECTORY_BYTES} expected"
        )


def check_names(archive: zipfile.ZipFile, names: list[str]) -> None:
    """The archive holds exactly the members ``names`` (each once)."""
    found, expected = archive.namelist(), {f"{name}.npy" for name in names}
    if len(found) != len(expected) or set(found) != expected:
        raise Invalid(
            f"members {sorted(expected - set(found))} missing, "
            f"{sorted(set(found) - expected)} unexpected, {len(found)} in all"
        )


def read_member(archive: zipfile.ZipFile, name: str, check: Callable[[tuple, np.dtype], None]):
    """Member ``name`` as an array. Its size and .npy header are checked first, and
    ``check(shape, dtype)`` must accept the header, so no claimed size is ever allocated."""
    try:
        info = archive.getinfo(f"{name}.npy")
    except KeyError:
        raise Invalid(f"member {name!r} is missing") from None
    where = f"member {name!r}"
    if info.compress_type != zipfile.ZIP_STORED:
        raise Invalid(f"{where} is compressed; dshift stores members uncompressed")
    if info.compress_size != info.file_size:
        raise Invalid(
            f"{where} is stored in {info.compress_size} bytes but claims {info.file_size}"
        )
    if info.file_size > os.fstat(archive.fp.fileno()).st_size:
        raise Invalid(f"{where} claims {info.file_size} bytes, more than the whole file")
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise Invalid(f"{where} has .npy format {version}, expected (1, 0) or (2, 0)")
        reader = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
        shape, fortran, dtype = reader(f)
        check(shape, dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size - f.tell() != nbytes:
            raise Invalid(
                f"{where} holds {info.file_size - f.tell()} bytes of data, its shape "
                f"{shape} needs {nbytes}"
            )
        raw = f.read(nbytes)  # at the member's end: zipfile checks its CRC-32 here
    if len(raw) != nbytes:
        raise Invalid(f"{where} is truncated")
    if dtype == np.dtype(np.bool_) and raw.translate(None, b"\x00\x01"):
        raise Invalid(f"{where} holds booleans other than 0 and 1")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return array.copy(order="C")


def expect(name: str, dtype: np.dtype, shape: tuple[int, ...], why: str):
    """A header check: exactly ``dtype`` and ``shape``."""

    def check(got_shape: tuple, got_dtype: np.dtype) -> None:
        if got_dtype != dtype:
            raise Invalid(f"member {name!r} has dtype {got_dtype}, expected {dtype}")
        if got_shape != shape:
            raise Invalid(f"member {name!r} has shape {got_shape}, expected {shape} ({why})")

    return check
