"""Side-by-side benchmarks: dshift against scikit-learn, mlpack and the naive dense dask approach.

Run from the repository root after `make install` (needs the test extras; mlpack comes with
the bench extra, `pip install -c docker/constraints.txt -e ".[bench]"`, and without it the
mlpack columns show a dash):

    .venv/bin/python benchmarks/bench.py            # all cases, ~10 minutes on 2 cores
    .venv/bin/python benchmarks/bench.py --quick    # 1e5-point cases only
    .venv/bin/python benchmarks/bench.py --large    # also the 1e8-point scaling point

Every case checks that the answers agree before it reports a time, so a fast wrong answer
cannot pass. mlpack seeds and stops by its own rules, so its centers are compared as sets and
reported, without failing the run. Results go to benchmarks/results/latest.json, the table in
benchmarks/README.md (between the RESULTS markers) and benchmarks/time_vs_n.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import zarr
from distributed import Client, LocalCluster
from sklearn.cluster import MeanShift as SkMeanShift
from sklearn.datasets import make_blobs

import dshift
from dshift import datasets

try:
    import mlpack
except ImportError:  # the bench extra is not installed: the mlpack columns show a dash
    mlpack = None

sys.path.insert(0, str(Path(__file__).parent))
from naive import naive_mean_shift

HERE = Path(__file__).parent
WORKERS, THREADS = 2, 1
CORES = WORKERS * THREADS
BANDWIDTH = 2.0
NONE = "\u2013"  # an en dash: the table's cell where a peer did not run


def blobs(n, d=3, seed=0):
    X, _ = make_blobs(n, n_features=d, centers=5, cluster_std=1.0, random_state=seed)
    return X


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def dshift_figures(model, n, seconds):
    pairs = n * sum(step.n_computed for step in model.history_)
    iters = len(model.history_)
    return {
        "seconds": seconds,
        "iterations": iters,
        "s_per_iter": seconds / iters,
        "pairs": pairs,
        "pairs_per_s_per_core": pairs / seconds / CORES,
        "clusters": len(model.cluster_centers_),
    }


def same_centers(a, b, atol):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False, float("inf")
    err = float(np.abs(a - b).max())
    return err <= atol, err


def set_distance(a, b):
    """Largest distance from a center of a to the nearest center of b, and back."""
    d = np.linalg.norm(np.asarray(a)[:, None] - np.asarray(b)[None], axis=2)
    return float(max(d.min(axis=1).max(), d.min(axis=0).max()))


def case_vs_sklearn(name, X, *, bandwidth=BANDWIDTH, kernel="flat", seeds=None):
    n = len(X)
    sk_params = dict(bandwidth=bandwidth, n_jobs=CORES)
    ds_params = dict(bandwidth=bandwidth, kernel=kernel)
    if seeds is not None:
        sk_params["seeds"] = seeds
        ds_params["seeds"] = seeds
    else:
        sk_params["bin_seeding"] = True
        ds_params["seeding"] = "bin"
    # warm: scikit-learn's joblib workers start on first use and stop after 5 idle minutes
    SkMeanShift(**sk_params).fit(X[:2000])
    ref, t_ref = timed(lambda: SkMeanShift(**sk_params).fit(X))
    ours, t_ours = timed(lambda: dshift.MeanShift(**ds_params).fit(X))
    ok, err = same_centers(ours.cluster_centers_, ref.cluster_centers_, 1e-3 * bandwidth)
    labels_equal = bool(np.array_equal(ours.labels_, ref.labels_))
    mlpack_figures = (
        {} if mlpack is None else mlpack_peer(X, bandwidth, ours, t_ours, seeds is not None)
    )
    row = {
        "case": name,
        "n": n,
        "d": X.shape[1],
        "kernel": kernel,
        "baseline": "scikit-learn",
        "baseline_seconds": t_ref,
        "baseline_iterations": int(ref.n_iter_),
        **dshift_figures(ours, n, t_ours),
        "speedup": t_ref / t_ours,
        "agree": bool(ok and labels_equal and ours.n_iter_ == ref.n_iter_),
        "max_center_error": err,
        **mlpack_figures,
    }
    return row


def mlpack_peer(X, bandwidth, ours, t_ours, given_seeds):
    """mlpack's mean shift (flat kernel, bin seeding) on the same X, radius = bandwidth.

    mlpack takes no seeds: with ``given_seeds`` it still seeds itself from bins. Its seeds
    (bin corners, not centers) and its merging (first converged center kept) differ from
    scikit-learn's and dshift's, so the centers are compared as sets: agreement is the same
    number of clusters and every center within 0.1 * bandwidth of one of the other set.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)  # the binding converts to float64 anyway
    mlpack.mean_shift(input_=X[:2000], radius=bandwidth)  # warm: load the library
    out, t_ml = timed(lambda: mlpack.mean_shift(input_=X, radius=bandwidth))
    centers = np.asarray(out["centroid"]).reshape(-1, X.shape[1])
    dist = set_distance(centers, ours.cluster_centers_) if len(centers) else float("inf")
    same_count = len(centers) == len(ours.cluster_centers_)
    return {
        "mlpack_seconds": t_ml,
        "mlpack_speedup": t_ml / t_ours,
        "mlpack_clusters": len(centers),
        "mlpack_set_distance": dist,
        "mlpack_agree": bool(same_count and dist <= 0.1 * bandwidth),
        "mlpack_note": "own bin seeds (takes no seeds)" if given_seeds else "",
    }


