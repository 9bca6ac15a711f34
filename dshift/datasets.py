"""Synthetic data written straight into Zarr, chunk by chunk, never held in memory."""

from __future__ import annotations

import os

import dask.array as da
import numpy as np

from dshift import _store


def _blob_centers(n_centers: int, n_features: int, center_box: tuple[float, float], seed: int):
    rng = np.random.default_rng([seed, 2**31])
    return rng.uniform(center_box[0], center_box[1], size=(n_centers, n_features))


def _blob_block(
    block_info: dict | None = None,
    *,
    centers: np.ndarray,
    cluster_std: float,
    seed: int,
    point_dtype: str,
    truth: bool,
) -> np.ndarray:
    info = block_info[None]
    start, stop = info["array-location"][0]
    index = info["chunk-location"][0]
    rng = np.random.default_rng([seed, index])
    labels = rng.integers(0, len(centers), size=stop - start)
    if truth:
        return labels.astype(np.int32)
    noise = rng.standard_normal((stop - start, centers.shape[1]))
    return (centers[labels] + cluster_std * noise).astype(point_dtype)


def blobs(
    n_samples: int,
    *,
    n_features: int = 2,
    centers: int = 5,
    cluster_std: float = 1.0,
    center_box: tuple[float, float] = (-10.0, 10.0),
    chunk_rows: int = 100_000,
    random_state: int = 0,
    dtype: str = "float32",
) -> tuple[da.Array, da.Array, np.ndarray]:
    """Lazy isotropic Gaussian blobs: points, true labels and the blob centers.

    Each chunk is generated from its own seed ``(random_state, chunk index)``, so the data
    do not depend on the scheduler, and no chunk depends on another.

    Returns
    -------
    X : dask.array.Array of shape (n_samples, n_features)
    y : dask.array.Array of shape (n_samples,), int32
    centers : ndarray of shape (centers, n_features)

    Examples
    --------
    >>> X, y, c = blobs(1000, centers=3, chunk_rows=300)
    >>> X.shape, X.chunks[0], c.shape
    ((1000, 2), (300, 300, 300, 100), (3, 2))
    """
    for name, value in (("n_samples", n_samples), ("n_features", n_features), ("centers", centers)):
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    rows = max(1, min(int(chunk_rows), int(n_samples)))
    chunks = (da.core.normalize_chunks(rows, (int(n_samples),))[0],)
    c = _blob_centers(int(centers), int(n_features), center_box, int(random_state))
    common = dict(
        centers=c, cluster_std=float(cluster_std), seed=int(random_state), point_dtype=dtype
    )
    X = da.map_blocks(
        _blob_block,
        chunks=(chunks[0], (int(n_features),)),
        dtype=dtype,
        truth=False,
        meta=np.empty((0, 0), dtype=dtype),
        **common,
    )
    y = da.map_blocks(
        _blob_block, chunks=chunks, dtype=np.int32, truth=True, meta=np.empty(0, np.int32), **common
    )
    return X, y, c


def make_blobs(
    path: str | os.PathLike,
    n_samples: int,
    *,
    n_features: int = 2,
    centers: int = 5,
    cluster_std: float = 1.0,
    center_box: tuple[float, float] = (-10.0, 10.0),
    chunk_rows: int = 100_000,
    random_state: int = 0,
    dtype: str = "float32",
    overwrite: bool = False,
) -> str:
    """Write Gaussian blobs to a Zarr group, chunk by chunk, without holding them in memory.

    The group gets ``X`` (n_samples x n_features), ``y`` (true labels, int32) and
    ``centers``; its attributes record the parameters. Chunks are generated and written by
    the workers of the current dask scheduler (a ``distributed.Client`` if one is active),
    so a 100-million-point dataset is made in memory bounded by a few chunks per worker.
    The group is written under a temporary name and published when complete: an
    interrupted run leaves nothing under ``path``.

    Parameters
    ----------
    path : str or path-like
        Local path or fsspec URL of the group to create.
    n_samples, n_features, centers, cluster_std, center_box, random_state
        As in ``sklearn.datasets.make_blobs`` (the random stream differs).
    chunk_rows : int, default=100_000
        Rows per stored chunk.
    dtype : str, default="float32"
    overwrite : bool, default=False
        Replace an existing group at ``path``; otherwise an existing path is an error.

    Returns
    -------
    path : str
        The path of the array of points, ``<path>/X``.

    Examples
    --------
    >>> import tempfile, os, zarr
    >>> out = os.path.join(tempfile.mkdtemp(), "blobs.zarr")
    >>> make_blobs(out, 1000, centers=3, chunk_rows=250).endswith("X")
    True
    >>> zarr.open_array(out + "/X").chunks
    (250, 2)
    """
    X, y, c = blobs(
        n_samples,
        n_features=n_features,
        centers=centers,
        cluster_std=cluster_std,
        center_box=center_box,
        chunk_rows=chunk_rows,
        random_state=random_state,
        dtype=dtype,
    )
    attrs = {
        "generator": "dshift.datasets.make_blobs",
        "n_samples": int(n_samples),
        "n_features": int(n_features),
        "centers": int(centers),
        "cluster_std": float(cluster_std),
        "center_box": [float(v) for v in center_box],
        "random_state": int(random_state),
    }
    with _store.atomic_group(path, overwrite=overwrite) as group:
        group.attrs.update(attrs)
        _store.store_rows(group, "X", X, compress=False)  # noise: compresses by ~10% only
        _store.store_rows(group, "y", y)
        group.create_array("centers", data=c)
    return f"{os.fspath(path).rstrip('/')}/X"
