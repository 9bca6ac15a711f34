"""Shared fixtures: clusters on 127.0.0.1 (a LocalCluster, and a scheduler + workers started
as separate processes over TCP), each created once per session and always shut down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from distributed import Client, LocalCluster


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


@pytest.fixture(scope="session")
def tcp_scheduler(tmp_path_factory):
    """The docker-compose topology without Docker: `dask scheduler` and two `dask worker`
    processes on 127.0.0.1, started here and shut down (killed if need be) afterwards."""
    workdir = tmp_path_factory.mktemp("tcp-cluster")
    scheduler_file = workdir / "scheduler.json"
    common = dict(cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [
        subprocess.Popen(
            [
                _bin("dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                str(scheduler_file),
            ],
            **common,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise RuntimeError("dask scheduler did not start")
            time.sleep(0.2)
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        _bin("dask"),
                        "worker",
                        "--scheduler-file",
                        str(scheduler_file),
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "1",
                        "--memory-limit",
                        "1GiB",
                        "--no-dashboard",
                    ],
                    **common,
                )
            )
        address = json.loads(scheduler_file.read_text())["address"]
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
