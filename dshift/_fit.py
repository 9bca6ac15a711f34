"""The stages of a fit, in the order :meth:`dshift.MeanShift.iter_fit` runs them.

prepare the input (:func:`prepare_input`) -> place it (:func:`place`) -> resume from a
checkpoint or start afresh (:func:`resume_or_start`) -> the bandwidth
(:func:`loop_bandwidth`) -> the points the loop runs on, X or its grid cells
(:func:`loop_points`) -> the seeds (:func:`start_run`) -> the loop, saving a checkpoint
after every step (:func:`run_loop`) -> the final centers (:func:`final_centers`) -> the
labels (:func:`labeller`, :func:`labels_and_sizes_of`) -> the fitted attributes
(:func:`fitted_attributes`). Each stage reads the estimator's parameters and the records
the earlier stages returned; none keeps state of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import dask
import dask.array as da
import numpy as np

from dshift import _centers, _checkpoint, _kernels, _limits
from dshift._bandwidth import estimate_bandwidth
from dshift._columns import Columns
from dshift._grid import grid_summary
from dshift._io import aligned_column, append_columns, as_dask_array, with_weights
from dshift._iterate import (
    LoopState,
    Step,
    check_finite,
    label_blocks,
    labels_and_sizes,
    mean_shift_loop,
    reduce_stats,
)
from dshift._modes import mode_label_blocks, mode_table
from dshift._params import result_params
from dshift._placement import PERSIST_FRACTION, Placement, available_memory
from dshift._seeding import check_seeds, make_seeds, sample_rows
from dshift._zarr_input import inputs_of, verify_unchanged

if TYPE_CHECKING:
    from dshift._estimator import MeanShift

#: Points sampled for the k-th neighbour distances of ``adaptive_k``.
ADAPTIVE_SAMPLE = 5_000

#: A function of a chunked array giving a lazy column (labels, per-point bandwidths).
ColumnOf = Callable[[da.Array], da.Array]


@dataclass(frozen=True)
class FitInput:
    """X as a fit reads it, checked from its metadata, before anything is placed.

    Attributes
    ----------
    Xd : dask.array.Array
        X's features, row-chunked, float32 or float64.
    in_memory : bool
        X was an in-memory (numpy-like) array.
    source : dask.array.Array
        The packed array the fit reads: the features, then the columns ``columns`` names
        (weights, given per-point bandwidths).
    columns : Columns
        Where each packed column is (per-point bandwidths computed by ``knn`` included).
    params_fingerprint : dict of str to str or None
        The checkpoint's fingerprint of the parameters; None without a checkpoint.
    knn : callable or None
        Computes the k-th neighbour bandwidths of the placed points (``adaptive_k``).
    mean_bandwidth : float or None
        The mean per-point bandwidth, with adaptive bandwidths.
    """

    Xd: da.Array
    in_memory: bool
    source: da.Array
    columns: Columns
    params_fingerprint: dict[str, str] | None
    knn: ColumnOf | None = None
    mean_bandwidth: float | None = None


def prepare_input(ms: MeanShift, X: Any, sample_weight: Any, point_bandwidth: Any) -> FitInput:
    """Check X, the seeds, the checkpoint's path and the extra columns; pack them.

    Everything here is known from metadata (or, for ``adaptive_k``, from a sample), so
    these errors come before X is read or kept in memory.

    Parameters
    ----------
    ms : MeanShift
        The estimator, its parameters validated.
    X, sample_weight, point_bandwidth
        As given to :meth:`~dshift.MeanShift.fit`.

    Returns
    -------
    FitInput

    Examples
    --------
    >>> from dshift import MeanShift
    >>> inp = prepare_input(MeanShift(), np.ones((4, 2)), [1, 2, 0, 1], None)
    >>> inp.columns, inp.source.shape, inp.in_memory
    (Columns(n_features=2, weighted=True, adaptive=False), (4, 3), True)
    """
    Xd, in_memory = as_dask_array(X, row_chunks=ms.row_chunks)
    check_seeds(*Xd.shape, ms.seeds, ms.seeding)
    fingerprint = None
    if ms.checkpoint is not None:
        fingerprint = _checkpoint.params_fingerprint(result_params(ms.get_params()))
        _checkpoint.check_path(ms.checkpoint)
    weighted = sample_weight is not None
    source = with_weights(Xd, sample_weight) if weighted else Xd
    adaptive = point_bandwidth is not None or ms.adaptive_k is not None
    columns = Columns(Xd.shape[1], weighted=weighted, adaptive=adaptive)
    knn = mean_h = None
    if adaptive:
        given, knn, mean_h = point_bandwidths(ms, Xd, point_bandwidth)
        if given is not None:
            source = append_columns(source, given)
    return FitInput(Xd, in_memory, source, columns, fingerprint, knn, mean_h)


def _check_adaptive(ms: MeanShift, given: Any) -> None:
    """Refuse the parameters adaptive bandwidths do not work with."""
    if given is not None and ms.adaptive_k is not None:
        raise ValueError(
            "Pass either adaptive_k or point_bandwidth, not both: point_bandwidth gives "
            "the bandwidths, adaptive_k computes them."
        )
    if ms.bandwidth is not None:
        raise ValueError(
            "bandwidth must be None with adaptive bandwidths (adaptive_k or "
            "point_bandwidth): each point brings its own."
        )
    if ms.algorithm != "exact" or ms.label_method != "nearest":
        raise ValueError(
            "Adaptive bandwidths work with algorithm='exact' and label_method='nearest' "
            "only; drop adaptive_k/point_bandwidth or use those settings."
        )


def point_bandwidths(
    ms: MeanShift, X: da.Array, given: Any
) -> tuple[da.Array | None, ColumnOf | None, float]:
    """The per-point bandwidths and their mean.

    Parameters
    ----------
    ms : MeanShift
        The estimator (``adaptive_k``, ``random_state``; checked against the others).
    X : dask.array.Array
        The points.
    given : array-like or None
        The user's ``point_bandwidth``.

    Returns
    -------
    column : dask.array.Array or None
        The user's bandwidths, checked and chunked like X, if given.
    knn : callable or None
        Otherwise a function computing the k-th neighbour distances of placed points (run
        on the workers).
    mean : float
        The mean bandwidth.

    Examples
    --------
    >>> from dshift import MeanShift
    >>> X = da.from_array(np.arange(8.0).reshape(4, 2), chunks=2)
    >>> column, knn, mean = point_bandwidths(MeanShift(), X, [1.0, 2.0, 2.0, 3.0])
    >>> knn is None, mean
    (True, 2.0)
    """
    _check_adaptive(ms, given)
    if given is not None:
        h = aligned_column(X, given, "point_bandwidth", positive=True)
        return h, None, float(h.mean().compute())
    knn, mean = knn_bandwidths(X, ms.adaptive_k, ms.random_state)
    return None, knn, mean


def knn_bandwidths(X: da.Array, k: int, random_state: Any) -> tuple[ColumnOf, float]:
    """Bandwidths from the k-th nearest neighbour among a sample of X.

    Parameters
    ----------
    X : dask.array.Array
        The points.
    k : int
        ``adaptive_k`` (the point itself is its 1st neighbour).
    random_state : int, numpy Generator or None
        Seeds the sample (0 when None).

    Returns
    -------
    knn : callable
        ``knn(data)``: the lazy column of each row's distance to its k-th neighbour among
        the sample (at least 1e-3 times the mean, so duplicates get a bandwidth).
    mean : float
        The mean of the sample's own k-th neighbour distances.

    Examples
    --------
    >>> X = da.from_array(np.array([[0.0], [1.0], [3.0], [6.0]]), chunks=2)
    >>> knn, mean = knn_bandwidths(X, 2, 0)
    >>> mean, knn(X).compute().tolist()
    (1.75, [1.0, 1.0, 2.0, 3.0])
    """
    n = min(X.shape[0], ADAPTIVE_SAMPLE)
    if k > n:
        raise ValueError(
            f"adaptive_k={k} exceeds the {n} points of the neighbour sample; "
            f"pass adaptive_k <= {n}."
        )
    rs = 0 if random_state is None else random_state
    sample = sample_rows(X, n, rs).astype(np.float64)
    check_finite(_limits.count_out_of_range(sample))
    own = _kernels.kth_neighbor_distances(sample, k)
    mean = float(own.mean())
    if mean == 0:
        raise ValueError(
            f"The sampled points' {k}-th neighbours are all duplicates "
            "(distance 0); raise adaptive_k."
        )
    if not _limits.bandwidth_in_range(mean):
        raise ValueError(
            f"The mean adaptive bandwidth {mean:g} is outside dshift's supported range "
            f"{_limits.BANDWIDTH_RANGE} (see dshift._limits); rescale X."
        )
    # duplicates would give a zero bandwidth
    floor = max(1e-3 * mean, _limits.MIN_BANDWIDTH)
    return partial(_kth_distances, sample=sample, k=k, floor=floor, d=X.shape[1]), mean


def _kth_distances(data: da.Array, *, sample: np.ndarray, k: int, floor: float, d: int) -> da.Array:
    """The lazy column of each row's distance to its k-th neighbour among ``sample``."""
    return data.map_blocks(
        _kernels.kth_distances_to,
        sample,
        k,
        floor,
        d,
        drop_axis=1,
        dtype=np.float64,
        meta=np.empty(0, dtype=np.float64),
    )


