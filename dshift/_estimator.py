"""The MeanShift estimator (scikit-learn's contract) and the mean_shift function."""

from __future__ import annotations

import inspect
import logging
import math
import os
from collections.abc import Callable, Generator
from typing import Any

import dask
import dask.array as da
import numpy as np

from dshift import _centers, _checkpoint, _kernels, _limits
from dshift._bandwidth import estimate_bandwidth
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
from dshift._params import result_params, validate_params
from dshift._placement import PERSIST_FRACTION, Placement, available_memory
from dshift._seeding import check_seeds, make_seeds, sample_rows
from dshift._zarr_input import inputs_of, verify_unchanged

logger = logging.getLogger(__name__)

#: Points sampled for the k-th neighbour distances of ``adaptive_k``.
ADAPTIVE_SAMPLE = 5_000


class NotFittedError(ValueError, AttributeError):
    """Raised when ``predict`` is called before ``fit`` (as scikit-learn's)."""


class MeanShift:
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
        random sample of at most 10,000 points (seeded by ``random_state``, or 0).
    kernel : {"gaussian", "flat", "epanechnikov"}, default="gaussian"
        ``"flat"``: weight 1 at distance <= bandwidth, else 0 (scikit-learn's).
        ``"gaussian"``: ``exp(-d^2 / (2 bandwidth^2))``; slow to converge on flat density
        tops, raise ``max_iter`` there. ``"epanechnikov"``: ``max(0, 1 - d^2/bandwidth^2)``.
    seeds : array-like of shape (n_seeds, n_features), default=None
        Initial centers. When given, ``seeding`` is ignored.
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
        ``None`` picks ~16 MiB chunks. Dask arrays keep their own row chunks.
    persist : {"auto", True, False}, default="auto"
        Keep a copy of X in the cluster's memory for the iterations. ``"auto"``: numpy input
        always; dask/Zarr input when it takes at most 40% of the workers' total memory
        limit (of this machine's memory without a distributed client), otherwise it is
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
    labels_ : ndarray or dask.array.Array of shape (n_samples,), int32
        Index of each point's nearest center (-1 for orphans with ``cluster_all=False``).
        A numpy array for numpy input, a **lazy** dask array for dask/Zarr input.
    n_iter_ : int
        Maximum over the seeds of the iterations run (as scikit-learn).
    n_features_in_ : int
        Number of features seen in ``fit``.
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
    ``distributed.Client`` if one is active, the threaded scheduler otherwise. In-memory
    (numpy) input is persisted once on the scheduler; dask and Zarr input is kept in memory
    when it fits (see ``persist``) and streamed from its source every iteration otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> from dshift import MeanShift
    >>> X = np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]])
    >>> ms = MeanShift(bandwidth=2, kernel="flat").fit(X)
    >>> ms.labels_
    array([1, 1, 1, 0, 0, 0], dtype=int32)
    >>> ms.cluster_centers_.round(2)
    array([[3.33, 6.  ],
           [1.33, 0.67]])
    >>> ms.predict([[0, 0], [5, 5]])
    array([1, 0], dtype=int32)

    Weights (a point of weight w counts as w points; weight 0 as if absent):

    >>> ms = MeanShift(bandwidth=2, kernel="flat").fit(X, sample_weight=[1, 1, 1, 0, 0, 3])
    >>> ms.cluster_centers_.round(2)
    array([[3.  , 6.  ],
           [1.33, 0.67]])

    Grid mode, and labels by the mode each point's trajectory reaches:

    >>> MeanShift(bandwidth=2, kernel="flat", algorithm="grid").fit(X).labels_
    array([1, 1, 1, 0, 0, 0], dtype=int32)
    >>> MeanShift(bandwidth=2, kernel="flat", label_method="mode").fit(X).labels_
    array([1, 1, 1, 0, 0, 0], dtype=int32)

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
        kernel: str = "gaussian",
        seeds: Any = None,
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
    ) -> None:
        self.bandwidth = bandwidth
        self.kernel = kernel
        self.seeds = seeds
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

    # -- scikit-learn's estimator contract -----------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of this estimator (scikit-learn's contract)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> MeanShift:
        """Set parameters (scikit-learn's contract); returns self."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for MeanShift; valid parameters are {valid}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        changed = [
            f"{k}={v!r}"
            for k, v in self.get_params().items()
            if not (v is defaults[k] or (isinstance(v, (int, float, str)) and v == defaults[k]))
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

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
        X : array-like, dask array, zarr.Array or str of shape (n_samples, n_features)
            Points to cluster; a string is the path or fsspec URL of a Zarr array.
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
        Xd, in_memory = as_dask_array(X, row_chunks=self.row_chunks)
        check_seeds(*Xd.shape, self.seeds, self.seeding)
        params = None
        if self.checkpoint is not None:
            params = _checkpoint.params_fingerprint(self._result_params())
            _checkpoint.check_path(self.checkpoint)
        d = Xd.shape[1]
        weighted = sample_weight is not None
        source = with_weights(Xd, sample_weight) if weighted else Xd
        adaptive = point_bandwidth is not None or self.adaptive_k is not None
        knn = None  # computes the k-th neighbour bandwidths of the placed points
        if adaptive:
            given, knn, mean_h = self._point_bandwidths(Xd, point_bandwidth)
            if given is not None:
                source = append_columns(source, given)
        n_cols = d + int(weighted)  # the columns seeding reads: the points (and weights)
        persist = self.persist
        if persist == "auto":
            persist = in_memory or source.nbytes <= PERSIST_FRACTION * available_memory()
        # compact kernels skip far tiles; the Gaussian shares one exp per point among
        # nearby centers when a tile is small (unweighted points, one bandwidth: not the
        # weighted cells of grid mode)
        gaussian_plain = not (weighted or adaptive or self.algorithm == "grid")
        spatial = self.kernel != "gaussian" or gaussian_plain
        place = Placement(
            source,
            in_memory=in_memory,
            persist=persist,
            spatial_order=spatial,
            n_features=d,
            extra=knn,
            checkpoint=self.checkpoint,
        )
        self.resumed_from_ = None
        saved = data_id = None
        if params is not None:
            data_id = place.run(lambda: _checkpoint.data_fingerprint(place.data))
            saved = _checkpoint.load(self.checkpoint, params, data_id, n_features=d)
        if saved is not None:
            bandwidth = saved.bandwidth
            self.resumed_from_ = saved.state.iteration
            logger.info(
                "Resuming from checkpoint %s at iteration %d",
                self.checkpoint,
                saved.state.iteration,
            )
        elif adaptive:
            bandwidth = mean_h
        else:
            bandwidth = place.run(lambda: self._bandwidth(place.data[:, :d]))
        # The points the loop runs on: X itself, or its occupied grid cells as weighted points.
        points, points_weighted = place, weighted
        cells = density = cell_p = None
        if self.algorithm == "grid":
            cells, density, cell_weights = self._grid(place, bandwidth, weighted, spatial, d)
            points, points_weighted = density, True
            cell_p = cell_weights / cell_weights.sum()
        if saved is not None:
            seeds, seeding = saved.seeds, saved.seeding
            state, history = saved.state, saved.history
        else:
            seeds, seeding = points.run(
                lambda: make_seeds(
                    points.data[:, :n_cols] if adaptive else points.data,
                    binning_source=points.loop[:, :n_cols] if adaptive else points.loop,
                    seeds=self.seeds,
                    seeding=self.seeding,
                    n_seeds=self.n_seeds,
                    bin_size=bandwidth if self.bin_size is None else self.bin_size,
                    min_bin_freq=self.min_bin_freq,
                    random_state=self.random_state,
                    weighted=points_weighted,
                    # grid cells are drawn by weight (they are few and on the client)
                    sample_p=None if points is place else cell_p,
                )
            )
            state, history = LoopState.start(seeds), []
        kernel = _kernels.KERNELS[self.kernel]

        def compute_stats(centers: np.ndarray) -> _kernels.ChunkStats:
            return points.run(
                lambda: reduce_stats(
                    points.loop,
                    centers,
                    bandwidth,
                    kernel,
                    points_weighted,
                    adaptive,
                    points.rows_sorted,
                )
            )

        loop = mean_shift_loop(
            compute_stats, state, max_iter=self.max_iter, threshold=self.tol * bandwidth
        )
        for step in loop:
            history.append(step)
            if params is not None:
                _checkpoint.save(
                    self.checkpoint,
                    _checkpoint.Checkpoint(
                        params, data_id, bandwidth, seeding, seeds, state, history
                    ),
                )
            yield step
        result = state
        if not result.alive.any():
            raise ValueError(
                f"No point was within bandwidth={bandwidth:f} of any seed. Try a different "
                "seeding strategy or increase the bandwidth."
            )
        centers, intensity = _centers.order_by_intensity(
            result.centers[result.alive], result.intensity[result.alive]
        )
        radius: float | np.ndarray = bandwidth
        if adaptive:  # each center's own bandwidth: that of the points that pull it
            alive = result.alive
            local = dict(
                zip(map(tuple, result.centers[alive].tolist()), result.local_bandwidth[alive])
            )
            radius = np.array([local[tuple(c)] for c in centers.tolist()])
        keep = _centers.remove_near_duplicates(centers, radius)
        if adaptive:
            radius = radius[keep]
        # Labels use the centers exactly as returned, so predict(X) gives labels_ again.
        centers, intensity = centers[keep].astype(Xd.dtype), intensity[keep]
        cluster_all = bool(self.cluster_all)
        if self.label_method == "mode":
            if cells is None:
                cells, density, _ = self._grid(place, bandwidth, weighted, spatial, d)
            table = mode_table(
                cells,
                density,
                centers,
                bandwidth=bandwidth,
                kernel=kernel,
                max_iter=self.max_iter,
                threshold=self.tol * bandwidth,
                cluster_all=cluster_all,
            )
            cell_size = bandwidth * self.grid_fraction

            def labels_of(X: da.Array) -> da.Array:
                return mode_label_blocks(X, cell_size, table, centers, bandwidth, cluster_all)
        else:

            def labels_of(X: da.Array) -> da.Array:
                return label_blocks(X, centers, radius, cluster_all)

        n_clusters = len(centers)
        if in_memory:  # labels and sizes in one graph: the labels are computed once
            labels, sizes = place.run(
                lambda: dask.compute(
                    *labels_and_sizes(place.data, d, n_clusters, labels_of, weighted)
                )
            )
        else:
            labels, sizes = labels_and_sizes(source, d, n_clusters, labels_of, weighted)
            sizes = place.run(sizes.compute)
        # Every pass checked the chunks it read; one more listing catches a change that
        # raced with a read, so a mixed input never gives centers.
        sources = inputs_of(source)
        verify_unchanged(sources)

        self.n_features_in_ = Xd.shape[1]
        self.bandwidth_ = bandwidth
        self.center_bandwidths_ = np.broadcast_to(
            np.asarray(radius, dtype=np.float64), (len(centers),)
        ).copy()
        self.seeding_ = seeding
        self.seeds_ = seeds
        self.history_ = history
        self.n_iter_ = int(result.n_iter.max())
        self.intensity_ = intensity
        self.cluster_sizes_ = sizes if weighted else sizes.astype(np.int64)
        self.cluster_centers_ = centers
        self.labels_ = labels
        self._sources = sources  # write_result: refuse outputs over them, re-verify them

    def _grid(
        self, place: Placement, bandwidth: float, weighted: bool, spatial: bool, d: int
    ) -> tuple[np.ndarray, Placement, np.ndarray]:
        """X's occupied grid cells, the cells as weighted points placed in the cluster, and
        their weights."""
        cells, rows = place.run(
            lambda: grid_summary(place.loop, bandwidth * self.grid_fraction, weighted)
        )
        weights = rows[:, -1]
        rows = as_dask_array(rows, row_chunks=self.row_chunks)[0]
        density = Placement(rows, in_memory=True, persist=True, spatial_order=spatial, n_features=d)
        return cells, density, weights

    def _point_bandwidths(
        self, X: da.Array, given: Any
    ) -> tuple[da.Array | None, Callable[[da.Array], da.Array] | None, float]:
        """The per-point bandwidths: the user's column (checked) or a function computing
        the k-th neighbour distances of placed points (run on the workers); their mean."""
        if given is not None and self.adaptive_k is not None:
            raise ValueError(
                "Pass either adaptive_k or point_bandwidth, not both: point_bandwidth gives "
                "the bandwidths, adaptive_k computes them."
            )
        if self.bandwidth is not None:
            raise ValueError(
                "bandwidth must be None with adaptive bandwidths (adaptive_k or "
                "point_bandwidth): each point brings its own."
            )
        if self.algorithm != "exact" or self.label_method != "nearest":
            raise ValueError(
                "Adaptive bandwidths work with algorithm='exact' and label_method='nearest' "
                "only; drop adaptive_k/point_bandwidth or use those settings."
            )
        if given is not None:
            h = aligned_column(X, given, "point_bandwidth", positive=True)
            return h, None, float(h.mean().compute())
        n = min(X.shape[0], ADAPTIVE_SAMPLE)
        if self.adaptive_k > n:
            raise ValueError(
                f"adaptive_k={self.adaptive_k} exceeds the {n} points of the neighbour sample; "
                f"pass adaptive_k <= {n}."
            )
        rs = 0 if self.random_state is None else self.random_state
        sample = sample_rows(X, n, rs).astype(np.float64)
        check_finite(_limits.count_out_of_range(sample))
        own = _kernels.kth_neighbor_distances(sample, self.adaptive_k)
        mean = float(own.mean())
        if mean == 0:
            raise ValueError(
                f"The sampled points' {self.adaptive_k}-th neighbours are all duplicates "
                "(distance 0); raise adaptive_k."
            )
        if not _limits.bandwidth_in_range(mean):
            raise ValueError(
                f"The mean adaptive bandwidth {mean:g} is outside dshift's supported range "
                f"{_limits.BANDWIDTH_RANGE} (see dshift._limits); rescale X."
            )
        # duplicates would give a zero bandwidth
        floor = max(1e-3 * mean, _limits.MIN_BANDWIDTH)
        k, d = self.adaptive_k, X.shape[1]

        def knn(data: da.Array) -> da.Array:
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

        return None, knn, mean

    def _result_params(self) -> dict[str, Any]:
        """Parameters that decide the fitted result (not where or how it is computed)."""
        return result_params(self.get_params())

    def _bandwidth(self, X: da.Array) -> float:
        """The given bandwidth, or one estimated on a sample of X (refused outside the
        supported range, see :mod:`dshift._limits`; 0 is kept for the flat kernel)."""
        if self.bandwidth is not None:
            return float(self.bandwidth)
        bandwidth = estimate_bandwidth(
            X, random_state=0 if self.random_state is None else self.random_state
        )
        if bandwidth == 0 and self.kernel != "flat":
            raise ValueError(
                "The estimated bandwidth is 0 (the sampled points' neighbours are "
                f"duplicates); the {self.kernel} kernel needs bandwidth > 0: pass "
                "bandwidth explicitly."
            )
        if bandwidth != 0 and not _limits.bandwidth_in_range(bandwidth):  # 0: flat, duplicates
            factor = 10.0 ** -round(math.log10(bandwidth))
            raise ValueError(
                f"The estimated bandwidth {bandwidth:g} is outside dshift's supported range "
                f"{_limits.BANDWIDTH_RANGE} (see dshift._limits); rescale X (e.g. X * "
                f"{factor:g} gives a bandwidth near 1), or pass a bandwidth within the range."
            )
        return float(bandwidth)

    def predict(self, X: Any) -> np.ndarray | da.Array:
        """Index of the nearest cluster center for each point of X.

        Parameters
        ----------
        X : array-like, dask array, zarr.Array or str of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray or dask.array.Array of shape (n_samples,), int32
            numpy for numpy input; lazy dask for dask/Zarr input.
        """
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError(
                "This MeanShift instance is not fitted yet; call fit(X) before predict."
            )
        Xd, in_memory = as_dask_array(X, row_chunks=self.row_chunks, n_features=self.n_features_in_)
        labels = label_blocks(Xd, self.cluster_centers_, np.inf, True)
        return labels.compute() if in_memory else labels

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray | da.Array:
        """Fit X and return ``labels_``."""
        return self.fit(X).labels_


def mean_shift(
    X: Any, *, bandwidth: float | None = None, **params: Any
) -> tuple[np.ndarray, np.ndarray | da.Array]:
    """Mean shift clustering as a function: ``MeanShift(...).fit(X)``.

    Parameters
    ----------
    X : array-like, dask array, zarr.Array or str of shape (n_samples, n_features)
    bandwidth : float, default=None
    **params
        Any other :class:`MeanShift` parameter.

    Returns
    -------
    cluster_centers : ndarray of shape (n_clusters, n_features)
    labels : ndarray or dask.array.Array of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> from dshift import mean_shift
    >>> X = np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]])
    >>> centers, labels = mean_shift(X, bandwidth=2, kernel="flat")
    >>> labels
    array([1, 1, 1, 0, 0, 0], dtype=int32)
    """
    model = MeanShift(bandwidth=bandwidth, **params).fit(X)
    return model.cluster_centers_, model.labels_
