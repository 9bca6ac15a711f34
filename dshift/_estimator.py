"""The MeanShift estimator (scikit-learn's contract) and the mean_shift function."""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Hashable
from typing import Any

import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from dshift import _first_run, _fit, _fit_input, _fit_result
from dshift._cluster import (
    fits_here,
    in_this_process,
    local_threads,
    scheduler_options,
    steps_in_this_process,
)
from dshift._inputs import columns_stand_in, read_points
from dshift._iterate import Step, label_blocks
from dshift._params import result_params, validate_params
from dshift._progress import with_bar
from dshift._worker_heap import reusing_buffers

logger = logging.getLogger(__name__)


class MeanShift(ClusterMixin, BaseEstimator):
    """Mean shift clustering over chunked (larger than memory) arrays.

    Every iteration is one map/reduce over the chunks of X: each chunk computes, for the
    centers still moving, the kernel-weighted sum of its points and the sum of the weights;
    a tree reduction brings only those small sums to the client, which computes the new
    centers, freezes those that moved at most ``tol * bandwidth``, and computes centers that
    have become identical only once. Nothing of size n_samples comes back to the client.

    With ``kernel="flat"`` the result is scikit-learn's ``MeanShift`` on the same data and
    seeds: same centers (to floating point), labels, label numbering and ``n_iter_``.

    Parameters
    ----------
    bandwidth : float, default=None
        Kernel bandwidth (> 0). ``None`` estimates it with :func:`estimate_bandwidth` on a
        random sample of at most 10,000 points (seeded by ``random_state``, or 0): as
        scikit-learn up to 10,000 points. For the Gaussian kernel the estimate is divided
        by 4 (its bandwidth is a standard deviation, and its weights reach far beyond a
        flat ball of the same radius; see docs/features.md).
    kernel : {"flat", "gaussian", "epanechnikov"}, default="flat"
        ``"flat"``: weight 1 at distance <= bandwidth, else 0 (scikit-learn's).
        ``"gaussian"``: ``exp(-d^2 / (2 bandwidth^2))``; slow to converge on flat density
        tops, raise ``max_iter`` there. ``"epanechnikov"``: ``max(0, 1 - d^2/bandwidth^2)``.
    seeds : array-like of shape (n_seeds, n_features), default=None
        Initial centers. When given, ``seeding`` is ignored.
    bin_seeding : bool, default=False
        scikit-learn's name for ``seeding="bin"``: True seeds from the occupied bins.
        False leaves the choice to ``seeding``.
    seeding : {"auto", "all", "bin", "sample"}, default="auto"
        ``"all"``: every point (at most 20,000 points). ``"bin"``: occupied cells of a
        ``bin_size`` grid with at least ``min_bin_freq`` points (one chunk-wise pass).
        ``"sample"``: ``n_seeds`` random points. ``"auto"``: every point up to 10,000 points
        (scikit-learn's default), bins above, and a sample of ``n_seeds`` (default 1,000)
        when binning would give more than 10,000 seeds.
    n_seeds : int, default=None
        Number of seeds for ``seeding="sample"`` (default 1,000).
    bin_size : float, default=None
        Grid spacing for bin seeding; ``None`` uses the bandwidth.
    min_bin_freq : int, default=1
        Only cells with at least this many points give a seed.
    cluster_all : bool, default=True
        If False, points farther than the bandwidth from every center get label -1 (with
        ``label_method="mode"``: points whose trajectory ends farther than that; with
        adaptive bandwidths, each center's own local bandwidth is the limit).
    max_iter : int, default=300
        Maximum number of iterations per seed (counted as in scikit-learn).
    tol : float, default=1e-3
        A center stops when it moves at most ``tol * bandwidth`` in one iteration.
    random_state : int, numpy Generator or None, default=None
        Seed of the random sampling (``seeding="sample"``; the bandwidth estimate uses 0
        when None).
    row_chunks : int, default=None
        Rows per chunk for input that dshift chunks itself (numpy arrays, Zarr arrays);
        ``None`` picks ~16 MiB chunks (less on workers with little free memory, at least
        1 MiB). Dask arrays keep their own row chunks.
    persist : {"auto", True, False}, default="auto"
        Keep a copy of X in the cluster's memory for the iterations. ``"auto"``: numpy input
        always; dask/Zarr input when it takes at most 40% of the workers' free memory (the
        smallest worker's limit less what it uses, at least 224 MiB for numba and the
        compiled kernels, times the number of workers; this machine's memory without a
        distributed client), otherwise it is
        streamed from its source every iteration. The kept copy has its rows Morton-ordered
        within each chunk (the Gaussian's only without weights and adaptive bandwidths), so
        far tiles are skipped and nearby Gaussian centers share their exps.
    algorithm : {"exact", "grid"}, default="exact"
        ``"exact"``: iterate on the points. ``"grid"``: one pass bins the points into cells
        of edge ``grid_fraction * bandwidth``; the loop then runs on the occupied cells,
        each one point at its points' mean weighing their number (MeanShift++-style).
        Much faster in low dimensions (d <= ~6) when many points share cells; centers move
        by a fraction of the cell size (see docs/features.md). Labels are still the nearest
        center of every point.
    grid_fraction : float, default=0.25
        Cell edge for ``algorithm="grid"`` and ``label_method="mode"``, as a fraction of
        the bandwidth (0 < f <= 1).
    label_method : {"nearest", "mode"}, default="nearest"
        ``"nearest"``: each point gets its nearest center (scikit-learn's). ``"mode"``:
        the center its own mean-shift trajectory converges to, so non-convex clusters are
        kept whole. Computed out of core: the density is summarised by its grid cells (as
        in ``algorithm="grid"``), every cell's mean follows its trajectory over that
        density to a center, and a point takes its cell's label (one more pass).
        ``predict`` still labels new points by their nearest center.
    feature_dim : hashable, default=None
        xarray input: the dimension that holds the features (default: the last; a
        Dataset's variables are the features). Every other dimension is stacked into
        samples, so an image ``(y, x, band)`` clusters its pixels and ``labels_`` is a
        ``(y, x)`` DataArray.
    storage_options : dict, default=None
        For inputs given as URLs (``s3://``, ``gs://``...): passed to their fsspec file
        system (e.g. ``{"key": ..., "secret": ..., "endpoint_url": ...}`` for s3fs). Needs
        the file system's package: ``pip install 'dshift[s3]'`` or ``'dshift[gcs]'``.
    progress : {"auto", True, False}, default="auto"
        Show a progress bar of the converged seeds while fitting (tqdm: a widget in a
        notebook, text on stderr in a terminal). "auto": where a person watches (a Jupyter
        kernel, or stderr on a terminal); not in scripts whose output is redirected.
    n_jobs : int, default=None
        Threads of dask's local (threaded) scheduler for the fit and ``predict``, when no
        ``distributed.Client`` is active: -1 means every core, -2 every core but one.
        ``None`` keeps dask's default (every core). With a distributed client it has no
        effect: the cluster's workers do the work.
    adaptive_k : int, default=None
        Variable-bandwidth mean shift: each point's bandwidth h_i is its distance to its
        k-th nearest neighbour among a random sample of min(n_samples, 5,000) points (seeded
        by ``random_state``, or 0), so dense and sparse clusters are both found with one
        setting; pass ``fit(X, point_bandwidth=h)`` to give the bandwidths yourself. A
        point's weight for a center at distance r is ``K(r / h_i) / h_i^n_features``;
        ``bandwidth`` must be None, ``bandwidth_`` is the mean h_i (the scale of ``tol`` and
        of bin seeding), and each center keeps its local bandwidth (the kernel-weighted
        mean h_i of its points) in ``center_bandwidths_``: centers closer than it to a more
        intense one are merged, and with ``cluster_all=False`` points farther than it from
        their nearest center are orphans. Exact algorithm and nearest labels only.
    checkpoint : str or path-like, default=None
        A local file where the loop's state (centers, frozen flags, iteration counts,
        history) is saved after every iteration, atomically. If the file exists when
        ``fit`` starts, the fit resumes from it, and ends with the result an uninterrupted
        fit would give; a checkpoint made with other parameters (``persist``,
        ``row_chunks`` aside) or other data is refused with a ``ValueError``. Costs one
        extra pass over X at the start (the data's fingerprint). The per-iteration history
        records go to the directory ``PATH.steps``. Both are kept after the fit: fitting
        again resumes at its end; delete both to start afresh.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Centers, ordered by decreasing intensity (numpy, X's float dtype).
    labels_ : ndarray, dask array, xarray.DataArray or dask Series of shape (n_samples,)
        Index of each point's nearest center (-1 for orphans with ``cluster_all=False``),
        in X's kind: numpy int64 for in-memory input (numpy, pandas; as scikit-learn); a
        **lazy** int32 dask array for dask/Zarr input; a lazy DataArray over the sample
        dimensions, with their coordinates, for xarray input; a dask Series on X's index
        (named "labels") for a dask DataFrame or a Parquet path.
    n_iter_ : int
        Maximum over the seeds of the iterations run (as scikit-learn).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The features' names seen in ``fit`` (DataFrame columns, Dataset variables, the
        feature dimension's coordinate), when they are all strings; ``predict`` checks
        them as scikit-learn does.
    bandwidth_ : float
        The bandwidth used (given or estimated; with adaptive bandwidths, their mean).
    center_bandwidths_ : ndarray of shape (n_clusters,)
        The radius of each center (merging, orphans): ``bandwidth_``, or with adaptive
        bandwidths the local bandwidth at the center.
    intensity_ : ndarray of shape (n_clusters,)
        Points within the bandwidth of each center when it converged (the sort key); with
        ``sample_weight``, the sum of their weights.
    cluster_sizes_ : ndarray of shape (n_clusters,)
        Number of points labelled with each center (int64); with ``sample_weight``, the sum
        of their weights (float64).
    seeding_ : str
        The seeding used: "given", "all", "bin" or "sample".
    seeds_ : ndarray of shape (n_seeds, n_features)
        The seeds the loop started from.
    history_ : list of Step
        One record per iteration: every seed's center, which are still active, the number
        of distinct centers computed, the largest shift and the elapsed time.
    resumed_from_ : int or None
        With ``checkpoint``: the iteration the fit resumed at, None if it started afresh.

    See Also
    --------
    mean_shift : The same, as a function.
    estimate_bandwidth : The default bandwidth.

    Notes
    -----
    Per iteration the cost is one pass over the data and about ``n_samples * n_active``
    kernel evaluations, spread over the chunks; a task's memory is its chunk plus
    O(n_centers * n_features). The fit runs on the current dask scheduler: a
    ``distributed.Client`` if one is active, the threaded scheduler otherwise; in-memory
    input of at most 16 MiB as float64 is fitted on local threads even with a client (the
    dask config key ``dshift.fit-here-bytes`` sets the size; 0 sends every fit to the
    client). Larger in-memory (numpy) input is persisted once on the scheduler; dask and
    Zarr input is kept in memory when it fits (see ``persist``) and streamed from its source
    every iteration otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> from dshift import MeanShift
    >>> X = np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]])
    >>> ms = MeanShift(bandwidth=2, kernel="flat").fit(X)
    >>> ms.labels_
    array([1, 1, 1, 0, 0, 0])
    >>> ms.cluster_centers_.round(2)
    array([[3.33, 6.  ],
           [1.33, 0.67]])
    >>> ms.predict([[0, 0], [5, 5]])
    array([1, 0])

    Weights (a point of weight w counts as w points; weight 0 as if absent):

    >>> ms = MeanShift(bandwidth=2, kernel="flat").fit(X, sample_weight=[1, 1, 1, 0, 0, 3])
    >>> ms.cluster_centers_.round(2)
    array([[3.  , 6.  ],
           [1.33, 0.67]])

    Grid mode, and labels by the mode each point's trajectory reaches:

    >>> MeanShift(bandwidth=2, kernel="flat", algorithm="grid").fit(X).labels_
    array([1, 1, 1, 0, 0, 0])
    >>> MeanShift(bandwidth=2, kernel="flat", label_method="mode").fit(X).labels_
    array([1, 1, 1, 0, 0, 0])

    Adaptive bandwidths find a tight and a wide cluster with one setting:

    >>> rng = np.random.default_rng(0)
    >>> tight_and_wide = np.vstack([rng.normal(0, 0.1, (200, 2)), rng.normal(6, 1.5, (100, 2))])
    >>> ms = MeanShift(kernel="gaussian", adaptive_k=30).fit(tight_and_wide)
    >>> np.bincount(ms.labels_), ms.center_bandwidths_.round(1)
    (array([100, 200]), array([1.6, 0.1]))
    """

    def __init__(
        self,
        *,
        bandwidth: float | None = None,
        kernel: str = "flat",
        seeds: Any = None,
        bin_seeding: bool = False,
        seeding: str = "auto",
        n_seeds: int | None = None,
        bin_size: float | None = None,
        min_bin_freq: int = 1,
        cluster_all: bool = True,
        max_iter: int = 300,
        tol: float = 1e-3,
        random_state: int | np.random.Generator | None = None,
        row_chunks: int | None = None,
        persist: bool | str = "auto",
        checkpoint: str | os.PathLike | None = None,
        algorithm: str = "exact",
        grid_fraction: float = 0.25,
        label_method: str = "nearest",
        adaptive_k: int | None = None,
        n_jobs: int | None = None,
        feature_dim: Hashable | None = None,
        progress: bool | str = "auto",
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.bandwidth = bandwidth
        self.kernel = kernel
        self.seeds = seeds
        self.bin_seeding = bin_seeding
        self.seeding = seeding
        self.n_seeds = n_seeds
        self.bin_size = bin_size
        self.min_bin_freq = min_bin_freq
        self.cluster_all = cluster_all
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.row_chunks = row_chunks
        self.persist = persist
        self.checkpoint = checkpoint
        self.algorithm = algorithm
        self.grid_fraction = grid_fraction
        self.label_method = label_method
        self.adaptive_k = adaptive_k
        self.n_jobs = n_jobs
        self.feature_dim = feature_dim
        self.progress = progress
        self.storage_options = storage_options

    # -- fitting -------------------------------------------------------------------------

    def _validate_params(self) -> None:
        """Check the parameters (:func:`dshift._params.validate_params`), before X is read."""
        validate_params(self.get_params())

    def fit(
        self, X: Any, y: Any = None, sample_weight: Any = None, point_bandwidth: Any = None
    ) -> MeanShift:
        """Cluster X.

        Parameters
        ----------
        X : array-like, dask array, zarr.Array, xarray, DataFrame or str
            Points to cluster, of shape (n_samples, n_features): numpy, a dask array, a
            Zarr array, an xarray DataArray (see ``feature_dim``) or Dataset, a pandas or
            dask DataFrame or Series, or a string: the path or fsspec URL of a Zarr array,
            or of Parquet data when it ends in ``.parquet``/``.pq``. Nothing of size
            n_samples reaches the client for dask, xarray-on-dask, Zarr and Parquet input
            (a dask DataFrame's partition lengths are computed first: one pass).
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like, dask array, zarr.Array or str of shape (n_samples,)
            Non-negative weight of each point: a point of weight w counts as w points (in
            the means, the intensities, bin seeding's counts and ``cluster_sizes_``); a
            point of weight 0 is as if absent (it still gets a label). The bandwidth
            estimate ignores the weights. Default: every point weighs 1.
        point_bandwidth : array-like, dask array, zarr.Array or str of shape (n_samples,)
            Each point's own bandwidth (> 0), for variable-bandwidth mean shift (see
            ``adaptive_k``); ``bandwidth`` must then be None.

        Returns
        -------
        self : MeanShift
            The fitted estimator.
        """
        for _ in self.iter_fit(X, sample_weight=sample_weight, point_bandwidth=point_bandwidth):
            pass
        return self

    def iter_fit(
        self, X: Any, sample_weight: Any = None, point_bandwidth: Any = None
    ) -> Generator[Step, None, None]:
        """Fit X, yielding a :class:`Step` after every iteration (for live progress).

        The estimator is fitted once the generator is exhausted.

        Examples
        --------
        >>> import numpy as np
        >>> from dshift import MeanShift
        >>> X = np.array([[1.0, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]])
        >>> ms = MeanShift(bandwidth=2, kernel="flat")
        >>> [(s.iteration, s.n_active) for s in ms.iter_fit(X)]
        [(0, 6), (1, 2), (2, 0)]
        >>> len(ms.cluster_centers_)
        2
        """
        self._validate_params()
        with local_threads(self.n_jobs):
            yield from self._fit_stages(X, sample_weight, point_bandwidth)

    def _fit_stages(
        self, X: Any, sample_weight: Any, point_bandwidth: Any
    ) -> Generator[Step, None, None]:
        """The fit's stages, in order (``iter_fit`` without the scheduler's setting)."""
        inp = _fit_input.prepare_input(self, X, sample_weight, point_bandwidth)
        stages = self._placed_stages(inp)
        if fits_here(inp.in_memory, inp.source.size):
            stages = steps_in_this_process(stages, self.n_jobs)
        else:
            stages = reusing_buffers(stages)
        yield from stages

    def _placed_stages(self, inp: _fit_input.FitInput) -> Generator[Step, None, None]:
        """The stages from placing the checked input on."""
        _first_run.prepare(self.progress, inp.Xd.dtype)
        placed = _fit_input.place(self, inp)
        self.resumed_from_ = None
        resume = _fit.resume_or_start(self, inp, placed)
        if resume.saved is not None:
            self.resumed_from_ = resume.saved.state.iteration
            logger.info(
                "Resuming from checkpoint %s at iteration %d", self.checkpoint, self.resumed_from_
            )
        bandwidth = _fit.loop_bandwidth(self, inp, placed, resume.saved)
        points = _fit.loop_points(self, inp, placed, bandwidth)
        run = _fit.start_run(self, points, bandwidth, resume.saved)
        yield from with_bar(_fit.run_loop(self, points, run, resume), len(run.seeds), self.progress)
        found = _fit_result.final_centers(run, inp.columns.adaptive, inp.Xd.dtype)
        labels_of = _fit_result.labeller(self, inp, placed, points, found, run)
        labels, sizes = _fit_result.labels_and_sizes_of(inp, placed, labels_of, len(found.centers))
        sources = _fit_result.verified_inputs(inp)
        fitted = _fit_result.fitted_attributes(inp, run, found, labels, sizes, sources)
        for name, value in fitted.items():
            setattr(self, name, value)
        if self.feature_names_in_ is None:
            del self.feature_names_in_

    def _result_params(self) -> dict[str, Any]:
        """Parameters that decide the fitted result (not where or how it is computed)."""
        return result_params(self.get_params())

    def predict(self, X: Any) -> np.ndarray | da.Array:
        """Index of the nearest cluster center for each point of X.

        Parameters
        ----------
        X : any input ``fit`` takes, with the features seen in ``fit``

        Returns
        -------
        labels : ndarray, dask array, xarray.DataArray or dask Series of shape (n_samples,)
            In X's kind, as ``labels_`` (numpy int64 for in-memory input, lazy otherwise).
        """
        check_is_fitted(self)
        Xd, kind = read_points(
            X,
            row_chunks=self.row_chunks,
            n_features=self.n_features_in_,
            feature_dim=self.feature_dim,
            storage_options=self.storage_options,
        )
        validate_data(
            self,
            columns_stand_in(kind.feature_names, Xd.shape[1]),
            reset=False,
            skip_check_array=True,
        )
        labels = label_blocks(Xd, self.cluster_centers_, np.inf, True)
        if not kind.in_memory:
            return kind.labels(labels)
        here = fits_here(True, Xd.size)
        with in_this_process(self.n_jobs) if here else local_threads(self.n_jobs):
            return kind.labels(labels.compute(**scheduler_options()))

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray | da.Array:
        """Fit X and return ``labels_``."""
        return self.fit(X).labels_


def mean_shift(
    X: Any, *, bandwidth: float | None = None, **params: Any
) -> tuple[np.ndarray, np.ndarray | da.Array]:
    """Mean shift clustering as a function: ``MeanShift(...).fit(X)``.

    Parameters
    ----------
    X : any input ``MeanShift.fit`` takes
    bandwidth : float, default=None
    **params
        Any other :class:`MeanShift` parameter.

    Returns
    -------
    cluster_centers : ndarray of shape (n_clusters, n_features)
    labels : as ``MeanShift.labels_``

    Examples
    --------
    >>> import numpy as np
    >>> from dshift import mean_shift
    >>> X = np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]])
    >>> centers, labels = mean_shift(X, bandwidth=2, kernel="flat")
    >>> labels
    array([1, 1, 1, 0, 0, 0])
    """
    model = MeanShift(bandwidth=bandwidth, **params).fit(X)
    return model.cluster_centers_, model.labels_
