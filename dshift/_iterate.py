"""The mean shift loop: one map/reduce over the chunks per iteration, then a local update.

Each iteration plans the chunks' work once (:func:`dshift.kernels.plan`: the distinct
*active* centers and how to reach them), broadcasts the plan, every chunk computes its
partial :class:`~dshift.kernels.ChunkStats`, and a tree of ``add_stats`` adds them: on the cluster
down to at most ``SPLIT_EVERY`` (m x (d + 3)) partials, which the client adds when they are
small (else the whole tree runs on the cluster). There the new centers are computed
(Gaussian steps stretched, see :func:`dshift._centers.relaxation`), centers whose shift is
at most ``tol * bandwidth`` are frozen (no longer broadcast), and identical centers are
computed once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from functools import partial
from typing import Any

import dask
import dask.array as da
import numpy as np

from dshift import _limits, kernels
from dshift._centers import followers, relaxation
from dshift._cluster import scheduler_options
from dshift._columns import Columns
from dshift._io import row_blocks, row_values
from dshift._resident import LocalBlocks, Resident

logger = logging.getLogger(__name__)

#: Number of partial results added by one task of the tree reduction.
SPLIT_EVERY = 8


@dataclass(frozen=True)
class Step:
    """What one iteration did; yielded by :meth:`dshift.MeanShift.iter_fit`.

    Attributes
    ----------
    iteration : int
        0-based iteration number (scikit-learn's ``n_iter_`` counts the same way).
    centers : ndarray of shape (n_seeds, n_features)
        Position of every seed's center after this iteration (dropped seeds keep their last
        position; see ``alive``).
    active : ndarray of shape (n_seeds,), bool
        Centers still moving after this iteration.
    alive : ndarray of shape (n_seeds,), bool
        Centers that had at least one point within reach (the others are dropped).
    n_computed : int
        Distinct centers broadcast to the chunks in this iteration.
    max_shift : float
        Largest shift of a center in this iteration: the distance to its kernel-weighted
        mean, which the convergence test compares with ``tol * bandwidth`` (a stretched
        Gaussian step moves the center up to ``MAX_RELAX`` times as far).
    elapsed : float
        Seconds since the loop started.
    """

    iteration: int
    centers: np.ndarray
    active: np.ndarray
    alive: np.ndarray
    n_computed: int
    max_shift: float
    elapsed: float

    @property
    def n_active(self) -> int:
        """Number of centers still moving."""
        return int(self.active.sum())


@dataclass
class LoopState:
    """Every seed's state; the loop updates it in place after each iteration.

    ``iteration`` is the next iteration to run and ``elapsed`` the seconds spent in earlier
    runs (both non-zero when a fit resumes from a checkpoint). ``last_step`` and ``relax``
    hold each seed's last mean shift vector and the factor it was stretched by (see
    :func:`dshift._centers.relaxation`).
    """

    centers: np.ndarray
    active: np.ndarray
    alive: np.ndarray
    n_iter: np.ndarray
    intensity: np.ndarray
    local_bandwidth: np.ndarray
    last_step: np.ndarray
    relax: np.ndarray
    iteration: int = 0
    elapsed: float = 0.0

    @classmethod
    def start(cls, seeds: np.ndarray) -> LoopState:
        """The state before the first iteration: every seed active at its position."""
        m = len(seeds)
        return cls(
            centers=np.array(seeds, dtype=np.float64, copy=True),
            active=np.ones(m, dtype=bool),
            alive=np.ones(m, dtype=bool),
            n_iter=np.zeros(m, dtype=np.int64),
            intensity=np.zeros(m, dtype=np.float64),
            local_bandwidth=np.zeros(m, dtype=np.float64),
            last_step=np.zeros(np.shape(seeds), dtype=np.float64),
            relax=np.ones(m, dtype=np.float64),
        )


#: Largest size (bytes) of all chunks' bins, counted as if every row were a cell of its
#: own, for which they are computed without tasks and merged on the client.
CELLS_ON_CLIENT_BYTES = 2**25

#: Largest graph (bytes) spent embedding a small argument in every chunk task; a larger
#: one becomes a single task that the workers fetch (``_broadcast``).
EMBED_BYTES = 2**22


def reduce_stats(
    X: da.Array,
    centers: np.ndarray,
    bandwidth: float,
    kernel: int,
    columns: Columns,
    rows_sorted: bool = True,
    resident: Resident | LocalBlocks | None = None,
) -> kernels.ChunkStats:
    """Compute the total :func:`~dshift.kernels.chunk_stats` of X's chunks (one pass).

    ``columns`` says where X's rows keep their weights and bandwidths, and ``rows_sorted``
    whether rows are in spatial order within chunks: with the centers, they decide the
    iteration's :func:`~dshift.kernels.plan`, made here once and shipped to every chunk
    task. Only the (centers x (d + 3)) partial sums travel, added by :func:`compute_tree`;
    the client adds the last few only if they take at most ``EMBED_BYTES`` together (mode
    labels run from up to millions of grid cells at once).

    With ``resident`` (X's blocks held by a distributed cluster's workers, or in this
    process) and a small plan and partials, the blocks' partials are computed where the
    blocks are, without a graph (:mod:`dshift._resident`), and added here in the same
    tree: the same result, without the scheduling (the graph runs if that fails).
    """
    the_plan = kernels.plan(centers, bandwidth, kernel, columns, rows_sorted=rows_sorted)
    partial_bytes = 8 * len(centers) * (centers.shape[1] + 3)
    n_blocks = X.numblocks[0]
    if (
        resident is not None
        and partial_bytes * n_blocks <= EMBED_BYTES
        and _nbytes(the_plan) * resident.copies() <= EMBED_BYTES
    ):
        parts = resident.map_blocks(kernels.chunk_stats, the_plan)
        if parts is not None:
            return add_in_tree(parts, kernels.add_stats)
    stats = dask.delayed(kernels.chunk_stats, pure=True)
    shared = _broadcast(the_plan, n_blocks)
    parts = [stats(block, shared) for block in X.to_delayed().ravel()]
    small = partial_bytes * SPLIT_EVERY <= EMBED_BYTES
    return compute_tree(parts, kernels.add_stats, last_on_client=small)


def reduce_cells(
    X: da.Array,
    cell_size: float,
    weighted: bool = False,
    *,
    nearest: bool = False,
    sums: bool = False,
    merge: Callable[..., kernels.Cells] = kernels.merge_cells,
) -> kernels.Cells:
    """The occupied cells of X (:func:`~dshift.kernels.bin_points` of every chunk, one
    pass), merged by ``merge`` in a tree on the cluster: only the result comes back.

    Small data held in memory (at most ``CELLS_ON_CLIENT_BYTES`` even if every row had a
    cell of its own) are binned where they are held (:mod:`dshift._resident`) and merged
    here, in the same tree.
    """
    if X.shape[0] * (X.shape[1] + 2) * 8 <= CELLS_ON_CLIENT_BYTES:
        resident = Resident.of(X)
        if resident is not None:
            bin_block = partial(kernels.bin_points, nearest=nearest, sums=sums)
            parts = resident.map_blocks(bin_block, cell_size, weighted)
            if parts is not None:
                return add_in_tree(parts, merge)
    binned = dask.delayed(kernels.bin_points, pure=True)
    blocks = X.to_delayed().ravel()
    parts = [binned(block, cell_size, weighted, nearest=nearest, sums=sums) for block in blocks]
    return compute_tree(parts, merge, last_on_client=False)


def _nbytes(value) -> int:
    """Bytes of the numpy arrays in ``value`` and in the tuples it nests."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, tuple):
        return sum(_nbytes(v) for v in value)
    return 0


