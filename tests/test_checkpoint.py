"""Checkpoints: saved after every iteration, resumed to the uninterrupted result, refused
when made with other parameters or data; a CLI client SIGKILLed mid-fit resumes."""

from __future__ import annotations

import functools
import hashlib
import os
import signal
import subprocess
import sys

import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_blobs

from dshift import MeanShift, _checkpoint, _fingerprint, datasets


@functools.cache
def blobs() -> np.ndarray:
    X, _ = make_blobs(n_samples=6_000, n_features=3, centers=4, random_state=11)
    X.setflags(write=False)
    return X


def _interrupt(model: MeanShift, X, after: int) -> None:
    """Run ``after`` iterations, then abandon the fit (as a client that dies)."""
    fit = model.iter_fit(X)
    for step in fit:
        if step.iteration + 1 == after:
            break
    fit.close()


def _assert_same_fit(a: MeanShift, b: MeanShift, exact: bool = True) -> None:
    if exact:
        np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    else:
        np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(np.asarray(a.labels_), np.asarray(b.labels_))
    assert a.n_iter_ == b.n_iter_
    assert [s.iteration for s in a.history_] == [s.iteration for s in b.history_]
    np.testing.assert_allclose(
        [s.max_shift for s in a.history_], [s.max_shift for s in b.history_], atol=1e-9
    )


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_resumed_fit_equals_the_uninterrupted_one(scheduler, tmp_path, kernel):
    X = blobs()
    params = dict(bandwidth=1.5, kernel=kernel, seeding="bin", max_iter=60, row_chunks=1_000)
    reference = MeanShift(**params).fit(X)
    assert reference.n_iter_ > 3
    ckpt = tmp_path / "fit.ckpt"
    # after 2 steps: a Gaussian resumes with its last steps and stretch factors
    _interrupt(MeanShift(checkpoint=ckpt, **params), X, after=2)
    assert ckpt.exists()

    resumed = MeanShift(checkpoint=ckpt, **params).fit(X)
    assert resumed.resumed_from_ == 2
    _assert_same_fit(resumed, reference)
    np.testing.assert_array_equal(resumed.seeds_, reference.seeds_)
    assert resumed.bandwidth_ == reference.bandwidth_


def test_state_is_saved_after_every_iteration_and_atomically(tmp_path):
    X = blobs()
    ckpt = tmp_path / "fit.ckpt"
    params = dict(bandwidth=1.5, kernel="flat", checkpoint=ckpt)
    model = MeanShift(**params)
    fingerprint = _fingerprint.params_fingerprint(model._result_params())
    data_id = _fingerprint.data_fingerprint(da.from_array(X))
    for step in model.iter_fit(X):
        saved = _checkpoint.load(ckpt, fingerprint, data_id)
        assert saved.state.iteration == step.iteration + 1
        np.testing.assert_array_equal(saved.state.centers, step.centers)
        np.testing.assert_array_equal(saved.state.active, step.active)
        assert [s.iteration for s in saved.history] == list(range(step.iteration + 1))
        assert sorted(os.listdir(tmp_path)) == ["fit.ckpt", "fit.ckpt.steps"], "temporary file"
        steps = sorted(os.listdir(tmp_path / "fit.ckpt.steps"))
        assert steps == [f"{i:06d}.npz" for i in range(step.iteration + 1)]
    assert model.resumed_from_ is None
    np.testing.assert_array_equal(saved.state.n_iter.max(), model.n_iter_)


def test_a_finished_checkpoint_resumes_at_its_end(tmp_path):
    X = blobs()
    params = dict(bandwidth=1.5, kernel="flat", checkpoint=tmp_path / "fit.ckpt")
    first = MeanShift(**params).fit(X)
    again = MeanShift(**params)
    assert list(again.iter_fit(X)) == []
    assert again.resumed_from_ == len(first.history_)
    _assert_same_fit(again, first)


def _file_hash(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(bandwidth=1.6), r"other parameters \(bandwidth=1.5 there, 1.6 now\)"),
        (dict(kernel="gaussian"), "other parameters .*kernel"),
        (dict(max_iter=7), "other parameters .*max_iter"),
        (dict(seeds=[[0.0, 0.0, 0.0]]), "other parameters .*seeds"),
    ],
    ids=["bandwidth", "kernel", "max_iter", "seeds"],
)
def test_a_checkpoint_of_other_parameters_is_refused(tmp_path, change, match):
    X = blobs()
    ckpt = tmp_path / "fit.ckpt"
    params = dict(bandwidth=1.5, kernel="flat", max_iter=50)
    _interrupt(MeanShift(checkpoint=ckpt, **params), X, after=2)
    before = _file_hash(ckpt)
    with pytest.raises(ValueError, match=match):
        MeanShift(checkpoint=ckpt, **{**params, **change}).fit(X)
    assert _file_hash(ckpt) == before


