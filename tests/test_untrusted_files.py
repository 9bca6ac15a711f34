"""Files dshift reads are untrusted input: checkpoints, their PATH.steps/ records and result
groups are validated before anything is allocated, and every refusal is one line.

The regression tests build each case that was observed (a header claiming 10^12 floats, a
deflate bomb, a state of the wrong shape behind genuine fingerprints, a result whose
centers are huge, 1-d or NaN, a FIFO where the checkpoint goes, a link planted at the
plot's temporary name...). The fuzz tests then mutate valid files the way SQLite tests its
file format (truncated, bit-flipped, oversized and type-swapped members) and check that
each mutation is refused with a one-line ValueError, or loads consistently, and that the
memory used stays bounded whatever sizes the file claims.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import shutil
import socket
import struct
import tempfile
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from numcodecs import Zstd
from sklearn.datasets import make_blobs

from dshift import MeanShift, _checkpoint, _fingerprint, write_result
from dshift._results import checksum, read_model
from dshift.plotting import plot_fit

#: Peak of traced memory (numpy and zarr report to tracemalloc) allowed while reading a
#: file; the oversized mutations claim gigabytes, and the bombs expand to 64 MiB.
MEMORY_LIMIT = 20 * 2**20
BOMB_BYTES = 64 * 2**20
FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _bounded(read: Callable[[], object]) -> tuple[object | None, str | None]:
    """``read()``'s result or its one-line ValueError message, checking the memory peak."""
    tracemalloc.start()
    try:
        return read(), None
    except ValueError as exc:
        message = str(exc)
        assert "\n" not in message, message
        return None, message
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MEMORY_LIMIT, f"reading took {peak / 2**20:.1f} MiB"


# -- building valid files, and mutated copies --------------------------------------------


@functools.cache
def blobs(dtype: str = "float64") -> np.ndarray:
    X, _ = make_blobs(n_samples=400, n_features=3, centers=3, random_state=1)
    X = X.astype(dtype)
    X.setflags(write=False)
    return X


PARAMS = dict(bandwidth=1.5, kernel="flat", seeding="bin", max_iter=20)


def _make_checkpoint(path: Path, X: np.ndarray, after: int = 3) -> tuple[dict, str]:
    """A real fit's checkpoint after ``after`` iterations; its params and data fingerprints."""
    model = MeanShift(checkpoint=path, **PARAMS)
    fit = model.iter_fit(X)
    for step in fit:
        if step.iteration + 1 == after:
            break
    fit.close()
    params = _fingerprint.params_fingerprint(model._result_params())
    return params, _fingerprint.data_fingerprint(da.from_array(X))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, dict, str]:
    """A valid checkpoint (3 iterations, 3 features) to copy and damage."""
    path = tmp_path_factory.mktemp("pristine") / "fit.ckpt"
    params, data = _make_checkpoint(path, blobs())
    return path, params, data


def _copy_checkpoint(source: Path, directory: Path) -> Path:
    target = directory / source.name
    shutil.copyfile(source, target)
    shutil.copytree(_checkpoint.steps_dir(source), _checkpoint.steps_dir(target))
    return target


