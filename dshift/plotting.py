"""Plots of a fit (needs the ``plots`` extra: ``pip install dshift[plots]``)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import numpy as np

from dshift._io import as_dask_array
from dshift._seeding import sample_rows


def plot_fit(
    X: Any,
    model,
    path: str | os.PathLike,
    *,
    n_points: int = 20_000,
    dims: tuple[int, int] = (0, 1),
    random_state: int = 0,
) -> str:
    """Save a PNG: a sample of points coloured by label with the centers, and the centers'
    trajectories from ``model.history_`` (when the model has one).

    Only ``n_points`` sampled rows (and their labels) are loaded. With one feature the
    second axis is the row index of the sample.

    Parameters
    ----------
    X : array-like, dask array, zarr.Array or str
        The data the model was fitted on (or new data to label with ``model.predict``).
    model : MeanShift
        A fitted estimator.
    path : str or path-like
        Where to write the PNG.
    n_points : int, default=20_000
        Size of the random sample drawn.
    dims : (int, int), default=(0, 1)
        The two features projected on the axes.

    Returns
    -------
    path : str
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("Plotting needs matplotlib: pip install 'dshift[plots]'.") from exc
    Xd, _ = as_dask_array(X, n_features=model.n_features_in_)
    sample = sample_rows(Xd, n_points, random_state)
    labels = np.asarray(model.predict(sample))
    two_d = sample.shape[1] > 1
    i, j = dims if two_d else (0, 0)

    def yx(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (a[:, i], a[:, j]) if two_d else (a[:, 0], np.zeros(len(a)))

    history = getattr(model, "history_", [])
    fig, axes = plt.subplots(1, 2 if history else 1, figsize=(12 if history else 6, 5.5))
    left, right = (axes[0], axes[1]) if history else (axes, None)
    left.scatter(*yx(sample), c=labels, s=2, cmap="tab20", alpha=0.5, rasterized=True)
    left.scatter(*yx(model.cluster_centers_), c="black", marker="x", s=80, label="centers")
    left.set_title(f"{len(model.cluster_centers_)} clusters, {len(sample)} sampled points")
    left.legend(loc="best")
    if history:
        traj = np.stack([step.centers for step in history])  # iterations x seeds x d
        for seed in range(traj.shape[1]):
            right.plot(*yx(traj[:, seed]), lw=0.8, alpha=0.7)
        right.scatter(*yx(traj[0]), s=8, c="grey", label="seeds")
        right.scatter(*yx(model.cluster_centers_), c="black", marker="x", s=80, label="centers")
        right.set_title(f"center trajectories ({len(history)} iterations)")
        right.legend(loc="best")
    for ax in [left] + ([right] if history else []):
        ax.set_xlabel(f"feature {i}")
        ax.set_ylabel(f"feature {j}" if two_d else "")
    fig.tight_layout()
    path = os.fspath(path)
    try:
        _save_atomically(fig, path)
    finally:
        plt.close(fig)
    return path


def _save_atomically(fig, path: str) -> None:
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
            fig.savefig(f, dpi=100, format=os.path.splitext(path)[1][1:] or "png")
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)