def _broadcast(value, n_tasks: int):
    """``value`` as an argument of ``n_tasks`` tasks: embedded in each if small, else one
    task of its own (a dependency each worker fetches once, another hop)."""
    if _nbytes(value) * n_tasks <= EMBED_BYTES:
        return value
    return dask.delayed(value, traverse=False)


def compute_tree(parts: list, combine, *, last_on_client: bool = True):
    """Compute delayed partial results and combine them into one value.

    ``combine`` adds up to ``SPLIT_EVERY`` partial results at a time in a tree of tasks on
    the cluster. With ``last_on_client`` the last ``SPLIT_EVERY`` or fewer are combined
    here, on the client, which saves a round trip through one worker (the tree, and so the
    result, is the same); that suits small, fixed-size partials (sums per center). Partials
    that can be as large as the result (cell counts) are combined on the cluster, so only
    the result comes back.
    """
    task = dask.delayed(combine, pure=True)
    parts = add_in_tree(parts, task, until=SPLIT_EVERY if last_on_client else 1)
    if not last_on_client:
        return dask.compute(parts, **scheduler_options())[0]
    return add_in_tree(list(dask.compute(*parts, **scheduler_options())), combine)


def add_in_tree(parts: list, combine: Callable, *, until: int = 1) -> Any:
    """Combine ``parts`` ``SPLIT_EVERY`` at a time, level by level, until at most ``until``
    remain, and return those; with ``until=1``, return the one value left. ``combine`` may
    build tasks (``dask.delayed``) or add values: the tree, and so every rounding, is the
    same, whatever ``until`` is and wherever the last levels run.

    Examples
    --------
    >>> add_in_tree(list(range(20)), lambda *p: sum(p))
    190
    >>> add_in_tree(list(range(20)), lambda *p: list(p), until=8)
    [[0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15], [16, 17, 18, 19]]
    """
    while len(parts) > until:
        parts = [combine(*parts[i : i + SPLIT_EVERY]) for i in range(0, len(parts), SPLIT_EVERY)]
    return parts[0] if until == 1 else parts


