"""A task's temporaries are bounded: no (rows x centers) matrix, no whole-block copies.

Each check runs in a fresh interpreter and reads that process's peak resident memory
(``VmHWM`` in ``/proc/self/status``, Linux), reset just before the measured call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from functools import partial

import dask.array as da
import numpy as np
import pytest

from dshift import kernels

MB = 1024 * 1024


def run_child(code: str, *, nrt_stats: bool = False) -> dict:
    env = dict(os.environ)
    if nrt_stats:
        env["NUMBA_NRT_STATS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=170,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


PRELUDE = """
import json, sys
import numpy as np
from dshift import kernels as K
from dshift._columns import Columns
from dshift.kernels._config import BIN_TILE_ROWS

def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)

def reset_peak():
    # Linux >= 4.0: make the peak RSS (VmHWM) restart from the current RSS; returns the
    # baseline. Without it, the baseline is the peak so far (which can only hide growth
    # below an earlier peak, not invent growth).
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmRSS") * 1024
    except OSError:
        return _status_kib("VmHWM") * 1024

def peak_bytes():
    # VmHWM is this process image's own peak. (resource's ru_maxrss is not usable here: a
    # child started from a big pytest process inherits the parent's peak.)
    return _status_kib("VmHWM") * 1024
"""


def test_chunk_stats_and_nearest_labels_do_not_build_a_rows_by_centers_matrix():
    code = (
        PRELUDE
        + """
from numba.core.runtime import rtsys

rng = np.random.default_rng(0)
# warm-up on tiny data: numba loads/compiles the float32 specialisations now, so the memory
# for compilation is already in the baseline
small = rng.random((10, 3), dtype=np.float32)
C_small = rng.random((4, 3))
plan_small = K.plan(C_small, 0.5, K.GAUSSIAN, Columns(3))
K.chunk_stats(small, plan_small)
K.nearest_labels(small, C_small, 0.5, False)

a0 = rtsys.get_allocation_stats()
K.chunk_stats(small, plan_small)
a1 = rtsys.get_allocation_stats()

X = rng.random((1_000_000, 3), dtype=np.float32)   # 12 MB
C = rng.random((1000, 3))                           # 1000 centers: 1e9 pairs
plan = K.plan(C, 0.5, K.GAUSSIAN, Columns(3))       # made once per iteration, on the client
base = reset_peak()
b0 = rtsys.get_allocation_stats()
stats = K.chunk_stats(X, plan)
b1 = rtsys.get_allocation_stats()
after_stats = peak_bytes()
labels = K.nearest_labels(X, C, 0.5, False)
after_labels = peak_bytes()

# spot checks that the work was really done (after the measurement): centers 0, 500 and
# 999 against numpy over all rows, labels of the first 2000 rows against brute force
ok_stats = True
for j in (0, 500, 999):
    d2 = ((X.astype(np.float64) - C[j]) ** 2).sum(axis=1)
    w = np.exp(-d2 / 0.5)
    ok_stats &= bool(np.isclose(stats.weights[j], w.sum(), rtol=1e-9))
    ok_stats &= bool(np.allclose(stats.sums[j], w @ (X.astype(np.float64) - C[j]), rtol=1e-9))
    ok_stats &= bool(stats.counts[j] == (d2 <= 0.25).sum())
