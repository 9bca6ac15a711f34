"""Reading a result group of :func:`dshift.write_result` back into a model for ``predict``."""

from __future__ import annotations

import os

import numpy as np
import zarr

from dshift._store import _normalize


def read_model(path: str | os.PathLike):
    """A :class:`~dshift.MeanShift` ready to ``predict``, from a group of :func:`write_result`.

    It has ``cluster_centers_``, ``n_features_in_``, ``bandwidth_``, ``n_iter_``,
    ``intensity_`` and ``cluster_sizes_``; ``labels_`` and ``history_`` are not restored,
    and the fit's parameters stay in the group's ``params`` attribute.
    """
    from dshift._estimator import MeanShift

    try:
        group = zarr.open_group(_normalize(path), mode="r")
        centers = np.asarray(group["centers"][:])
        intensity = np.asarray(group["intensity"][:])
        sizes = np.asarray(group["cluster_sizes"][:])
    except (FileNotFoundError, KeyError, zarr.errors.ContainsArrayError) as exc:
        raise FileNotFoundError(
            f"{os.fspath(path)!r} is not a dshift result (a Zarr group with 'centers', "
            "'intensity' and 'cluster_sizes'); create one with `dshift fit` or "
            "dshift.write_result."
        ) from exc
    attrs = group.attrs
    model = MeanShift()  # the fit's parameters stay in the group's attributes
    model.cluster_centers_ = centers
    model.n_features_in_ = centers.shape[1]
    model.bandwidth_ = float(attrs.get("bandwidth", float("nan")))
    model.n_iter_ = int(attrs.get("n_iter", 0))
    model.intensity_ = intensity
    model.cluster_sizes_ = sizes
    model.history_ = []
    return model