def _spatial_order(kernel: str, algorithm: str, columns: Columns) -> bool:
    """Whether the kept copy's rows are Morton-ordered within chunks.

    Compact kernels skip far tiles; the Gaussian shares one exp per point among nearby
    centers when a tile is small (unweighted points, one bandwidth: not the weighted cells
    of grid mode).
    """
    gaussian_plain = not (columns.weighted or columns.adaptive or algorithm == "grid")
    return kernel != "gaussian" or gaussian_plain


def place(ms: MeanShift, inp: FitInput) -> Placement:
    """Place the packed input: kept in the cluster's memory (``persist``) or streamed.

    Examples
    --------
    >>> from dshift import MeanShift
    >>> ms = MeanShift(kernel="flat")
    >>> placed = place(ms, prepare_input(ms, np.ones((4, 2)), None, None))
    >>> placed.rows_sorted, placed.data.shape
    (True, (4, 2))
    """
    persist = ms.persist
    if persist == "auto":
        persist = inp.in_memory or inp.source.nbytes <= PERSIST_FRACTION * available_memory()
    return Placement(
        inp.source,
        in_memory=inp.in_memory,
        persist=persist,
        spatial_order=_spatial_order(ms.kernel, ms.algorithm, inp.columns),
        n_features=inp.columns.n_features,
        extra=inp.knn,
        checkpoint=ms.checkpoint,
    )


