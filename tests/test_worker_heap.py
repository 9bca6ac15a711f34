"""Workers keep freed buffers for reuse during a fit, and get their settings back after it
(``dshift._worker_heap``), observed through the page faults of a worker's allocations."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from dshift import MeanShift
from dshift._worker_heap import MAX_REUSE_BYTES, reuse_bytes, set_thresholds

pytestmark = pytest.mark.cluster

BUFFER = 2**21  # 2 MiB: above the thresholds the nanny's environment fixes (64 KiB)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks")
        + ("uordblks", "fordblks", "keepcost")
    ]


def mapped_for_a_buffer() -> int:
    """Bytes glibc maps apart from its heap (``hblkhd``) for one fresh 2 MiB buffer: the
    whole buffer when its size is over the mmap threshold, 0 when the heap serves it."""
    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    mallinfo2.restype = _MallInfo2
    before = mallinfo2().hblkhd
    buffer = np.empty(BUFFER, dtype=np.uint8)
    mapped = mallinfo2().hblkhd - before
    del buffer
    return mapped


def test_the_freed_memory_kept_is_bounded_by_the_smallest_worker():
    assert reuse_bytes([2**34, 2**35]) == MAX_REUSE_BYTES
    assert reuse_bytes([2**34, 320 * 2**20]) == 10 * 2**20
    assert reuse_bytes([0]) == 128 * 2**10  # never below glibc's own default


def test_workers_reuse_buffers_during_a_fit_and_are_restored_after(dask_client):
    assert all(m >= BUFFER for m in dask_client.run(mapped_for_a_buffer).values()), (
        "the workers' environment should fix glibc's thresholds (distributed's nanny does)"
    )
    X = np.random.default_rng(0).normal(size=(3_000, 2))
    fit = MeanShift(bandwidth=0.5, kernel="flat", seeding="bin", row_chunks=500).iter_fit(X)
    next(fit)  # the fit runs: its workers keep freed buffers, and the heap serves them
    during = dask_client.run(mapped_for_a_buffer)
    for _ in fit:
        pass
    after = dask_client.run(mapped_for_a_buffer)
    assert all(m == 0 for m in during.values()), during
    assert all(m >= BUFFER for m in after.values()), after


def test_the_thresholds_are_restored_when_the_caller_stops_a_fit(dask_client):
    X = np.random.default_rng(1).normal(size=(2_000, 2))
    fit = MeanShift(bandwidth=0.5, kernel="flat", seeding="bin").iter_fit(X)
    next(fit)
    assert all(m == 0 for m in dask_client.run(mapped_for_a_buffer).values())
    fit.close()  # the caller stops iterating: the generator's cleanup restores them
    assert all(m >= BUFFER for m in dask_client.run(mapped_for_a_buffer).values())


def test_set_thresholds_in_this_process_and_back(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # as distributed's nanny sets it
    try:
        assert set_thresholds(2**22)  # glibc, on Linux
        assert mapped_for_a_buffer() == 0
    finally:
        assert set_thresholds(None)
    assert mapped_for_a_buffer() >= BUFFER
