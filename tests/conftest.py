"""Shared fixtures: clusters on 127.0.0.1 (a LocalCluster, and a scheduler + workers started
as separate processes over TCP), each created once per session and always shut down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager

import dask
import pytest
from distributed import Client, LocalCluster


@pytest.fixture(autouse=True, scope="session")
def fits_use_the_cluster():
    """Small in-memory input is fitted in the client's process by default, even with a
    distributed client; the tests that pass a client mean the cluster to do the work, so
    every fit goes there (tests/test_fit_here.py covers the default)."""
    with dask.config.set({"dshift.fit-here-bytes": 0}):
        yield


@pytest.fixture(scope="session")
def cluster():
    """A real 2-worker, multi-process distributed cluster bound to 127.0.0.1."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        memory_limit="2GiB",
    ) as lc:
        yield lc


@pytest.fixture
def dask_client(cluster):
    """A client connected to the shared cluster; every compute in the test runs there."""
    with Client(cluster) as client:
        yield client


@pytest.fixture(params=["threads", "cluster"])
def scheduler(request):
    """Run the test once on dask's default threaded scheduler and once on the cluster."""
    if request.param == "threads":
        yield None
    else:
        yield request.getfixturevalue("dask_client")


def _bin(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


def _scheduler_address(scheduler_file) -> str | None:
    """The address in a `dask scheduler --scheduler-file` file, or None while the file is
    missing or not yet completely written (the scheduler does not write it atomically)."""
    try:
        address = json.loads(scheduler_file.read_text()).get("address")
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return address or None


@contextmanager
def _dask_processes(workdir, n_workers, *, scheduler_args=(), worker_args=(), security=None):
    """`dask scheduler` and ``n_workers`` `dask worker` processes on 127.0.0.1, started in
    ``workdir`` and always shut down (killed if need be); yields the scheduler address."""
    scheduler_file = workdir / "scheduler.json"
    common = dict(cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scheduler = [_bin("dask"), "scheduler", "--host", "127.0.0.1", "--port", "0"]
    scheduler += ["--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)]
    procs = [subprocess.Popen([*scheduler, *scheduler_args], **common)]
    try:
        # The scheduler creates the file, then writes it: wait until it holds an address.
        # The deadline only bounds a scheduler that neither starts nor dies.
        deadline = time.monotonic() + 60
        while (address := _scheduler_address(scheduler_file)) is None:
            if procs[0].poll() is not None:
                raise RuntimeError(f"dask scheduler exited with status {procs[0].returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dask scheduler wrote no address to {scheduler_file}")
            time.sleep(0.05)
        worker = [_bin("dask"), "worker", "--scheduler-file", str(scheduler_file)]
        worker += ["--host", "127.0.0.1", "--nthreads", "1", "--memory-limit", "1GiB"]
        worker += ["--no-dashboard", *worker_args]
        procs += [subprocess.Popen(worker, **common) for _ in range(n_workers)]
        with Client(address, timeout="30s", security=security) as client:
            client.wait_for_workers(n_workers, timeout=60)
        yield address
    finally:
        # The workers first, while their scheduler still answers (a nanny whose scheduler is
        # gone waits for it before it exits), then the scheduler.
        _stop(procs[1:])
        _stop(procs[:1])


def _stop(procs) -> None:
    """SIGTERM ``procs`` and wait for them to exit; SIGKILL any that are still alive 20 s
    later (the bound only matters for a process that ignores SIGTERM)."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def dask_processes():
    """Start a `dask scheduler` + `dask worker` cluster as separate processes (a context
    manager: ``with dask_processes(workdir, n_workers, ...) as address``)."""
    return _dask_processes


@pytest.fixture(scope="session")
def tcp_scheduler(tmp_path_factory):
    """The docker-compose topology without Docker: `dask scheduler` and two `dask worker`
    processes on 127.0.0.1, started here and shut down (killed if need be) afterwards."""
    with _dask_processes(tmp_path_factory.mktemp("tcp-cluster"), 2) as address:
        yield address
