"""The stages of a fit's loop, in the order :meth:`dshift.MeanShift.iter_fit` runs them.

After the input is prepared and placed (:mod:`dshift._fit_input`): resume from a checkpoint
or start afresh (:func:`resume_or_start`) -> the bandwidth (:func:`loop_bandwidth`) -> the
points the loop runs on, X or its grid cells (:func:`loop_points`) -> the seeds
(:func:`start_run`) -> the loop, saving a checkpoint after every step (:func:`run_loop`).
The result's stages follow in :mod:`dshift._fit_result`. Each stage reads the estimator's
parameters and the records the earlier stages returned; none keeps state of its own.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np

from dshift import _checkpoint, _fingerprint, _limits, kernels
from dshift._bandwidth import estimate_bandwidth
from dshift._centers import shortcuts
from dshift._columns import Columns
from dshift._fit_input import FitInput, spatial_order
from dshift._grid import grid_summary
from dshift._io import as_dask_array
from dshift._iterate import (
    LoopState,
    Step,
    mean_shift_loop,
    reduce_stats,
)
from dshift._params import seeding_of
from dshift._placement import Placement
from dshift._seeding import make_seeds

if TYPE_CHECKING:
    from dshift._estimator import MeanShift


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
    >>> from dshift._fit_input import place, prepare_input
    >>> ms = MeanShift()
    >>> inp = prepare_input(ms, np.ones((4, 2)), None, None)
    >>> resume_or_start(ms, inp, place(ms, inp))
    Resume(path=None, params=None, data=None, saved=None)
    """
    if inp.params_fingerprint is None:
        return Resume()
    data_id = placed.run(lambda: _fingerprint.data_fingerprint(placed.data))
    saved = _checkpoint.load(
        ms.checkpoint, inp.params_fingerprint, data_id, n_features=inp.columns.n_features
    )
    return Resume(ms.checkpoint, inp.params_fingerprint, data_id, saved)


#: The estimate (scikit-learn's, sized for the flat kernel's radius) is scaled by this for
#: each kernel: a Gaussian of standard deviation h reaches far beyond a flat ball of radius
#: h, so at the flat estimate it merges clusters that the flat kernel keeps apart. The
#: factor 1/4 was chosen on scikit-learn's demo data and the benchmark blobs (adjusted Rand
#: indices in docs/features.md).
KERNEL_BANDWIDTH_SCALE = {"flat": 1.0, "epanechnikov": 1.0, "gaussian": 0.25}


def given_or_estimated_bandwidth(
    X: da.Array, bandwidth: float | None, kernel: str, random_state: Any
) -> float:
    """The given bandwidth, or one estimated on a sample of X, scaled for the kernel
    (:data:`KERNEL_BANDWIDTH_SCALE`).

    An estimate outside the supported range is refused (see :mod:`dshift._limits`); an
    estimate of 0 is kept for the flat kernel only.

    Examples
    --------
    >>> X = da.from_array(np.arange(10.0).reshape(-1, 1) ** 2 / 10, chunks=5)
    >>> given_or_estimated_bandwidth(X, 2, "flat", None)
    2.0
    >>> given_or_estimated_bandwidth(X, None, "flat", None)
    1.15
    >>> given_or_estimated_bandwidth(X, None, "gaussian", None)
    0.2875
    """
    if bandwidth is not None:
        return float(bandwidth)
    rs = 0 if random_state is None else random_state
    estimate = estimate_bandwidth(X, random_state=rs) * KERNEL_BANDWIDTH_SCALE[kernel]
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
    >>> from dshift._fit_input import place, prepare_input
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

    def stats(self, centers: np.ndarray, *, bandwidth: float, kernel: int) -> kernels.ChunkStats:
        """The total kernel sums of the points for ``centers``: the fit's one call of
        ``reduce_stats``.

        One pass over the points, run again if data were lost with a worker.

        Examples
        --------
        >>> from dshift import MeanShift
        >>> from dshift._fit_input import place, prepare_input
        >>> ms = MeanShift(bandwidth=1)
        >>> inp = prepare_input(ms, np.array([[0.0], [0.5], [3.0]]), None, None)
        >>> points = loop_points(ms, inp, place(ms, inp), 1.0)
        >>> total = points.stats(np.array([[0.0]]), bandwidth=1.0, kernel=kernels.FLAT)
        >>> total.counts, total.sums
        (array([2.]), array([[0.5]]))
        """
        return self.placed.run(
            lambda: reduce_stats(
                self.placed.loop,
                centers,
                bandwidth,
                kernel,
                self.columns,
                self.placed.rows_sorted,
                self.placed.resident,
            )
        )


def grid_points(ms: MeanShift, inp: FitInput, placed: Placement, bandwidth: float) -> LoopPoints:
    """X's occupied grid cells as weighted points, placed in the cluster.

    One pass over X bins it into cells of edge ``grid_fraction * bandwidth``; each cell is
    one point at its points' mean, weighing their (weighted) number.

    Examples
    --------
    >>> from dshift import MeanShift
    >>> from dshift._fit_input import place, prepare_input
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
        spatial_order=spatial_order(ms, inp.columns),
        n_features=d,
    )
    return LoopPoints(density, Columns(d, weighted=True), cells, weights / weights.sum())


def loop_points(ms: MeanShift, inp: FitInput, placed: Placement, bandwidth: float) -> LoopPoints:
    """The points the loop runs on: X's placement, or its grid cells.

    With ``algorithm="grid"`` the loop runs on the cells of :func:`grid_points`.

    Examples
    --------
    >>> from dshift import MeanShift
    >>> from dshift._fit_input import place, prepare_input
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
    >>> from dshift._fit_input import place, prepare_input
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
            seeding=seeding_of(ms.get_params()),
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
    >>> from dshift._fit_input import place, prepare_input
    >>> ms = MeanShift(bandwidth=1, kernel="flat")
    >>> inp = prepare_input(ms, np.array([[0.0], [0.5], [3.0]]), None, None)
    >>> points = loop_points(ms, inp, place(ms, inp), 1.0)
    >>> run = start_run(ms, points, 1.0, None)
    >>> [step.n_active for step in run_loop(ms, points, run, Resume())]
    [2, 0]
    """
    compute_stats = partial(
        points.stats, bandwidth=run.bandwidth, kernel=kernels.KERNELS[ms.kernel]
    )
    threshold = ms.tol * run.bandwidth
    quick = shortcuts(kernels.KERNELS[ms.kernel], points.columns.adaptive)
    for step in mean_shift_loop(
        compute_stats, run.state, max_iter=ms.max_iter, threshold=threshold, shortcuts=quick
    ):
        run.history.append(step)
        resume.save(run)
        yield step
