"""The stages of a fit after its loop: the final centers (:func:`final_centers`), the labels
(:func:`labeller`, :func:`labels_and_sizes_of`), the inputs verified once more
(:func:`verified_inputs`) and the fitted attributes (:func:`fitted_attributes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np

from dshift import _centers, kernels
from dshift._fit import LoopPoints, Run, grid_points
from dshift._fit_input import ColumnOf, FitInput
from dshift._iterate import (
    LoopState,
    computed_labels_and_sizes,
    label_blocks,
    labels_and_sizes,
)
from dshift._modes import mode_label_blocks, mode_table
from dshift._placement import Placement
from dshift._zarr_input import inputs_of, verify_unchanged

if TYPE_CHECKING:
    from dshift._estimator import MeanShift


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
    >>> from dshift._fit_input import place, prepare_input
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
        kernel=kernels.KERNELS[ms.kernel],
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

    For in-memory input both are computed at once (the labels once; see
    :func:`~dshift._iterate.computed_labels_and_sizes`); otherwise the labels stay lazy and
    only the sizes are computed.

    Examples
    --------
    >>> from dshift import MeanShift
    >>> from dshift._fit_input import place, prepare_input
    >>> ms = MeanShift(bandwidth=1)
    >>> inp = prepare_input(ms, np.array([[0.0], [0.5], [3.0]]), None, None)
    >>> found = Found(np.array([[0.25], [3.0]]), np.array([2.0, 1.0]), 1.0)
    >>> labels_of = labeller(ms, inp, None, None, found, None)
    >>> labels_and_sizes_of(inp, place(ms, inp), labels_of, 2)
    (array([0, 0, 1]), array([2, 1]))
    """
    d, weighted = inp.columns.n_features, inp.columns.weighted
    if inp.in_memory:
        return placed.run(
            lambda: computed_labels_and_sizes(placed.data, d, n_clusters, labels_of, weighted)
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
    >>> from dshift._fit_input import place, prepare_input
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
    >>> from dshift._fit_input import place, prepare_input
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
        "feature_names_in_": inp.kind.feature_names,
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
        "labels_": inp.kind.labels(labels),
        # write_result writes these: unwrapping labels_ in X's kind could cost a pass
        "_lazy_labels": None if inp.in_memory else labels,
        "_sources": sources,  # write_result: refuse outputs over them, re-verify them
    }
