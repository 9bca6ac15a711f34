"""Iterations over data held by the workers: one task per worker thread, the same sums
(to the bit) as the graph of one task per block, and fits that use it."""

from __future__ import annotations

from functools import partial

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import get_task_stream
from sklearn.datasets import make_blobs

from dshift import MeanShift, _iterate, kernels
from dshift._columns import Columns
from dshift._iterate import (
    computed_labels_and_sizes,
    label_blocks,
    labels_and_sizes,
    reduce_cells,
    reduce_stats,
)
from dshift._resident import LocalBlocks, Resident


@pytest.fixture(scope="module")
def X():
    points, _ = make_blobs(n_samples=30_000, n_features=3, centers=4, random_state=7)
    return points


def test_blocks_are_mapped_in_block_order_wherever_they_are(dask_client, X):
    held = da.from_array(X, chunks=(1_700, 3)).persist()  # 18 blocks, uneven last one
    resident = Resident.of(held)
    assert resident is not None
    assert {worker for worker, _ in resident.batches()} == set(dask_client.nthreads())
    sums = resident.map_blocks(np.sum, 0)
    expected = [X[i : i + 1_700].sum(axis=0) for i in range(0, len(X), 1_700)]
    assert len(sums) == len(expected)
    for got, want in zip(sums, expected):
        np.testing.assert_array_equal(got, want)


def test_arrays_not_held_by_a_cluster_have_no_resident_blocks(dask_client, X):
    lazy = da.from_array(X, chunks=(5_000, 3))
    assert Resident.of(lazy) is None  # not persisted: its blocks are tasks, not data
    assert Resident.of(da.from_array(X, chunks=(5_000, 2)).persist()) is None  # split rows


def test_without_a_client_persisted_arrays_run_on_local_threads(X):
    assert Resident.of(da.from_array(X, chunks=(5_000, 3)) * 2.0) is None  # tasks, not blocks
    assert Resident.of(da.from_array(X, chunks=(5_000, 2)).persist()) is None  # split rows
    held = da.from_array(X, chunks=(1_100, 3)).persist()
    local = Resident.of(held)
    assert isinstance(local, LocalBlocks) and local.copies() == 0
    centers = X[::1_000] + 0.25
    args = (held, centers, 2.0, kernels.GAUSSIAN, Columns(3), False)
    for scheduler in ("threads", "sync"):
        with dask.config.set(scheduler=scheduler):
            via_graph = reduce_stats(*args)
            via_threads = reduce_stats(*args, local)
        for field in ("sums", "weights", "counts", "bandwidths"):
            np.testing.assert_array_equal(getattr(via_threads, field), getattr(via_graph, field))


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_resident_sums_equal_the_graphs_bit_for_bit(dask_client, X, kernel):
    held = da.from_array(X, chunks=(1_100, 3)).persist()  # 28 blocks: a 2-level tree
    centers = X[::1_000] + 0.25
    args = (held, centers, 2.0, kernels.KERNELS[kernel], Columns(3), False)
    via_graph = reduce_stats(*args)
    via_workers = reduce_stats(*args, Resident.of(held))
    for field in ("sums", "weights", "counts", "bandwidths"):
        np.testing.assert_array_equal(getattr(via_workers, field), getattr(via_graph, field))
    assert via_workers.n_nonfinite == via_graph.n_nonfinite == 0


def test_a_fit_on_a_cluster_sends_no_task_per_block_in_its_iterations(dask_client, X):
    params = dict(bandwidth=2, kernel="flat", seeding="bin", row_chunks=2_000)
    with get_task_stream(dask_client) as stream:
        model = MeanShift(**params).fit(X)
    assert len(model.history_) > 3
    keys = [str(task["key"]) for task in stream.data]
    per_block = [key for key in keys if "chunk_stats" in key or "add_stats" in key]
    assert not per_block, per_block[:3]


def test_blocks_not_where_they_were_seen_fall_back_to_the_graph(dask_client, X):
    held = da.from_array(X, chunks=(3_000, 3)).persist()
    resident = Resident.of(held)
    elsewhere = {}
    for worker, blocks in resident.batches():
        others = sorted(w for w in dask_client.nthreads() if w != worker)
        elsewhere.setdefault(others[0], []).extend(blocks)
    resident._batches = sorted(elsewhere.items())  # every block "held" by another worker
    assert resident.map_blocks(np.sum) is None
    assert resident.failed
    centers = X[::3_000]
    args = (held, centers, 2.0, kernels.FLAT, Columns(3), False)
    via_graph = reduce_stats(*args)
    after_failure = reduce_stats(*args, resident)
    np.testing.assert_array_equal(after_failure.sums, via_graph.sums)
    np.testing.assert_array_equal(after_failure.counts, via_graph.counts)