@pytest.mark.parametrize("change", ["one value", "rows swapped", "a row fewer", "float32"])
def test_a_checkpoint_of_other_data_is_refused(tmp_path, change):
    X = blobs()
    ckpt = tmp_path / "fit.ckpt"
    _interrupt(MeanShift(bandwidth=1.5, kernel="flat", checkpoint=ckpt), X, after=2)
    before = _file_hash(ckpt)
    other = X.copy()
    if change == "one value":
        other[1234, 2] += 1e-9
    elif change == "rows swapped":
        other[[10, 20]] = other[[20, 10]]
    elif change == "a row fewer":
        other = other[:-1]
    else:
        other = other.astype(np.float32)
    with pytest.raises(ValueError, match="was made from other data"):
        MeanShift(bandwidth=1.5, kernel="flat", checkpoint=ckpt).fit(other)
    assert _file_hash(ckpt) == before


def test_a_checkpoint_resumes_under_another_chunking_and_placement(tmp_path):
    X = blobs()
    params = dict(bandwidth=1.5, kernel="gaussian", max_iter=40)
    reference = MeanShift(**params, row_chunks=6_000).fit(X)
    ckpt = tmp_path / "fit.ckpt"
    _interrupt(MeanShift(checkpoint=ckpt, row_chunks=500, persist=True, **params), X, after=4)
    resumed = MeanShift(checkpoint=ckpt, row_chunks=2_500, persist=False, **params).fit(X)
    assert resumed.resumed_from_ == 4
    _assert_same_fit(resumed, reference, exact=False)


def _npz_bytes(**arrays) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _npy_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content, match",
    [
        (b"not a checkpoint", "not a readable dshift checkpoint"),
        (b"", "not a readable"),
        (_npy_bytes(), "not a readable"),
        (_npz_bytes(meta=np.array(f'{{"format": {_checkpoint.FORMAT}}}')), "not a readable"),
        (_npz_bytes(meta=np.array("[1, 2]")), "not a readable"),
        (_npz_bytes(other=np.zeros(2)), "not a readable"),
    ],
    ids=["text", "empty", "npy", "meta-without-params", "meta-list", "no-meta"],
)
def test_an_unreadable_checkpoint_is_refused(tmp_path, content, match):
    ckpt = tmp_path / "fit.ckpt"
    ckpt.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        MeanShift(bandwidth=1.5, checkpoint=ckpt).fit(blobs())
    assert ckpt.read_bytes() == content


@pytest.mark.parametrize(
    "path, error, match",
    [
        ("missing-dir/fit.ckpt", FileNotFoundError, "does not exist; create"),
        ("s3://bucket/fit.ckpt", ValueError, "must be a local file path"),
        (".", IsADirectoryError, "is a directory"),
    ],
)
def test_bad_checkpoint_paths_are_refused_before_reading_data(
    tmp_path, monkeypatch, path, error, match
):
    def unreadable(block):
        raise AssertionError("data read before the checkpoint path was checked")

    X = da.from_array(blobs(), chunks=1000).map_blocks(unreadable, meta=np.empty((0, 0)))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=match):
        MeanShift(bandwidth=1.5, checkpoint=path).fit(X)


def test_a_generator_random_state_cannot_be_checkpointed(tmp_path):
    model = MeanShift(
        bandwidth=1.5, random_state=np.random.default_rng(0), checkpoint=tmp_path / "c"
    )
    with pytest.raises(ValueError, match="random_state to be an int or None"):
        model.fit(blobs())


@settings(max_examples=12, deadline=None)
@given(
    chunks=st.sampled_from([300, 1_000, 2_048, 6_000]),
    resumed_chunks=st.sampled_from([700, 3_000, 6_000]),
    after=st.integers(1, 6),
    kernel=st.sampled_from(["flat", "epanechnikov", "gaussian"]),
)
def test_resume_is_deterministic_whatever_the_chunking(
    tmp_path_factory, chunks, resumed_chunks, after, kernel
):
    X = blobs()
    params = dict(bandwidth=1.5, kernel=kernel, max_iter=30)
    reference = _reference_fit(kernel)
    ckpt = tmp_path_factory.mktemp("resume") / "fit.ckpt"
    _interrupt(MeanShift(checkpoint=ckpt, row_chunks=chunks, **params), X, after=after)
    resumed = MeanShift(checkpoint=ckpt, row_chunks=resumed_chunks, **params).fit(X)
    assert resumed.resumed_from_ == min(after, len(reference.history_))
    _assert_same_fit(resumed, reference, exact=False)