@dataclass
class Run:
    """The loop's inputs and state: what a checkpoint saves after every step.

    Attributes
    ----------
    bandwidth : float
        The bandwidth (given, estimated, saved, or the mean per-point bandwidth).
    seeds : ndarray of shape (n_seeds, n_features)
        The seeds the loop started from.
    seeding : str
        The seeding used.
    state : LoopState
        Every seed's state, updated in place by the loop.
    history : list of Step
        One record per iteration run so far.
    """

    bandwidth: float
    seeds: np.ndarray
    seeding: str
    state: LoopState
    history: list[Step] = field(default_factory=list)


@dataclass(frozen=True)
class Resume:
    """The checkpoint side of a fit: where it is saved, and what it held at the start.

    Attributes
    ----------
    path : str or path-like or None
        The checkpoint file; None without a checkpoint.
    params : dict of str to str or None
        The fingerprint of the parameters that decide the result.
    data : str or None
        The fingerprint of the data.
    saved : Checkpoint or None
        What the file held when the fit started, if it existed.
    """

    path: Any = None
    params: dict[str, str] | None = None
    data: str | None = None
    saved: _checkpoint.Checkpoint | None = None

    def save(self, run: Run) -> None:
        """Save the run's state after a step (nothing without a checkpoint).

        Examples
        --------
        >>> import os, tempfile
        >>> run = Run(1.0, np.zeros((1, 2)), "given", LoopState.start(np.zeros((1, 2))))
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     Resume(os.path.join(folder, "fit.ckpt"), {"kernel": "'flat'"}, "id").save(run)
        ...     sorted(os.listdir(folder))
        ['fit.ckpt', 'fit.ckpt.steps']
        """
        if self.params is None:
            return
        ckpt = _checkpoint.Checkpoint(
            self.params, self.data, run.bandwidth, run.seeding, run.seeds, run.state, run.history
        )
        _checkpoint.save(self.path, ckpt)


