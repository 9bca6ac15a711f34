"""Quick start: generate points into Zarr, cluster them on a local Dask cluster.

python examples/quickstart.py [N_SAMPLES] [OUTPUT_DIR]
"""

import sys
import tempfile

from distributed import Client, LocalCluster

import dshift
from dshift import datasets


def main(n_samples: int = 500_000, workdir: str | None = None) -> dshift.MeanShift:
    workdir = workdir or tempfile.mkdtemp(prefix="dshift-quickstart-")
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1") as cluster,
        Client(cluster) as client,
    ):
        print("dashboard:", client.dashboard_link)
        # 1. data: written chunk by chunk into Zarr, never held in memory
        X = datasets.make_blobs(f"{workdir}/blobs.zarr", n_samples, n_features=3, centers=4)
        # 2. fit straight from the Zarr path: each iteration is one pass over the chunks
        model = dshift.MeanShift(bandwidth=2.0, kernel="flat", seeding="bin", min_bin_freq=5)
        for step in model.iter_fit(X):
            print(f"iteration {step.iteration}: {step.n_active} active, shift {step.max_shift:.3g}")
        print("centers:\n", model.cluster_centers_.round(3))
        print("cluster sizes:", model.cluster_sizes_.tolist())
        # 3. labels_ is lazy for Zarr input: compute a slice, or write it all to Zarr
        print("first labels:", model.labels_[:10].compute().tolist())
    return model


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    main(n, sys.argv[2] if len(sys.argv) > 2 else None)
