"""Chunk kernel throughput on one core: (center, point) pairs per second, no dask.

Runs ``dshift.kernels.chunk_stats`` on one block of 3-d blobs (5 centers, std 1) with the
data's bin seeds as centers (bandwidth 2), three ways: rows as stored (random order) through
long tiles and through the center grid (the two paths for streamed data, taken with few and
with many center units), and the Morton-ordered rows of a persisted copy through the tiles.
A second set of centers ("crowded") puts 50 centers within 0.3 of each of 5 seeds, as in
the middle iterations of a fit when the seeds close in on the modes, and a third
("converging") 50 within 0.01, as later on. Every way must give the same counts.

A second table times weighted points (integer weights 1-3) and points with their own
bandwidths (0.8-1.2 x the bandwidth), which run through the pointwise tiles (and, weighted
and compact, the center grid), against the bin seeds and the crowded centers.

Two more tables replay the iterations of real fits (the bin seeds of 1e6 points): the
distinct active centers of every iteration, against the same rows. Flat kernel, with and
without center groups (``plan(..., group_radius=0)`` turns them off); Gaussian kernel, with
and without its center groups and lattice factors. Strategies are chosen through
``dshift.kernels.plan``'s ``strategy`` and ``group_radius`` arguments.

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
from dshift import kernels
from dshift._columns import Columns

BANDWIDTH = 2.0


def stats_of(rows, C, kernel, columns=None, **how):
    """The chunk kernel on ``rows`` for the centers C, planned as ``how`` says: the plan is
    made once per iteration on the client, so only the chunk task's work is timed."""
    plan = kernels.plan(C, BANDWIDTH, kernel, columns or Columns(3), **how)
    return functools.partial(kernels.chunk_stats, rows, plan)


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
    converging = np.repeat(seeds[:5], 50, axis=0) + rng.normal(scale=0.01, size=(250, 3))
    X = X.astype(np.float32)
    ordered = kernels.spatially_sorted(X)
    print(f"{args.rows} rows x 3, float32, bandwidth {BANDWIDTH}, one core\n")
    print(
        "| kernel | centers | rows as stored, long tiles | rows as stored, center grid "
        "| Morton-ordered rows, tiles |"
    )
    print("|---|---|---:|---:|---:|")
    for kernel in ("flat", "epanechnikov", "gaussian"):
        code = kernels.KERNELS[kernel]
        sets = ((f"{len(seeds)} bin seeds", seeds), ("250 crowded", crowded))
        sets += (("250 converging", converging),)
        compact = kernel != "gaussian"
        for label, C in sets:
            ways = [
                (X, dict(rows_sorted=False, strategy="long tiles" if compact else None)),
                (X, dict(strategy="center grid") if compact else None),
                (ordered, dict(rows_sorted=True)),
            ]
            cells, counts = [], None
            for rows, how in ways:
                if how is None:
                    cells.append("—")
                    continue
                run = stats_of(rows, C, code, **how)
                seconds, stats = best_of(run, args.repeat)
                if counts is None:
                    counts = stats.counts
                assert np.array_equal(stats.counts, counts), "the kernel paths disagree"
                rate = len(C) * args.rows / seconds / 1e9
                cells.append(f"{rate:.2f} G/s ({seconds * 1e3:.0f} ms)")
            print(f"| {kernel} | {label} | " + " | ".join(cells) + " |")
    pointwise(X, (f"{len(seeds)} bin seeds", seeds), ("250 crowded", crowded), repeat=args.repeat)
    fit_iterations(X, ordered, args.repeat)
    gaussian_fit_iterations(ordered)


def pointwise(X, *sets, repeat):
    """Weighted and adaptive points: the pointwise tiles, and the center grid (weighted)."""
    rng = np.random.default_rng(2)
    w = rng.integers(1, 4, len(X)).astype(np.float32)
    h = (BANDWIDTH * rng.uniform(0.8, 1.2, len(X))).astype(np.float32)
    stored = np.column_stack([X, w, h])
    ordered = kernels.spatially_sorted(stored, 3)
    print(
        "\n| kernel | centers | weighted, Morton-ordered rows, pointwise "
        "| weighted, rows as stored, center grid | adaptive, Morton-ordered rows, pointwise |"
    )
    print("|---|---|---:|---:|---:|")
    for kernel in ("flat", "epanechnikov", "gaussian"):
        code = kernels.KERNELS[kernel]
        for label, C in sets:
            ways = [
                (ordered[:, :4], Columns(3, weighted=True), "pointwise"),
                (stored[:, :4], Columns(3, weighted=True), "center grid"),
                (ordered[:, [0, 1, 2, 4]], Columns(3, adaptive=True), "pointwise"),
            ]
            cells = []
            for rows, columns, strategy in ways:
                if strategy == "center grid" and kernel == "gaussian":
                    cells.append("—")
                    continue
                how = dict(strategy=strategy, group_radius=0.0)
                seconds, _ = best_of(stats_of(rows, C, code, columns, **how), repeat)
                rate = len(C) * len(X) / seconds / 1e9
                cells.append(f"{rate:.2f} G/s ({seconds * 1e3:.0f} ms)")
            print(f"| {kernel} | {label} | " + " | ".join(cells) + " |")


def center_sets(kernel, min_bin_freq):
    """The distinct active centers of every iteration of one fit on 1e6 blob points."""
    data, _ = make_blobs(1_000_000, n_features=3, centers=5, cluster_std=1, random_state=0)
    seeds = dshift.get_bin_seeds(data, BANDWIDTH, min_bin_freq=min_bin_freq)
    model = dshift.MeanShift(bandwidth=BANDWIDTH, kernel=kernel, seeds=seeds)
    sets, centers, active = [], seeds, np.ones(len(seeds), dtype=bool)
    with dask.config.set(scheduler="threads"):
        for step in model.iter_fit(data):
            sets.append(np.unique(centers[active], axis=0))  # what this iteration computed
            centers, active = step.centers, step.active
    print(
        f"\nOne {kernel} fit's {len(sets)} iterations ({len(seeds)} bin seeds of 1e6 points),"
        " kernel only:"
    )
    return sets


def fit_iterations(X, ordered, repeat):
    """Time the kernel on the center sets of every iteration of one flat fit."""
    sets = center_sets("flat", 10)
    print("\n| center groups | rows as stored, as streamed | Morton-ordered rows, tiles |")
    print("|---|---:|---:|")
    for label, radius in (("on (h/32)", None), ("off", 0.0)):
        total = [0.0, 0.0]
        for C in sets:
            for i, (rows, ordered_rows) in enumerate(((X, False), (ordered, True))):
                how = dict(rows_sorted=ordered_rows, group_radius=radius)
                run = stats_of(rows, C, kernels.FLAT, **how)
                total[i] += best_of(run, repeat)[0]
        print(f"| {label} | {total[0] * 1e3:.0f} ms | {total[1] * 1e3:.0f} ms |")


def gaussian_fit_iterations(ordered):
    """The same for a Gaussian fit, Morton-ordered rows (as persisted), one run each."""
    sets = center_sets("gaussian", 1)
    print("\n| Gaussian | Morton-ordered rows, tiles |\n|---|---:|")
    for label, how in (
        ("center groups (h/40) and lattice factors", {}),
        ("lattice factors only", dict(group_radius=0.0)),
        ("neither", dict(group_radius=0.0, strategy="short tiles")),
    ):
        total = sum(best_of(stats_of(ordered, C, kernels.GAUSSIAN, **how), 1)[0] for C in sets)
        print(f"| {label} | {total:.2f} s |")


if __name__ == "__main__":
    main()