def case_vs_naive(name, X, *, kernel="gaussian"):
    n = len(X)
    seeds = dshift.get_bin_seeds(X, BANDWIDTH)
    Xd = da.from_array(X.astype(np.float32), chunks=(100_000, X.shape[1])).persist()
    (naive_centers, naive_iters), t_naive = timed(
        lambda: naive_mean_shift(Xd, seeds, BANDWIDTH, kernel=kernel)
    )
    ours, t_ours = timed(
        lambda: dshift.MeanShift(bandwidth=BANDWIDTH, kernel=kernel, seeds=seeds).fit(X)
    )
    err = set_distance(ours.cluster_centers_, _dedupe(naive_centers))
    return {
        "case": name,
        "n": n,
        "d": X.shape[1],
        "kernel": kernel,
        "baseline": "naive dense dask, float32",
        "baseline_seconds": t_naive,
        "baseline_iterations": int(naive_iters),
        **dshift_figures(ours, n, t_ours),
        "speedup": t_naive / t_ours,
        "agree": err <= 1e-2 * BANDWIDTH,
        "max_center_error": err,
    }


def _dedupe(centers):
    keep = []
    for c in centers:
        if all(np.linalg.norm(c - k) > BANDWIDTH for k in keep):
            keep.append(c)
    return np.array(keep)


def case_streamed(name, client, workdir, n, few_seeds=False):
    """A fit that reads the Zarr array every iteration, against a bare read pass.

    Seeds: the bins of at least 100 points (a few hundred centers), or with ``few_seeds``
    the 5 generating centers stored beside the data (a warm start).
    """
    group = os.path.join(workdir, f"stream-{n}.zarr")
    if os.path.exists(group):
        path = f"{group}/X"
    else:
        path = datasets.make_blobs(
            group, n, n_features=3, centers=5, chunk_rows=1_000_000, overwrite=True
        )
    X = da.from_zarr(path)
    _, t_read = timed(lambda: X.sum().compute())  # warm the file cache
    reads = [timed(lambda: X.sum().compute())[1] for _ in range(3)]
    t_read = min(reads)
    if few_seeds:
        seeds = zarr.open_array(f"{group}/centers")[:]
    else:
        seeds = dshift.get_bin_seeds(path, BANDWIDTH, min_bin_freq=100)
    streamed, t_stream = timed(
        lambda: dshift.MeanShift(
            bandwidth=BANDWIDTH, kernel="flat", seeds=seeds, persist=False
        ).fit(path)
    )
    kept, _ = timed(
        lambda: dshift.MeanShift(bandwidth=BANDWIDTH, kernel="flat", seeds=seeds, persist=True).fit(
            path
        )
    )
    steps = np.diff([0.0] + [s.elapsed for s in streamed.history_])
    per_iter = float(np.median(steps))
    ok, err = same_centers(streamed.cluster_centers_, kept.cluster_centers_, 1e-3 * BANDWIDTH)
    return {
        "case": name,
        "n": n,
        "d": 3,
        "kernel": "flat",
        "baseline": "bare da.from_zarr(...).sum() pass",
        "baseline_seconds": t_read,
        "baseline_iterations": 1,
        **dshift_figures(streamed, n, t_stream),
        "median_s_per_iter": per_iter,
        "iter_over_read": per_iter / t_read,
        "speedup": t_read / per_iter,
        "agree": bool(ok),
        "max_center_error": err,
    }