def resume_or_start(ms: MeanShift, inp: FitInput, placed: Placement) -> Resume:
    """With a checkpoint, fingerprint the data (one pass) and load what was saved, if any.

    A checkpoint made with other parameters or data is refused with a ``ValueError``.

    Examples
    --------
    >>> from dshift import MeanShift
    >>> ms = MeanShift()
    >>> inp = prepare_input(ms, np.ones((4, 2)), None, None)
    >>> resume_or_start(ms, inp, place(ms, inp))
    Resume(path=None, params=None, data=None, saved=None)
    """
    if inp.params_fingerprint is None:
        return Resume()
    data_id = placed.run(lambda: _checkpoint.data_fingerprint(placed.data))
    saved = _checkpoint.load(
        ms.checkpoint, inp.params_fingerprint, data_id, n_features=inp.columns.n_features
    )
    return Resume(ms.checkpoint, inp.params_fingerprint, data_id, saved)


def given_or_estimated_bandwidth(
    X: da.Array, bandwidth: float | None, kernel: str, random_state: Any
) -> float:
    """The given bandwidth, or one estimated on a sample of X.

    An estimate outside the supported range is refused (see :mod:`dshift._limits`); an
    estimate of 0 is kept for the flat kernel only.

    Examples
    --------
    >>> X = da.from_array(np.arange(10.0).reshape(-1, 1) ** 2 / 10, chunks=5)
    >>> given_or_estimated_bandwidth(X, 2, "flat", None)
    2.0
    >>> given_or_estimated_bandwidth(X, None, "flat", None)
    1.15
    """
    if bandwidth is not None:
        return float(bandwidth)
    rs = 0 if random_state is None else random_state
    estimate = estimate_bandwidth(X, random_state=rs)
    if estimate == 0 and kernel != "flat":
        raise ValueError(
            "The estimated bandwidth is 0 (the sampled points' neighbours are "
            f"duplicates); the {kernel} kernel needs bandwidth > 0: pass "
            "bandwidth explicitly."
        )
    if estimate != 0 and not _limits.bandwidth_in_range(estimate):  # 0: flat, duplicates
        factor = 10.0 ** -round(math.log10(estimate))
        raise ValueError(
            f"The estimated bandwidth {estimate:g} is outside dshift's supported range "
            f"{_limits.BANDWIDTH_RANGE} (see dshift._limits); rescale X (e.g. X * "
            f"{factor:g} gives a bandwidth near 1), or pass a bandwidth within the range."
        )
    return float(estimate)


def loop_bandwidth(
    ms: MeanShift, inp: FitInput, placed: Placement, saved: _checkpoint.Checkpoint | None
) -> float:
    """The fit's bandwidth: the checkpoint's, the mean per-point one, given or estimated.

    Examples
    --------
    >>> from dshift import MeanShift
    >>> ms = MeanShift(bandwidth=2)
    >>> inp = prepare_input(ms, np.ones((4, 2)), None, None)
    >>> loop_bandwidth(ms, inp, place(ms, inp), None)
    2.0
    """
    if saved is not None:
        return saved.bandwidth
    if inp.columns.adaptive:
        return inp.mean_bandwidth
    d = inp.columns.n_features
    return placed.run(
        lambda: given_or_estimated_bandwidth(
            placed.data[:, :d], ms.bandwidth, ms.kernel, ms.random_state
        )
    )


@dataclass(frozen=True)
class LoopPoints:
    """The points the loop runs on: X itself, or its occupied grid cells as weighted points.

    Attributes
    ----------
    placed : Placement
        Their placement.
    columns : Columns
        Their packed columns (grid cells: the cell's mean point and its weight).
    cells : ndarray of shape (n_cells, n_features) or None
        With grid cells, their integer coordinates (in the order of ``placed``'s rows).
    sample_p : ndarray of shape (n_cells,) or None
        With grid cells, the probability of drawing each as a seed (its share of weight).
    """

    placed: Placement
    columns: Columns
    cells: np.ndarray | None = None
    sample_p: np.ndarray | None = None

    def stats(self, centers: np.ndarray, *, bandwidth: float, kernel: int) -> _kernels.ChunkStats:
        """The total kernel sums of the points for ``centers``: the fit's one call of
        ``reduce_stats``.

        One pass over the points, run again if data were lost with a worker.

        Examples
        --------
        >>> from dshift import MeanShift
        >>> ms = MeanShift(bandwidth=1)
        >>> inp = prepare_input(ms, np.array([[0.0], [0.5], [3.0]]), None, None)
        >>> points = loop_points(ms, inp, place(ms, inp), 1.0)
        >>> total = points.stats(np.array([[0.0]]), bandwidth=1.0, kernel=_kernels.KERNELS["flat"])
        >>> total.counts, total.sums
        (array([2.]), array([[0.5]]))
        """
        return self.placed.run(
            lambda: reduce_stats(
                self.placed.loop,
                centers,
                bandwidth,
                kernel,
                self.columns.weighted,
                self.columns.adaptive,
                self.placed.rows_sorted,
            )
        )