def _members(raw: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return {info.filename.removesuffix(".npy"): z.read(info) for info in z.infolist()}


def _zip(members: dict[str, bytes], *, deflated=(), bombs=()) -> bytes:
    """An archive of ``members``: stored, or deflated, or (``bombs``) replaced by a
    deflated member whose header is valid and whose data are 64 MiB of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(f"{name}.npy")
            if name in deflated or name in bombs:
                info.compress_type = zipfile.ZIP_DEFLATED
            if name not in bombs:
                z.writestr(info, data)
                continue
            with z.open(info, "w", force_zip64=True) as w:
                w.write(_claiming((BOMB_BYTES // 8,), b""))
                zeros = bytes(2**20)
                for _ in range(BOMB_BYTES // len(zeros)):
                    w.write(zeros)
    return out.getvalue()


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=True)
    return out.getvalue()


def _array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _claiming(shape: tuple, data: bytes, descr: str = "<f8") -> bytes:
    """A .npy member whose header claims ``shape`` but that holds only ``data``'s bytes."""
    out = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_2_0(out, header)
    return out.getvalue() + data


def _claim_zip_size(raw: bytes, name: str, size: int) -> bytes:
    """The archive with the central directory's uncompressed size of ``name`` set to
    ``size`` (and its compressed size too, so that it looks stored)."""
    entry = raw.rindex(b"PK\x01\x02", 0, raw.rindex(f"{name}.npy".encode()) + 1)
    raw = bytearray(raw)
    raw[entry + 20 : entry + 28] = struct.pack("<2L", size, size)
    return bytes(raw)


def _load(path: Path, params: dict, data: str, **kwargs):
    return _checkpoint.load(path, params, data, **kwargs)


def _rewrite(path: Path, change: Callable[[dict[str, bytes]], None], **zip_options) -> None:
    """Rewrite the archive at ``path`` with its members changed by ``change(members)``."""
    members = _members(path.read_bytes())
    change(members)
    path.write_bytes(_zip(members, **zip_options))


# -- checkpoints: the observed cases -----------------------------------------------------


def test_a_header_claiming_a_trillion_floats_is_refused_without_allocating(pristine, tmp_path):
    source, params, data = pristine
    ckpt = _copy_checkpoint(source, tmp_path)

    def claim(members):
        members["centers"] = _claiming((10**12,), _array(members["centers"]).tobytes())

    _rewrite(ckpt, claim)
    result, message = _bounded(lambda: _load(ckpt, params, data))
    assert result is None
    assert f"Checkpoint {str(ckpt)!r} is not a readable dshift checkpoint" in message
    assert "member 'centers' has shape (1000000000000,), expected (" in message
    assert f"delete it and {str(ckpt) + '.steps'!r} to start afresh" in message


def test_a_deflate_bomb_is_refused_before_it_is_inflated(pristine, tmp_path):
    source, params, data = pristine
    ckpt = _copy_checkpoint(source, tmp_path)
    _rewrite(ckpt, lambda members: None, bombs={"centers"})
    assert ckpt.stat().st_size < 2**20
    result, message = _bounded(lambda: _load(ckpt, params, data))
    assert result is None and "member 'centers' is compressed" in message


def test_a_zip_entry_claiming_gigabytes_is_refused(pristine, tmp_path):
    source, params, data = pristine
    ckpt = _copy_checkpoint(source, tmp_path)
    ckpt.write_bytes(_claim_zip_size(ckpt.read_bytes(), "seeds", 2**32 - 1))
    result, message = _bounded(lambda: _load(ckpt, params, data))
    assert result is None and "member 'seeds' claims 4294967295 bytes" in message


def _drop_a_column(members: dict[str, bytes]) -> None:
    for name in ("seeds", "centers", "last_step"):
        if name in members:  # a step record has no seeds
            members[name] = _npy(np.ascontiguousarray(_array(members[name])[:, :2]))


def _forge_two_columns(ckpt: Path) -> None:
    """Two-column seeds, centers and step records behind the genuine fingerprints of a
    three-column fit (everything else, meta included, as the fit wrote it)."""
    _rewrite(ckpt, _drop_a_column)
    for record in Path(_checkpoint.steps_dir(ckpt)).iterdir():
        _rewrite(record, _drop_a_column)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_state_of_the_wrong_shape_behind_genuine_fingerprints_is_refused(tmp_path, dtype):
    X = blobs(dtype)  # float64: the fit gives the loader its exact number of features
    ckpt = tmp_path / "fit.ckpt"
    _make_checkpoint(ckpt, X)
    _forge_two_columns(ckpt)
    with pytest.raises(ValueError, match="member 'seeds' has 2 columns, the data have 3 features"):
        MeanShift(checkpoint=ckpt, **PARAMS).fit(X)


def test_the_number_of_features_can_be_given_exactly(pristine, tmp_path):
    """float64 data may carry a weight and a bandwidth column in the fingerprint, so 1 to 3
    features fit "3x..."; the estimator's n_features makes the check exact."""
    source, params, data = pristine
    ckpt = _copy_checkpoint(source, tmp_path)
    _forge_two_columns(ckpt)
    with pytest.raises(ValueError, match="member 'seeds' has 2 columns, the data have 3 feat"):
        _load(ckpt, params, data, n_features=3)
    assert _load(ckpt, params, data, n_features=2).seeds.shape[1] == 2


def test_the_resumed_state_is_what_was_saved(pristine):
    source, params, data = pristine
    saved = _load(source, params, data, n_features=3)
    assert saved.state.iteration == len(saved.history) == 3
    assert saved.state.centers.flags.writeable and saved.state.active.flags.writeable
    np.testing.assert_array_equal(saved.history[-1].centers, saved.state.centers)
    with zipfile.ZipFile(source) as z:
        np.testing.assert_array_equal(_array(z.read("seeds.npy")), saved.seeds)


def _set_meta(ckpt: Path, **changes) -> None:
    def change(members):
        meta = json.loads(str(_array(members["meta"])))
        members["meta"] = _npy(np.array(json.dumps({**meta, **changes})))

    _rewrite(ckpt, change)


def test_a_checkpoint_of_the_previous_format_is_refused_clearly(pristine, tmp_path):
    source, params, data = pristine
    ckpt = _copy_checkpoint(source, tmp_path)
    _set_meta(ckpt, format=2)
    with pytest.raises(ValueError, match=r"has format 2, this dshift reads format 3 only"):
        _load(ckpt, params, data)


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(iteration=-1), "meta 'iteration' is -1, not an integer in"),
        (dict(iteration=10**9), "meta 'iteration' is 1000000000"),
        (dict(iteration=2.0), "meta 'iteration' is 2.0"),
        (dict(iteration=True), "meta 'iteration' is True"),
        (dict(iteration=2), r"member 'h_iteration' has shape \(3,\), expected \(2,\)"),
        (dict(bandwidth=float("nan")), "meta 'bandwidth' is nan, not a number >= 0"),
        (dict(bandwidth="1.5"), "meta 'bandwidth' is '1.5'"),
        (dict(elapsed=-1.0), "meta 'elapsed' is -1.0"),
        (dict(seeding="grid"), "meta 'seeding' is 'grid'"),
        (dict(params=[1, 2]), "meta 'params' is not an object of strings"),
        (dict(params={"bandwidth": 1.5}), "meta 'params' is not an object of strings"),
        (dict(data=7), "meta 'data' is not a string"),
        (dict(padding="x" * 300_000), "member 'meta' has dtype <U300"),
    ],
    ids=lambda value: str(value)[:40],
)
def test_metadata_of_the_wrong_type_or_range_is_refused(pristine, tmp_path, changes, match):
    source, params, data = pristine
    ckpt = _copy_checkpoint(source, tmp_path)
    _set_meta(ckpt, **changes)
    result, message = _bounded(lambda: _load(ckpt, params, data))
    assert result is None and "not a readable dshift checkpoint" in message
    assert re.search(match, message), message


