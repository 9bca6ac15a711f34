"""Peers: dshift's flat kernel against scikit-learn's MeanShift and mlpack's mean_shift.

The target measured here: in memory, flat kernel, 1e4 to 1e7 points, float32 and float64,
with and without a distributed client, dshift is at least 10x scikit-learn and 5x mlpack
at every size from 1e5 up and not slower than mlpack at 1e4; on a 2-worker LocalCluster an
iteration's scheduling takes at most 10 ms; float64 input takes at most 1.3x float32.

Needs the test and bench extras (scikit-learn, mlpack; without mlpack its columns show a
dash). Run from the repository root::

    pip install -e ".[test,bench]"
    .venv/bin/python benchmarks/peers.py                      # 1e4 ... 1e7, ~2-6 minutes
    .venv/bin/python benchmarks/peers.py --sizes 1e4 1e5      # ~1.5 minutes
    .venv/bin/python benchmarks/peers.py --readme             # also fill benchmarks/README.md

Data: ``sklearn.datasets.make_blobs`` (3-d, 5 centers, std 1, ``random_state=0``), made
once per size; the float32 rows fit ``X.astype(np.float32)``. Bandwidth 2, bin seeding.

* scikit-learn: ``MeanShift(bandwidth=2, bin_seeding=True, n_jobs=2)``, warm (one fit on
  2,000 points right before). It computes in float64 whatever the input, so it is timed
  once per size on float64 and its time serves the float32 rows too. Up to
  ``--max-sklearn-n`` points (default 1e6: at 1e7 it takes many minutes).
* mlpack: ``mlpack.mean_shift(input_=X, radius=2)`` on float64 (its binding converts to
  float64 anyway), one thread, warm, timed once per size. Up to ``--max-mlpack-n`` points,
  default 1e6: it took 1.2 s at 1e5 and 39 s at 1e6 on 2 shared cores (32x for 10x the
  points, as its bin seeds grow from 236 to 326), and with 397 seeds at 1e7 it would take
  an estimated 8 to 18 minutes there; ``--max-mlpack-n 1e7`` to measure it anyway.
* dshift: ``MeanShift(bandwidth=2, kernel="flat", seeding="bin", progress=False).fit(X)``
  with numpy input in two modes: ``threads``, no distributed client (dask's threaded
  scheduler, checked by ``distributed.default_client`` raising), and ``LocalCluster``,
  2 workers x 1 thread (processes). Each mode is warm (a small fit in both dtypes first).
  At every size, each dtype's fits in a row, float64 first: one, then at least 3 more
  (up to 10 while they add up to under 2 s), and the best of these is reported (see
  ``time_dshift``: a fit reuses the memory the fit before freed, so each dtype is timed
  after one of its own). The first fits' float64 / float32 ratio is
  printed beside the best fits'. ``--pause 4`` sleeps 4 s before every fit, so that each
  fit touches memory the machine had handed back. "ms/iteration" is the median of the
  per-iteration times in ``history_``; at 1e4, where the kernels take well under 1 ms, it
  is the scheduling cost of an iteration.

Agreement is checked before a time is reported. float64: dshift's centers equal
scikit-learn's within 1e-3 * bandwidth, with identical labels and ``n_iter_``; float32:
the same number of clusters and every center within 1e-2 * bandwidth of one of
scikit-learn's. Above ``--max-sklearn-n`` dshift's float64 fit without a client stands in
for scikit-learn. A scikit-learn disagreement fails the run (exit status 1). mlpack seeds
and merges by its own rules, so its centers are compared as sets (same number of clusters,
set distance at most 0.1 * bandwidth) and a difference is reported, not a failure.

Results go to benchmarks/results/peers.json and, with ``--readme``, between the PEERS
markers of benchmarks/README.md. Time on 2 shared cores: ``--sizes 1e4 1e5`` about 1.5
minutes; the default run an estimated 3 to 6 minutes, most of it scikit-learn (45 s to
150 s at 1e6, depending on the machine's load) and mlpack (~40 s at 1e6).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from functools import partial
from pathlib import Path

import dask
import distributed
import numpy as np
from distributed import Client, LocalCluster
from sklearn.cluster import MeanShift as SkMeanShift

import dshift

sys.path.insert(0, str(Path(__file__).parent))
# mlpack is None without the bench extra
from bench import BANDWIDTH, NONE, blobs, mlpack, same_centers, set_distance, timed, verdict

HERE = Path(__file__).parent

WORKERS, THREADS = 2, 1
MODES = ("threads", "LocalCluster")
DTYPES = ("float64", "float32")


def parse_size(text):
    return int(float(text))


def no_client():
    try:
        distributed.default_client()
    except ValueError:
        return True
    return False


def ds_model():
    return dshift.MeanShift(bandwidth=BANDWIDTH, kernel="flat", seeding="bin", progress=False)


def time_sklearn(X):
    params = dict(bandwidth=BANDWIDTH, bin_seeding=True, n_jobs=WORKERS * THREADS)
    SkMeanShift(**params).fit(X[:2000])  # warm: joblib's workers start on first use
    ref, seconds = timed(lambda: SkMeanShift(**params).fit(X))
    return ref, seconds


def time_mlpack(X):
    """mlpack's centers and time (float64, radius = bandwidth; see bench.mlpack_peer)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    mlpack.mean_shift(input_=X[:2000], radius=BANDWIDTH)  # warm: load the library
    out, seconds = timed(lambda: mlpack.mean_shift(input_=X, radius=BANDWIDTH))
    return np.asarray(out["centroid"]).reshape(-1, X.shape[1]), seconds


