"""Small in-memory input is fitted in the client's process even when a distributed client
is active (shipping it and a round trip per iteration cost more than the whole fit), with
the same result as on the cluster; larger input, and any input once the dask config key
``dshift.fit-here-bytes`` is 0, goes to the cluster."""

from __future__ import annotations

import dask
import pytest
from distributed import get_task_stream
from numpy.testing import assert_array_equal
from sklearn.datasets import make_blobs

from dshift import MeanShift, _cluster

X, _ = make_blobs(3_000, n_features=3, centers=4, random_state=2)


def fitted_and_tasks(client, data, limit):
    with dask.config.set({"dshift.fit-here-bytes": limit}), get_task_stream(client) as ts:
        model = MeanShift(bandwidth=2.0, kernel="flat").fit(data)
        labels = model.predict(data)
    return model, labels, len(ts.data)


def test_small_input_is_fitted_here_with_the_cluster_s_result(dask_client):
    assert X.nbytes <= _cluster.FIT_HERE_BYTES
    here, here_labels, here_tasks = fitted_and_tasks(dask_client, X, _cluster.FIT_HERE_BYTES)
    there, there_labels, there_tasks = fitted_and_tasks(dask_client, X, 0)
    assert here_tasks == 0 and there_tasks > 0
    assert_array_equal(here.cluster_centers_, there.cluster_centers_)
    assert_array_equal(here.labels_, there.labels_)
    assert_array_equal(here_labels, there_labels)
    assert here.n_iter_ == there.n_iter_
    # the client is still the default afterwards
    assert _cluster.current_client() is dask_client
    assert dask.config.get("scheduler") == "dask.distributed"


def test_input_above_the_limit_goes_to_the_cluster(dask_client):
    _, _, tasks = fitted_and_tasks(dask_client, X, X.nbytes - 1)
    assert tasks > 0


def test_a_dask_array_goes_to_the_cluster_however_small(dask_client):
    import dask.array as da

    _, _, tasks = fitted_and_tasks(dask_client, da.from_array(X, chunks=1000), 2**30)
    assert tasks > 0


def test_iterating_a_fit_here_leaves_the_client_to_the_caller(dask_client):
    """Between the steps of ``iter_fit`` the caller's own computations see its client."""
    seen = []
    with dask.config.set({"dshift.fit-here-bytes": _cluster.FIT_HERE_BYTES}):
        for _ in MeanShift(bandwidth=2.0, kernel="flat").iter_fit(X):
            seen.append((_cluster.current_client(), dask.config.get("scheduler")))
    assert seen and all(s == (dask_client, "dask.distributed") for s in seen)


@pytest.mark.parametrize("in_memory, n_values, expected", [(True, 12, True), (False, 12, False)])
def test_fits_here_needs_in_memory_input_and_a_client(dask_client, in_memory, n_values, expected):
    with dask.config.set({"dshift.fit-here-bytes": 100}):  # 12 float64 values, not 13
        assert _cluster.fits_here(in_memory, n_values) is expected
        assert _cluster.fits_here(True, 13) is False


def test_float32_and_float64_of_one_shape_are_fitted_in_the_same_place(dask_client):
    X32 = X.astype("float32")
    for limit, tasks_expected in ((X.nbytes, False), (X.nbytes - 1, True)):
        _, _, tasks = fitted_and_tasks(dask_client, X32, limit)
        assert (tasks > 0) is tasks_expected