def _set_member(name: str, value: Callable[[np.ndarray], np.ndarray]):
    def change(members):
        members[name] = _npy(value(_array(members[name]).copy()))

    return change


def _put(index, value):
    def change(array):
        array[index] = value
        return array

    return change


@pytest.mark.parametrize(
    "name, value, match",
    [
        ("centers", _put((0, 1), np.nan), "member 'centers' holds NaN or infinite values"),
        ("seeds", _put((1, 0), np.inf), "member 'seeds' holds NaN or infinite values"),
        ("intensity", _put(0, -1.0), "member 'intensity' holds negative values"),
        ("alive", _put(0, False), "'active' marks seeds that 'alive' says were dropped"),
        ("n_iter", _put(0, 7), r"member 'n_iter' holds values outside \[0, 2\]"),
        ("h_iteration", lambda a: a[::-1].copy(), "member 'h_iteration' is not 0, 1, ..., 2"),
        ("h_n_computed", _put(0, 10**6), "member 'h_n_computed' holds values outside"),
        ("centers", lambda a: a.astype(np.float32), "member 'centers' has dtype float32"),
        ("active", lambda a: a.astype(np.int8), "member 'active' has dtype int8"),
        ("centers", lambda a: np.asfortranarray(a[:, :2]), r"shape \(\d+, 2\), expected"),
        ("n_iter", lambda a: a[:-1], r"member 'n_iter' has shape"),
        ("relax", _put(0, 2.5), r"member 'relax' holds values outside \[1, 1.9\]"),
        ("relax", _put(1, 0.5), r"member 'relax' holds values outside \[1, 1.9\]"),
        ("last_step", _put((0, 2), np.inf), "member 'last_step' holds NaN or infinite"),
        ("last_step", lambda a: a[:, :2].copy(), r"member 'last_step' has shape"),
    ],
    ids=["nan-center", "inf-seed", "negative-intensity", "active-but-dropped", "n_iter-range"]
    + ["h_iteration-order", "n_computed-range", "float32", "int8", "two-columns", "short"]
    + ["relax-above", "relax-below", "inf-step", "step-columns"],
)
def test_values_a_fit_cannot_produce_are_refused(pristine, tmp_path, name, value, match):
    source, params, data = pristine
    ckpt = _copy_checkpoint(source, tmp_path)
    if name == "alive":  # seed 0 marked both active and dropped
        _rewrite(ckpt, _set_member("active", _put(0, True)))
    _rewrite(ckpt, _set_member(name, value))
    with pytest.raises(ValueError, match=match) as caught:
        _load(ckpt, params, data)
    assert "\n" not in str(caught.value)


def test_booleans_other_than_0_and_1_are_refused(pristine, tmp_path):
    source, params, data = pristine
    ckpt = _copy_checkpoint(source, tmp_path)

    def twos(members):
        raw = bytearray(members["alive"])
        raw[-1] = 2
        members["alive"] = bytes(raw)

    _rewrite(ckpt, twos)
    with pytest.raises(ValueError, match="member 'alive' holds booleans other than 0 and 1"):
        _load(ckpt, params, data)


def test_a_damaged_step_record_is_refused_naming_it(pristine, tmp_path):
    source, params, data = pristine
    ckpt = _copy_checkpoint(source, tmp_path)
    record = Path(_checkpoint.steps_dir(ckpt)) / "000001.npz"
    _rewrite(record, _set_member("centers", lambda a: a[:, :2].copy()))
    with pytest.raises(ValueError) as caught:
        _load(ckpt, params, data)
    message = str(caught.value)
    assert f"has a damaged record of iteration 1, {str(record)!r}" in message
    assert "member 'centers' has shape" in message
    assert f"delete the checkpoint and {str(ckpt) + '.steps'!r} to start afresh" in message


@pytest.mark.timeout(30)
def test_a_fifo_as_a_step_record_is_refused_without_waiting(pristine, tmp_path):
    source, params, data = pristine
    ckpt = _copy_checkpoint(source, tmp_path)
    record = Path(_checkpoint.steps_dir(ckpt)) / "000002.npz"
    record.unlink()
    os.mkfifo(record)
    with pytest.raises(ValueError, match=r"record of iteration 2.*it is a FIFO \(named pipe\)"):
        _load(ckpt, params, data)


