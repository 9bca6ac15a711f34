"""Benchmark lines for the features beyond scikit-learn: grid mode and sample weights.

In one run on a 2-worker x 1-thread LocalCluster (127.0.0.1):

- ``algorithm="grid"`` against the exact fit on the same data and parameters: wall times,
  speed-up, the largest distance from a grid center to the nearest exact center (in
  bandwidths), and the adjusted Rand index of the labels. Blobs in 3-d (1e5, 1e6; flat and
  Gaussian) and the colour pixels of matplotlib's Grace Hopper photograph.
- ``sample_weight``: distinct points with integer weights against the same points repeated
  (same centers, and the time saved).
- ``label_method="mode"`` against nearest-center labels on two moons (ARI with the truth),
  with a plot (benchmarks/moons.png).
- ``adaptive_k`` against fixed bandwidths on three tight clusters beside one wide one
  (clusters found, ARI with the truth).

The table goes to stdout and, unless ``--no-docs``, into docs/features.md between the
FEATURES markers.

    python benchmarks/features.py [--quick] [--no-docs]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import time
from pathlib import Path

import numpy as np
from distributed import Client, LocalCluster
from scipy.spatial.distance import cdist
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

import dshift

DOCS = Path(__file__).parents[1] / "docs" / "features.md"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def grid_case(name, X, bandwidth, kernel, **params):
    common = dict(bandwidth=bandwidth, kernel=kernel, seeding="bin", **params)
    exact, t_exact = timed(lambda: dshift.MeanShift(**common).fit(X))
    grid, t_grid = timed(lambda: dshift.MeanShift(algorithm="grid", **common).fit(X))
    errors = cdist(grid.cluster_centers_, exact.cluster_centers_).min(axis=1) / bandwidth
    return {
        "case": name,
        "N": len(X),
        "exact s": t_exact,
        "grid s": t_grid,
        "speed-up": t_exact / t_grid,
        "clusters exact/grid": f"{len(exact.cluster_centers_)}/{len(grid.cluster_centers_)}",
        "max center error (bandwidths)": errors.max(),
        "centers within 0.1 bandwidth": f"{int((errors <= 0.1).sum())}/{len(errors)}",
        "ARI": adjusted_rand_score(np.asarray(exact.labels_), np.asarray(grid.labels_)),
    }


def grace_hopper_pixels() -> np.ndarray:
    import matplotlib.pyplot as plt
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        img = plt.imread(f).astype(np.float64) / 255.0
    return img[:, :, :3].reshape(-1, 3)


def weights_case(n_distinct, max_weight):
    X, _ = make_blobs(n_distinct, n_features=3, centers=5, random_state=1)
    w = np.random.default_rng(2).integers(1, max_weight + 1, len(X))
    params = dict(bandwidth=2.0, kernel="flat", seeding="bin")
    weighted, t_w = timed(lambda: dshift.MeanShift(**params).fit(X, sample_weight=w))
    repeated, t_r = timed(lambda: dshift.MeanShift(**params).fit(np.repeat(X, w, axis=0)))
    err = np.abs(weighted.cluster_centers_ - repeated.cluster_centers_).max()
    return {
        "case": f"weights 1..{max_weight} vs repeated rows",
        "N": f"{n_distinct:.0e} distinct, {w.sum():.2e} repeated",
        "repeated s": t_r,
        "weighted s": t_w,
        "speed-up": t_r / t_w,
        "same centers (max diff)": f"{err:.1e}",
        "same n_iter_": weighted.n_iter_ == repeated.n_iter_,
    }


def moons_case(plot_path=None):
    from sklearn.datasets import make_moons

    X, y = make_moons(100_000, noise=0.06, random_state=0)
    params = dict(bandwidth=0.3, kernel="gaussian", seeding="bin")
    nearest, t_n = timed(lambda: dshift.MeanShift(**params).fit(X))
    mode, t_m = timed(lambda: dshift.MeanShift(label_method="mode", **params).fit(X))
    if plot_path is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        for ax, model, title in ((axes[0], nearest, "nearest center"), (axes[1], mode, "mode")):
            idx = np.random.default_rng(0).choice(len(X), 10_000, replace=False)
            ax.scatter(X[idx, 0], X[idx, 1], c=model.labels_[idx], s=2, cmap="coolwarm")
            ax.scatter(*model.cluster_centers_.T, c="k", marker="x", s=80)
            ari = adjusted_rand_score(y, model.labels_)
            ax.set_title(f"labels by {title}: ARI {ari:.3f}")
        fig.tight_layout()
        fig.savefig(plot_path, dpi=80)
        plt.close(fig)
    return {
        "case": "two moons (1e5, Gaussian, bandwidth 0.3)",
        "clusters": len(mode.cluster_centers_),
        "ARI nearest": adjusted_rand_score(y, nearest.labels_),
        "ARI mode": adjusted_rand_score(y, mode.labels_),
        "nearest s": t_n,
        "mode s": t_m,
    }


def adaptive_cases():
    rng = np.random.default_rng(0)
    parts = [rng.normal(c, 0.15, size=(40_000, 2)) for c in ([0, 0], [1.2, 0], [0, 1.2])]
    parts.append(rng.normal([8, 8], 1.5, size=(15_000, 2)))
    X = np.vstack(parts)
    y = np.repeat(np.arange(4), [40_000, 40_000, 40_000, 15_000])
    rows = []
    for label, params in [
        *[(f"fixed bandwidth {bw}", dict(bandwidth=bw)) for bw in (0.3, 0.6, 1.0, 2.0)],
        ("adaptive_k=100", dict(adaptive_k=100)),
        ("adaptive_k=300", dict(adaptive_k=300)),
    ]:
        model, t = timed(
            lambda p=params: dshift.MeanShift(kernel="gaussian", seeding="bin", **p).fit(X)
        )
        rows.append(
            {
                "case": f"3 tight + 1 wide cluster (1.35e5, Gaussian): {label}",
                "clusters found (truth 4)": len(model.cluster_centers_),
                "ARI": adjusted_rand_score(y, model.labels_),
                "seconds": t,
            }
        )
    return rows


def markdown(rows, columns):
    def fmt(column, v):
        if isinstance(v, float):
            return f"{v:.3g}"
        if column == "N" and isinstance(v, int):
            return f"{v:.0e}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(c, r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1e5-point cases only")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs")
    args = parser.parse_args(argv)
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            memory_limit="4GiB",
        ) as cluster,
        Client(cluster),
    ):
        warm, _ = make_blobs(20_000, n_features=3, centers=5, random_state=0)
        grid_case("warm-up (compiles the kernels)", warm, 2.0, "flat")  # not reported
        sizes = [100_000] if args.quick else [100_000, 1_000_000]
        grid_rows = []
        for n in sizes:
            X, _ = make_blobs(n, n_features=3, centers=5, cluster_std=1.0, random_state=0)
            grid_rows.append(grid_case("blobs 3-d flat", X, 2.0, "flat"))
            grid_rows.append(grid_case("blobs 3-d gaussian", X, 2.0, "gaussian"))
        pixels = grace_hopper_pixels()
        grid_rows.append(
            grid_case("Grace Hopper pixels (RGB), flat", pixels, 0.1, "flat", min_bin_freq=20)
        )
        weight_rows = [weights_case(20_000 if args.quick else 200_000, 10)]
        mode_rows = [moons_case(Path(__file__).parent / "moons.png")]
        adaptive_rows = adaptive_cases()
    stamp = (
        f"Measured {datetime.date.today()} on 2 workers x 1 thread, {platform.machine()}, "
        f"Python {platform.python_version()}; dshift {dshift.__version__}."
    )
    grid_table = markdown(grid_rows, list(grid_rows[0]))
    weight_table = markdown(weight_rows, list(weight_rows[0]))
    mode_table = markdown(mode_rows, list(mode_rows[0]))
    adaptive_table = markdown(adaptive_rows, list(adaptive_rows[0]))
    block = f"{stamp}\n\n{grid_table}\n\n{weight_table}\n\n{mode_table}\n\n{adaptive_table}\n"
    print(block)
    if not args.no_docs:
        text = DOCS.read_text()
        text = re.sub(
            r"<!-- FEATURES -->.*<!-- /FEATURES -->",
            lambda _: f"<!-- FEATURES -->\n{block}<!-- /FEATURES -->",
            text,
            flags=re.S,
        )
        DOCS.write_text(text)


if __name__ == "__main__":
    main()
