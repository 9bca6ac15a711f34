"""Chunk kernel throughput on one core: (center, point) pairs per second, no dask.

Runs ``dshift._kernels.chunk_stats`` on one block of 3-d blobs (5 centers, std 1) with the
data's bin seeds as centers (bandwidth 2), three ways: rows as stored (random order) through
the tiles, the same rows through the center grid (the path for streamed data), and the
Morton-ordered rows of a persisted copy through the tiles. A second set of centers
("crowded") puts 50 centers within 0.3 of each of 5 seeds, as in the middle iterations of a
fit when the seeds close in on the modes. Every way must give the same counts.

Usage: ``.venv/bin/python benchmarks/kernels.py [--rows 250000] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
from sklearn.cluster import get_bin_seeds
from sklearn.datasets import make_blobs

from dshift import _kernels

BANDWIDTH = 2.0


def best_of(fn, repeat):
    fn()  # compile / warm
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    X, _ = make_blobs(args.rows, n_features=3, centers=5, cluster_std=1, random_state=0)
    seeds = get_bin_seeds(X, BANDWIDTH, 1)
    rng = np.random.default_rng(1)
    crowded = np.repeat(seeds[:5], 50, axis=0) + rng.normal(scale=0.3, size=(250, 3))
    X = X.astype(np.float32)
    ordered = _kernels.spatially_sorted(X)
    print(f"{args.rows} rows x 3, float32, bandwidth {BANDWIDTH}, one core\n")
    print(
        "| kernel | centers | rows as stored, tiles | rows as stored, center grid "
        "| Morton-ordered rows, tiles |"
    )
    print("|---|---|---:|---:|---:|")
    for kernel in ("flat", "epanechnikov", "gaussian"):
        code = _kernels.KERNELS[kernel]
        for label, C in ((f"{len(seeds)} bin seeds", seeds), ("250 crowded", crowded)):
            grid = _kernels.center_grid(C, BANDWIDTH) if kernel != "gaussian" else None
            ways = [(X, None), (X, grid), (ordered, None)]
            cells, counts = [], None
            for i, (rows, g) in enumerate(ways):
                if i == 1 and grid is None:
                    cells.append("—")
                    continue
                run = functools.partial(_kernels.chunk_stats, rows, C, BANDWIDTH, code, grid=g)
                seconds, stats = best_of(run, args.repeat)
                if counts is None:
                    counts = stats.counts
                assert np.array_equal(stats.counts, counts), "the kernel paths disagree"
                rate = len(C) * args.rows / seconds / 1e9
                cells.append(f"{rate:.2f} G/s ({seconds * 1e3:.0f} ms)")
            print(f"| {kernel} | {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
