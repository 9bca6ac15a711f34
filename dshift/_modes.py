"""Labels by the mode reached (``label_method="mode"``), computed out of core.

The fitted density is summarised by its occupied grid cells (see :mod:`dshift._grid`):
each cell, as one point at its points' mean weighing their total weight. Every cell's mean
then follows its own mean-shift trajectory over that density (one loop, all cells as seeds,
on the cluster) and takes the label of the center nearest to where it converged. A point's
label is its cell's: one chunk-wise lookup, with only the (cells -> label) table broadcast.
So points are labelled by the basin of attraction they start in, not by the nearest
center, which is what separates non-convex clusters.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from dshift import kernels
from dshift._centers import shortcuts
from dshift._cluster import scheduler_options
from dshift._columns import Columns
from dshift._io import row_values
from dshift._iterate import LoopState, mean_shift_loop, reduce_stats
from dshift._placement import Placement


def mode_table(
    cells: np.ndarray,
    density: Placement,
    centers: np.ndarray,
    *,
    bandwidth: float,
    kernel: int,
    max_iter: int,
    threshold: float,
    cluster_all: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The label of every occupied cell: where its mean's trajectory ends.

    Parameters
    ----------
    cells : ndarray of shape (n_cells, n_features)
        Integer coordinates of the occupied cells, in the order of ``density``'s rows.
    density : Placement
        The cells as weighted points (rows: mean, weight), placed in the cluster.
    centers : ndarray of shape (n_clusters, n_features)
        The fitted centers.

    Returns
    -------
    keys, labels : the sorted table of :func:`dshift.kernels.cell_table`.
    """
    d = cells.shape[1]
    columns = Columns(d, weighted=True)

    def stats(c: np.ndarray) -> kernels.ChunkStats:
        return density.run(
            lambda: reduce_stats(
                density.loop, c, bandwidth, kernel, columns, density.rows_sorted, density.resident
            )
        )

    options = scheduler_options()
    starts = density.run(
        lambda: np.asarray(density.data[:, :d].compute(**options), dtype=np.float64)
    )
    state = LoopState.start(starts)
    quick = shortcuts(kernel, adaptive=False)  # the cells' density has one bandwidth
    for _ in mean_shift_loop(stats, state, max_iter=max_iter, threshold=threshold, shortcuts=quick):
        pass
    labels = kernels.nearest_labels(state.centers, centers, bandwidth, cluster_all)
    return kernels.cell_table(cells, labels)


def mode_label_blocks(
    X: da.Array,
    cell_size: float,
    table: tuple[np.ndarray, np.ndarray],
    centers: np.ndarray,
    bandwidth: float,
    cluster_all: bool,
) -> da.Array:
    """Lazy labels (int32) of X's rows by their cell's entry in ``table``."""
    keys, labels = (dask.delayed(a, traverse=False) for a in table)
    return row_values(
        X,
        kernels.cell_labels,
        cell_size,
        keys,
        labels,
        centers,
        bandwidth,
        cluster_all,
        dtype=np.int32,
    )
