"""The Gaussian kernel's estimated bandwidth: the flat estimate scaled by a factor.

``MeanShift(kernel="gaussian", bandwidth=None)`` uses ``estimate_bandwidth(X) / 4``. This
script shows why: for each data set and factor it fits the Gaussian at ``factor * flat
estimate`` with bin seeds and prints the number of clusters found and the adjusted Rand
index against the true labels, beside the flat kernel at the flat estimate.

Data: scikit-learn's mean shift demo (three blobs, 10,000 points, std 0.6; three seeds),
the benchmark blobs (5 centers, std 1, 20,000 points, d = 2, 3, 16) and 8 blobs of
stds 0.3 to 1.5.

Run: ``python benchmarks/gaussian_bandwidth.py`` (about a minute).
"""

from __future__ import annotations

from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from dshift import MeanShift, estimate_bandwidth

FACTORS = (0.12, 0.18, 0.25, 0.35, 0.5, 1.0)


def data_sets():
    for seed in (0, 1, 2):
        yield (
            f"scikit-learn demo (seed {seed})",
            *make_blobs(
                n_samples=10_000,
                centers=[[1, 1], [-1, -1], [1, -1]],
                cluster_std=0.6,
                random_state=seed,
            ),
        )
    for d in (2, 3, 16):
        yield (
            f"benchmark blobs, {d}-d",
            *make_blobs(20_000, n_features=d, centers=5, cluster_std=1.0, random_state=0),
        )
    stds = [0.3, 0.5, 1.0, 1.5] * 2
    yield (
        "8 blobs, std 0.3-1.5",
        *make_blobs(20_000, n_features=2, centers=8, cluster_std=stds, random_state=3),
    )


def cell(model, y):
    return f"{len(model.cluster_centers_)} / {adjusted_rand_score(y, model.labels_):.2f}"


def main():
    head = ["data", "flat at h"] + [f"Gaussian at {f:g}·h" for f in FACTORS]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, X, y in data_sets():
        h = estimate_bandwidth(X, random_state=0)
        row = [name, cell(MeanShift(bandwidth=h, bin_seeding=True, progress=False).fit(X), y)]
        for f in FACTORS:
            ms = MeanShift(bandwidth=f * h, kernel="gaussian", bin_seeding=True, progress=False)
            row.append(cell(ms.fit(X), y))
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
