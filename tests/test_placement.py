"""Where a fit's data live, sized to what the workers have free: dask and Zarr input is
kept in the workers' memory only when it fits in 40% of their free memory (each worker's
limit less what it uses, at least the baseline of a worker with the kernels loaded), and
the row chunks dshift makes are at most 1/16 of the smallest worker's free memory.

A worker of 300 MiB holds ~210 MiB before any data (numba and the compiled kernels): data
placed by its limit alone (40% of 600 MiB) or read in 16 MiB chunks took two such workers
past their limit.
"""

from __future__ import annotations

import dask
import numpy as np
import pytest
import zarr

from dshift import MeanShift, _cluster, _fit_input, _io, _placement

MiB = 2**20


class FakeClient:
    """What ``free_memory`` reads of a client: the scheduler's view of the workers."""

    def __init__(self, *workers: tuple[int | None, int | None]):
        self.workers = {
            f"tcp://127.0.0.1:{i}": {"memory_limit": limit, "metrics": {"memory": used}}
            for i, (limit, used) in enumerate(workers)
        }

    def scheduler_info(self, n_workers: int = 5) -> dict:
        return {"workers": self.workers}


def host_memory() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def test_free_memory_is_the_limit_less_the_larger_of_use_and_baseline():
    base = _cluster.WORKER_BASELINE
    client = FakeClient((300 * MiB, 60 * MiB), (300 * MiB, 250 * MiB), (100 * MiB, 0), (None, 0))
    assert _cluster.free_memory(client) == [
        300 * MiB - base,  # a fresh worker will load the kernels
        50 * MiB,  # a worker using more than the baseline
        0,  # a limit below the baseline
        host_memory() - base,  # no limit: the machine's memory
    ]


def test_dask_input_is_kept_only_if_it_fits_in_the_free_memory(monkeypatch, tmp_path):
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, shape=(2**21, 2), chunks=(2**18, 2), dtype="f4")[:] = 1.0
    ms = MeanShift(bandwidth=1.0)
    with dask.config.set(scheduler="sync"):
        inp = _fit_input.prepare_input(ms, path, None, None)
    assert inp.source.nbytes == 16 * MiB
    free = _cluster.WORKER_BASELINE + 20 * MiB  # 2 x 20 MiB free: 40% is 16 MiB
    for limit, kept in ((free, True), (free - MiB, False)):
        client = FakeClient((limit, 0), (limit, 0))
        monkeypatch.setattr(_placement, "current_client", lambda c=client: c)
        assert _placement.available_memory() == 2 * (limit - _cluster.WORKER_BASELINE)
        assert _fit_input.place(ms, inp).persist is kept
    # the chunks spread evenly: the worker with less free memory bounds what is kept
    client = FakeClient((free + 100 * MiB, 0), (free - MiB, 0))
    monkeypatch.setattr(_placement, "current_client", lambda: client)
    assert _placement.available_memory() == 2 * 19 * MiB
    assert _fit_input.place(ms, inp).persist is False