def test_a_weighted_fit_resumes(tmp_path):
    """The fingerprint of weighted data has a weight column: d = columns - 1 is accepted."""
    X = blobs()
    w = np.random.default_rng(0).integers(1, 4, len(X)).astype(float)
    reference = MeanShift(**PARAMS).fit(X, sample_weight=w)
    ckpt = tmp_path / "fit.ckpt"
    fit = MeanShift(checkpoint=ckpt, **PARAMS).iter_fit(X, sample_weight=w)
    next(fit), next(fit)
    fit.close()
    resumed = MeanShift(checkpoint=ckpt, **PARAMS).fit(X, sample_weight=w)
    assert resumed.resumed_from_ == 2
    np.testing.assert_allclose(resumed.cluster_centers_, reference.cluster_centers_, atol=1e-9)


# -- fingerprints ------------------------------------------------------------------------


def test_integer_parameters_are_fingerprinted_exactly():
    fingerprint = _fingerprint.params_fingerprint
    assert fingerprint({"random_state": 2**53}) != fingerprint({"random_state": 2**53 + 1})
    assert fingerprint({"max_iter": 2**60}) != fingerprint({"max_iter": 2**60 + 1})
    assert fingerprint({"bandwidth": 2}) == fingerprint({"bandwidth": 2.0})
    assert fingerprint({"bandwidth": np.float32(2)}) == fingerprint({"bandwidth": 2})
    assert fingerprint({"random_state": np.int64(7)}) == fingerprint({"random_state": 7})
    assert fingerprint({"tol": 1e-3}) != fingerprint({"tol": 1e-3 + 1e-18})
    assert fingerprint({"cluster_all": True}) != fingerprint({"cluster_all": 1})


def test_fits_differing_only_in_a_large_seed_do_not_share_a_checkpoint(tmp_path):
    X = blobs()
    ckpt = tmp_path / "fit.ckpt"
    params = dict(bandwidth=1.5, kernel="flat", seeding="sample", n_seeds=20, max_iter=30)
    fit = MeanShift(checkpoint=ckpt, random_state=2**53, **params).iter_fit(X)
    next(fit)
    fit.close()
    with pytest.raises(ValueError, match=r"random_state=9007199254740992 there, 9007199254740993"):
        MeanShift(checkpoint=ckpt, random_state=2**53 + 1, **params).fit(X)


# -- the checkpoint path, checked before any data is read --------------------------------


def _unreadable_data():
    def unreadable(block):
        raise AssertionError("data read before the checkpoint path was checked")

    return da.from_array(blobs(), chunks=100).map_blocks(unreadable, meta=np.empty((0, 0)))


def _fit_refuses(checkpoint, error, match) -> None:
    with pytest.raises(error, match=match) as caught:
        MeanShift(bandwidth=1.5, checkpoint=checkpoint).fit(_unreadable_data())
    assert "\n" not in str(caught.value)


@pytest.mark.timeout(30)
def test_a_fifo_at_the_checkpoint_path_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "fit.ckpt")
    _fit_refuses(tmp_path / "fit.ckpt", ValueError, r"is a FIFO \(named pipe\), not a regular")


def test_a_device_at_the_checkpoint_path_is_refused_at_once():
    _fit_refuses("/dev/null", ValueError, "'/dev/null' is a character device, not a regular")


def test_a_socket_at_the_checkpoint_path_is_refused_at_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative name: socket paths are limited to 108 bytes
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("fit.ckpt")
        _fit_refuses("fit.ckpt", ValueError, "'fit.ckpt' is a socket, not a regular file")


@pytest.mark.parametrize("target", ["elsewhere.ckpt", "missing.ckpt"])
def test_a_symbolic_link_at_the_checkpoint_path_is_refused(pristine, tmp_path, target):
    """A checkpoint is replaced by a rename, which would replace the link, not the file it
    points to; so the link is refused (pass the file's own path), even a dangling one."""
    if target == "elsewhere.ckpt":
        _copy_checkpoint(pristine[0], tmp_path).rename(tmp_path / target)
    (tmp_path / "fit.ckpt").symlink_to(tmp_path / target)
    _fit_refuses(tmp_path / "fit.ckpt", ValueError, "is a symbolic link, not a regular file")
    assert (tmp_path / "fit.ckpt").is_symlink()


def test_steps_that_is_not_a_directory_is_refused_at_once(tmp_path):
    (tmp_path / "fit.ckpt.steps").write_text("not a directory")
    _fit_refuses(
        tmp_path / "fit.ckpt",
        NotADirectoryError,
        r"fit.ckpt.steps' is a regular file, not a directory; it holds the checkpoint's",
    )
    assert (tmp_path / "fit.ckpt.steps").read_text() == "not a directory"


def test_steps_that_is_a_symbolic_link_is_refused_at_once(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "fit.ckpt.steps").symlink_to(tmp_path / "elsewhere")
    _fit_refuses(tmp_path / "fit.ckpt", NotADirectoryError, "is a symbolic link, not a dir")
    assert not any((tmp_path / "elsewhere").iterdir())


def test_the_loader_refuses_a_link_even_without_check_path(pristine, tmp_path):
    source, params, data = pristine
    _copy_checkpoint(source, tmp_path).rename(tmp_path / "real.ckpt")
    (tmp_path / "fit.ckpt").symlink_to(tmp_path / "real.ckpt")
    shutil.copytree(tmp_path / "fit.ckpt.steps", tmp_path / "real.ckpt.steps")
    with pytest.raises(ValueError, match="it is a symbolic link, not a regular file"):
        _load(tmp_path / "fit.ckpt", params, data)


