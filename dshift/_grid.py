"""Grid-accelerated mean shift: iterate on weighted grid cells instead of raw points.

One chunk-wise pass bins the points into cells of edge ``grid_fraction * bandwidth`` and
keeps, per occupied cell, the sum of its points and their total weight (reduced in a tree).
Each cell then stands for its points, as one point at their mean with their total weight,
and mean shift runs on those cells (in the spirit of MeanShift++, Jang & Jiang, CVPR 2021).
In low dimensions the cells are far fewer than the points, so each iteration costs almost
nothing; the price is an error of the order of the cell size in the centers.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from dshift import kernels
from dshift._iterate import check_finite, reduce_cells

#: Most occupied cells the grid summary may have (it is held on the client).
MAX_CELLS = 2_000_000


def _merge_bounded(*parts: kernels.Cells) -> kernels.Cells:
    merged = kernels.merge_cells(*parts)
    if len(merged.cells) > MAX_CELLS:
        raise ValueError(
            f"The grid has more than {MAX_CELLS} occupied cells, too many to stand for the "
            "points (grid mode pays off in low dimensions): raise grid_fraction, or use "
            "algorithm='exact'."
        )
    return merged


def grid_summary(
    X: da.Array, cell_size: float, weighted: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The occupied cells of X as weighted points: rows ``(mean of the cell's points, weight)``.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features) (+1 weight column if weighted)
    cell_size : float
        Edge of the grid cells: a point x is in cell ``floor(x / cell_size)``.
    weighted : bool, default=False
        X's last column holds point weights.

    Returns
    -------
    cells : ndarray of shape (n_cells, n_features), float64
        Integer coordinates of the occupied cells (sorted).
    points : ndarray of shape (n_cells, n_features + 1), float64
        Each cell's mean point and total weight. Cells of total weight 0 are left out.

    Examples
    --------
    >>> import dask.array as da
    >>> X = da.from_array(np.array([[0.1], [0.3], [1.5], [1.7]]), chunks=2)
    >>> cells, points = grid_summary(X, 1.0)
    >>> cells.tolist(), points.round(6).tolist()
    ([[0.0], [1.0]], [[0.2, 2.0], [1.6, 2.0]])
    """
    cells, weights, sums, n_nonfinite = reduce_cells(
        X, cell_size, weighted, sums=True, merge=_merge_bounded
    )
    check_finite(n_nonfinite)
    keep = weights > 0
    points = np.column_stack([sums[keep] / weights[keep, None], weights[keep]])
    return cells[keep], points