def grid_points(ms: MeanShift, inp: FitInput, placed: Placement, bandwidth: float) -> LoopPoints:
    """X's occupied grid cells as weighted points, placed in the cluster.

    One pass over X bins it into cells of edge ``grid_fraction * bandwidth``; each cell is
    one point at its points' mean, weighing their (weighted) number.

    Examples
    --------
    >>> from dshift import MeanShift
    >>> ms = MeanShift(bandwidth=1, algorithm="grid")
    >>> inp = prepare_input(ms, np.array([[0.1], [0.2], [3.0]]), None, None)
    >>> points = grid_points(ms, inp, place(ms, inp), 1.0)
    >>> points.cells.tolist(), points.sample_p.round(3).tolist()
    ([[0.0], [12.0]], [0.667, 0.333])
    """
    cells, rows = placed.run(
        lambda: grid_summary(placed.loop, bandwidth * ms.grid_fraction, inp.columns.weighted)
    )
    weights = rows[:, -1]
    rows = as_dask_array(rows, row_chunks=ms.row_chunks)[0]
    d = inp.columns.n_features
    density = Placement(
        rows,
        in_memory=True,
        persist=True,
        spatial_order=_spatial_order(ms.kernel, ms.algorithm, inp.columns),
        n_features=d,
    )
    return LoopPoints(density, Columns(d, weighted=True), cells, weights / weights.sum())


def loop_points(ms: MeanShift, inp: FitInput, placed: Placement, bandwidth: float) -> LoopPoints:
    """The points the loop runs on: X's placement, or its grid cells.

    With ``algorithm="grid"`` the loop runs on the cells of :func:`grid_points`.

    Examples
    --------
    >>> from dshift import MeanShift
    >>> ms = MeanShift(bandwidth=1)
    >>> inp = prepare_input(ms, np.ones((4, 2)), None, None)
    >>> loop_points(ms, inp, place(ms, inp), 1.0).columns
    Columns(n_features=2, weighted=False, adaptive=False)
    """
    if ms.algorithm == "grid":
        return grid_points(ms, inp, placed, bandwidth)
    return LoopPoints(placed, inp.columns)


def start_run(
    ms: MeanShift, points: LoopPoints, bandwidth: float, saved: _checkpoint.Checkpoint | None
) -> Run:
    """The checkpoint's run, or a fresh one from the seeds.

    Bin seeding takes one pass over the points; the other seedings read only a few rows.

    Examples
    --------
    >>> from dshift import MeanShift
    >>> ms = MeanShift(bandwidth=1)
    >>> inp = prepare_input(ms, np.array([[0.0], [0.5], [3.0]]), None, None)
    >>> run = start_run(ms, loop_points(ms, inp, place(ms, inp), 1.0), 1.0, None)
    >>> run.seeding, run.seeds.ravel().tolist(), run.state.iteration
    ('all', [0.0, 0.5, 3.0], 0)
    """
    if saved is not None:
        return Run(saved.bandwidth, saved.seeds, saved.seeding, saved.state, saved.history)
    placed, cols = points.placed, points.columns
    seeds, seeding = placed.run(
        lambda: make_seeds(
            placed.data[:, cols.seeding] if cols.adaptive else placed.data,
            binning_source=placed.loop[:, cols.seeding] if cols.adaptive else placed.loop,
            seeds=ms.seeds,
            seeding=ms.seeding,
            n_seeds=ms.n_seeds,
            bin_size=bandwidth if ms.bin_size is None else ms.bin_size,
            min_bin_freq=ms.min_bin_freq,
            random_state=ms.random_state,
            weighted=cols.weighted,
            # grid cells are drawn by weight (they are few and on the client)
            sample_p=points.sample_p,
        )
    )
    return Run(bandwidth, seeds, seeding, LoopState.start(seeds))


