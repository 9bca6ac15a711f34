"""Streamed out of core: a flat fit on 2 workers of 300 MiB each, from a Zarr store 3x
their total memory (uncompressed, as ``datasets.make_blobs`` writes it) and from a 1e7-point
store written with zarr 3's default (compressed) codec.

For each store, on a fresh cluster: a bare ``da.from_zarr(path).sum()`` pass (the read
floor, best of two), then the fit; prints the median iteration against the read pass and
every worker's peak RSS (the kernel's high-water mark, ``VmHWM``) against its limit, and
the RSS of a worker at rest with the kernels loaded. The stores are written before the
cluster starts, so the peaks are the fit's.

As in ``tests/test_out_of_core.py``, pausing is off (a streaming fit holds nothing that
spilling could free) and a preload keeps xarray out of the workers: dask.array imports it
(and pandas) whenever it is installed, ~90 MB per worker that dshift does not use.

Usage: ``.venv/bin/python benchmarks/out_of_core.py [--worker-mib 300] [--ratio 3]``.
The workers start by importing this script (multiprocessing's spawn), before the preload
runs, so dask and dshift are imported in its functions only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORKERS, FEATURES, CHUNK_ROWS, BANDWIDTH = 2, 2, 250_000, 2.0
#: The fit of ``tests/test_out_of_core.py``: 4 blobs at least 8.8 apart, 12 sampled seeds.
BLOBS = dict(n_features=FEATURES, centers=4, chunk_rows=CHUNK_ROWS, random_state=9)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def memory(key: str) -> int:
    """A worker's ``VmRSS`` or ``VmHWM`` (peak), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key}")


def write_compressed(path: str, n: int) -> str:
    """Blobs stored with zarr 3's default codec (zstd)."""
    from dshift import datasets

    X, _, _ = datasets.blobs(n, **BLOBS)
    X.to_zarr(path, component="X")
    return f"{path}/X"


def measure(name: str, path: str, limit: int, preload: str) -> dict:
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    import dshift

    with (
        dask.config.set({"distributed.worker.memory.pause": False}),
        LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            memory_limit=limit,
            host="127.0.0.1",
            dashboard_address=None,
            preload=[preload],
        ) as cluster,
        Client(cluster) as client,
    ):
        # load the kernels first (a tiny fit), so the rest figure includes them
        dshift.MeanShift(bandwidth=BANDWIDTH, seeding="sample", n_seeds=4).fit(
            da.from_array(
                np.random.default_rng(0).normal(size=(1000, FEATURES)).astype(np.float32),
                chunks=500,
            )
        )
        rest = max(client.run(memory, "VmRSS").values())
        read = min(timed(lambda: da.from_zarr(path).sum().compute())[1] for _ in range(2))
        model, t_fit = timed(
            lambda: dshift.MeanShift(
                bandwidth=BANDWIDTH, kernel="flat", seeding="sample", n_seeds=12, random_state=0
            ).fit(path)
        )
        peaks = sorted(client.run(memory, "VmHWM").values())
    steps = np.diff([0.0] + [s.elapsed for s in model.history_])
    data = da.from_zarr(path)
    row = {
        "case": name,
        "data_MiB": round(data.nbytes / 2**20),
        "stored_MiB": round(sum(f.stat().st_size for f in Path(path).rglob("*")) / 2**20),
        "read_s": round(read, 2),
        "fit_s": round(t_fit, 1),
        "iterations": len(steps),
        "median_iteration_s": round(float(np.median(steps)), 2),
        "iteration_vs_read": round(float(np.median(steps)) / read, 2),
        "rest_MiB": round(rest / 2**20),
        "peak_MiB": [round(p / 2**20) for p in peaks],
        "peak_vs_limit": round(peaks[-1] / limit, 2),
        "clusters": len(model.cluster_centers_),
    }
    print(row, flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker-mib", type=int, default=300)
    parser.add_argument("--ratio", type=float, default=3.0)
    parser.add_argument("--n-compressed", type=float, default=1e7)
    args = parser.parse_args(argv)
    import dask

    from dshift import datasets

    limit = args.worker_mib * 2**20
    root = tempfile.mkdtemp(prefix="dshift-ooc-")
    try:
        preload = os.path.join(root, "no_xarray.py")
        Path(preload).write_text("import sys\nsys.modules['xarray'] = None\n")
        n = int(args.ratio * WORKERS * limit // (4 * FEATURES)) + 1
        with dask.config.set(scheduler="threads"):
            big = datasets.make_blobs(os.path.join(root, "big.zarr"), n, **BLOBS)
            small = write_compressed(os.path.join(root, "zstd.zarr"), int(args.n_compressed))
        measure(f"{n:.2e} points, {args.ratio:g}x the workers' memory", big, limit, preload)
        measure(f"{int(args.n_compressed):.0e} points, compressed", small, limit, preload)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
