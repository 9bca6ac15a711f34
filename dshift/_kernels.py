"""TEMPORARY: the old names the estimator still imports; removed once it uses dshift.kernels."""

from dshift.kernels import KERNELS, ChunkStats, kth_distances  # noqa: F401


def kth_neighbor_distances(sample, k):
    return kth_distances(sample, sample, k)


kth_distances_to = kth_distances