head = X[:2000].astype(np.float64)
D2 = ((head[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)
ref = np.where(D2.min(axis=1) <= 0.25, D2.argmin(axis=1), -1)
print(json.dumps({
    "stats_growth": after_stats - base,
    "labels_growth": after_labels - base,
    "small_allocs": a1.alloc - a0.alloc,
    "small_frees": a1.free - a0.free,
    "big_allocs": b1.alloc - b0.alloc,
    "big_frees": b1.free - b0.free,
    "n_labels": int(labels.shape[0]),
    "labels_dtype": str(labels.dtype),
    "labels_ok": bool((labels[:2000] == ref).all()),
    "stats_ok": ok_stats,
    "n_nonfinite": stats.n_nonfinite,
}))
"""
    )
    out = run_child(code, nrt_stats=True)
    # a dense (rows x centers) float32 matrix would be 4 GB
    assert out["stats_growth"] < 100 * MB, out
    # labels: 4 MB of int32 are the output itself
    assert out["labels_growth"] < 100 * MB, out
    assert out["n_labels"] == 1_000_000 and out["labels_dtype"] == "int32"
    assert out["labels_ok"] and out["stats_ok"] and out["n_nonfinite"] == 0, out
    # numba's runtime: a call makes a fixed number of NRT allocations (the array arguments'
    # wrappers and a few tile buffers), the same for 10 rows x 4 centers as for 1e6 x 1000,
    # so none is made per row, per center or per pair; and all are freed
    assert out["big_allocs"] == out["small_allocs"], out
    assert out["small_allocs"] < 50, out
    assert out["big_allocs"] == out["big_frees"], out


def test_bin_points_temporaries_are_bounded_by_the_tile():
    code = (
        PRELUDE
        + """
rng = np.random.default_rng(1)
X = rng.random((1_000_000, 3), dtype=np.float32)   # 12 MB; ~9,000 distinct cells below
K.bin_points(X[:100], 0.05, nearest=True)
base = reset_peak()
cells, counts, _, bad = K.bin_points(X, 0.05, nearest=True)
grown = peak_bytes() - base
print(json.dumps({"growth": grown, "n_cells": len(cells), "total": int(counts.sum()),
                  "bad": bad, "tile": BIN_TILE_ROWS}))
"""
    )
    out = run_child(code)
    assert out["tile"] < 1_000_000  # the block really spans several tiles
    assert out["total"] == 1_000_000 and out["bad"] == 0
    assert 1000 < out["n_cells"] < 20_000
    # A float64 copy of the whole block is 24 MB, and dividing and rounding it doubles that
    # (~66 MB measured for the untiled computation); tiles of 65,536 rows stay far below.
    assert out["growth"] < 32 * MB, out


def test_child_measurement_detects_a_dense_allocation():
    """Sanity check of the method: a 320 MB temporary is visible in the peak RSS growth."""
    code = (
        PRELUDE
        + """
base = reset_peak()
tmp = np.ones(40_000_000)
del tmp
print(json.dumps({"growth": peak_bytes() - base}))
"""
    )
    out = run_child(code)
    assert out["growth"] >= 250 * MB, out


CENTERS = np.array([[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]])


def _persisted_points() -> da.Array:
    """1,000 points in 4 row blocks, persisted (the blocks held in the graph)."""
    X = da.from_array(np.random.default_rng(0).normal(size=(1_000, 3)), chunks=(300, 3))
    return X.persist(scheduler="sync")


def _watch_blocks(monkeypatch, kernel: str, X: da.Array) -> list[bool]:
    """Replace ``kernels.<kernel>`` by a wrapper that records, per call, whether its block
    shares memory with one of X's held blocks; returns that record."""
    held = list(X.__dask_graph__().values())
    compute = getattr(kernels, kernel)
    in_place = []

    def watched(block, *args):
        in_place.append(any(np.shares_memory(block, h) for h in held))
        return compute(block, *args)

    monkeypatch.setattr(kernels, kernel, watched)
    return in_place


def _labels_by_nearest(X):
    from dshift._iterate import label_blocks

    return partial(label_blocks, X, CENTERS, 1.0, True)


def _labels_by_mode(X):
    from dshift._modes import mode_label_blocks

    table = kernels.cell_table(np.array([[0, 0, 0], [1, 1, 1]]), np.array([0, 1]))
    return partial(mode_label_blocks, X, 2.0, table, CENTERS, 1.0, True)


def _adaptive_bandwidths(X):
    from dshift._fit_input import knn_bandwidths

    knn, _ = knn_bandwidths(X, 3, 0)  # the sample's own distances: not a row pass
    return partial(knn, X)


@pytest.mark.parametrize(
    ("kernel", "row_pass"),
    [
        ("nearest_labels", _labels_by_nearest),
        ("cell_labels", _labels_by_mode),
        ("kth_distances", _adaptive_bandwidths),
    ],
)
def test_per_row_passes_read_each_block_where_it_is_held(monkeypatch, kernel, row_pass):
    """Labels (nearest center, mode) and adaptive bandwidths get each block as held, not a
    copy: joining a block's one column chunk (``map_blocks(drop_axis=1)``) would write a
    block's worth of fresh memory per block, and twice a float32 block's for float64."""
    X = _persisted_points()
    build = row_pass(X)
    in_place = _watch_blocks(monkeypatch, kernel, X)
    values = build().compute(scheduler="sync")
    assert values.shape == (1_000,)
    assert in_place == [True] * 4


def test_labels_of_blocks_held_in_memory_read_each_block_where_it_is_held(monkeypatch):
    """Labels and sizes computed where a kept copy's blocks are held (no graph of the
    whole array) label the blocks themselves: ``da.from_array`` would copy each first."""
    from dshift._iterate import computed_labels_and_sizes, label_blocks

    X = _persisted_points()
    in_place = _watch_blocks(monkeypatch, "nearest_labels", X)
    nearest = partial(label_blocks, centers=CENTERS, bandwidth=1.0, cluster_all=True)
    labels, sizes = computed_labels_and_sizes(X, 3, 2, nearest)
    assert labels.shape == (1_000,) and sizes.sum() == 1_000
    assert in_place == [True] * 4
