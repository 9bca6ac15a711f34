"""Workers that keep their freed buffers for the next chunk while a fit runs.

distributed's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``. With a threshold
set, glibc stops raising its mmap threshold as it otherwise would, so every buffer of 128
KiB or more (a chunk read from Zarr, its decoded copy) is a fresh mapping whose pages fault
in one at a time and go back to the system when it is freed. A fit that streams 12 GB per
iteration took 3 million page faults per pass that way, a third of its time in the kernel.

While a fit runs on a cluster, dshift sets each worker's mmap and trim thresholds (glibc's
``mallopt``) to :func:`reuse_bytes`: buffers up to that size come from the heap, and the
heap keeps that much freed memory for the next one. After the fit, success or not, it
restores the thresholds the worker's environment gave (without one, glibc's initial 128 KiB,
now fixed) and returns the kept memory (``malloc_trim``). Workers without glibc are left as
they are.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from typing import Any

from dshift._cluster import current_client, free_memory, lost

#: Most freed memory a worker keeps for reuse during a fit.
MAX_REUSE_BYTES = 2**25
#: glibc's ``mallopt`` parameters, and its defaults for both thresholds.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_DEFAULT = 128 * 2**10
#: The thresholds dshift set in this process and has not restored yet (None: none).
_setting: int | None = None


def reuse_bytes(free: list[int]) -> int:
    """Freed memory a worker keeps during a fit: 1/32 of the smallest worker's free
    memory, at most ``MAX_REUSE_BYTES``, at least glibc's default threshold.

    dshift's row chunks take up to 1/16 of that free memory: on workers short of memory,
    their buffers stay above the threshold and go back to the system as before (each
    arena keeps up to the threshold, and the memory is what binds there, not the faults).

    Examples
    --------
    >>> reuse_bytes([2**30, 2**31]), reuse_bytes([76 * 2**20]), reuse_bytes([])
    (33554432, 2490368, 131072)
    """
    return max(_GLIBC_DEFAULT, min(MAX_REUSE_BYTES, min(free, default=0) // 32))


def _glibc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def set_thresholds(size: int | None) -> bool:
    """On this process: both thresholds to ``size``, or (None) back to the environment's
    values (or glibc's defaults), then trim the heap. Returns whether glibc took them."""
    global _setting
    libc = _glibc()
    if libc is None:
        return False
    if size is None:
        trim = int(os.environ.get("MALLOC_TRIM_THRESHOLD_", _GLIBC_DEFAULT))
        mmap = int(os.environ.get("MALLOC_MMAP_THRESHOLD_", _GLIBC_DEFAULT))
        done = libc.mallopt(_M_TRIM_THRESHOLD, trim) and libc.mallopt(_M_MMAP_THRESHOLD, mmap)
        libc.malloc_trim(0)
    else:
        done = libc.mallopt(_M_MMAP_THRESHOLD, size) and libc.mallopt(_M_TRIM_THRESHOLD, size)
    if done:
        _setting = size
    return bool(done)


def current_setting() -> int | None:
    """The thresholds dshift set in this process (bytes), or None when they are the
    environment's (never changed, or restored)."""
    return _setting


def reusing_buffers(steps: Iterator[Any]) -> Iterator[Any]:
    """The items of ``steps``, with the current client's workers keeping freed buffers
    for reuse until the last one (or an error, or the caller closing the generator).

    Without a distributed client, the items as they are. A worker that cannot be reached
    only misses the gain: the fit itself reports lost workers and schedulers.

    Examples
    --------
    >>> list(reusing_buffers(iter([1, 2])))
    [1, 2]
    """
    client = current_client()
    if client is None:
        yield from steps
        return
    with contextlib.suppress(Exception):
        client.run(set_thresholds, reuse_bytes(free_memory(client)))
    try:
        yield from steps
    finally:
        if not lost(client):
            with contextlib.suppress(Exception):
                client.run(set_thresholds, None)