def check_finite(n_nonfinite: int) -> None:
    """Raise if the first pass met NaN, infinite or out-of-range values.

    Out of range means ``|x| > MAX_ABS`` (see :mod:`dshift._limits`): the kernels count the
    three kinds with one comparison, so the count does not tell them apart.
    """
    if n_nonfinite:
        raise ValueError(
            f"X contains {n_nonfinite} NaN or infinite value(s) or value(s) beyond dshift's "
            f"range {_limits.X_RANGE}; remove or impute them (e.g. "
            f"X[(abs(X) <= {_limits.MAX_ABS:g}).all(axis=1)]), or rescale X, before fitting."
        )


def mean_shift_loop(
    compute_stats: Callable[[np.ndarray], kernels.ChunkStats],
    state: LoopState,
    *,
    max_iter: int,
    threshold: float,
    shortcuts: bool = False,
) -> Generator[Step, None, LoopState]:
    """Run mean shift from ``state`` (updated in place), one iteration per yielded Step.

    ``compute_stats(centers)`` returns the total :class:`~dshift.kernels.ChunkStats` of
    the data for those centers (one pass). A seed stops when its shift is at most
    ``threshold`` or after iteration ``max_iter``; a seed with no point in reach is dropped.
    A seed's iteration count is the 0-based iteration at which it stopped, as in
    scikit-learn. Non-finite values are reported from the first iteration's pass. With
    ``shortcuts`` (see :func:`dshift._centers.shortcuts`), an active seed within
    ``threshold`` of another takes its place (:func:`dshift._centers.followers`), and a
    moving seed's step is stretched by :func:`dshift._centers.relaxation`; a seed that
    stops takes its plain step.
    """
    s = state
    start = time.perf_counter() - s.elapsed
    while s.iteration <= max_iter:
        it = s.iteration
        idx = np.flatnonzero(s.active)
        if idx.size == 0:
            break
        if shortcuts:
            lead = idx[followers(s.centers[idx], threshold)]
            for field in (s.centers, s.last_step, s.relax):
                field[idx] = field[lead]
        distinct, inverse = np.unique(s.centers[idx], axis=0, return_inverse=True)
        inverse = inverse.ravel()
        total = compute_stats(distinct)
        if it == 0:
            check_finite(total.n_nonfinite)
        weights = total.weights[inverse]
        empty = weights == 0
        dropped = idx[empty]
        s.alive[dropped] = False
        s.active[dropped] = False
        s.n_iter[dropped] = it
        moved = idx[~empty]
        step = total.sums[inverse[~empty]] / weights[~empty, None]
        new = s.centers[moved] + step
        shift = np.sqrt(((new - s.centers[moved]) ** 2).sum(axis=1))
        stops = (shift <= threshold) | (it == max_iter)
        if shortcuts:
            factor = relaxation(step, s.last_step[moved], s.relax[moved])
            factor[stops] = 1.0
            new = s.centers[moved] + factor[:, None] * step  # c + 1.0 * s is c + s, bit for bit
            s.last_step[moved] = step
            s.relax[moved] = factor
        s.centers[moved] = new
        s.intensity[moved] = total.counts[inverse[~empty]]
        s.local_bandwidth[moved] = total.bandwidths[inverse[~empty]] / weights[~empty]
        done = moved[stops]
        s.active[done] = False
        s.n_iter[done] = it
        s.iteration = it + 1
        s.elapsed = time.perf_counter() - start
        step = Step(
            iteration=it,
            centers=s.centers.copy(),
            active=s.active.copy(),
            alive=s.alive.copy(),
            n_computed=len(distinct),
            max_shift=float(shift.max()) if shift.size else 0.0,
            elapsed=s.elapsed,
        )
        logger.info(
            "iteration %d: %d centers computed, %d still active, max shift %.3g, %.2fs",
            it,
            step.n_computed,
            step.n_active,
            step.max_shift,
            step.elapsed,
        )
        yield step
    return s