def run_loop(
    ms: MeanShift, points: LoopPoints, run: Run, resume: Resume
) -> Generator[Step, None, None]:
    """Run mean shift from the run's state, yielding a Step per iteration.

    Each step is added to the run's history and saved to the checkpoint before it is
    yielded, so a fit stopped between two steps resumes after the last one.

    Examples
    --------
    >>> from dshift import MeanShift
    >>> ms = MeanShift(bandwidth=1, kernel="flat")
    >>> inp = prepare_input(ms, np.array([[0.0], [0.5], [3.0]]), None, None)
    >>> points = loop_points(ms, inp, place(ms, inp), 1.0)
    >>> run = start_run(ms, points, 1.0, None)
    >>> [step.n_active for step in run_loop(ms, points, run, Resume())]
    [2, 0]
    """
    compute_stats = partial(
        points.stats, bandwidth=run.bandwidth, kernel=_kernels.KERNELS[ms.kernel]
    )
    threshold = ms.tol * run.bandwidth
    for step in mean_shift_loop(
        compute_stats, run.state, max_iter=ms.max_iter, threshold=threshold
    ):
        run.history.append(step)
        resume.save(run)
        yield step


@dataclass(frozen=True)
class Found:
    """The fitted centers, most intense first, near duplicates removed.

    Attributes
    ----------
    centers : ndarray of shape (n_clusters, n_features)
        In X's float dtype.
    intensity : ndarray of shape (n_clusters,)
        The (weighted) number of points within the bandwidth of each.
    radius : float or ndarray of shape (n_clusters,)
        The bandwidth, or with adaptive bandwidths each center's local bandwidth.
    """

    centers: np.ndarray
    intensity: np.ndarray
    radius: float | np.ndarray


def _local_bandwidths(state: LoopState, centers: np.ndarray) -> np.ndarray:
    """Each center's own bandwidth: that of the points that pull it.

    Among seeds that ended at the same center, the last one's wins.
    """
    alive = state.alive
    local = dict(zip(map(tuple, state.centers[alive].tolist()), state.local_bandwidth[alive]))
    return np.array([local[tuple(c)] for c in centers.tolist()])


def final_centers(run: Run, adaptive: bool, dtype: np.dtype) -> Found:
    """The fitted centers: the loop's, most intense first, near duplicates removed.

    A center within the radius of a more intense one is dropped.

    Raises
    ------
    ValueError
        If no seed had a point within reach.

    Examples
    --------
    >>> state = LoopState.start(np.array([[0.0], [0.25], [3.0]]))
    >>> state.intensity[:] = [2, 2, 1]
    >>> found = final_centers(Run(1.0, state.centers, "all", state), False, np.float32)
    >>> found.centers.ravel().tolist(), found.intensity.tolist()
    ([0.25, 3.0], [2.0, 1.0])
    """
    state = run.state
    if not state.alive.any():
        raise ValueError(
            f"No point was within bandwidth={run.bandwidth:f} of any seed. Try a different "
            "seeding strategy or increase the bandwidth."
        )
    centers, intensity = _centers.order_by_intensity(
        state.centers[state.alive], state.intensity[state.alive]
    )
    radius: float | np.ndarray = run.bandwidth
    if adaptive:
        radius = _local_bandwidths(state, centers)
    keep = _centers.remove_near_duplicates(centers, radius)
    if adaptive:
        radius = radius[keep]
    # Labels use the centers exactly as returned, so predict(X) gives labels_ again.
    return Found(centers[keep].astype(dtype), intensity[keep], radius)