# -- dshift plot -------------------------------------------------------------------------


def test_plot_does_not_follow_a_link_planted_at_a_temporary_name(tmp_path):
    X = blobs()[:, :2]
    model = MeanShift(bandwidth=1.5, kernel="flat").fit(X)
    victim = tmp_path / "unrelated.txt"
    victim.write_text("keep me")
    (tmp_path / ".out.png.tmp").symlink_to(victim)  # the name dshift used to write through
    png = tmp_path / "out.png"
    assert plot_fit(X, model, png, n_points=200) == str(png)
    assert victim.read_text() == "keep me"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not png.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.png.tmp", "out.png", victim.name]


def test_plot_replaces_a_link_at_the_png_path_rather_than_writing_through_it(tmp_path):
    X = blobs()[:, :2]
    model = MeanShift(bandwidth=1.5, kernel="flat").fit(X)
    victim = tmp_path / "unrelated.txt"
    victim.write_text("keep me")
    (tmp_path / "out.png").symlink_to(victim)
    plot_fit(X, model, tmp_path / "out.png", n_points=200)
    assert victim.read_text() == "keep me" and not (tmp_path / "out.png").is_symlink()


# -- result groups -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def result_group(tmp_path_factory) -> Path:
    """A valid result group (3 clusters, 2 features) to copy and damage."""
    X = blobs()[:, :2]
    path = tmp_path_factory.mktemp("result") / "result.zarr"
    write_result(path, MeanShift(bandwidth=1.5, kernel="flat").fit(X))
    return path


@pytest.fixture
def result(result_group, tmp_path) -> Path:
    return Path(shutil.copytree(result_group, tmp_path / "result.zarr"))


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _set(key: str, value) -> Callable[[dict], None]:
    return lambda document: document.__setitem__(key, value)


def _set_attribute(key: str, value) -> Callable[[dict], None]:
    return lambda document: document["attributes"].__setitem__(key, value)


def _replace_array(result: Path, name: str, values: np.ndarray, checksums: bool = False):
    """Rewrite one array of the group with zarr (the checksum updated, or all dropped)."""
    group = zarr.open_group(str(result), mode="r+")
    del group[name]
    group.create_array(name, data=values)
    sums = group.attrs.get("checksums") or {}
    group.attrs["checksums"] = {**sums, name: checksum(values)} if checksums else None


def _refusal(result: Path) -> str:
    model, message = _bounded(lambda: read_model(result))
    assert model is None, "accepted"
    assert message.startswith(f"Result {str(result)!r} cannot be used (")
    assert message.endswith("fit again to rewrite it (`dshift fit` or dshift.write_result).")
    return message


def test_a_result_round_trips_with_checksums(result_group):
    model = read_model(result_group)
    attrs = zarr.open_group(str(result_group), mode="r").attrs
    assert set(attrs["checksums"]) == {"centers", "intensity", "cluster_sizes"}
    assert attrs["checksums"]["centers"] == checksum(model.cluster_centers_)
    assert model.cluster_centers_.shape == (3, 2) and model.n_features_in_ == 2
    assert model.cluster_sizes_.sum() == 400


def test_huge_centers_are_refused_from_the_metadata(result):
    _edit_json(result / "centers" / "zarr.json", _set("shape", [10**8, 2]))
    assert "'centers' has shape (100000000, 2); a result holds 1 to 1000000" in _refusal(result)


@pytest.mark.parametrize(
    "values, checksums, match",
    [
        (np.zeros(3), True, r"'centers' has dtype float64 and shape \(3,\), expected 2-d"),
        (np.zeros((3, 2), dtype=np.int64), True, "'centers' has dtype int64"),
        (np.zeros((0, 2)), True, r"'centers' has shape \(0, 2\)"),
        (np.full((3, 2), np.nan), True, "'centers' holds NaN, infinite or negative values"),
        (np.full((3, 2), np.inf), False, "'centers' holds NaN, infinite or negative values"),
        (np.zeros((4, 2)), True, r"'intensity' has dtype float64 and shape \(3,\), expected"),
    ],
    ids=["1-d", "int", "empty", "nan", "inf-without-checksums", "k-mismatch"],
)
def test_centers_predict_cannot_use_are_refused(result, values, checksums, match):
    _replace_array(result, "centers", values, checksums)
    assert re.search(match, _refusal(result))


@pytest.mark.parametrize(
    "name, values, match",
    [
        ("intensity", np.zeros(2), r"'intensity' has dtype float64 and shape \(2,\)"),
        ("intensity", np.array([1.0, -1.0, 2.0]), "'intensity' holds NaN, infinite or negative"),
        ("cluster_sizes", np.array([True, False, True]), "'cluster_sizes' has dtype bool"),
        ("cluster_sizes", np.ones(3, dtype=complex), "'cluster_sizes' has dtype complex128"),
        ("cluster_sizes", np.zeros((3, 1)), r"'cluster_sizes' has dtype float64 and shape \(3, 1"),
    ],
)
def test_intensity_and_sizes_of_the_wrong_shape_or_type_are_refused(result, name, values, match):
    _replace_array(result, name, values, checksums=True)
    assert re.search(match, _refusal(result))


