"""What the kernels share: kernel codes, tile sizes, the work buffer's layout, numba options.

numba reads a module-level number when it compiles a function and bakes it into the machine
code (and into the on-disk cache), so every constant here is fixed for the life of the
process: changing one at run time silently does nothing to compiled kernels. What may change
from one call to the next (group radii, whether to use the center grid or a lattice, the
tile layout) is therefore not a constant but a field of the :class:`~dshift.kernels.Plan`
that the client builds once per iteration.
"""

from __future__ import annotations

import numba
import numpy as np

FLAT, GAUSSIAN, EPANECHNIKOV = 0, 1, 2
#: Kernel names and their codes.
KERNELS = {"flat": FLAT, "gaussian": GAUSSIAN, "epanechnikov": EPANECHNIKOV}

#: Rows handled together: the tile is transposed so the loops over points vectorize.
TILE_ROWS = 512
#: The same for rows in no spatial order, where a tile's box is too wide to prune.
UNSORTED_TILE_ROWS = 8192
#: Rows of a block bucketed by center-grid cell at a time: bounds that path's temporaries.
CELL_BLOCK_ROWS = 65_536
#: Rows of a block handled by one binning step: bounds the binning temporaries.
BIN_TILE_ROWS = 65_536
#: Rows labelled together (transposed, so the loops over them vectorize).
LABEL_TILE_ROWS = 1024
#: Elements of one (rows x sample) distance tile of the k-th neighbour distances.
KNN_TILE_ELEMENTS = 2**22

#: numba fast-math flags: reassociation lets the loops vectorize; no NaN/inf assumptions,
#: so non-finite values are still detected (``abs(v) <= MAX_ABS`` is false for NaN).
FASTMATH = {"reassoc", "nsz", "arcp", "contract"}
#: A 0 that numba types as an int64, not as the literal 0. numba compiles a function once per
#: argument types, and a literal is a type of its own: passed as ``0`` and as a variable,
#: ``tile_sums`` was compiled four times (a variable still typed as the literal 0 midway
#: through the caller's typing counts too), ~1.5 s each on a first run; the code is the same.
ZERO = np.int64(0)
#: Options of every compiled kernel (``fastmath`` is added where the loops vectorize). No
#: kernel is passed to another as a first-class function, so none needs numba's C wrapper.
JIT = {"nogil": True, "cache": True, "no_cfunc_wrapper": True}
#: Options of the kernels that only other kernels call: no wrapper for calls from Python
#: either (it unboxes every record's arrays: ~1 s of a first run's compiling, all told).
INNER = {**JIT, "no_cpython_wrapper": True}

# The work buffer: ``work_buffer(d, rows)`` rows of scratch space that a tile's routines
# share. Rows by role (a row holds one value per point of the tile):
#: squared distances of the tile's points to the center (or a group's leader)
D2 = 0
#: kernel weights of the tile's points
WEIGHT = 1
#: exp's scratch; the shell's point indices (as int64) in a flat group
SCRATCH = 2
#: the weights of the shell's points (flat groups)
SHELL_WEIGHT = 3
#: first of d rows: the shell's points, transposed (flat groups)
SHELL = 4
#: first of d rows: the points' offsets from the leader (Gaussian groups); the row after
#: them holds the member's offset from the leader
OFFSETS = 3


@numba.njit(inline="always")
def work_buffer(n_features: int, rows: int) -> np.ndarray:
    """A work buffer for tiles of up to ``rows`` points in ``n_features`` dimensions: the
    rows above, plus one (``SHELL + n_features``) for a box's offset sums."""
    return np.empty((n_features + 5, max(rows, n_features + 1)))