def labeller(
    ms: MeanShift, inp: FitInput, placed: Placement, points: LoopPoints, found: Found, run: Run
) -> ColumnOf:
    """The function labelling a chunked array of points.

    By nearest center, or with ``label_method="mode"`` by where their grid cell's
    trajectory ends: that first computes the grid cells (if the loop did not run on them)
    and their trajectories.

    Examples
    --------
    >>> from dshift import MeanShift
    >>> ms = MeanShift(bandwidth=1)
    >>> found = Found(np.array([[0.0], [3.0]]), np.array([2.0, 1.0]), 1.0)
    >>> X = da.from_array(np.array([[0.4], [2.0]]), chunks=1)
    >>> labeller(ms, None, None, None, found, None)(X).compute()
    array([0, 1], dtype=int32)
    """
    cluster_all = bool(ms.cluster_all)
    if ms.label_method != "mode":
        return partial(
            label_blocks, centers=found.centers, bandwidth=found.radius, cluster_all=cluster_all
        )
    if points.cells is None:
        points = grid_points(ms, inp, placed, run.bandwidth)
    bandwidth = run.bandwidth
    table = mode_table(
        points.cells,
        points.placed,
        found.centers,
        bandwidth=bandwidth,
        kernel=_kernels.KERNELS[ms.kernel],
        max_iter=ms.max_iter,
        threshold=ms.tol * bandwidth,
        cluster_all=cluster_all,
    )
    return partial(
        mode_label_blocks,
        cell_size=bandwidth * ms.grid_fraction,
        table=table,
        centers=found.centers,
        bandwidth=bandwidth,
        cluster_all=cluster_all,
    )


def labels_and_sizes_of(
    inp: FitInput, placed: Placement, labels_of: ColumnOf, n_clusters: int
) -> tuple[np.ndarray | da.Array, np.ndarray]:
    """Every point's label and the (weighted) size of every cluster.

    For in-memory input both are computed in one graph (the labels once); otherwise the
    labels stay lazy and only the sizes are computed.

    Examples
    --------
    >>> from dshift import MeanShift
    >>> ms = MeanShift(bandwidth=1)
    >>> inp = prepare_input(ms, np.array([[0.0], [0.5], [3.0]]), None, None)
    >>> found = Found(np.array([[0.25], [3.0]]), np.array([2.0, 1.0]), 1.0)
    >>> labels_of = labeller(ms, inp, None, None, found, None)
    >>> labels_and_sizes_of(inp, place(ms, inp), labels_of, 2)
    (array([0, 0, 1], dtype=int32), array([2, 1]))
    """
    d, weighted = inp.columns.n_features, inp.columns.weighted
    if inp.in_memory:
        return placed.run(
            lambda: dask.compute(*labels_and_sizes(placed.data, d, n_clusters, labels_of, weighted))
        )
    labels, sizes = labels_and_sizes(inp.source, d, n_clusters, labels_of, weighted)
    return labels, placed.run(sizes.compute)


def verified_inputs(inp: FitInput) -> list[Any]:
    """The fit's Zarr inputs, listed once more.

    Every pass checked the chunks it read; this listing catches a change that raced with a
    read, so a mixed input never gives centers.

    Examples
    --------
    >>> from dshift import MeanShift
    >>> verified_inputs(prepare_input(MeanShift(), np.ones((4, 2)), None, None))
    []
    """
    sources = inputs_of(inp.source)
    verify_unchanged(sources)
    return sources


def fitted_attributes(
    inp: FitInput, run: Run, found: Found, labels: Any, sizes: np.ndarray, sources: list[Any]
) -> dict[str, Any]:
    """The fitted estimator's attributes, by name.

    Examples
    --------
    >>> from dshift import MeanShift
    >>> inp = prepare_input(MeanShift(), np.ones((3, 1)), None, None)
    >>> run = Run(1.0, np.ones((1, 1)), "all", LoopState.start(np.ones((1, 1))))
    >>> found = Found(np.ones((1, 1)), np.array([3.0]), 1.0)
    >>> attrs = fitted_attributes(inp, run, found, np.zeros(3), np.array([3.0]), [])
    >>> attrs["cluster_sizes_"], attrs["center_bandwidths_"], attrs["n_iter_"]
    (array([3]), array([1.]), 0)
    """
    weighted = inp.columns.weighted
    return {
        "n_features_in_": inp.Xd.shape[1],
        "bandwidth_": run.bandwidth,
        "center_bandwidths_": np.broadcast_to(
            np.asarray(found.radius, dtype=np.float64), (len(found.centers),)
        ).copy(),
        "seeding_": run.seeding,
        "seeds_": run.seeds,
        "history_": run.history,
        "n_iter_": int(run.state.n_iter.max()),
        "intensity_": found.intensity,
        "cluster_sizes_": sizes if weighted else sizes.astype(np.int64),
        "cluster_centers_": found.centers,
        "labels_": labels,
        "_sources": sources,  # write_result: refuse outputs over them, re-verify them
    }