@pytest.mark.parametrize(
    "key, value",
    [("n_iter", "7"), ("n_iter", -1), ("bandwidth", [1.0]), ("bandwidth", -2.0)]
    + [("n_clusters", 5), ("n_clusters", True), ("params", "x"), ("checksums", ["sha"])],
)
def test_attributes_of_the_wrong_type_are_refused(result, key, value):
    _edit_json(result / "zarr.json", _set_attribute(key, value))
    assert re.search(f"attribute '{key}' is|attributes n_clusters=", _refusal(result))


def test_a_bit_flip_in_a_stored_chunk_is_refused_by_its_checksum(result):
    chunk = result / "centers" / "c" / "0" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[5] ^= 0x10
    chunk.write_bytes(bytes(raw))
    assert "'centers' does not match its checksum (a damaged chunk?)" in _refusal(result)


def test_a_group_of_an_older_dshift_without_checksums_is_still_read(result, result_group):
    _edit_json(result / "zarr.json", lambda d: d["attributes"].pop("checksums", None))
    np.testing.assert_array_equal(
        read_model(result).cluster_centers_, read_model(result_group).cluster_centers_
    )


BYTES = {"name": "bytes", "configuration": {"endian": "little"}}
ZSTD = {"name": "zstd", "configuration": {"level": 0, "checksum": False}}


@functools.cache
def _zstd_bomb(size: int) -> bytes:
    return Zstd(level=1).encode(bytes(size))


@pytest.mark.parametrize(
    "size, match",
    [
        (32 * 2**20, "destination buffer too small"),  # 1 KiB: within a chunk's size
        (BOMB_BYTES, r"'centers' has a stored chunk of \d+ bytes, at most 1072 expected"),
    ],
    ids=["32MiB", "64MiB"],
)
def test_a_zstd_bomb_in_a_chunk_is_refused_before_it_is_inflated(result, size, match):
    _edit_json(result / "centers" / "zarr.json", _set("codecs", [BYTES, ZSTD]))
    (result / "centers" / "c" / "0" / "0").write_bytes(_zstd_bomb(size))
    assert re.search(match, _refusal(result))


@pytest.mark.parametrize(
    "codecs",
    [
        [BYTES, {"name": "gzip", "configuration": {"level": 1}}],
        [BYTES, {"name": "crc32c"}],
    ],
    ids=["gzip", "crc32c"],
)
def test_codecs_dshift_does_not_write_are_refused(result, codecs):
    _edit_json(result / "centers" / "zarr.json", _set("codecs", codecs))
    assert "'centers' uses codecs" in _refusal(result)


def test_chunks_larger_than_the_array_are_refused(result):
    grid = {"name": "regular", "configuration": {"chunk_shape": [10**9, 2]}}
    _edit_json(result / "centers" / "zarr.json", _set("chunk_grid", grid))
    assert "'centers' has chunks (1000000000, 2)" in _refusal(result)


@pytest.mark.timeout(30)
def test_a_fifo_as_a_metadata_file_is_refused_without_waiting(result):
    (result / "intensity" / "zarr.json").unlink()
    os.mkfifo(result / "intensity" / "zarr.json")
    assert "intensity/zarr.json is not a metadata file of at most" in _refusal(result)


def test_a_member_that_is_a_group_is_refused(result):
    shutil.rmtree(result / "cluster_sizes")
    zarr.open_group(str(result / "cluster_sizes"), mode="w")
    assert "'cluster_sizes' is a group, not an array" in _refusal(result)


# -- fuzzing: every reader, every kind of damage -----------------------------------------

#: Changes of a member's array: another dtype, ndim or length, or values a fit never makes.
RETYPES = {
    "float32": lambda a: a.astype(np.float32),
    "int64": lambda a: a.astype(np.int64),
    "bool": lambda a: a.astype(bool),
    "complex": lambda a: a.astype(complex),
    "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "strings": lambda a: a.astype("U3"),
    "objects": lambda a: np.array([1, "x", None], dtype=object),
    "1-d": lambda a: a.ravel(),
    "3-d": lambda a: a[None],
    "0-d": lambda a: a.reshape(-1)[:1].reshape(()) if a.size else np.zeros(()),
    "a row fewer": lambda a: a[:-1],
    "a row more": lambda a: np.concatenate([a, a[:1]]) if a.ndim else a,
    "transposed": lambda a: np.asfortranarray(a.T),
    "NaN": lambda a: np.full(a.shape, np.nan),
    "negative": lambda a: -np.abs(a.astype(float)) - 1,
}
HUGE_SHAPES = [(10**12,), (10**6, 10**6), (2**62, 2), (3, 10**15), (-1, 3), (0,), ()]


def _retype(array: np.ndarray, how: str) -> np.ndarray:
    try:
        return RETYPES[how](array)
    except (ValueError, TypeError):  # e.g. the JSON string of 'meta' as float32
        return np.zeros(2)