def warm_dshift():
    """A small fit in each dtype on the workers (if there is a client), then here (where
    small in-memory fits run even with a client): each loads the kernels it runs."""
    for where in ({"dshift.fit-here-bytes": 0}, {}):
        with dask.config.set(where):
            for dtype in DTYPES:
                ds_model().fit(blobs(20_000).astype(dtype))


#: Timed fits of each dtype at every size: at least FITS, more (up to MAX_FITS) while they
#: add up to less than MIN_SECONDS, so that fits of a fraction of a second are repeated
#: often enough for one slow moment of a shared machine not to decide the best.
FITS, MAX_FITS, MIN_SECONDS = 3, 10, 2.0


def time_dshift(X, pause=0.0):
    """For each dtype, its fits in a row, float64's and then float32's: {dtype: (model,
    seconds, first)}, with ``first`` the time of the first fit and ``seconds`` the best of
    the timed fits after it (see ``FITS``).

    In a row, not taking turns: a fit's large buffers (the workers' copies of the points,
    the labels) reuse memory that the fit before freed, if it freed it recently. On this
    virtual machine, memory freed more than about 2 s earlier goes back to the host, and
    touching it again costs 2-4 ms per MB; a float64 fit at 1e7 touches about 0.5 GB.
    Taking turns, every float32 fit followed a float64 fit, which had freed twice the
    memory it needed, and every float64 fit a float32 one, which had freed half. The first
    fit of a run follows the other dtype's (or, for float64, is the first of its size on
    these workers), so it is reported apart. ``pause``: seconds to sleep before every fit,
    so that each starts with its memory handed back, as a fit after a quiet spell does.
    """
    results = {}
    for dtype in DTYPES:
        Xd = X.astype(dtype, copy=False)
        first = best = None
        timed_fits = timed_seconds = 0
        while timed_fits < MAX_FITS and (timed_fits < FITS or timed_seconds < MIN_SECONDS):
            time.sleep(pause)
            model, seconds = timed(partial(ds_model().fit, Xd))
            if first is None:
                first = seconds
                continue
            timed_fits, timed_seconds = timed_fits + 1, timed_seconds + seconds
            if best is None or seconds < best[1]:
                best = (model, seconds)
            del model  # only the best fit is kept, as a user keeps one
        results[dtype] = (*best, first)
    return results


def dshift_row(n, dtype, mode, model, seconds):
    steps = np.diff([0.0] + [s.elapsed for s in model.history_])
    return {
        "n": n,
        "dtype": dtype,
        "mode": mode,
        "seconds": seconds,
        "iterations": int(model.n_iter_),
        "steps": len(model.history_),
        "s_per_iter": float(np.median(steps)),
        "clusters": len(model.cluster_centers_),
    }


def compare_sklearn(row, model, ref, ref_name):
    """Agreement with scikit-learn's fit (or the dshift float64 stand-in), into row."""
    if row["dtype"] == "float64":
        ok, err = same_centers(model.cluster_centers_, ref.cluster_centers_, 1e-3 * BANDWIDTH)
        labels = bool(np.array_equal(model.labels_, ref.labels_))
        iters = int(model.n_iter_) == int(ref.n_iter_)
        agree = bool(ok and labels and iters)
        checks = (("centers", ok), ("labels", labels), ("n_iter_", iters))
        why = [name for name, good in checks if not good]
    else:
        count = len(model.cluster_centers_) == len(ref.cluster_centers_)
        err = set_distance(model.cluster_centers_, ref.cluster_centers_)
        agree = bool(count and err <= 1e-2 * BANDWIDTH)
        why = [] if agree else [f"{len(model.cluster_centers_)} vs {len(ref.cluster_centers_)}"]
    row.update(reference=ref_name, agree=agree, center_error=err, disagree_in=why)


