"""The atomic-write guarantee: a failed write leaves nothing, an existing output survives."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import zarr

from dshift import MeanShift, _store, write_result


def _listing(path):
    return sorted(os.listdir(path))


def test_failure_inside_write_leaves_no_output_and_no_temporary(tmp_path):
    out = tmp_path / "result.zarr"
    with pytest.raises(RuntimeError, match="boom"):
        with _store.atomic_group(out) as group:
            group.create_array("a", data=np.arange(10))
            raise RuntimeError("boom")
    assert _listing(tmp_path) == []


def test_failure_while_overwriting_keeps_the_existing_output(tmp_path):
    out = tmp_path / "result.zarr"
    with _store.atomic_group(out) as group:
        group.create_array("a", data=np.arange(3))
    with pytest.raises(RuntimeError, match="boom"):
        with _store.atomic_group(out, overwrite=True) as group:
            group.create_array("a", data=np.arange(5))
            raise RuntimeError("boom")
    np.testing.assert_array_equal(zarr.open_group(str(out))["a"][:], np.arange(3))
    assert _listing(tmp_path) == ["result.zarr"]


def test_existing_output_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "result.zarr"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="already exists.*overwrite"):
        with _store.atomic_group(out):
            pytest.fail("the body must not run")
    assert (out / "precious.txt").read_text() == "keep me"


def test_killed_writer_leaves_no_result_under_the_output_name(tmp_path):
    """Non-regression for half-written results: SIGKILL in the middle of a write."""
    out = tmp_path / "result.zarr"
    with _store.atomic_group(out) as group:
        group.create_array("a", data=np.arange(3))
    code = textwrap.dedent(
        f"""
        import os, signal, numpy as np
        from dshift import _store
        with _store.atomic_group({str(out)!r}, overwrite=True) as group:
            group.create_array("a", data=np.arange(100))
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -signal.SIGKILL
    np.testing.assert_array_equal(zarr.open_group(str(out))["a"][:], np.arange(3))
    leftovers = [name for name in _listing(tmp_path) if name != "result.zarr"]
    assert all(name.startswith(".result.zarr.tmp-") for name in leftovers)


def test_write_result_round_trip_with_dask_labels(tmp_path, scheduler):
    import dask.array as da

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 0.3, (300, 2)), rng.normal(5, 0.3, (200, 2))])
    model = MeanShift(bandwidth=1.0, kernel="flat", seeding="bin").fit(
        da.from_array(X, chunks=(128, 2))
    )
    path = write_result(tmp_path / "r.zarr", model)
    group = zarr.open_group(path, mode="r")
    np.testing.assert_array_equal(group["labels"][:], np.asarray(model.labels_))
    assert group["labels"].dtype == np.int32 and group["labels"].chunks == (128,)
    np.testing.assert_array_equal(group["centers"][:], model.cluster_centers_)
    np.testing.assert_array_equal(group["cluster_sizes"][:], [300, 200])
    assert group.attrs["n_iter"] == model.n_iter_
    assert group.attrs["params"]["kernel"] == "flat"
    assert set(group.attrs["versions"]) == {"dshift", "dask", "zarr"}
