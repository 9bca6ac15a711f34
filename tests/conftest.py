"""Shared fixtures: one multi-process LocalCluster on 127.0.0.1 for the whole session."""

from __future__ import annotations

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
