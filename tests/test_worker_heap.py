"""Workers keep freed buffers for reuse during a fit, and get their settings back after it
(``dshift._worker_heap``)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from dshift import MeanShift, _worker_heap
from dshift._worker_heap import MAX_REUSE_BYTES, current_setting, reuse_bytes


def test_the_freed_memory_kept_is_bounded_by_the_smallest_worker():
    assert reuse_bytes([2**34, 2**35]) == MAX_REUSE_BYTES
    assert reuse_bytes([2**34, 320 * 2**20]) == 10 * 2**20
    assert reuse_bytes([0]) == 128 * 2**10  # never below glibc's own default


@pytest.mark.cluster
def test_workers_reuse_buffers_during_a_fit_and_are_restored_after(dask_client):
    X = np.random.default_rng(0).normal(size=(3_000, 2))
    fit = MeanShift(bandwidth=0.5, kernel="flat", seeding="bin", row_chunks=500).iter_fit(X)
    next(fit)  # the fit runs: its workers keep freed buffers
    during = set(dask_client.run(current_setting).values())
    for _ in fit:
        pass
    (size,) = during  # one setting for all workers, from the smallest one's free memory
    assert 128 * 2**10 <= size <= MAX_REUSE_BYTES
    assert set(dask_client.run(current_setting).values()) == {None}


@pytest.mark.cluster
def test_the_thresholds_are_restored_when_the_caller_stops_a_fit(dask_client):
    X = np.random.default_rng(1).normal(size=(2_000, 2))
    fit = MeanShift(bandwidth=0.5, kernel="flat", seeding="bin").iter_fit(X)
    next(fit)
    assert None not in dask_client.run(current_setting).values()
    fit.close()  # the caller stops iterating: the generator's cleanup restores them
    assert set(dask_client.run(current_setting).values()) == {None}


class RecordingLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


def test_restoring_sets_the_environments_thresholds_and_trims(monkeypatch):
    libc = RecordingLibc()
    monkeypatch.setattr(_worker_heap, "_glibc", lambda: libc)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # as distributed's nanny sets it
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert _worker_heap.set_thresholds(2**22)
    assert libc.calls == [("mallopt", -3, 2**22), ("mallopt", -1, 2**22)]
    assert current_setting() == 2**22
    libc.calls.clear()
    assert _worker_heap.set_thresholds(None)
    assert libc.calls == [("mallopt", -1, 65536), ("mallopt", -3, 128 * 2**10), ("malloc_trim", 0)]
    assert current_setting() is None


def test_no_glibc_leaves_the_process_alone(monkeypatch):
    monkeypatch.setattr(_worker_heap, "_glibc", lambda: None)
    assert not _worker_heap.set_thresholds(2**22)
    assert current_setting() is None


_PROBE = """
import ctypes, numpy as np
from dshift._worker_heap import set_thresholds

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
        "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
mallinfo2.restype = Info

def mapped():  # bytes glibc maps apart from its heap for one fresh 2 MiB buffer
    before = mallinfo2().hblkhd
    buffer = np.empty(2**21, dtype=np.uint8)
    out = mallinfo2().hblkhd - before
    del buffer
    return out

out = [mapped()]
assert set_thresholds(2**22)
out += [mapped(), mapped()]
assert set_thresholds(None)
out.append(mapped())
print(*out)
"""


def test_glibc_takes_the_thresholds_in_a_fresh_process():
    """A fresh process, as a worker starts: its buffers are mapped apart from the heap,
    then served by the heap while the thresholds are raised, then mapped again."""
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    before, during, again, after = map(int, done.stdout.split())
    assert before >= 2**21 and after >= 2**21
    assert during == again == 0
