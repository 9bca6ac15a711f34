"""Larger than memory, for real: a Zarr dataset 3x the workers' total memory limit is
clustered by streaming it, and no worker's peak memory reaches its limit.

The default (2 workers x 400 MB, 2.4 GB of points) runs in CI in about three minutes, and
took 7 minutes on a 2-core machine with two CPU-bound processes beside it; set
DSHIFT_OOC_WORKER_MB / DSHIFT_OOC_RATIO to run bigger. The figures (times included) are
printed, never asserted: speed is for benchmarks/.
"""

import os
import time

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster

import dshift
from dshift import datasets

WORKER_MB = int(os.environ.get("DSHIFT_OOC_WORKER_MB", "400"))
RATIO = float(os.environ.get("DSHIFT_OOC_RATIO", "3.0"))
N_WORKERS = 2


def _peak_rss_mb() -> float:
    """Peak resident memory of this (worker) process since it started, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def _imports_xarray() -> bool:
    import sys

    return sys.modules.get("xarray") is not None


def adjusted_rand_index(contingency: np.ndarray) -> float:
    """ARI from a (true x predicted) contingency table (the Hubert-Arabie formula)."""

    def pairs(x):
        return (x * (x - 1) / 2).sum()

    total = pairs(np.array([contingency.sum()]))
    index = pairs(contingency)
    rows, cols = pairs(contingency.sum(axis=1)), pairs(contingency.sum(axis=0))
    expected = rows * cols / total
    return float((index - expected) / ((rows + cols) / 2 - expected))


def test_adjusted_rand_index_matches_sklearn():
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 500), rng.integers(0, 3, 500)
    b[:300] = a[:300] % 3
    table = np.zeros((4, 3))
    np.add.at(table, (a, b), 1)
    assert adjusted_rand_index(table) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)


@pytest.mark.timeout(1800)  # only bounds a hang: a loaded machine took 415 s
def test_fit_streams_data_three_times_the_cluster_memory(tmp_path):
    limit = WORKER_MB * 2**20
    nbytes = RATIO * N_WORKERS * limit
    n = int(nbytes // 8) + 1  # 2 float32 features per point
    # Pausing at 80% cannot help a streaming fit (nothing is held to spill) and, with a
    # worker at rest already near 210 MB, two paused workers would wait for each other.
    # The limit itself (terminate at 95%) stays, and the test checks no worker restarted.
    no_pause = {"distributed.worker.memory.pause": False}
    # dask.array imports xarray (and with it pandas) whenever it is installed, as it is for
    # these tests: ~90 MB more in every worker at rest. Workers that only run dshift need
    # neither; the preload keeps them out, as on workers installed without them.
    preload = tmp_path / "no_xarray.py"
    preload.write_text("import sys\nsys.modules['xarray'] = None\n")
    with (
        dask.config.set(no_pause),
        LocalCluster(
            n_workers=N_WORKERS,
            threads_per_worker=1,
            memory_limit=limit,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            preload=[str(preload)],
        ) as cluster,
        Client(cluster) as client,
    ):
        start = time.perf_counter()
        path = datasets.make_blobs(
            tmp_path / "big.zarr",
            n,
            n_features=2,
            centers=4,
            chunk_rows=250_000,
            random_state=9,  # blob centers at least 8.8 apart: 4 separate modes at bandwidth 2
        )
        generated = time.perf_counter() - start
        X = da.from_zarr(path)
        assert X.nbytes >= RATIO * N_WORKERS * limit
        workers_before = sorted(client.run(os.getpid).items())

        model = dshift.MeanShift(
            bandwidth=2.0, kernel="flat", seeding="sample", n_seeds=12, random_state=0
        )
        start = time.perf_counter()
        model.fit(path)
        fitted = time.perf_counter() - start

        truth = da.from_zarr(os.path.join(os.path.dirname(path), "y"))
        k = len(model.cluster_centers_)
        joint = truth.astype(np.int64) * k + model.labels_
        contingency = da.bincount(joint, minlength=4 * k).compute().reshape(4, k)
        ari = adjusted_rand_index(contingency)
        peaks = client.run(_peak_rss_mb)
        assert not any(client.run(_imports_xarray).values())  # the preload worked
        workers_after = sorted(client.run(os.getpid).items())

    figures = {
        "data_MB": X.nbytes / 2**20,
        "limit_MB_per_worker": WORKER_MB,
        "peak_rss_MB": sorted(peaks.values()),
        "generate_s": round(generated, 1),
        "fit_s": round(fitted, 1),
        "s_per_iteration": round(fitted / len(model.history_), 2),
        "iterations": len(model.history_),
        "ari": round(ari, 4),
    }
    print("\nout-of-core figures:", figures)
    assert workers_after == workers_before, "a worker was restarted (memory limit hit?)"
    assert model.history_ and model.n_iter_ < model.max_iter
    assert ari >= 0.95, figures
    assert all(peak < WORKER_MB for peak in peaks.values()), figures
