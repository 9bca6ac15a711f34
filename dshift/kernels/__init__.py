"""Chunk kernels: pure arithmetic on one block of points, no dask.

Each function takes a numpy block of rows and small broadcast arguments and returns only
small results. The mean shift sums run in tiles of a few hundred points (transposed, so the
loops over points vectorize); a call allocates a few buffers of at most ``CELL_BLOCK_ROWS``
rows (plus one counter per center-grid cell, or for Gaussian centers on a lattice
``MAX_AXIS_VALUES`` rows of ``TILE_ROWS``) and nothing per (point, center) pair, so a task's
temporaries do not grow with the chunk size or the number of centers.

The rest of dshift uses the names below; :func:`plan` decides, once per iteration, how the
chunks compute their sums, and :func:`chunk_stats` executes that plan on one chunk.
"""

from dshift.kernels import _cache, _plan
from dshift.kernels._cells import Cells, bin_points, cell_labels, cell_table, merge_cells
from dshift.kernels._config import EPANECHNIKOV, FLAT, GAUSSIAN, KERNELS
from dshift.kernels._morton import morton_order, spatially_sorted
from dshift.kernels._neighbours import PREDICT_RANGE_MESSAGE, kth_distances, nearest_labels
from dshift.kernels._plan import (
    STRATEGIES,
    ChunkStats,
    Plan,
    add_stats,
    chunk_stats,
    plan,
    sorts_rows,
)

if (_where := _cache.cache_dir_of(_plan.tile_loop)) is not None:
    _cache.drop_stale(_where)  # before any kernel compiles or loads its cached code

__all__ = [
    "EPANECHNIKOV",
    "FLAT",
    "GAUSSIAN",
    "KERNELS",
    "PREDICT_RANGE_MESSAGE",
    "STRATEGIES",
    "Cells",
    "ChunkStats",
    "Plan",
    "add_stats",
    "bin_points",
    "cell_labels",
    "cell_table",
    "chunk_stats",
    "kth_distances",
    "merge_cells",
    "morton_order",
    "nearest_labels",
    "plan",
    "sorts_rows",
    "spatially_sorted",
]
