"""A fit's input: X, its weights and per-point bandwidths checked from their metadata and
packed into one array (:class:`~dshift._columns.Columns`), then placed in the cluster.

These are the first two stages of :meth:`dshift.MeanShift.iter_fit`
(:func:`prepare_input`, :func:`place`); the loop's stages are in :mod:`dshift._fit`, the
result's in :mod:`dshift._fit_result`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np

from dshift import _checkpoint, _fingerprint, _limits, kernels
from dshift._cluster import scheduler_options
from dshift._columns import Columns
from dshift._inputs import Kind, opened, read_points
from dshift._io import aligned_column, append_columns, row_values, with_weights
from dshift._iterate import (
    check_finite,
)
from dshift._params import result_params, seeding_of
from dshift._placement import PERSIST_FRACTION, Placement, available_memory
from dshift._seeding import check_seeds, sample_rows

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
    kind : Kind
        How X came in (in memory or not, feature names) and how its labels go out.
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
    kind: Kind
    source: da.Array
    columns: Columns
    params_fingerprint: dict[str, str] | None
    knn: ColumnOf | None = None
    mean_bandwidth: float | None = None

    @property
    def in_memory(self) -> bool:
        """X was in the client's memory (numpy, pandas, numpy-backed xarray)."""
        return self.kind.in_memory


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
    Xd, kind = read_points(
        X,
        row_chunks=ms.row_chunks,
        feature_dim=ms.feature_dim,
        storage_options=ms.storage_options,
    )
    sample_weight = opened(sample_weight, ms.storage_options)
    point_bandwidth = opened(point_bandwidth, ms.storage_options)
    check_seeds(*Xd.shape, ms.seeds, seeding_of(ms.get_params()))
    fingerprint = None
    if ms.checkpoint is not None:
        fingerprint = _fingerprint.params_fingerprint(result_params(ms.get_params()))
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
    return FitInput(Xd, kind, source, columns, fingerprint, knn, mean_h)


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
        return h, None, float(h.mean().compute(**scheduler_options()))
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
    own = kernels.kth_distances(sample, sample, k)
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
    return row_values(data, kernels.kth_distances, sample, k, floor, d, dtype=np.float64)


def spatial_order(ms: MeanShift, columns: Columns) -> bool:
    """Whether the kept copy's rows are Morton-ordered within chunks (see
    :func:`dshift.kernels.sorts_rows`): in grid mode the loop runs on weighted cells."""
    grid = ms.algorithm == "grid"
    loop_columns = columns._replace(weighted=columns.weighted or grid)
    return kernels.sorts_rows(kernels.KERNELS[ms.kernel], loop_columns)


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
        spatial_order=spatial_order(ms, inp.columns),
        n_features=inp.columns.n_features,
        extra=inp.knn,
        checkpoint=ms.checkpoint,
    )
