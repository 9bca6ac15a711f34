"""Failures during a fit: a worker killed mid-fit, a client killed and resumed from its
checkpoint, checkpoints made with other parameters or data, corrupt inputs."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from distributed import Client
from sklearn.datasets import make_blobs

from dshift import MeanShift


def _bin(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


@pytest.fixture(scope="module")
def three_workers(tmp_path_factory, dask_processes):
    """`dask scheduler` + three `dask worker` processes (with nannies) on 127.0.0.1, of
    this module only: its tests kill workers."""
    with dask_processes(tmp_path_factory.mktemp("killable"), 3) as address:
        yield address


@pytest.fixture
def client3(three_workers):
    with Client(three_workers, timeout="30s") as client:
        client.wait_for_workers(3, timeout=60)
        yield client


def _kill_busiest_worker(client: Client, holds_data: bool = True) -> None:
    """SIGKILL the worker process holding the most data (its nanny starts a new one)."""
    held = client.has_what()
    address = max(held, key=lambda w: len(held[w]))
    if holds_data:
        assert held[address], "no worker holds data: the test would not lose anything"
    pid = client.run(os.getpid, workers=[address])[address]
    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(n_samples=60_000, n_features=3, centers=5, cluster_std=1.0, random_state=3)
    return X


def _source(kind, X, tmp_path):
    if kind == "numpy":
        return X
    path = str(tmp_path / "X.zarr")
    z = zarr.create_array(path, shape=X.shape, chunks=(10_000, 3), dtype=X.dtype)
    z[:] = X
    return path


@pytest.mark.parametrize(
    "kind, persist", [("numpy", "auto"), ("zarr", True), ("zarr", False)], ids=str
)
def test_fit_survives_a_worker_killed_mid_fit(client3, blobs, tmp_path, caplog, kind, persist):
    params = dict(bandwidth=2, kernel="flat", seeding="bin", row_chunks=10_000, persist=persist)
    source = _source(kind, blobs, tmp_path)
    reference = MeanShift(**params).fit(source)
    assert reference.n_iter_ >= 4, "too few iterations to kill a worker in between"

    model = MeanShift(**params)
    with caplog.at_level(logging.WARNING, logger="dshift"):
        for step in model.iter_fit(source):
            if step.iteration == 1:  # streamed data: nothing is held between iterations
                _kill_busiest_worker(client3, holds_data=persist is not False)
    np.testing.assert_array_equal(model.cluster_centers_, reference.cluster_centers_)
    np.testing.assert_array_equal(np.asarray(model.labels_), np.asarray(reference.labels_))
    assert model.n_iter_ == reference.n_iter_
    if kind == "numpy":  # scattered chunks cannot be recomputed: dshift placed them again
        assert "Data lost with a worker" in caplog.text
    client3.wait_for_workers(3, timeout=60)


def test_fit_survives_a_worker_killed_during_an_iteration(client3, tmp_path):
    """The kill lands while a worker computes an iteration's chunks (however they are
    dispatched: tasks, or calls on the workers that hold them)."""
    X, _ = make_blobs(n_samples=200_000, n_features=3, centers=5, random_state=4)
    params = dict(bandwidth=2, kernel="gaussian", max_iter=8, row_chunks=20_000)
    reference = MeanShift(**params).fit(X)
    model = MeanShift(**params)
    marks = tmp_path / "marks"
    marks.mkdir()

    def _mark_chunk_calls(folder: str) -> None:
        """On a worker (defined here: pickled by value, as the workers cannot import
        the tests): make every chunk computation first write a file named after this
        process (the chunk functions are pickled by reference, so the workers' attribute is
        the one called)."""
        import dshift.kernels._plan as plan_module

        original = plan_module.chunk_stats

        def marked(X, plan):
            with open(os.path.join(folder, str(os.getpid())), "w"):
                pass
            return original(X, plan)

        plan_module.chunk_stats = marked

    client3.run(_mark_chunk_calls, str(marks))
    killed: list[object] = []  # the killed worker's pid, or the killer's exception
    fit_done = threading.Event()

    def kill_while_a_chunk_is_computed() -> None:
        try:
            while not fit_done.is_set():  # a condition, not a delay: a chunk is computing
                for mark in marks.iterdir():
                    os.kill(int(mark.name), signal.SIGKILL)
                    killed.append(int(mark.name))
                    return
        except Exception as exc:  # reported by the test thread
            killed.append(exc)

    killer = None
    for _ in model.iter_fit(X):
        if killer is None:  # after iteration 0: the next ones run while the killer looks
            for mark in marks.iterdir():
                mark.unlink()
            killer = threading.Thread(target=kill_while_a_chunk_is_computed, daemon=True)
            killer.start()
    fit_done.set()
    killer.join(timeout=120)
    assert killed and isinstance(killed[0], int), killed
    np.testing.assert_array_equal(model.cluster_centers_, reference.cluster_centers_)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    client3.wait_for_workers(3, timeout=60)


@pytest.fixture(scope="module")
def threaded_result(blobs):
    """The fit on dask's threaded scheduler (set up before any client of this module)."""
    with dask.config.set(scheduler="threads"):
        return MeanShift(**DETERMINISM_PARAMS).fit(da.from_array(blobs, chunks=(7_000, 3)))


DETERMINISM_PARAMS = dict(bandwidth=2, kernel="epanechnikov", seeding="bin", max_iter=50)


def test_three_workers_give_the_threaded_result(threaded_result, client3, blobs):
    """Determinism across worker counts and chunkings: 3 worker processes vs threads."""
    on_cluster = MeanShift(row_chunks=11_000, **DETERMINISM_PARAMS).fit(blobs)
    np.testing.assert_allclose(
        on_cluster.cluster_centers_, threaded_result.cluster_centers_, rtol=0, atol=1e-9
    )
    np.testing.assert_array_equal(on_cluster.labels_, np.asarray(threaded_result.labels_))
    assert on_cluster.n_iter_ == threaded_result.n_iter_
