"""Chunk kernel throughput on one core: (center, point) pairs per second, no dask.

Runs ``dshift._kernels.chunk_stats`` on one block of 3-d blobs (5 centers, std 1) with the
data's bin seeds as centers (bandwidth 2), three ways: rows as stored (random order) through
the tiles, the same rows through the center grid (the path for streamed data), and the
Morton-ordered rows of a persisted copy through the tiles. A second set of centers
("crowded") puts 50 centers within 0.3 of each of 5 seeds, as in the middle iterations of a
fit when the seeds close in on the modes. Every way must give the same counts.

A second table replays the iterations of one real fit (flat kernel, the bin seeds of 1e6
points with at least 10 per bin): the distinct active centers of every iteration, against
the same rows, with and without center groups (``GROUP_RADIUS = 0`` turns them off).

Usage: ``.venv/bin/python benchmarks/kernels.py [--rows 250000] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import functools
import time

import dask
import numpy as np
from sklearn.cluster import get_bin_seeds
from sklearn.datasets import make_blobs

import dshift
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
    fit_iterations(X, ordered, args.repeat)


def fit_iterations(X, ordered, repeat):
    """Time the kernel on the center sets of every iteration of one flat fit."""
    data, _ = make_blobs(1_000_000, n_features=3, centers=5, cluster_std=1, random_state=0)
    seeds = dshift.get_bin_seeds(data, BANDWIDTH, min_bin_freq=10)
    model = dshift.MeanShift(bandwidth=BANDWIDTH, kernel="flat", seeds=seeds)
    sets, centers, active = [], seeds, np.ones(len(seeds), dtype=bool)
    with dask.config.set(scheduler="sync"):
        for step in model.iter_fit(data):
            sets.append(np.unique(centers[active], axis=0))  # what this iteration computed
            centers, active = step.centers, step.active
    print(
        f"\nOne fit's {len(sets)} iterations ({len(seeds)} bin seeds of 1e6 points), kernel only:"
    )
    print("\n| center groups | rows as stored, center grid | Morton-ordered rows, tiles |")
    print("|---|---:|---:|")
    radius = _kernels.GROUP_RADIUS
    for label, fraction in (("on (h/32)", radius), ("off", 0.0)):
        _kernels.GROUP_RADIUS = fraction
        total = [0.0, 0.0]
        for C in sets:
            grid = _kernels.center_grid(C, BANDWIDTH) if len(C) >= 16 else None
            for i, (rows, g) in enumerate(((X, grid), (ordered, None))):
                run = functools.partial(
                    _kernels.chunk_stats, rows, C, BANDWIDTH, _kernels.FLAT, grid=g
                )
                total[i] += best_of(run, repeat)[0]
        print(f"| {label} | {total[0] * 1e3:.0f} ms | {total[1] * 1e3:.0f} ms |")
    _kernels.GROUP_RADIUS = radius


if __name__ == "__main__":
    main()
