"""Zarr inputs never give a silent wrong answer: a chunk with no stored data, an input
changed during a fit, a cached copy of older content, a relative path that workers resolve
elsewhere and a store the workers cannot see all end in one clear error, never in centers.

Non-regression for fits that ended with exit status 0 and one cluster at [0, 0] holding
every point (Zarr reads a missing chunk as its fill value).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr
from distributed import Client
from sklearn.datasets import make_blobs

from dshift import MeanShift, _zarr_input

PARAMS = dict(bandwidth=2.0, kernel="flat", seeding="bin")
CHUNK = 2_000


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    X, _ = make_blobs(n_samples=20_000, n_features=3, centers=4, random_state=5)
    return X


def _write(path: Path, data: np.ndarray, chunk: int = CHUNK) -> str:
    z = zarr.create_array(
        str(path), shape=data.shape, chunks=(chunk, *data.shape[1:]), dtype=data.dtype
    )
    z[...] = data
    return str(path)


def _chunk_file(path: str, index: int) -> Path:
    """The file of the index-th chunk of rows (the first along the other axes)."""
    z = zarr.open_array(path, mode="r")
    return Path(path, z.metadata.encode_chunk_key((index,) + (0,) * (z.ndim - 1)))


@pytest.fixture
def stored(tmp_path, points) -> str:
    return _write(tmp_path / "x.zarr", points)


# -- a chunk with no stored data -------------------------------------------------------


def test_a_missing_chunk_of_x_is_an_error_naming_array_rows_and_remedy(stored, scheduler):
    _chunk_file(stored, 3).unlink()
    with pytest.raises(ValueError) as err:
        MeanShift(**PARAMS).fit(stored)
    message = str(err.value)
    assert f"'{stored}'" in message and "rows 6000:8000" in message
    assert "fill value 0.0" in message and "Rewrite the missing rows" in message
    assert "\n" not in message


@pytest.mark.parametrize("role", ["sample_weight", "point_bandwidth"])
def test_a_missing_chunk_of_a_column_input_is_an_error(tmp_path, points, role):
    column = _write(tmp_path / f"{role}.zarr", np.ones(len(points)), chunk=5_000)
    _chunk_file(column, 1).unlink()
    params = dict(PARAMS, bandwidth=None) if role == "point_bandwidth" else PARAMS
    with pytest.raises(ValueError, match=r"has no stored data for rows 5000:10000"):
        MeanShift(**params).fit(points, **{role: column})


def test_a_missing_chunk_of_an_array_object_without_listing_is_an_error(points):
    """Stores that cannot list (here in memory) check each chunk where it is read."""
    z = zarr.create_array(
        zarr.storage.MemoryStore(), shape=points.shape, chunks=(CHUNK, 3), dtype="f8"
    )
    z[:] = points
    del z.store._store_dict["c/2/0"]
    with pytest.raises(ValueError, match=r"no longer has stored data for rows 4000:6000"):
        MeanShift(**PARAMS).fit(z)


# -- an input changed during a fit -----------------------------------------------------


def _rewrite_chunk(path: str, points: np.ndarray) -> None:
    z = zarr.open_array(path, mode="r+")
    z[2 * CHUNK : 3 * CHUNK] = points[2 * CHUNK : 3 * CHUNK] + 50.0  # same size, new values


def _delete_chunk(path: str, points: np.ndarray) -> None:
    _chunk_file(path, 4).unlink()


def _delete_input(path: str, points: np.ndarray) -> None:
    shutil.rmtree(path)


def _regenerate(path: str, points: np.ndarray) -> None:
    shutil.rmtree(path)
    _write(Path(path), points[::-1].copy())


CHANGES = {f.__name__.lstrip("_"): f for f in (_rewrite_chunk, _delete_chunk, _delete_input)}
CHANGES["regenerate"] = _regenerate


@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("persist", [False, True], ids=["streamed", "persisted"])
def test_an_input_changed_during_a_fit_fails_the_fit(stored, points, scheduler, change, persist):
    model = MeanShift(persist=persist, **PARAMS)
    fit = model.iter_fit(stored)
    next(fit)
    CHANGES[change](stored, points)
    with pytest.raises(ValueError, match=r"changed|no longer has stored data") as err:
        for _ in fit:
            pass
    assert "\n" not in str(err.value)
    assert not hasattr(model, "cluster_centers_")


def test_a_change_that_no_read_sees_is_found_before_the_result_is_written(stored, points):
    """A chunk rewritten after its last read of the fit (the labels are lazy): the write
    re-reads it and refuses; so does a final listing when nothing re-reads it."""
    from dshift import write_result

    model = MeanShift(persist=True, **PARAMS).fit(stored)
    _rewrite_chunk(stored, points)
    out = Path(stored).parent / "result.zarr"
    with pytest.raises(ValueError, match="changed"):
        write_result(out, model)
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".result")] == []
    source = _zarr_input.open_input(stored)
    Path(stored, "zarr.json").touch()  # metadata rewritten (same content, new version)
    with pytest.raises(ValueError, match=r"changed during the fit .*'zarr.json'"):
        source.verify_unchanged()


# -- keys: a cluster never hands a fit another version's cached chunks -------------------


def test_new_content_at_the_same_path_gets_new_keys(stored, points):
    before = _zarr_input.read_rows(_zarr_input.open_input(stored), (CHUNK, 3))
    again = _zarr_input.read_rows(_zarr_input.open_input(stored), (CHUNK, 3))
    assert before.name == again.name  # same content: the same keys, cache reused
    _regenerate(stored, points)
    after = _zarr_input.read_rows(_zarr_input.open_input(stored), (CHUNK, 3))
    assert after.name != before.name


def test_a_second_client_fits_the_regenerated_input_not_the_cached_one(cluster, stored, points):
    """Client A keeps the input persisted mid-fit; the input is regenerated in place; client
    B on the same cluster must fit the new content."""
    new = points[: len(points) // 2] * 2.0
    with Client(cluster) as client_a:
        with client_a.as_current():
            fit_a = MeanShift(persist=True, **PARAMS).iter_fit(stored)
            next(fit_a)  # A's chunks of the old content are now in the cluster's memory
        shutil.rmtree(stored)
        _write(Path(stored), new)
        with Client(cluster) as client_b, client_b.as_current():
            fit_b = MeanShift(persist=True, **PARAMS).fit(stored)
        fit_a.close()
    expected = MeanShift(**PARAMS).fit(new)
    np.testing.assert_allclose(fit_b.cluster_centers_, expected.cluster_centers_, atol=1e-9)
    assert fit_b.labels_.shape == (len(new),)


# -- where the workers read ---------------------------------------------------------------


def test_a_store_the_workers_cannot_open_is_refused_before_the_first_pass(dask_client):
    path = "memory://only-here.zarr"  # fsspec's memory file system: one per process
    zarr.create_array(path, shape=(1_000, 2), chunks=(500, 2), dtype="f8")[:] = 1.0
    with pytest.raises(ValueError) as err:
        MeanShift(**PARAMS).fit(path)
    message = str(err.value)
    assert "cannot open it" in message and "the workers must read the same store" in message
    assert "\n" not in message


def test_workers_that_see_another_shape_are_refused(dask_client):
    path = "memory://two-versions.zarr"
    zarr.create_array(path, shape=(1_000, 2), chunks=(500, 2), dtype="f8")[:] = 1.0
    on_workers = f"import zarr; zarr.create_array({path!r}, shape=(10, 2), dtype='f4')[:] = 1"
    dask_client.run(exec, on_workers)
    try:
        with pytest.raises(ValueError, match=r"sees shape \(10, 2\) and dtype float32"):
            MeanShift(**PARAMS).fit(path)
    finally:
        dask_client.run(exec, f"import fsspec; fsspec.filesystem('memory').rm({path!r}, True)")


def test_a_relative_path_means_the_same_array_on_workers_in_another_directory(
    tcp_scheduler, stored, points, tmp_path
):
    """The `dask worker` processes run in another working directory (conftest.py)."""
    workdir = Path(stored).parent
    exe = os.path.join(os.path.dirname(sys.executable), "dshift")
    argv = [exe, "fit", "x.zarr", "out.zarr", "--kernel", "flat", "--bandwidth", "2"]
    argv += ["--seeding", "bin", "--scheduler", tcp_scheduler]
    proc = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    centers = zarr.open_array(str(workdir / "out.zarr" / "centers"), mode="r")[:]
    np.testing.assert_allclose(centers, MeanShift(**PARAMS).fit(points).cluster_centers_)


def test_the_labels_of_a_lazy_fit_stay_checked(stored, points):
    """labels_ of Zarr input are lazy: computing them later re-reads, and re-checks, X."""
    model = MeanShift(**PARAMS).fit(stored)
    assert isinstance(model.labels_, da.Array)
    _delete_chunk(stored, points)
    with pytest.raises(ValueError, match="no longer has stored data"):
        model.labels_.compute()


# -- write_result never writes over or inside what the fit read ----------------------------


@pytest.mark.parametrize("where", ["the input", "its group", "inside it", "the checkpoint"])
def test_write_result_refuses_an_output_over_an_input(tmp_path, points, where):
    from dshift import write_result

    group = zarr.open_group(str(tmp_path / "data.zarr"), mode="w")
    group.create_array("X", data=points, chunks=(CHUNK, 3))
    stored = str(tmp_path / "data.zarr" / "X")
    ckpt = tmp_path / "fit.ckpt"
    model = MeanShift(checkpoint=ckpt, **PARAMS).fit(stored)
    before = zarr.open_array(stored, mode="r")[:]
    target = {
        "the input": stored,
        "its group": str(tmp_path / "data.zarr"),
        "inside it": f"{stored}/result.zarr",
        "the checkpoint": str(ckpt),
    }[where]
    with pytest.raises(ValueError, match="never writes over or inside its inputs"):
        write_result(target, model, overwrite=True)
    np.testing.assert_array_equal(zarr.open_array(stored, mode="r")[:], before)
    assert ckpt.is_file() and not Path(stored, "result.zarr").exists()
