"""A billion points out of core: 1e9 x 3 float32 blobs in a local Zarr store (12 GB), fitted
on 2 workers of at most 1.5 GB each, flat kernel, bin seeding, streamed from Zarr every
iteration (the data are 4x the workers' memory).

Prints the write time, the fit's time, iterations and median iteration, a bare
``da.from_zarr(path).sum()`` pass on the same cluster (the read floor), and every worker's
peak RSS (sampled each second); appends the fit to ``results/latest.json``'s scaling rows
and redraws ``time_vs_n.png``.

Usage: ``.venv/bin/python benchmarks/billion.py [--n 1e9] [--store PATH] [--keep]``. The
store is written under ``--store`` (default: a new temporary directory; 12 GB
free needed) and removed afterwards unless ``--keep``; an existing store there is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

WORKERS, MEMORY = 2, "1.5GB"


def peak_rss(client, stop, peaks):
    """Every second until ``stop``: each worker's RSS, keeping the largest seen."""

    def rss():
        import psutil

        return psutil.Process().memory_info().rss

    while not stop.wait(1.0):
        try:
            for worker, value in client.run(rss).items():
                peaks[worker] = max(peaks.get(worker, 0), value)
        except Exception:  # the cluster is closing
            return


def main(argv=None) -> int:
    # imported here, not at the top: the workers start by importing this script
    # (multiprocessing's spawn), and bench.py imports scikit-learn and mlpack
    import dask.array as da
    from distributed import Client, LocalCluster

    import dshift
    from dshift import datasets

    sys.path.insert(0, str(Path(__file__).parent))
    from bench import BANDWIDTH, HERE, dshift_figures, plot, timed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e9)
    parser.add_argument("--store", default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    n = int(args.n)
    root = args.store or tempfile.mkdtemp(prefix="dshift-billion-")
    group = os.path.join(root, f"blobs-{n:.0e}.zarr")
    with (
        LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit=MEMORY,
        ) as cluster,
        Client(cluster) as client,
    ):
        if os.path.exists(group):
            path, t_write = f"{group}/X", 0.0
        else:
            path, t_write = timed(
                lambda: datasets.make_blobs(group, n, n_features=3, centers=5, chunk_rows=2_000_000)
            )
        print(f"store {path}: written in {t_write:.0f} s", flush=True)
        _, t_read = timed(lambda: da.from_zarr(path).sum().compute())
        print(f"bare read pass: {t_read:.1f} s", flush=True)
        peaks, stop = {}, threading.Event()
        watcher = threading.Thread(target=peak_rss, args=(client, stop, peaks), daemon=True)
        watcher.start()
        model, t_fit = timed(
            lambda: dshift.MeanShift(
                bandwidth=BANDWIDTH, kernel="flat", seeding="bin", min_bin_freq=n // 100_000
            ).fit(path)
        )
        stop.set()
        watcher.join()
    steps = np.diff([0.0] + [s.elapsed for s in model.history_])
    row = {"n": n, **dshift_figures(model, n, t_fit)}
    print(
        f"fit: {t_fit:.0f} s, {row['iterations']} iterations, median iteration "
        f"{np.median(steps):.2f} s ({np.median(steps) / t_read:.2f}x the read pass), "
        f"{row['clusters']} clusters"
    )
    print("peak worker RSS: " + ", ".join(f"{v / 2**20:.0f} MiB" for v in peaks.values()))
    latest = HERE / "results" / "latest.json"
    if latest.exists():
        results = json.loads(latest.read_text())
        results["scaling"] = [r for r in results["scaling"] if r["n"] != n] + [row]
        results["scaling"].sort(key=lambda r: r["n"])
        latest.write_text(json.dumps(results, indent=2))
        plot(results["cases"], results["scaling"], HERE / "time_vs_n.png")
    if not args.keep:
        shutil.rmtree(root if args.store is None else group, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
