"""Soak: many consecutive fits on one cluster, checking that nothing accumulates.

Run from the repository root after `make install` (needs the test extras, for psutil):

    .venv/bin/python benchmarks/soak.py            # 20 fits of 5e5 points, a few minutes
    .venv/bin/python benchmarks/soak.py --fits 60 --json benchmarks/results/soak.json

One LocalCluster (127.0.0.1, processes, 2 workers x 1 thread) and one client run
``model = dshift.MeanShift(bandwidth=2, kernel="flat", persist=...).fit(X)`` again and
again, the model reassigned as a user would. The input cycles through every placement
path: a numpy array (scattered to the workers), a dask array generated chunk by chunk on
the workers, and the path of a Zarr array written to a temporary directory, each with
persist=True (a Morton-ordered copy kept in the workers' memory) and persist=False (numpy:
the scattered chunks; dask/Zarr: streamed from the source every iteration). The three
inputs hold the same points. Labels are computed after each fit (lazy for dask/Zarr).

After each fit it waits (at most ``--settle`` s) for the releases to reach the scheduler
and the workers, first with Python's cyclic garbage collector off (is everything released
by reference counting alone?), then again after ``gc.collect()``, and records every
worker's RSS, the workers' managed memory (bytes of the keys they hold), the tasks the
workers and the scheduler still hold, the futures the client holds, and whether the fit
gave exactly the result of the first fit of the same input and persist setting. It prints
a table and a verdict: RSS growth per worker from fit 5 to the last fit, tasks and futures
left. Exit status 1 if anything was left or grew beyond the bound.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cloudpickle
import dask
import numpy as np
import psutil
from distributed import Client, LocalCluster

import dshift
from dshift import datasets

MB = 2**20
#: Fits cycle through these (input kind, persist) pairs: every placement path in turn.
PLAN = [
    ("numpy", True),
    ("dask", True),
    ("zarr", True),
    ("numpy", False),
    ("dask", False),
    ("zarr", False),
]
#: RSS growth is measured from this fit (1-based) on: the earlier fits include warm-up
#: (numba loading its compiled kernels, first imports, dask's bounded logs filling).
BASELINE_FIT = 5


def make_inputs(
    workdir: str | os.PathLike, n_samples: int, chunk_rows: int, cluster_std: float = 1.0
) -> dict:
    """The same points (5 blobs in 3-d, float64) as a numpy array, a lazy dask array
    generated chunk by chunk on the workers, and a Zarr array written under ``workdir``."""
    params = dict(
        n_features=3,
        centers=5,
        cluster_std=cluster_std,
        chunk_rows=chunk_rows,
        random_state=0,
        dtype="float64",
    )
    X_dask, _, _ = datasets.blobs(n_samples, **params)
    path = datasets.make_blobs(Path(workdir) / "soak.zarr", n_samples, overwrite=True, **params)
    return {
        "numpy": np.asarray(X_dask.compute()),
        "dask": X_dask,
        "zarr": path,  # a local path, opened by dshift at every fit
    }


def _probe_worker(dask_worker) -> dict:
    """What one worker holds (run on each worker by ``Client.run``)."""
    import psutil

    state = dask_worker.state
    return {
        "rss": psutil.Process().memory_info().rss,
        "managed": int(state.nbytes),
        "keys": len(dask_worker.data),
        "tasks": len(state.tasks),
    }


def _probe_scheduler(dask_scheduler) -> dict:
    return {"tasks": len(dask_scheduler.tasks)}


# The workers cannot import this script (nor the test that loads it): ship its functions
# by value. (cloudpickle does so by itself for __main__ and for unregistered modules.)
if __name__ in sys.modules and __name__ != "__main__":
    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def poll(client: Client, settle: float) -> dict:
    """What the workers, the scheduler and the client hold, once nothing is held any more
    or after ``settle`` seconds. Releases travel asynchronously (the client's event loop,
    then scheduler, then workers), so the counts are read until they reach 0."""
    start = time.perf_counter()
    while True:
        workers = client.run(_probe_worker)
        scheduler = client.run_on_scheduler(_probe_scheduler)
        futures = len(client.futures)
        held = scheduler["tasks"] + futures + sum(w["tasks"] for w in workers.values())
        waited = time.perf_counter() - start
        if held == 0 or waited >= settle:
            return {
                "workers": [workers[a] for a in sorted(workers)],
                "scheduler_tasks": scheduler["tasks"],
                "client_futures": futures,
                "held": held,
                "waited": waited,
            }
        time.sleep(0.05)


def measure(client: Client, settle: float) -> dict:
    """Collect garbage, wait (at most ``settle`` s) for the releases to land, measure."""
    gc.collect()
    seen = poll(client, settle)
    workers = seen["workers"]
    return {
        "rss_mb": [w["rss"] / MB for w in workers],
        "managed_bytes": sum(w["managed"] for w in workers),
        "worker_keys": sum(w["keys"] for w in workers),
        "worker_tasks": sum(w["tasks"] for w in workers),
        "scheduler_tasks": seen["scheduler_tasks"],
        "client_futures": seen["client_futures"],
        "client_rss_mb": psutil.Process().memory_info().rss / MB,
        "settle_s": seen["waited"],
    }


def fingerprint(model) -> tuple[str, np.ndarray]:
    """A digest of the result (centers, labels, n_iter) and the centers themselves."""
    labels = model.labels_
    if not isinstance(labels, np.ndarray):
        labels = labels.compute()
    digest = hashlib.sha256()
    for part in (model.cluster_centers_, np.asarray(labels), np.asarray(model.n_iter_)):
        digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()[:12], model.cluster_centers_


def run_soak(
    client: Client,
    inputs: dict,
    fits: int,
    *,
    settle: float = 10.0,
    on_fit: Callable[[dict], None] | None = None,
) -> list[dict]:
    """``fits`` consecutive fits cycling through :data:`PLAN`; one record per fit."""
    rows: list[dict] = []
    first: dict[tuple[str, bool], str] = {}
    reference_centers = None
    model = None
    for i in range(fits):
        kind, persist = PLAN[i % len(PLAN)]
        # The cyclic garbage collector is off during the fit and the first wait: what is
        # released then is released by reference counting alone, as soon as the fit ends
        # (not whenever a collection happens to run).
        gc.disable()
        try:
            start = time.perf_counter()
            model = dshift.MeanShift(bandwidth=2, kernel="flat", persist=persist).fit(inputs[kind])
            digest, centers = fingerprint(model)
            seconds = time.perf_counter() - start
            freed_without_gc = poll(client, settle)["held"] == 0
        finally:
            gc.enable()
        if reference_centers is None:
            reference_centers = centers
        same = first.setdefault((kind, persist), digest) == digest
        across = (
            float(np.abs(centers - reference_centers).max())
            if centers.shape == reference_centers.shape
            else float("inf")
        )
        row = {
            "fit": i + 1,
            "input": kind,
            "persist": persist,
            "seconds": seconds,
            "n_iter": int(model.n_iter_),
            "clusters": len(centers),
            "digest": digest,
            "same_as_first": same,
            "center_diff_vs_fit1": across,
            "freed_without_gc": freed_without_gc,
            **measure(client, settle),
        }
        rows.append(row)
        if on_fit is not None:
            on_fit(row)
    return rows


def _holds(row: dict) -> bool:
    """Whether anything was still held after the fit (and gc.collect())."""
    return bool(
        row["scheduler_tasks"]
        or row["worker_tasks"]
        or row["client_futures"]
        or row["managed_bytes"]
    )


def summarize(rows: list[dict], max_growth_mb: float) -> dict:
    """Figures and verdict: RSS growth from fit :data:`BASELINE_FIT` on, what is left."""
    last = rows[-1]
    base = rows[min(BASELINE_FIT, len(rows)) - 1]
    growth = [b - a for a, b in zip(base["rss_mb"], last["rss_mb"])]
    tail = rows[min(BASELINE_FIT, len(rows)) - 1 :]
    slopes = []
    for w in range(len(last["rss_mb"])):
        y = [r["rss_mb"][w] for r in tail]
        slopes.append(float(np.polyfit(range(len(y)), y, 1)[0]) if len(y) > 1 else 0.0)
    summary = {
        "fits": len(rows),
        "baseline_fit": base["fit"],
        "rss_mb_first": rows[0]["rss_mb"],
        "rss_mb_baseline": base["rss_mb"],
        "rss_mb_last": last["rss_mb"],
        "rss_growth_mb": growth,
        "rss_slope_mb_per_fit": slopes,
        "max_rss_mb": [max(r["rss_mb"][w] for r in rows) for w in range(len(growth))],
        "client_rss_growth_mb": last["client_rss_mb"] - base["client_rss_mb"],
        "scheduler_tasks_left": last["scheduler_tasks"],
        "worker_tasks_left": last["worker_tasks"],
        "client_futures_left": last["client_futures"],
        "managed_bytes_left": last["managed_bytes"],
        "max_scheduler_tasks_after_a_fit": max(r["scheduler_tasks"] for r in rows),
        "max_client_futures_after_a_fit": max(r["client_futures"] for r in rows),
        "max_managed_bytes_after_a_fit": max(r["managed_bytes"] for r in rows),
        "all_freed_without_gc": all(r["freed_without_gc"] for r in rows),
        "max_settle_s": max(r["settle_s"] for r in rows),
        "all_identical": all(r["same_as_first"] for r in rows),
        "max_center_diff_across_inputs": max(r["center_diff_vs_fit1"] for r in rows),
        "max_growth_mb": max_growth_mb,
    }
    problems = []
    if max(growth) > max_growth_mb:
        problems.append(f"worker RSS grew {max(growth):.1f} MB (bound {max_growth_mb:.1f} MB)")
    for key in ("scheduler_tasks_left", "worker_tasks_left", "client_futures_left"):
        if summary[key]:
            problems.append(f"{summary[key]} {key.replace('_', ' ')}")
    if summary["managed_bytes_left"]:
        problems.append(f"{summary['managed_bytes_left']} managed bytes left on the workers")
    held = [r["fit"] for r in rows if _holds(r)]
    if held:
        problems.append(f"tasks, futures or data still held after fits {held}")
    late = [r["fit"] for r in rows if not r["freed_without_gc"] and not _holds(r)]
    if late:
        problems.append(f"released only by gc.collect() (reference cycles) after fits {late}")
    if not summary["all_identical"]:
        problems.append("repeated fits of the same input differ")
    summary["problems"] = problems
    summary["verdict"] = (
        "PASS: nothing accumulates" if not problems else "FAIL: " + "; ".join(problems)
    )
    return summary


HEADER = (
    "| fit | input | persist | s (fit + labels) | iters | clusters | RSS per worker (MB) | "
    "managed (B) | worker tasks | scheduler tasks | client futures | freed without gc | "
    "settle (s) | same result |\n"
    "|---:|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---|"
)


def table_row(r: dict) -> str:
    rss = ", ".join(f"{v:.1f}" for v in r["rss_mb"])
    return (
        f"| {r['fit']} | {r['input']} | {r['persist']} | {r['seconds']:.2f} | {r['n_iter']} | "
        f"{r['clusters']} | {rss} | {r['managed_bytes']} | {r['worker_tasks']} | "
        f"{r['scheduler_tasks']} | {r['client_futures']} | "
        f"{'yes' if r['freed_without_gc'] else 'no'} | "
        f"{r['settle_s']:.2f} | "
        f"{'yes' if r['same_as_first'] else 'NO'} ({r['digest']}) |"
    )


def report(summary: dict) -> str:
    """The summary in a few lines."""

    def mb(values):
        return ", ".join(f"{v:.1f}" for v in values)

    base, last = summary["baseline_fit"], summary["fits"]
    return "\n".join(
        [
            f"worker RSS (MB) at fit 1: {mb(summary['rss_mb_first'])}; fit {base}: "
            f"{mb(summary['rss_mb_baseline'])}; fit {last}: {mb(summary['rss_mb_last'])}",
            f"growth fit {base} -> fit {last} (MB): {mb(summary['rss_growth_mb'])} (bound "
            f"{summary['max_growth_mb']:.1f}); trend (MB/fit): "
            f"{', '.join(f'{v:+.2f}' for v in summary['rss_slope_mb_per_fit'])}; "
            f"client+scheduler process: {summary['client_rss_growth_mb']:+.1f} MB",
            f"left after the last fit: {summary['scheduler_tasks_left']} scheduler tasks, "
            f"{summary['worker_tasks_left']} worker tasks, "
            f"{summary['client_futures_left']} client futures, "
            f"{summary['managed_bytes_left']} managed bytes; after any fit at most "
            f"{summary['max_scheduler_tasks_after_a_fit']} scheduler tasks, "
            f"{summary['max_client_futures_after_a_fit']} futures, "
            f"{summary['max_managed_bytes_after_a_fit']} managed bytes",
            f"released by reference counting alone (no gc.collect()) after every fit: "
            f"{'yes' if summary['all_freed_without_gc'] else 'NO'}; longest wait for the "
            f"releases to reach the workers: {summary['max_settle_s']:.2f} s",
            f"results identical across repeated fits of each input: "
            f"{'yes' if summary['all_identical'] else 'NO'} (centers across input kinds within "
            f"{summary['max_center_diff_across_inputs']:.1e})",
            summary["verdict"],
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=20, help="consecutive fits (default 20)")
    parser.add_argument(
        "--n-samples", type=int, default=500_000, help="points (3-d, float64; default 5e5)"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (1 thread)")
    parser.add_argument("--memory-limit", default="4GiB", help="per worker (default 4GiB)")
    parser.add_argument(
        "--chunk-rows", type=int, default=None, help="rows per dask/Zarr chunk (default N/8)"
    )
    parser.add_argument(
        "--settle", type=float, default=10.0, help="max seconds to wait for releases per fit"
    )
    parser.add_argument(
        "--max-growth-mb",
        type=float,
        default=None,
        help="RSS growth per worker from fit 5 on that fails the verdict "
        "(default: half the input's size, at least 16 MB: dask itself adds ~15 kB per "
        "computation, ~0.4 MB per fit; a leaked copy of the scattered input would add "
        "input/workers to each worker at every numpy fit)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the records here")
    args = parser.parse_args(argv)
    chunk_rows = args.chunk_rows or max(1, -(-args.n_samples // 8))
    input_mb = args.n_samples * 3 * 8 / MB
    max_growth = args.max_growth_mb
    if max_growth is None:
        max_growth = max(16.0, input_mb / 2)
    workdir = tempfile.mkdtemp(prefix="dshift-soak-")
    print(
        f"soak: {args.fits} fits, {args.n_samples:,} points x 3 (float64, {input_mb:.0f} MB), "
        f"{args.workers} workers x 1 thread, memory limit {args.memory_limit}",
        flush=True,
    )
    try:
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                memory_limit=args.memory_limit,
            ) as cluster,
            Client(cluster) as client,
        ):
            inputs = make_inputs(workdir, args.n_samples, chunk_rows)
            print(HEADER, flush=True)
            start = time.perf_counter()
            rows = run_soak(
                client,
                inputs,
                args.fits,
                settle=args.settle,
                on_fit=lambda r: print(table_row(r), flush=True),
            )
            total = time.perf_counter() - start
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary = summarize(rows, max_growth)
    print(f"\n{args.fits} fits in {total:.0f} s")
    print(report(summary))
    if args.json:
        meta = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": (
                f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
            ),
            "dshift": dshift.__version__,
            "dask": dask.__version__,
            "n_samples": args.n_samples,
            "workers": args.workers,
            "memory_limit": args.memory_limit,
            "chunk_rows": chunk_rows,
            "seconds": total,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps({"meta": meta, "summary": summary, "fits": rows}, indent=2)
        )
    return 0 if not summary["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