def compare_mlpack(row, model, centers):
    dist = set_distance(centers, model.cluster_centers_) if len(centers) else float("inf")
    same_count = len(centers) == len(model.cluster_centers_)
    row.update(
        mlpack_clusters=len(centers),
        mlpack_set_distance=dist,
        mlpack_agree=bool(same_count and dist <= 0.1 * BANDWIDTH),
    )


def measure(sizes, max_sklearn_n, max_mlpack_n, pause=0.0):
    data = {n: blobs(n) for n in sizes}
    peers, results = {}, {}
    assert no_client(), "a distributed client is active: the threads mode would use it"
    for n in sizes:
        X = data[n]
        peer = peers[n] = {}
        if n <= max_sklearn_n:
            peer["sklearn"], peer["sklearn_seconds"] = time_sklearn(X)
            print(f"  n={n:.0e} scikit-learn {peer['sklearn_seconds']:.2f}s", flush=True)
        if mlpack is not None and n <= max_mlpack_n:
            peer["mlpack"], peer["mlpack_seconds"] = time_mlpack(X)
            print(f"  n={n:.0e} mlpack {peer['mlpack_seconds']:.2f}s", flush=True)

    def run_mode(mode):
        warm_dshift()
        for n in sizes:
            for dtype, result in time_dshift(data[n], pause).items():
                results[n, dtype, mode] = result
                print(f"  n={n:.0e} {dtype} {mode}: {result[1]:.2f}s", flush=True)

    run_mode("threads")
    with (
        LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=THREADS,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit="4GiB",
        ) as cluster,
        Client(cluster),
    ):
        run_mode("LocalCluster")
    assert no_client()

    rows = []
    for n in sizes:
        peer = peers[n]
        for dtype in DTYPES:
            for mode in MODES:
                model, seconds, first = results[n, dtype, mode]
                row = dshift_row(n, dtype, mode, model, seconds)
                row["first_seconds"] = first
                if "sklearn" in peer:
                    compare_sklearn(row, model, peer["sklearn"], "scikit-learn")
                    row["sklearn_seconds"] = peer["sklearn_seconds"]
                    row["sklearn_speedup"] = peer["sklearn_seconds"] / seconds
                else:
                    stand_in = results[n, "float64", "threads"][0]
                    compare_sklearn(row, model, stand_in, "dshift float64 threads")
                if "mlpack" in peer:
                    compare_mlpack(row, model, peer["mlpack"])
                    row["mlpack_seconds"] = peer["mlpack_seconds"]
                    row["mlpack_speedup"] = peer["mlpack_seconds"] / seconds
                rows.append(row)
    return rows


def dtype_ratios(rows):
    """float64 over float32, of the best fits (the target) and of the first fits."""
    by = {(r["n"], r["dtype"], r["mode"]): r for r in rows}
    return [
        {
            "n": n,
            "mode": mode,
            "f64_over_f32": r["seconds"] / by[n, "float32", mode]["seconds"],
            "first_f64_over_f32": r["first_seconds"] / by[n, "float32", mode]["first_seconds"],
        }
        for (n, dtype, mode), r in by.items()
        if dtype == "float64"
    ]


def ratio_cell(s):
    if s is None:
        return NONE
    return f"**{s:.1f}x**" if s >= 1 else f"{s:.2f}x (slower)"


def agree_cell(r):
    ref = "sklearn" if r["reference"] == "scikit-learn" else "vs dshift f64"
    text = f"{ref} {'yes' if r['agree'] else 'NO'} ({r['center_error']:.1e})"
    if r["disagree_in"]:
        text += f" [{', '.join(r['disagree_in'])}]"
    if "mlpack_agree" in r:
        text += (
            f"; mlpack {'yes' if r['mlpack_agree'] else 'no'} ({r['mlpack_clusters']} vs "
            f"{r['clusters']} clusters, {r['mlpack_set_distance']:.1e})"
        )
    return text


