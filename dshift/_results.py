"""The result group of a fit: written by :func:`write_result`, read by :func:`read_model`;
and the labels of ``dshift predict``, written by :func:`write_labels`.

Both record where they come from: the absolute path or URL of the input (``input``, when
it was a Zarr array), its number of rows (``n_samples``) and, for predicted labels, the
result whose centers labelled them (``centers_from``). Labels are stored in chunks of the
input's stored rows (int32).

A result group is untrusted input when read back: its metadata documents, the shapes,
dtypes, chunking and codecs of ``centers``, ``intensity`` and ``cluster_sizes``, the size
of every stored chunk (and what it decompresses to) and the attributes are checked before
anything is read or allocated, and the values after. ``write_result`` records a checksum
of each of the three arrays, which ``read_model`` verifies (groups of an older dshift,
without checksums, are read after the other checks).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import dask.array as da
import fsspec
import numcodecs
import numpy as np
import zarr
from zarr.codecs import BytesCodec, ZstdCodec

from dshift._checkpoint import steps_dir
from dshift._inputs import label_array
from dshift._store import _normalize, atomic_group, store_rows
from dshift._untrusted import Invalid, one_line
from dshift._zarr_input import verify_unchanged

if TYPE_CHECKING:
    from dshift._estimator import MeanShift

#: The arrays ``read_model`` reads.
MEMBERS = ("centers", "intensity", "cluster_sizes")
#: Most clusters a result may hold (``predict`` computes one distance per point and center).
MAX_CLUSTERS = 1_000_000
#: Largest ``centers`` accepted, in bytes.
MAX_CENTERS_BYTES = 1 << 28
#: Largest metadata document (``zarr.json``, ``.zattrs``...) accepted, in bytes.
MAX_METADATA_BYTES = 1 << 23
#: Most stored chunks per array.
MAX_CHUNKS = 10_000
_METADATA_FILES = ("zarr.json", ".zgroup", ".zattrs", ".zarray", ".zmetadata")
#: Attributes and the types they must have when present.
_ATTRIBUTE_TYPES = {
    "params": dict,
    "n_iter": int,
    "bandwidth": (int, float),
    "seeding": str,
    "n_clusters": int,
    "versions": dict,
    "checksums": dict,
    "input": str,
    "n_samples": int,
    "centers_from": str,
}


def checksum(values: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and little-endian C-order bytes.

    Parameters
    ----------
    values : array-like

    Returns
    -------
    str
        ``"sha256:"`` and the hex digest; the same for the same values in either byte order.

    Examples
    --------
    >>> checksum(np.arange(3.0)) == checksum(np.arange(3.0).astype(">f8"))
    True
    """
    values = np.asarray(values)
    little = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
    digest = hashlib.sha256(f"{little.dtype.str} {values.shape} ".encode())
    digest.update(little.tobytes())
    return "sha256:" + digest.hexdigest()


def write_result(
    path: str | os.PathLike,
    model,
    *,
    overwrite: bool = False,
    chunk_rows: int | None = None,
    storage_options: dict[str, Any] | None = None,
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
        Rows per chunk of ``labels``; default: the stored chunk rows of the Zarr array the
        model was fitted on, else the row chunks of ``labels_``.
    storage_options : dict, optional
        For a URL: fsspec options of its file system (credentials, endpoint...). They are
        not recorded in the group (nor is the model's own ``storage_options``).

    Returns
    -------
    path : str
        The absolute path or URL written.

    Notes
    -----
    The group holds ``labels`` (int32, chunked like the input rows), ``centers``,
    ``intensity`` and ``cluster_sizes`` (the last three uncompressed). Its attributes
    record the parameters, ``n_iter_``, the bandwidth used, ``n_samples``, the input's
    absolute path or URL (``input``, when the model was fitted on a Zarr array), the
    dshift, dask and zarr versions, and a ``checksums`` entry per small array (see
    :func:`checksum`).
    """
    labels = getattr(model, "_lazy_labels", None)  # labels_ wrapped in X's kind: unwrapped
    labels = label_array(model.labels_ if labels is None else labels)
    small = {
        "centers": np.asarray(model.cluster_centers_),
        "intensity": np.asarray(model.intensity_, dtype=np.float64),
        "cluster_sizes": np.asarray(model.cluster_sizes_),
    }
    sources = getattr(model, "_sources", [])  # the fit's Zarr inputs
    inputs = [source.name for source in sources]
    if model.checkpoint is not None:
        inputs += [model.checkpoint, steps_dir(model.checkpoint)]
    # X is the 2-d one (weights and per-point bandwidths are 1-d)
    X = next((s for s in sources if s.array.ndim == 2), None)
    if chunk_rows is None and X is not None:
        chunk_rows = X.array.chunks[0]
    with atomic_group(
        path, overwrite=overwrite, inputs=inputs, storage_options=storage_options
    ) as group:
        attrs = _fit_attributes(model, int(labels.shape[0]), None if X is None else X.name)
        attrs["checksums"] = {name: checksum(values) for name, values in small.items()}
        group.attrs.update(attrs)
        for name, values in small.items():
            group.create_array(name, data=values, compressors=None)
        store_rows(group, "labels", labels.astype(np.int32), chunk_rows)
        verify_unchanged(sources)  # the labels were read from them: still the fit's data?
    return _normalize(path)


def _fit_attributes(model, n_samples: int, input_name: str | None) -> dict[str, Any]:
    """A result's attributes, but the checksums."""
    params = {
        k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v))
        for k, v in model.get_params().items()
        if k not in SECRET_PARAMS
    }
    return {
        "params": params,
        "n_iter": int(model.n_iter_),
        "bandwidth": float(model.bandwidth_),
        "seeding": model.seeding_,
        "n_clusters": len(model.cluster_centers_),
        "n_samples": n_samples,
        **({"input": input_name} if input_name is not None else {}),
        "versions": _versions(),
    }