@pytest.mark.parametrize("on", ["threads", "cluster"])
def test_small_data_are_binned_where_they_are_held_with_the_graphs_result(
    request, monkeypatch, X, on
):
    if on == "cluster":
        request.getfixturevalue("dask_client")
    held = da.from_array(X, chunks=(1_100, 3)).persist()
    weights = da.from_array(np.arange(len(X)) % 7 + 0.5, chunks=(1_100,))
    packed = da.concatenate([held, weights[:, None]], axis=1).rechunk({1: -1}).persist()
    calls = []
    run = Resident.map_blocks if on == "cluster" else LocalBlocks.map_blocks

    def counted(self, fn, *args):
        calls.append(fn)
        return run(self, fn, *args)

    for weighted, data in ((False, held), (True, packed)):
        kinds = dict(nearest=True, sums=True) if weighted else {}
        with monkeypatch.context() as patched:
            patched.setattr(Resident if on == "cluster" else LocalBlocks, "map_blocks", counted)
            near = reduce_cells(data, 0.7, weighted, **kinds)
        assert calls, "the cells were not computed where the blocks are"
        calls.clear()
        with monkeypatch.context() as patched:
            patched.setattr(_iterate, "CELLS_ON_CLIENT_BYTES", 0)  # always the graph
            via_graph = reduce_cells(data, 0.7, weighted, **kinds)
        assert near.n_nonfinite == via_graph.n_nonfinite == 0
        np.testing.assert_array_equal(near.cells, via_graph.cells)
        np.testing.assert_array_equal(near.counts, via_graph.counts)
        if weighted:
            np.testing.assert_array_equal(near.sums, via_graph.sums)


@pytest.mark.parametrize("on", ["threads", "cluster"])
@pytest.mark.parametrize("weighted", [False, True])
def test_labels_and_sizes_are_computed_where_the_blocks_are_with_the_graphs_result(
    request, monkeypatch, X, on, weighted
):
    if on == "cluster":
        request.getfixturevalue("dask_client")
    weights = np.arange(len(X)) % 7 + 0.5
    data = np.column_stack([X, weights]) if weighted else X
    held = da.from_array(data, chunks=(1_100, data.shape[1])).persist()
    centers = MeanShift(bandwidth=2, seeding="bin").fit(X[:3_000]).cluster_centers_
    nearest = partial(label_blocks, centers=centers, bandwidth=2.0, cluster_all=False)
    args = (held, 3, len(centers), nearest, weighted)
    calls = []
    where = Resident if on == "cluster" else LocalBlocks
    run = where.map_blocks

    def counted(self, fn, *more):
        calls.append(fn)
        return run(self, fn, *more)

    monkeypatch.setattr(where, "map_blocks", counted)
    labels, sizes = computed_labels_and_sizes(*args)
    assert calls, "not computed where the blocks are"
    lazy_labels, lazy_sizes = labels_and_sizes(*args)
    np.testing.assert_array_equal(labels, lazy_labels.compute())
    np.testing.assert_allclose(sizes, lazy_sizes.compute(), rtol=1e-12)
    assert (labels == -1).any() and set(np.unique(labels)) <= set(range(-1, len(centers)))


def test_labels_fall_back_to_the_graph_when_the_workers_cannot_run_them(
    dask_client, monkeypatch, X
):
    held = da.from_array(X, chunks=(3_000, 3)).persist()
    centers = X[::6_000]
    nearest = partial(label_blocks, centers=centers, bandwidth=2.0, cluster_all=True)
    monkeypatch.setattr(Resident, "map_blocks", lambda self, fn, *args: None)  # failed
    labels, sizes = computed_labels_and_sizes(held, 3, len(centers), nearest)
    lazy_labels, lazy_sizes = labels_and_sizes(held, 3, len(centers), nearest)
    np.testing.assert_array_equal(labels, lazy_labels.compute())
    np.testing.assert_array_equal(sizes, lazy_sizes.compute())


def test_a_numpy_fit_on_a_cluster_runs_no_task_per_block_after_placing_the_data(dask_client, X):
    with get_task_stream(dask_client) as stream:
        model = MeanShift(bandwidth=2, kernel="flat", seeding="bin", row_chunks=2_000).fit(X)
    keys = [str(task["key"]) for task in stream.data]
    assert len(model.labels_) == len(X) and model.cluster_sizes_.sum() == len(X)
    # the placed blocks are the scattered ones (no task re-reads them), sorted once;
    # iterations, seeds, labels and sizes run where the blocks are
    assert all(key.startswith("('loop-data-") for key in keys), sorted(set(keys))[:5]
