"""Where the data live during a fit: kept in the cluster's memory, or streamed.

numpy input is scattered to the workers once; dask and Zarr input is kept in memory when
it fits and streamed from its source every iteration otherwise. The copy the iterations
read may have its rows reordered within chunks (sums do not depend on the order).
"""

from __future__ import annotations

import os

import dask
import dask.array as da

from dshift import _kernels


def _client():
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def keep_in_cluster(X: da.Array) -> da.Array:
    """Persist an in-memory (numpy-backed) dask array where the computations run.

    With a distributed client the chunks are scattered to the workers once, rather than
    embedded in every task graph; otherwise the array is persisted locally.
    """
    client = _client()
    if client is None:
        return X.persist()
    blocks = [X.blocks[i, 0].compute(scheduler="sync") for i in range(X.numblocks[0])]
    # hash=False: fresh keys per fit. With content-hashed keys two fits of the same array
    # would share them, and releasing the first fit's futures could drop the second's data.
    futures = client.scatter(blocks, hash=False)
    parts = [
        da.from_delayed(dask.delayed(future), shape=block.shape, dtype=X.dtype)
        for future, block in zip(futures, blocks)
    ]
    return da.concatenate(parts, axis=0)


#: Fraction of the cluster's (or this machine's) memory the loop's copy of X may take.
PERSIST_FRACTION = 0.4


def available_memory() -> int:
    """Total memory of the active distributed cluster's workers, else of this machine."""
    client = _client()
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if client is None:
        return host
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return sum(w.get("memory_limit") or host for w in workers)


def loop_data(X: da.Array, *, persist: bool, spatial_order: bool) -> da.Array:
    """The copy of X the iterations read: Morton-ordered within chunks, and/or persisted.

    Row order within a chunk does not change the sums (only their rounding), and spatially
    ordered rows let the compact kernels skip whole tiles. Sorting costs one pass, so it is
    done only for data kept in memory.
    """
    if persist:
        if spatial_order:
            X = X.map_blocks(_kernels.spatially_sorted, dtype=X.dtype)
        X = X.persist()
    return X