def label_blocks(X: da.Array, centers: np.ndarray, bandwidth: float, cluster_all: bool) -> da.Array:
    """Lazy nearest-center labels (int32), chunked like X's rows."""
    return row_values(X, kernels.nearest_labels, centers, bandwidth, cluster_all, dtype=np.int32)


def labels_and_sizes(
    data: da.Array,
    d: int,
    n_clusters: int,
    labels_of: Callable[[da.Array], da.Array],
    weighted: bool = False,
) -> tuple[da.Array, da.Array]:
    """Lazy labels of the points (X's first d columns) and the (weighted) cluster sizes."""
    labels = labels_of(data[:, :d])
    weights = data[:, d] if weighted else None
    sizes = da.bincount(labels + 1, weights=weights, minlength=n_clusters + 1)[1:]
    return labels, sizes


def _block_labels_and_sizes(block: np.ndarray, *args: Any) -> tuple[np.ndarray, np.ndarray]:
    """:func:`labels_and_sizes` of one block, computed here (no scheduler), on the block
    itself (``da.from_array`` would first copy it)."""
    X = row_blocks(block, max(1, block.shape[0]))
    return dask.compute(*labels_and_sizes(X, *args), scheduler="sync")


def computed_labels_and_sizes(
    data: da.Array,
    d: int,
    n_clusters: int,
    labels_of: Callable[[da.Array], da.Array],
    weighted: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`labels_and_sizes`, computed: where ``data``'s blocks are held when it is
    persisted (one call to the workers, or threads here; see ``_resident``), else as a
    graph. The sizes are the blocks' sizes added in block order; labels gathered from
    held blocks are int64.

    Examples
    --------
    >>> X = da.from_array(np.array([[0.0], [0.2], [5.0]]), chunks=2).persist()
    >>> nearest = partial(label_blocks, centers=np.array([[0.0], [5.0]]), bandwidth=1.0,
    ...                   cluster_all=True)
    >>> computed_labels_and_sizes(X, 1, 2, nearest)
    (array([0, 0, 1]), array([2, 1]))
    """
    args = (d, n_clusters, labels_of, weighted)
    resident = Resident.of(data)
    parts = None if resident is None else resident.map_blocks(_block_labels_and_sizes, *args)
    if parts is None:
        return dask.compute(*labels_and_sizes(data, *args), **scheduler_options())
    sizes = parts[0][1].copy()
    for _, block_sizes in parts[1:]:
        sizes += block_sizes
    # int64, the labels' dtype for users (``_inputs.Kind.labels``): one allocation of the
    # joined labels rather than an int32 one and then its int64 copy
    return np.concatenate([labels for labels, _ in parts], dtype=np.int64), sizes