def table(rows):
    head = (
        "| N | dtype | mode | dshift s | iterations | ms/iteration | scikit-learn s | x sklearn |"
        " mlpack s | x mlpack | agree (max center error) |\n"
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for r in rows:
        sk = f"{r['sklearn_seconds']:.2f}" if "sklearn_seconds" in r else NONE
        ml = f"{r['mlpack_seconds']:.2f}" if "mlpack_seconds" in r else NONE
        lines.append(
            f"| {r['n']:.0e} | {r['dtype']} | {r['mode']} | {r['seconds']:.3f} | "
            f"{r['iterations']} | {1e3 * r['s_per_iter']:.1f} | {sk} | "
            f"{ratio_cell(r.get('sklearn_speedup'))} | {ml} | "
            f"{ratio_cell(r.get('mlpack_speedup'))} | {agree_cell(r)} |"
        )
    return head + "\n".join(lines) + "\n"


def ratio_line(ratios):
    return "float64 / float32 time, best fits (first fits): " + "; ".join(
        f"{r['n']:.0e} {r['mode']} {r['f64_over_f32']:.2f} ({r['first_f64_over_f32']:.2f})"
        for r in ratios
    )


def targets(rows, ratios):
    """The target's parts as lines 'met'/'MISSED' (those measurable in this run)."""
    out = []
    for r in rows:
        where = f"{r['n']:.0e} {r['dtype']} {r['mode']}"
        if r["n"] >= 100_000 and "sklearn_speedup" in r and r["sklearn_speedup"] < 10:
            out.append(f"MISSED {where}: {r['sklearn_speedup']:.1f}x scikit-learn (>= 10x)")
        need = 5 if r["n"] >= 100_000 else 1
        if "mlpack_speedup" in r and r["mlpack_speedup"] < need:
            out.append(f"MISSED {where}: {r['mlpack_speedup']:.2f}x mlpack (>= {need}x)")
        if r["n"] == 10_000 and r["mode"] == "LocalCluster":
            ms = 1e3 * r["s_per_iter"]
            out.append(
                f"{'met' if ms <= 10 else 'MISSED'} {where}: scheduling per iteration "
                f"{ms:.1f} ms (<= 10 ms)"
            )
    for r in ratios:
        if r["f64_over_f32"] > 1.3:
            out.append(
                f"MISSED {r['n']:.0e} {r['mode']}: float64 {r['f64_over_f32']:.2f}x float32 "
                "(<= 1.3x)"
            )
    return out


def write_readme(block):
    readme = HERE / "README.md"
    text = readme.read_text()
    new, count = re.subn(
        r"(<!-- PEERS -->\n).*?(<!-- /PEERS -->)",
        lambda m: m.group(1) + block + m.group(2),
        text,
        flags=re.S,
    )
    if count != 1:
        raise SystemExit("benchmarks/README.md has no <!-- PEERS --> ... <!-- /PEERS --> section")
    readme.write_text(new)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[10**4, 10**5, 10**6, 10**7])
    parser.add_argument(
        "--max-sklearn-n", type=parse_size, default=10**6, help="largest N for scikit-learn"
    )
    parser.add_argument(
        "--max-mlpack-n", type=parse_size, default=10**6, help="largest N for mlpack"
    )
    parser.add_argument(
        "--pause", type=float, default=0.0, help="seconds to sleep before every dshift fit"
    )
    parser.add_argument("--readme", action="store_true", help="fill the PEERS section")
    args = parser.parse_args(argv)
    sizes = sorted(set(args.sizes))
    if mlpack is None:
        print(f'mlpack is not installed (pip install -e ".[bench]"): its columns show {NONE}')
    started = time.perf_counter()
    rows = measure(sizes, args.max_sklearn_n, args.max_mlpack_n, args.pause)
    ratios = dtype_ratios(rows)
    goals = targets(rows, ratios)
    import sklearn

    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}",
        "dshift": dshift.__version__,
        "sklearn": sklearn.__version__,
        "mlpack": None if mlpack is None else mlpack.__version__,
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "sizes": sizes,
        "max_sklearn_n": args.max_sklearn_n,
        "max_mlpack_n": args.max_mlpack_n,
        "pause": args.pause,
        "total_seconds": time.perf_counter() - started,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "peers.json").write_text(
        json.dumps({"meta": meta, "rows": rows, "f64_over_f32": ratios}, indent=2)
    )
    block = (
        f"Measured {meta['date']} on {meta['machine']}; dshift {meta['dshift']}, "
        f"scikit-learn {meta['sklearn']}, mlpack {meta['mlpack'] or 'not installed'}, "
        f"dask {meta['dask']}"
        + (f"; {args.pause:g} s pause before every dshift fit" if args.pause else "")
        + ".\n\n"
        + table(rows)
        + "\n"
        + ratio_line(ratios)
        + ".\n\n"
        + "".join(f"- {g}\n" for g in goals)
    )
    print()
    print(block)
    for r in rows:
        if r["n"] == 10_000:
            print(
                f"scheduling per iteration at 1e4, {r['dtype']} {r['mode']}: "
                f"{1e3 * r['s_per_iter']:.1f} ms"
            )
    if args.readme:
        write_readme(block)
    return verdict([f"{r['n']:.0e} {r['dtype']} {r['mode']}" for r in rows if not r["agree"]])


if __name__ == "__main__":
    sys.exit(main())
