"""The result group of a fit: written by :func:`write_result`, read by :func:`read_model`."""

from __future__ import annotations

import os

import dask.array as da
import numpy as np
import zarr

from dshift._store import _normalize, atomic_group, store_rows


def write_result(
    path: str | os.PathLike, model, *, overwrite: bool = False, chunk_rows: int | None = None
) -> str:
    """Write a fitted :class:`~dshift.MeanShift` to a Zarr group, atomically.

    Parameters
    ----------
    path : str or path-like
        Local path or fsspec URL of the group to create.
    model : MeanShift
        A fitted estimator; its lazy ``labels_`` are computed chunk by chunk while writing.
    overwrite : bool, default=False
        Replace an existing group; otherwise an existing path raises ``FileExistsError``.
    chunk_rows : int, optional
        Rows per chunk of ``labels``.

    Returns
    -------
    path : str
        The absolute path or URL written.

    Notes
    -----
    The group holds ``labels`` (int32, chunked like the input rows), ``centers``,
    ``intensity`` and ``cluster_sizes``; ``chunk_rows`` sets the label chunks (pass the
    input's stored chunk rows to align them with the input). Its attributes record the
    parameters, ``n_iter_``, the bandwidth used and the dshift, dask and zarr versions.
    """
    import dask

    import dshift

    labels = model.labels_
    if not isinstance(labels, da.Array):
        labels = da.from_array(np.asarray(labels), chunks=max(1, min(len(labels), 1_000_000)))
    params = {
        k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v))
        for k, v in model.get_params().items()
    }
    with atomic_group(path, overwrite=overwrite) as group:
        group.attrs.update(
            {
                "params": params,
                "n_iter": int(model.n_iter_),
                "bandwidth": float(model.bandwidth_),
                "seeding": model.seeding_,
                "n_clusters": len(model.cluster_centers_),
                "versions": {
                    "dshift": dshift.__version__,
                    "dask": dask.__version__,
                    "zarr": zarr.__version__,
                },
            }
        )
        group.create_array("centers", data=np.asarray(model.cluster_centers_))
        group.create_array("intensity", data=np.asarray(model.intensity_, dtype=np.float64))
        group.create_array("cluster_sizes", data=np.asarray(model.cluster_sizes_))
        store_rows(group, "labels", labels.astype(np.int32), chunk_rows)
    return _normalize(path)


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
