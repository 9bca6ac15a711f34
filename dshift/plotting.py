"""Plots of a fit (needs the ``plots`` extra: ``pip install dshift[plots]``).

The figure is drawn with matplotlib's object API (no pyplot, no backend switched), so
calling :func:`plot_fit` in a notebook leaves the notebook's own plotting alone.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from dshift import kernels
from dshift._io import as_dask_array
from dshift._seeding import sample_rows

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from dshift._estimator import MeanShift

#: Colours of the largest clusters, largest first: matplotlib's "tab10" without its grey,
#: the light ones darkened, so that each has a contrast of at least 3:1 on white and any
#: two (and each with OTHER_COLOUR and black) differ by at least 30 in CIELAB.
CLUSTER_COLOURS = (
    "#1f77b4",  # blue
    "#d97706",  # orange
    "#2ca02c",  # green
    "#d62728",  # red
    "#9467bd",  # purple
    "#8c564b",  # brown
    "#c2389a",  # pink
    "#8a8a00",  # olive
    "#0f8a99",  # teal
)
#: Colour of the clusters beyond the first len(CLUSTER_COLOURS).
OTHER_COLOUR = "#a0a0a0"
#: Colour of the points of no cluster (label -1, with ``cluster_all=False``).
ORPHAN_COLOUR = "#dcdcdc"
#: Most seed trajectories drawn (a random subset beyond this).
MAX_TRAJECTORIES = 2_000


def plot_fit(
    X: Any,
    model: MeanShift,
    path: str | os.PathLike,
    *,
    n_points: int = 20_000,
    dims: tuple[int, int] = (0, 1),
    random_state: int = 0,
) -> str:
    """Save the figure of :func:`fit_figure` as a PNG (written atomically).

    Parameters
    ----------
    X, model, n_points, dims, random_state
        As for :func:`fit_figure`.
    path : str or path-like
        Where to write the PNG.

    Returns
    -------
    path : str
    """
    fig = fit_figure(X, model, n_points=n_points, dims=dims, random_state=random_state)
    path = os.fspath(path)
    _save_atomically(fig, path)
    return path


def fit_figure(
    X: Any,
    model: MeanShift,
    *,
    n_points: int = 20_000,
    dims: tuple[int, int] = (0, 1),
    random_state: int = 0,
) -> Figure:
    """A figure of a fit: a sample of points coloured by cluster with the centers, and
    the centers' trajectories from ``model.history_`` (when the model has one).

    Each point takes the colour of its nearest center, as in ``labels_`` (with
    ``cluster_all=False``, the points out of every center's reach are labelled -1). The
    largest clusters (by ``cluster_sizes_``) get a colour each (:data:`CLUSTER_COLOURS`)
    and a legend entry with their label and size; the others share one grey entry. The
    axes name the features shown (``feature i (of d)``, with the feature's name when the
    model has ``feature_names_in_``); the titles give the number of clusters, ``n_iter_``
    and the bandwidth. Only ``n_points`` sampled rows are loaded. With one feature the
    vertical axis is the sampled point's rank (and the iteration, for the trajectories).

    Parameters
    ----------
    X : array-like, dask array, zarr.Array or str
        The data the model was fitted on (or new data to label with ``model.predict``).
    model : MeanShift
        A fitted estimator, or one read with :func:`dshift.read_model`.
    n_points : int, default=20_000
        Size of the random sample drawn.
    dims : (int, int), default=(0, 1)
        The two features on the horizontal and vertical axes (ignored with one feature).
    random_state : int, default=0
        Seed of the sample (and of the trajectories drawn, when there are many).

    Returns
    -------
    matplotlib.figure.Figure
        Made without pyplot (no backend is switched); show it in a notebook by evaluating
        it, or save it with ``savefig``.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    ValueError
        ``dims`` are not two different features of X.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("Plotting needs matplotlib: pip install 'dshift[plots]'.") from exc
    Xd, _ = as_dask_array(X, n_features=model.n_features_in_)
    d = Xd.shape[1]
    shown = _check_dims(dims, d)
    sample = sample_rows(Xd, n_points, random_state)
    labels = _labels(sample, model)
    colour_of = _colours(np.asarray(model.cluster_sizes_))

    history = list(getattr(model, "history_", None) or [])
    fig = Figure(figsize=(13 if history else 8, 5.5), layout="constrained")
    axes = fig.subplots(1, 2 if history else 1, squeeze=False)[0]
    _draw_points(axes[0], sample, labels, model, shown, colour_of)
    axes[0].set_title(
        f"{len(model.cluster_centers_)} clusters after {model.n_iter_} iterations "
        f"(bandwidth {model.bandwidth_:.3g})\n{len(sample):,} of {Xd.shape[0]:,} points shown"
    )
    if history:
        _draw_trajectories(axes[1], model, history, shown, colour_of, random_state)
    names = getattr(model, "feature_names_in_", None)
    for ax in axes:
        ax.set_xlabel(_feature_label(shown[0], d, names))
        if shown[1] is not None:
            ax.set_ylabel(_feature_label(shown[1], d, names))
    _legend(fig, model, colour_of, orphans=bool((labels == -1).any()))
    return fig


def _check_dims(dims: tuple[int, int], d: int) -> tuple[int, int | None]:
    """The features on the axes: ``dims``, or (0, None) with one feature."""
    if d == 1:
        return 0, None
    ok = len(dims) == 2 and all(isinstance(i, (int, np.integer)) and 0 <= i < d for i in dims)
    if not ok or dims[0] == dims[1]:
        raise ValueError(
            f"dims must be two different feature indices in [0, {d}), got {tuple(dims)!r}."
        )
    return int(dims[0]), int(dims[1])


def _labels(sample: np.ndarray, model: MeanShift) -> np.ndarray:
    """The sample's labels as the fit gives them: the nearest center, or -1 out of reach
    of every center with ``cluster_all=False`` (a model read back has ``cluster_all``)."""
    cluster_all = getattr(model, "cluster_all", True)
    radius = getattr(model, "center_bandwidths_", None)
    radius = float(model.bandwidth_) if radius is None else np.asarray(radius, dtype=float)
    return kernels.nearest_labels(sample, np.asarray(model.cluster_centers_), radius, cluster_all)


def _feature_label(i: int, d: int, names: Any) -> str:
    """``feature i (of d)``, or ``NAME (feature i of d)`` when the model knows the names.

    Examples
    --------
    >>> _feature_label(3, 5, None), _feature_label(0, 2, ["x", "y"])
    ('feature 3 (of 5)', 'x (feature 0 of 2)')
    """
    if names is not None and len(names) == d:
        return f"{names[i]} (feature {i} of {d})"
    return f"feature {i} (of {d})"


def _colours(sizes: np.ndarray) -> np.ndarray:
    """Each label's colour (index k; the last entry, index -1, for the points of no
    cluster): the largest clusters get CLUSTER_COLOURS in order of size, the others
    OTHER_COLOUR."""
    colour_of = np.full(len(sizes) + 1, OTHER_COLOUR, dtype=object)
    colour_of[-1] = ORPHAN_COLOUR
    largest = np.argsort(-sizes, kind="stable")[: len(CLUSTER_COLOURS)]
    colour_of[largest] = CLUSTER_COLOURS[: len(largest)]
    return colour_of


def _xy(points: np.ndarray, shown: tuple[int, int | None], y1d: np.ndarray) -> tuple[Any, Any]:
    i, j = shown
    return points[:, i], (points[:, j] if j is not None else y1d)


def _draw_points(
    ax: Axes,
    sample: np.ndarray,
    labels: np.ndarray,
    model: MeanShift,
    shown: tuple[int, int | None],
    colour_of: np.ndarray,
) -> None:
    """The sample coloured by label (the greys of the points of no cluster and of the
    other clusters drawn first, under the coloured ones), and the centers as crosses."""
    rank = np.arange(len(sample))
    colours = colour_of[labels]
    layer = (colours != ORPHAN_COLOUR).astype(int) + (colours != OTHER_COLOUR)
    order = np.argsort(layer, kind="stable")
    x, y = _xy(sample[order], shown, rank[order])
    ax.scatter(x, y, c=list(colours[order]), s=3, alpha=0.6, lw=0, rasterized=True)
    centers = np.asarray(model.cluster_centers_)
    y = np.full(len(centers), len(sample) / 2)
    ax.scatter(*_xy(centers, shown, y), **_center_style(len(centers)))
    if shown[1] is None:
        ax.set_ylabel("sampled point")


def _center_style(n_centers: int) -> dict[str, Any]:
    """Black crosses, smaller when there are many centers."""
    size = 70 if n_centers <= 20 else 30 if n_centers <= 100 else 12
    return {"c": "black", "marker": "x", "s": size, "linewidths": 2 if size > 12 else 1}


def _draw_trajectories(
    ax: Axes,
    model: MeanShift,
    history: list[Any],
    shown: tuple[int, int | None],
    colour_of: np.ndarray,
    random_state: int,
) -> None:
    """Each seed's path, coloured by the cluster its last position is nearest to; at most
    MAX_TRAJECTORIES of them.

    A path has ``n_iter_ + 1`` positions, as scikit-learn counts iterations: the seed and
    its center after each counted iteration (the last step of ``history_``, the one that
    found every center converged or reached ``max_iter``, is not counted in ``n_iter_``).
    """
    from matplotlib.collections import LineCollection

    steps = [step.centers for step in history]
    seeds = getattr(model, "seeds_", None)
    if seeds is not None and np.shape(seeds) == np.shape(steps[0]):
        steps = [np.asarray(seeds), *steps[:-1]]
    traj = np.stack(steps, axis=1)  # seeds x positions x d
    n_seeds = len(traj)
    if n_seeds > MAX_TRAJECTORIES:
        keep = np.random.default_rng(random_state).choice(n_seeds, MAX_TRAJECTORIES, False)
        traj = traj[np.sort(keep)]
    centers = np.asarray(model.cluster_centers_)
    ends = traj[:, -1]
    nearest = np.argmin(((ends[:, None, :] - centers[None]) ** 2).sum(axis=2), axis=1)
    steps_axis = np.arange(traj.shape[1], dtype=float)
    paths = [np.column_stack(_xy(t, shown, steps_axis)) for t in traj]
    ax.add_collection(LineCollection(paths, colors=list(colour_of[nearest]), lw=0.8, alpha=0.7))
    ax.scatter(*_xy(traj[:, 0], shown, np.zeros(len(traj))), s=6, c="grey", zorder=2)
    last = np.full(len(centers), steps_axis[-1])
    ax.scatter(*_xy(centers, shown, last), zorder=3, **_center_style(len(centers)))
    ax.autoscale_view()
    drawn = f"{len(traj):,} of {n_seeds:,} seeds" if len(traj) < n_seeds else f"{n_seeds:,} seeds"
    ax.set_title(f"center trajectories over {model.n_iter_} iterations\n{drawn} (grey dots)")
    if shown[1] is None:
        ax.set_ylabel("iteration")


def _legend(fig: Figure, model: MeanShift, colour_of: np.ndarray, orphans: bool) -> None:
    """One legend for the figure, outside the axes: each coloured cluster with its size,
    the other clusters together, the points of no cluster (when the sample has some), the
    centers."""
    from matplotlib.lines import Line2D

    sizes = np.asarray(model.cluster_sizes_)
    size = "{:,}" if sizes.dtype.kind in "iu" else "{:.4g}"

    def marker(colour: str, **style: Any) -> Line2D:
        style = {"marker": "o", "markersize": 7, **style}
        return Line2D([], [], linestyle="", color=colour, **style)

    handles, texts = [], []
    coloured = [k for k in np.argsort(-sizes, kind="stable") if colour_of[k] != OTHER_COLOUR]
    for k in coloured:
        handles.append(marker(colour_of[k]))
        texts.append(f"cluster {k}: {size.format(sizes[k])}")
    others = np.setdiff1d(np.arange(len(sizes)), coloured)
    if len(others):
        handles.append(marker(OTHER_COLOUR))
        plural = "s" if len(others) > 1 else ""
        texts.append(f"{len(others)} other cluster{plural}: {size.format(sizes[others].sum())}")
    if orphans:
        handles.append(marker(ORPHAN_COLOUR))
        texts.append("no cluster (label -1)")
    handles.append(marker("black", marker="x", markeredgewidth=2))
    texts.append("centers")
    fig.legend(handles, texts, loc="outside right upper", title="cluster: size", fontsize="small")


def _save_atomically(fig: Figure, path: str) -> None:
    """Save ``fig`` to a new file of a random name beside ``path`` (created exclusively, so
    nothing planted there is followed or overwritten), then rename it to ``path``: never a
    half-written image, and a link at ``path`` is replaced, not written through."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    # O_EXCL: fails rather than open anything already there (symbolic links included);
    # mode 0o666 less the umask, as any new file (mkstemp's 0o600 would hide the image)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            fmt = os.path.splitext(path)[1][1:] or "png"
            fig.savefig(f, dpi=100, format=fmt, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)