def _mutated_archive(raw: bytes, data: st.DataObject) -> tuple[bytes, str]:
    """A damaged copy of the .npz ``raw``, and the kind of damage."""
    kind = data.draw(
        st.sampled_from(
            ["truncate", "flip", "swap", "retype", "claim", "bomb"]
            + ["zip-size", "drop", "extra", "deflate"]
        ),
        label="kind",
    )
    if kind == "truncate":
        return raw[: data.draw(st.integers(0, len(raw) - 1), label="length")], kind
    if kind == "flip":
        flips = st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 7))
        damaged = bytearray(raw)
        for offset, bit in data.draw(st.lists(flips, min_size=1, max_size=8), label="flips"):
            damaged[offset] ^= 1 << bit
        return bytes(damaged), kind
    members = _members(raw)
    name = data.draw(st.sampled_from(sorted(members)), label="member")
    if kind == "bomb":
        return _zip(members, bombs={name}), kind
    if kind == "deflate":
        return _zip(members, deflated={name}), kind
    if kind == "zip-size":
        size = data.draw(st.sampled_from([len(raw) + 1, 2**31, 2**32 - 1]), label="size")
        return _claim_zip_size(_zip(members), name, size), kind
    array = _array(members[name])
    if kind == "swap":  # a member replaced by another
        members[name] = members[data.draw(st.sampled_from(sorted(members)), label="by")]
    elif kind == "retype":
        members[name] = _npy(_retype(array, data.draw(st.sampled_from(sorted(RETYPES)))))
    elif kind == "claim":
        shape = data.draw(st.sampled_from(HUGE_SHAPES), label="shape")
        members[name] = _claiming(shape, array.tobytes(), array.dtype.str)
    elif kind == "drop":
        del members[name]
    else:
        members["extra"] = _npy(np.zeros(3))
    return _zip(members), kind


def _assert_consistent(saved: _checkpoint.Checkpoint) -> None:
    """What resuming relies on: shapes that agree, dtypes the loop uses, finite values."""
    m, d = saved.seeds.shape
    assert 1 <= d <= 3 and m >= 1
    state = saved.state
    assert state.centers.shape == (m, d) and state.centers.dtype == np.float64
    assert np.isfinite(state.centers).all() and np.isfinite(saved.seeds).all()
    for values in (state.active, state.alive):
        assert values.shape == (m,) and values.dtype == bool
    assert not (state.active & ~state.alive).any()
    assert state.iteration == len(saved.history)
    assert [s.iteration for s in saved.history] == list(range(state.iteration))
    for step in saved.history:
        assert step.centers.shape == (m, d) and np.isfinite(step.centers).all()
        assert step.active.shape == step.alive.shape == (m,)


def _assert_same(saved: _checkpoint.Checkpoint, original: _checkpoint.Checkpoint) -> None:
    np.testing.assert_array_equal(saved.seeds, original.seeds)
    np.testing.assert_array_equal(saved.state.centers, original.state.centers)
    for got, want in zip(saved.history, original.history, strict=True):
        np.testing.assert_array_equal(got.centers, want.centers)
        np.testing.assert_array_equal(got.alive, want.alive)


@pytest.fixture(scope="module")
def fuzz_checkpoint(pristine, tmp_path_factory):
    """A copy of the pristine checkpoint whose files the fuzz tests overwrite (and restore)."""
    source, params, data = pristine
    ckpt = _copy_checkpoint(source, tmp_path_factory.mktemp("fuzz"))
    return ckpt, params, data, _load(source, params, data)


def _load_damaged(ckpt: Path, damaged_file: Path, params, fingerprint, data):
    """Load the checkpoint with one of its files mutated by hypothesis, then restore it:
    (checkpoint or None, refusal message or None, kind of mutation)."""
    pristine_bytes = damaged_file.read_bytes()
    damaged, kind = _mutated_archive(pristine_bytes, data)
    damaged_file.write_bytes(damaged)
    try:
        saved, message = _bounded(lambda: _load(ckpt, params, fingerprint))
    finally:
        damaged_file.write_bytes(pristine_bytes)
    event(f"{kind}: {'refused' if saved is None else 'loaded'}")
    return saved, message, kind


@FUZZ
@given(data=st.data())
def test_fuzzed_checkpoints_are_refused_in_one_line_or_load_consistently(fuzz_checkpoint, data):
    ckpt, params, fingerprint, original = fuzz_checkpoint
    saved, message, kind = _load_damaged(ckpt, ckpt, params, fingerprint, data)
    if saved is None:
        assert message.startswith(f"Checkpoint {str(ckpt)!r} "), message
        assert "start afresh" in message
        return
    _assert_consistent(saved)
    if kind in ("truncate", "flip"):  # the content is kept (or the CRC-32 refuses it)
        _assert_same(saved, original)


@FUZZ
@given(data=st.data(), iteration=st.integers(0, 2))
def test_fuzzed_step_records_are_refused_in_one_line_or_load_consistently(
    fuzz_checkpoint, data, iteration
):
    ckpt, params, fingerprint, original = fuzz_checkpoint
    record = Path(_checkpoint.steps_dir(ckpt)) / f"{iteration:06d}.npz"
    saved, message, kind = _load_damaged(ckpt, record, params, fingerprint, data)
    if saved is None:
        assert message.startswith(
            f"Checkpoint {str(ckpt)!r} has a damaged record of iteration {iteration}, "
        ), message
        assert message.endswith(
            f"delete the checkpoint and {str(ckpt) + '.steps'!r} to start afresh."
        )
        return
    _assert_consistent(saved)
    if kind in ("truncate", "flip"):  # the content is kept (or the CRC-32 refuses it)
        _assert_same(saved, original)