@pytest.mark.parametrize(
    ("free_mib", "expected_mib"), [(76, 76 / 16), (1000, 16), (8, 1), (0, 1)], ids=str
)
def test_chunks_are_a_sixteenth_of_the_smallest_workers_free_memory_within_1_to_16_mib(
    free_mib, expected_mib
):
    base = _cluster.WORKER_BASELINE
    client = FakeClient((base + free_mib * MiB, 0), (4096 * MiB, 0))
    assert _io.target_chunk_bytes(client) == int(expected_mib * MiB)
    rows = _io.row_chunks_for(10**8, 2, 4, chunk_bytes=_io.target_chunk_bytes(client))
    assert rows == max(1, int(expected_mib * MiB) // 8)


@pytest.mark.parametrize(
    ("free_mib", "f32_mib", "f64_mib"), [(None, 16, 32), (1000, 16, 32), (76, 4.75, 4.75)]
)
def test_float64_chunks_hold_as_many_rows_as_float32_within_the_memory_bound(
    free_mib, f32_mib, f64_mib
):
    # as many chunks for either dtype (as many per-chunk costs per iteration), but never
    # more bytes than the share of the smallest worker's free memory
    client = (
        None if free_mib is None else FakeClient((_cluster.WORKER_BASELINE + free_mib * MiB, 0))
    )
    assert _io.target_chunk_bytes(client, 4) == int(f32_mib * MiB)
    assert _io.target_chunk_bytes(client, 8) == int(f64_mib * MiB)
    rows = {
        size: _io.row_chunks_for(10**8, 3, size, chunk_bytes=_io.target_chunk_bytes(client, size))
        for size in (4, 8)
    }
    assert rows[8] == (rows[4] if f64_mib == 2 * f32_mib else int(f64_mib * MiB) // 24)


def test_numpy_input_of_either_dtype_is_cut_into_the_same_chunks(monkeypatch):
    import numpy as np

    monkeypatch.setattr(_io, "_n_cores", lambda: 1)  # chunks bound by bytes, not by cores
    X = np.zeros((3_000_000, 3))
    chunks = {d: _io.as_dask_array(X.astype(d))[0].chunks[0] for d in ("float32", "float64")}
    assert chunks["float32"] == chunks["float64"]
    assert chunks["float32"][0] == 16 * MiB // 12 and len(chunks["float32"]) == 3


def test_zarr_chunks_follow_the_workers_free_memory(dask_client, monkeypatch, tmp_path):
    """On a cluster whose workers have 76 MiB free, a Zarr array stored in 1 MiB chunks is
    read 4 stored chunks per task (4.75 MiB at most), not 16."""
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, shape=(8_000_000, 2), chunks=(131_072, 2), dtype="f4")[:] = 1.0
    base = _cluster.WORKER_BASELINE
    small = FakeClient((base + 76 * MiB, 0))
    monkeypatch.setattr(_io, "free_memory", lambda client: _cluster.free_memory(small))
    X, _ = _io.as_dask_array(path)
    assert set(X.chunks[0][:-1]) == {4 * 131_072}
    monkeypatch.undo()
    X, _ = _io.as_dask_array(path)
    assert set(X.chunks[0][:-1]) == {16 * 131_072}


def test_free_memory_reads_the_workers_use(dask_client):
    limits = [
        w["memory_limit"] for w in dask_client.scheduler_info(n_workers=-1)["workers"].values()
    ]
    free = _cluster.free_memory(dask_client)
    assert len(free) == len(limits)
    # the workers use memory of their own, so each has less free than its limit
    assert all(0 < f <= limit - _cluster.WORKER_BASELINE for f, limit in zip(free, limits))
    # the smallest worker's free memory, once per worker (read again: the use moves)
    assert (
        0 < _placement.available_memory() <= len(limits) * (max(limits) - _cluster.WORKER_BASELINE)
    )


class AddressedClient(FakeClient):
    """A client whose workers listen at ``addresses``, set to send data directly or not."""

    def __init__(self, *addresses: str, direct: bool | None = None):
        self.workers = {address: {} for address in addresses}
        self.direct_to_workers = direct


def test_data_go_straight_to_workers_on_this_machine_only():
    local = ("tcp://127.0.0.1:4001", "tcp://[::1]:4002", "tls://localhost:4003")
    assert _placement.sends_directly(AddressedClient(*local))
    assert not _placement.sends_directly(AddressedClient(*local, "tcp://10.1.2.3:4004"))
    assert not _placement.sends_directly(AddressedClient("tcp://127.0.0.2.example:1"))
    assert not _placement.sends_directly(AddressedClient())  # no worker yet
    # the client's own setting wins either way
    assert not _placement.sends_directly(AddressedClient(*local, direct=False))
    assert _placement.sends_directly(AddressedClient("tcp://10.1.2.3:4004", direct=True))


@pytest.mark.cluster
def test_a_local_cluster_takes_numpy_input_straight_from_the_client(dask_client, cluster):
    assert _placement.sends_directly(dask_client)
    from distributed import Client

    with Client(cluster.scheduler_address, direct_to_workers=False, set_as_default=False) as c:
        assert not _placement.sends_directly(c)


@pytest.mark.cluster
def test_numpy_input_is_scattered_from_its_own_rows_not_a_copy(dask_client, monkeypatch):
    # dask's compute of a one-chunk array copies it: done per block, the client made a
    # fresh copy of all the data before sending it
    X = np.random.default_rng(0).normal(size=(4000, 3))
    sent = []
    scatter = type(dask_client).scatter

    def recording_scatter(self, data, *args, **kwargs):
        sent.extend(data.values())
        return scatter(self, data, *args, **kwargs)

    monkeypatch.setattr(type(dask_client), "scatter", recording_scatter)
    placed = _placement.keep_in_cluster(_io.row_blocks(X, 1000))
    assert len(sent) == 4 and all(np.shares_memory(block, X) for block in sent)
    assert (placed.compute() == X).all()
    # a block computed from the input (here a cast) is sent as computed
    sent.clear()
    ints = np.arange(12).reshape(6, 2)
    placed = _placement.keep_in_cluster(_io.row_blocks(ints, 4).astype(np.float64))
    assert [block.dtype for block in sent] == [np.float64, np.float64]
    assert (placed.compute() == ints).all()