@functools.cache
def _reference_fit(kernel: str) -> MeanShift:
    return MeanShift(bandwidth=1.5, kernel=kernel, max_iter=30, row_chunks=6_000).fit(blobs())


# -- the command line: a client SIGKILLed mid-fit, then the same command again ---------


def _dshift() -> str:
    return os.path.join(os.path.dirname(sys.executable), "dshift")


@pytest.mark.timeout(900)  # three CLI runs on a busy machine
def test_cli_client_killed_mid_fit_resumes_to_the_same_result(tmp_path, tcp_scheduler):
    data = datasets.make_blobs(
        tmp_path / "data.zarr", 100_000, n_features=3, centers=5, chunk_rows=25_000
    )
    common = ["--kernel", "gaussian", "--bandwidth", "1", "--seeding", "bin", "--max-iter", "14"]
    common += ["--scheduler", tcp_scheduler]
    ckpt = tmp_path / "fit.ckpt"
    out = tmp_path / "out.zarr"
    command = [_dshift(), "fit", data, str(out), "--checkpoint", str(ckpt), *common]

    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        seen = []  # a hang is caught by the test's timeout, not by a deadline here
        for line in proc.stderr:  # status lines (progress) go to stderr
            seen.append(line)
            if line.strip().startswith("iteration    4"):
                break
        else:
            proc.wait()
            pytest.fail(f"the fit ended before it was killed:\n{''.join(seen)}{proc.stdout.read()}")
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert ckpt.exists() and not out.exists()

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    resumed_line = next(
        line for line in again.stderr.splitlines() if line.startswith("Resumed from checkpoint")
    )
    resumed_at = int(resumed_line.rsplit(" ", 1)[1])
    assert resumed_at >= 5
    assert "iteration    0 " not in again.stderr

    ref = tmp_path / "reference.zarr"
    plain = subprocess.run(
        [_dshift(), "fit", data, str(ref), *common],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plain.returncode == 0, plain.stderr
    got, want = zarr.open_group(str(out), mode="r"), zarr.open_group(str(ref), mode="r")
    np.testing.assert_array_equal(got["centers"][:], want["centers"][:])
    np.testing.assert_array_equal(got["labels"][:], want["labels"][:])
    assert got.attrs["n_iter"] == want.attrs["n_iter"]


def test_cli_refuses_a_checkpoint_of_other_parameters_in_one_line(tmp_path):
    from click.testing import CliRunner

    from dshift.cli import main

    data = datasets.make_blobs(tmp_path / "d.zarr", 3_000, n_features=2, chunk_rows=1_000)
    ckpt = tmp_path / "fit.ckpt"
    _interrupt(MeanShift(bandwidth=1.0, kernel="flat", checkpoint=ckpt), data, after=1)
    result = CliRunner().invoke(
        main,
        ["fit", data, str(tmp_path / "o.zarr"), "--kernel", "flat", "--bandwidth", "2"]
        + ["--checkpoint", str(ckpt), "--workers", "1"],
    )
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "other parameters" in errors[0], result.output
    assert not (tmp_path / "o.zarr").exists()


def test_a_checkpoint_whose_step_records_are_gone_is_refused(tmp_path):
    ckpt = tmp_path / "fit.ckpt"
    _interrupt(MeanShift(bandwidth=1.5, kernel="flat", checkpoint=ckpt), blobs(), after=3)
    os.remove(tmp_path / "fit.ckpt.steps" / "000001.npz")
    with pytest.raises(ValueError, match="lacks its record of iteration 1"):
        MeanShift(bandwidth=1.5, kernel="flat", checkpoint=ckpt).fit(blobs())


def test_two_fits_sharing_a_checkpoint_path_never_see_a_torn_file(tmp_path):
    """Temporary files are unique per write (not per process): concurrent writers in one
    process replace the file whole, and every read finds a complete checkpoint."""
    import threading

    X = blobs()
    ckpt = tmp_path / "fit.ckpt"
    params = dict(bandwidth=1.5, kernel="flat", checkpoint=ckpt)
    errors = []

    def run():
        try:
            MeanShift(**params).fit(X)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    again = MeanShift(**params).fit(X)
    assert again.resumed_from_ is not None