#: Changes of an array's zarr.json: huge, 1-d, 3-d or empty shapes, other dtypes, chunk
#: grids larger than the array, codecs dshift does not write.
METADATA_EDITS = [
    ("shape", [10**8, 2]),
    ("shape", [2**62]),
    ("shape", [3]),
    ("shape", [3, 2, 1]),
    ("shape", [0, 2]),
    ("shape", []),
    ("data_type", "int32"),
    ("data_type", "bool"),
    ("data_type", "float16"),
    ("data_type", "complex128"),
    ("data_type", "uint8"),
    ("chunk_grid", {"name": "regular", "configuration": {"chunk_shape": [10**9, 2]}}),
    ("chunk_grid", {"name": "regular", "configuration": {"chunk_shape": [1]}}),
    ("codecs", [BYTES, ZSTD]),
    ("codecs", [BYTES, {"name": "gzip", "configuration": {"level": 1}}]),
    ("codecs", [{"name": "bytes", "configuration": {"endian": "big"}}]),
    ("fill_value", "NaN"),
]
ATTRIBUTE_EDITS = [
    (key, value)
    for key in ("n_iter", "bandwidth", "n_clusters", "seeding", "params", "checksums")
    for value in ("x", -1, 2.5, None, [1], {"centers": "sha256:0"}, True, 10**30, "NaN")
]


def _result_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _mutate_result(root: Path, data: st.DataObject) -> str:
    """Damage the result group at ``root`` in place, one way drawn by hypothesis; returns
    the kind of damage."""
    kind = data.draw(
        st.sampled_from(
            ["truncate", "flip", "metadata", "attribute", "swap"]
            + ["bomb", "remove-chunk", "special"]
        ),
        label="kind",
    )
    members = ["centers", "intensity", "cluster_sizes", "labels"]
    if kind in ("truncate", "flip", "special"):
        path = root / data.draw(st.sampled_from(_result_files(root)), label="file")
        raw = bytearray(path.read_bytes())
        if kind == "special":  # what zarr would block on or fail to read
            path.unlink()
            if data.draw(st.booleans(), label="fifo"):
                os.mkfifo(path)
            else:
                path.mkdir()
        elif kind == "truncate":
            path.write_bytes(raw[: data.draw(st.integers(0, max(len(raw) - 1, 0)))])
        else:
            for offset, bit in data.draw(
                st.lists(
                    st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 7)),
                    min_size=1,
                    max_size=4,
                )
            ):
                raw[offset] ^= 1 << bit
            path.write_bytes(bytes(raw))
        return kind
    name = data.draw(st.sampled_from(members[:3]), label="member")
    if kind == "metadata":
        key, value = data.draw(st.sampled_from(METADATA_EDITS), label="edit")
        _edit_json(root / name / "zarr.json", _set(key, value))
    elif kind == "attribute":
        key, value = data.draw(st.sampled_from(ATTRIBUTE_EDITS), label="edit")
        _edit_json(root / "zarr.json", _set_attribute(key, value))
    elif kind == "swap":  # a member replaced by another
        other = data.draw(st.sampled_from(members), label="by")
        shutil.rmtree(root / name)
        if other != name:  # else the member is gone
            shutil.copytree(root / other, root / name)
    elif kind == "bomb":
        _edit_json(root / name / "zarr.json", _set("codecs", [BYTES, ZSTD]))
        chunk = next(p for p in (root / name / "c").rglob("*") if p.is_file())
        chunk.write_bytes(_zstd_bomb(data.draw(st.sampled_from([32 * 2**20, BOMB_BYTES]))))
    else:
        next(p for p in (root / name / "c").rglob("*") if p.is_file()).unlink()
    return kind


@FUZZ
@given(data=st.data())
def test_fuzzed_result_groups_are_refused_in_one_line_or_read_consistently(result_group, data):
    original = read_model(result_group)
    with tempfile.TemporaryDirectory() as directory:
        root = Path(shutil.copytree(result_group, Path(directory) / "result.zarr"))
        kind = _mutate_result(root, data)
        try:
            model, message = _bounded(lambda: read_model(root))
        except FileNotFoundError as exc:  # a member gone: "not a dshift result"
            event(f"{kind}: not a result")
            assert "is not a dshift result" in str(exc) and "\n" not in str(exc)
            return
    event(f"{kind}: {'refused' if model is None else 'read'}")
    if model is None:
        assert message.startswith(f"Result {str(root)!r} cannot be used ("), message
        return
    # every change of the arrays' values is caught by their checksums
    np.testing.assert_array_equal(model.cluster_centers_, original.cluster_centers_)
    np.testing.assert_array_equal(model.intensity_, original.intensity_)
    np.testing.assert_array_equal(model.cluster_sizes_, original.cluster_sizes_)