def scaling(workdir, sizes):
    """dshift flat fit time versus N, data generated into Zarr and fitted from it."""
    out = []
    for n in sizes:
        path = datasets.make_blobs(
            os.path.join(workdir, f"scale-{n}.zarr"),
            n,
            n_features=3,
            centers=5,
            chunk_rows=min(n, 2_000_000),
            overwrite=True,
        )
        model, t = timed(
            lambda path=path, n=n: dshift.MeanShift(
                bandwidth=BANDWIDTH, kernel="flat", seeding="bin", min_bin_freq=max(1, n // 100_000)
            ).fit(path)
        )
        out.append({"n": n, **dshift_figures(model, n, t)})
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
        print(f"  scaling n={n:.0e}: {t:.1f}s, {len(model.history_)} iterations", flush=True)
    return out


def mlpack_cells(r):
    """mlpack s, dshift vs mlpack, mlpack agreement: a dash where mlpack did not run."""
    if "mlpack_seconds" not in r:
        return NONE, NONE, NONE
    agree = (
        f"{'yes' if r['mlpack_agree'] else 'NO'} ({r['mlpack_clusters']} vs "
        f"{r['clusters']} clusters, {r['mlpack_set_distance']:.1e})"
    )
    if r["mlpack_note"]:
        agree += f"; {r['mlpack_note']}"
    s = r["mlpack_speedup"]
    ratio = f"**{s:.1f}x** faster" if s >= 1 else f"{1 / s:.1f}x slower"
    return f"{r['mlpack_seconds']:.2f}", ratio, agree


def table(rows):
    head = (
        "| case | N | d | kernel | baseline | baseline s | dshift s | ratio | iterations |"
        " s/iter | pairs/s/core | agree (max center err) | mlpack s | dshift vs mlpack |"
        " mlpack agree (clusters, set distance) |\n"
        "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|\n"
    )
    lines = []
    for r in rows:
        ratio = (
            f"{r['iter_over_read']:.2f}x read pass"
            if "iter_over_read" in r
            else f"**{r['speedup']:.1f}x** faster"
        )
        lines.append(
            f"| {r['case']} | {r['n']:.0e} | {r['d']} | {r['kernel']} | {r['baseline']} | "
            f"{r['baseline_seconds']:.2f} | {r['seconds']:.2f} | {ratio} | {r['iterations']} | "
            f"{r['s_per_iter']:.3f} | {r['pairs_per_s_per_core'] / 1e9:.2f} G | "
            f"{'yes' if r['agree'] else 'NO'} ({r['max_center_error']:.1e}) | "
            + " | ".join(mlpack_cells(r))
            + " |"
        )
    return head + "\n".join(lines) + "\n"


def plot(rows, scale, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ns = [r["n"] for r in scale]
    ax.loglog(ns, [r["seconds"] for r in scale], "o-", label="dshift (flat, from Zarr)")
    sk = [
        (r["n"], r["baseline_seconds"])
        for r in rows
        if r["baseline"] == "scikit-learn" and r["d"] == 3 and r["kernel"] == "flat"
    ]
    if sk:
        ax.loglog(*zip(*sorted(sk)), "s--", label="scikit-learn MeanShift (n_jobs=2)")
    ml = [
        (r["n"], r["mlpack_seconds"])
        for r in rows
        if "mlpack_seconds" in r and r["d"] == 3 and r["kernel"] == "flat"
    ]
    if ml:
        ax.loglog(*zip(*sorted(ml)), "^:", label="mlpack mean_shift")
    ax.set_xlabel("points N (3-d blobs)")
    ax.set_ylabel("fit time (s)")
    ax.set_title(f"Fit time vs N, {WORKERS} workers x {THREADS} thread")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_readme(rows, scale, meta):
    readme = HERE / "README.md"
    text = readme.read_text()
    block = (
        f"Measured {meta['date']} on {meta['machine']}; dshift {meta['dshift']}, "
        f"scikit-learn {meta['sklearn']}, mlpack {meta['mlpack'] or 'not installed'}, "
        f"dask {meta['dask']}.\n\n"
        + table(rows)
        + "\n"
        + "Scaling (flat kernel, bin seeding, data read from Zarr):\n\n"
        + "| N | seconds | iterations | s/iter |\n|---:|---:|---:|---:|\n"
        + "".join(
            f"| {r['n']:.0e} | {r['seconds']:.1f} | {r['iterations']} | {r['s_per_iter']:.3f} |\n"
            for r in scale
        )
    )
    text = re.sub(
        r"(<!-- RESULTS -->\n).*?(<!-- /RESULTS -->)",
        lambda m: m.group(1) + block + m.group(2),
        text,
        flags=re.S,
    )
    readme.write_text(text)


def warm_up():
    """Every case's dshift fit once on small data, to the end: compiles (or loads) each
    kernel the timed fits run (tiles, center grid, Gaussian groups and lattice, 16-d) in
    every worker, then in this process (where small in-memory fits run even with a
    client), so no timed row includes numba's work."""
    X = blobs(20_000)
    seeds = dshift.get_bin_seeds(X, BANDWIDTH)
    X16 = blobs(5_000, d=16)
    for where in ({"dshift.fit-here-bytes": 0}, {}):  # the workers, then here
        with dask.config.set(where):
            dshift.MeanShift(bandwidth=BANDWIDTH, kernel="flat", seeding="bin").fit(X)
            dshift.MeanShift(bandwidth=BANDWIDTH, kernel="flat", seeding="bin", persist=False).fit(
                X
            )
            dshift.MeanShift(bandwidth=BANDWIDTH, kernel="gaussian", seeds=seeds).fit(X)
            dshift.MeanShift(bandwidth=6.0, kernel="flat", seeds=X16[:20]).fit(X16)


def run_cases(client, workdir, big):
    """Every side-by-side case; prints each row as it is measured."""
    rows = []

    def add(row):
        rows.append(row)
        print(table([row]).splitlines()[-1], flush=True)

    for n in [100_000, *big]:
        X = blobs(n)
        add(case_vs_sklearn("flat 3-d bin seeds", X))
        add(case_vs_naive("gaussian 3-d bin seeds", X))
    X16 = blobs(100_000, d=16)
    seeds16 = X16[np.random.default_rng(0).choice(len(X16), 100, replace=False)]
    add(case_vs_sklearn("flat 16-d, 100 given seeds", X16, bandwidth=6.0, seeds=seeds16))
    n_stream = 10_000_000 if big else 2_000_000
    add(case_streamed("streamed from Zarr, bin seeds", client, workdir, n_stream))
    add(case_streamed("streamed from Zarr, 5 seeds", client, workdir, n_stream, few_seeds=True))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1e5-point cases only")
    parser.add_argument("--large", action="store_true", help="add the 1e8 scaling point")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite README.md")
    parser.add_argument(
        "--scaling-only",
        action="store_true",
        help="re-measure only the scaling; keep the cases of results/latest.json",
    )
    args = parser.parse_args(argv)
    big = [] if args.quick else [1_000_000]
    if mlpack is None:
        print(f'mlpack is not installed (pip install ".[bench]"): its columns show {NONE}')
    workdir = tempfile.mkdtemp(prefix="dshift-bench-")
    with (
        LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=THREADS,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            memory_limit="4GiB",
        ) as cluster,
        Client(cluster) as client,
    ):
        warm_up()
        if args.scaling_only:
            rows = json.loads((HERE / "results" / "latest.json").read_text())["cases"]
        else:
            rows = run_cases(client, workdir, big)
        sizes = [100_000, 1_000_000] + ([] if args.quick else [10_000_000])
        scale = scaling(workdir, sizes + ([100_000_000] if args.large else []))
    shutil.rmtree(workdir, ignore_errors=True)
    import sklearn

    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": (
            f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
        ),
        "dshift": dshift.__version__,
        "sklearn": sklearn.__version__,
        "mlpack": None if mlpack is None else mlpack.__version__,
        "dask": dask.__version__,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "latest.json").write_text(
        json.dumps({"meta": meta, "cases": rows, "scaling": scale}, indent=2)
    )
    plot(rows, scale, HERE / "time_vs_n.png")
    if not args.no_readme:
        write_readme(rows, scale, meta)
    print(table(rows))
    differ = [r["case"] for r in rows if "mlpack_agree" in r and not r["mlpack_agree"]]
    if differ:
        print(f"mlpack's centers differ (reported, not a failure) in {differ}", flush=True)
    return verdict([r["case"] for r in rows if not r["agree"]])


def verdict(disagreeing: list[str]) -> int:
    """The exit status of a run: 1, saying so on stderr, if any case disagreed."""
    if disagreeing:
        print(f"DISAGREEMENT in {disagreeing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