#: Parameters never written into a result: they may hold credentials.
SECRET_PARAMS = frozenset({"storage_options"})


def write_labels(
    path: str | os.PathLike,
    labels: da.Array,
    *,
    centers_from: str | os.PathLike,
    input_path: str | os.PathLike | None = None,
    n_clusters: int,
    overwrite: bool = False,
    chunk_rows: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Write labels predicted with the centers of a result to a Zarr group, atomically.

    Parameters
    ----------
    path : str or path-like
        Local path or fsspec URL of the group to create.
    labels : dask.array.Array of shape (n_samples,)
        Computed chunk by chunk while writing; stored as int32 ``labels``.
    centers_from : str or path-like
        The result (of :func:`write_result`) whose centers gave the labels.
    input_path : str or path-like, optional
        The Zarr array that was labelled.
    n_clusters : int
        Number of centers in ``centers_from``.
    overwrite : bool, default=False
        Replace an existing group; otherwise an existing path raises ``FileExistsError``.
    chunk_rows : int, optional
        Rows per chunk of ``labels`` (pass the input's stored chunk rows); default: the
        row chunks of ``labels``.
    storage_options : dict, optional
        For a URL: fsspec options of its file system (not recorded).

    Returns
    -------
    path : str
        The absolute path or URL written. Its attributes record ``centers_from`` and
        ``input`` (absolute paths or URLs), ``n_samples``, ``n_clusters`` and the versions.
    """
    inputs = [centers_from] + ([input_path] if input_path is not None else [])
    with atomic_group(
        path, overwrite=overwrite, inputs=inputs, storage_options=storage_options
    ) as group:
        group.attrs.update(
            {
                "centers_from": _normalize(centers_from),
                **({"input": _normalize(input_path)} if input_path is not None else {}),
                "n_samples": int(labels.shape[0]),
                "n_clusters": int(n_clusters),
                "versions": _versions(),
            }
        )
        store_rows(group, "labels", labels.astype(np.int32), chunk_rows)
    return _normalize(path)


def _versions() -> dict[str, str]:
    import dask

    import dshift

    return {"dshift": dshift.__version__, "dask": dask.__version__, "zarr": zarr.__version__}


def read_model(path: str | os.PathLike, storage_options: dict[str, Any] | None = None) -> MeanShift:
    """A :class:`~dshift.MeanShift` ready to ``predict``, from a group of :func:`write_result`.

    It has ``cluster_centers_``, ``n_features_in_``, ``bandwidth_``, ``n_iter_``,
    ``intensity_`` and ``cluster_sizes_``; ``labels_`` and ``history_`` are not restored,
    and the fit's parameters stay in the group's ``params`` attribute. The group is
    untrusted input: see the module's docstring for what is checked, and when.

    Parameters
    ----------
    path : str or path-like
        Local path or fsspec URL of the group.

    Returns
    -------
    MeanShift

    Raises
    ------
    FileNotFoundError
        ``path`` is not a Zarr group with the three arrays.
    ValueError
        The group is damaged or was not written by dshift (one line saying what is wrong).
    """
    from dshift._estimator import MeanShift

    url = _normalize(path)
    options = storage_options or {}
    fs, root = fsspec.core.url_to_fs(url, **options)
    with _refusing(path):
        for directory in (root, *(f"{root}/{name}" for name in MEMBERS)):
            _check_metadata_files(fs, directory)
    group, arrays = _open_members(path, url, options)
    with _refusing(path):
        for name, array in arrays.items():
            _check_chunks(fs, f"{root}/{name}", name, array)
        values = {name: np.asarray(array[...]) for name, array in arrays.items()}
        attrs = _check_attributes(group.attrs.asdict(), values)
    model = MeanShift()  # the fit's parameters stay in the group's attributes
    model.cluster_centers_ = values["centers"]
    model.n_features_in_ = values["centers"].shape[1]
    model.bandwidth_ = float(attrs.get("bandwidth", float("nan")))
    model.n_iter_ = int(attrs.get("n_iter", 0))
    model.intensity_ = values["intensity"]
    model.cluster_sizes_ = values["cluster_sizes"]
    model.history_ = []
    return model


def _refused(path: str | os.PathLike, exc: BaseException) -> ValueError:
    """One line naming the group, what is wrong with it and the remedy."""
    detail = str(exc) if isinstance(exc, Invalid) else f"{type(exc).__name__}: {exc}"
    return ValueError(
        f"Result {os.fspath(path)!r} cannot be used ({one_line(detail, 300)}): it is damaged "
        "or was not written by dshift; fit again to rewrite it (`dshift fit` or "
        "dshift.write_result)."
    )


#: What reading a damaged group can raise (zarr, json, numcodecs, fsspec).
_READ_ERRORS = (Invalid, ValueError, TypeError, KeyError, OSError, RuntimeError, IndexError)


@contextmanager
def _refusing(path: str | os.PathLike) -> Iterator[None]:
    try:
        yield
    except _READ_ERRORS as exc:
        raise _refused(path, exc) from exc


def _not_a_result(path: str | os.PathLike) -> FileNotFoundError:
    return FileNotFoundError(
        f"{os.fspath(path)!r} is not a dshift result (a Zarr group with 'centers', "
        "'intensity' and 'cluster_sizes'); create one with `dshift fit` or "
        "dshift.write_result."
    )


def _check_metadata_files(fs, directory: str) -> None:
    """Every metadata document zarr may read in ``directory`` is a file of bounded size
    (zarr parses them whole; a FIFO would block it)."""
    for name in _METADATA_FILES:
        try:
            info = fs.info(f"{directory}/{name}")
        except FileNotFoundError:
            continue
        if info.get("type") != "file" or info.get("size", 0) > MAX_METADATA_BYTES:
            raise Invalid(
                f"{directory.rsplit('/', 1)[-1]}/{name} is not a metadata file of at most "
                f"{MAX_METADATA_BYTES} bytes (type {info.get('type')}, {info.get('size')} bytes)"
            )


def _open_members(
    path: str | os.PathLike, url: str, options: dict[str, Any]
) -> tuple[zarr.Group, dict[str, zarr.Array]]:
    """The group and its three arrays (metadata only), with their shapes and dtypes checked."""
    remote = {"storage_options": options} if options and "://" in url else {}
    try:
        group = zarr.open_group(url, mode="r", **remote)
        members = {name: group[name] for name in MEMBERS}
    except (FileNotFoundError, KeyError, zarr.errors.ContainsArrayError) as exc:
        raise _not_a_result(path) from exc
    except _READ_ERRORS as exc:
        raise _refused(path, exc) from exc
    with _refusing(path):
        for name, member in members.items():
            if not isinstance(member, zarr.Array):
                raise Invalid(f"{name!r} is a group, not an array")
        _check_shapes(members)
    return group, members


def _check_shapes(arrays: dict[str, zarr.Array]) -> None:
    """centers 2-d float (k, d) within the bounds; intensity, cluster_sizes numeric (k,)."""
    centers = arrays["centers"]
    if centers.ndim != 2 or centers.dtype.kind != "f" or centers.dtype.itemsize > 8:
        raise Invalid(
            f"'centers' has dtype {centers.dtype} and shape {centers.shape}, expected 2-d "
            "float (n_clusters, n_features)"
        )
    k, d = centers.shape
    if not 1 <= k <= MAX_CLUSTERS or d < 1 or k * d * centers.dtype.itemsize > MAX_CENTERS_BYTES:
        raise Invalid(
            f"'centers' has shape {centers.shape}; a result holds 1 to {MAX_CLUSTERS} "
            f"clusters, at least one feature and at most {MAX_CENTERS_BYTES} bytes of centers"
        )
    for name in ("intensity", "cluster_sizes"):
        array = arrays[name]
        if array.shape != (k,) or array.dtype.kind not in "iuf" or array.dtype.itemsize > 8:
            raise Invalid(
                f"{name!r} has dtype {array.dtype} and shape {array.shape}, expected numbers "
                f"of shape ({k},), one per center"
            )


def _check_chunks(fs, directory: str, name: str, array: zarr.Array) -> None:
    """Chunking and codecs as dshift writes them, and every stored chunk small enough and
    decompressing to no more than its chunk's bytes (checked with a bounded decode), so
    reading the array allocates no more than its shape says."""
    if array.shards is not None or any(not 1 <= c <= s for c, s in zip(array.chunks, array.shape)):
        raise Invalid(
            f"{name!r} has chunks {array.chunks} (sharded: {array.shards}) for its "
            f"shape {array.shape}; dshift writes unsharded chunks within the shape"
        )
    grid = [range(math.ceil(s / c)) for s, c in zip(array.shape, array.chunks)]
    if math.prod(len(g) for g in grid) > MAX_CHUNKS:
        raise Invalid(f"{name!r} is split into more than {MAX_CHUNKS} chunks")
    decoder = _decoder(name, array)
    nbytes = math.prod(array.chunks) * array.dtype.itemsize
    limit = nbytes if decoder is None else nbytes + nbytes // 64 + 1024
    for coords in itertools.product(*grid):
        chunk = f"{directory}/{array.metadata.encode_chunk_key(coords)}"
        try:
            info = fs.info(chunk)
        except FileNotFoundError:
            continue  # a chunk never written: zarr gives its fill value
        if info.get("type") != "file" or info.get("size", 0) > limit:
            raise Invalid(
                f"{name!r} has a stored chunk of {info.get('size')} bytes, at most {limit} expected"
            )
        if decoder is not None:
            decoder.decode(fs.cat_file(chunk), out=np.empty(nbytes, dtype=np.uint8))


def _decoder(name: str, array: zarr.Array):
    """The codec to trial-decode chunks with (None: stored raw). Only codecs whose
    decoding into a buffer refuses more data than the buffer holds are accepted."""
    compressors, filters = array.compressors, array.filters
    if array.metadata.zarr_format == 3:
        if isinstance(array.serializer, BytesCodec) and not filters:
            if not compressors:
                return None
            if len(compressors) == 1 and isinstance(compressors[0], ZstdCodec):
                return numcodecs.Zstd()
    elif not filters and len(compressors) <= 1:
        if not compressors:
            return None
        if isinstance(compressors[0], (numcodecs.Zstd, numcodecs.Blosc)):
            return compressors[0]
    raise Invalid(f"{name!r} uses codecs {compressors or filters} that dshift does not write")


def _check_attributes(attrs: dict[str, Any], values: dict[str, np.ndarray]) -> dict[str, Any]:
    """The attributes' types, the arrays' values and, when recorded, their checksums."""
    attrs = {key: value for key, value in attrs.items() if value is not None}
    for key, kind in _ATTRIBUTE_TYPES.items():
        value = attrs.get(key)
        if key in attrs and (not isinstance(value, kind) or isinstance(value, bool)):
            raise Invalid(f"attribute {key!r} is {one_line(repr(value), 60)}")
    k = len(values["centers"])
    if attrs.get("n_clusters", k) != k or attrs.get("n_iter", 0) < 0:
        raise Invalid(
            f"attributes n_clusters={attrs.get('n_clusters')} and n_iter="
            f"{attrs.get('n_iter')} do not fit {k} centers"
        )
    if attrs.get("n_samples", 0) < 0:
        raise Invalid(f"attribute 'n_samples' is {attrs['n_samples']}")
    if not 0 <= attrs.get("bandwidth", 0) < math.inf:
        raise Invalid(f"attribute 'bandwidth' is {attrs['bandwidth']}")
    for name, recorded in (attrs.get("checksums") or {}).items():
        if name in values and recorded != checksum(values[name]):
            raise Invalid(f"{name!r} does not match its checksum (a damaged chunk?)")
    for name, array in values.items():
        if not np.isfinite(array).all() or (name != "centers" and (array < 0).any()):
            raise Invalid(f"{name!r} holds NaN, infinite or negative values")
    return attrs
