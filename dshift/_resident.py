"""Running a function over the blocks of an array held in the workers' memory, straight
on the workers that hold them (or, without a distributed client, on local threads).

An iteration over a persisted array could go through dask's graph machinery: one task per
block, a tree of tasks adding their results, the whole graph built, packed, sent and
scheduled each time. Each task's round trip through the scheduler costs about 10 ms on a
2-core machine, more than the arithmetic of a few hundred thousand points. The blocks are
already on the workers, so :class:`Resident` asks each worker, in one call that the
scheduler forwards (``Client.run``), to apply the function to the blocks it holds, in its
own thread pool (one run of blocks per thread), and gets back each block's small result:
about 3 ms per iteration. The results come back in block order, so whatever adds them up
does so exactly as it would have from the graph.

The calls bypass the scheduler's task bookkeeping: the dashboard does not show them, and a
worker could be running other work at the same time. Anything unexpected (a block that
moved or was lost with its worker, a worker gone) makes :meth:`Resident.map_blocks` return
None, and the caller runs the graph instead, which recovers lost data as it always does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.core import flatten

from dshift._cluster import current_client, lost

logger = logging.getLogger(__name__)


async def _run_here(fn: Callable, args: tuple, runs: dict, dask_worker=None) -> list:
    """On a worker (through ``Client.run``): ``fn(block, *args)`` for the blocks this
    worker holds, each run of keys in ``runs[worker address]`` on a thread of its pool."""
    import asyncio

    # blocks are read here, on the worker's event loop, as its own tasks read their inputs
    blocks = [[dask_worker.data[key] for key in keys] for keys in runs[dask_worker.address]]
    loop = asyncio.get_running_loop()
    pool = dask_worker.executors["default"]

    def each(run: list) -> list:
        return [fn(block, *args) for block in run]

    return list(await asyncio.gather(*[loop.run_in_executor(pool, each, r) for r in blocks]))


class Resident:
    """The blocks of a persisted array, held by a distributed cluster's workers.

    Parameters
    ----------
    X : dask.array.Array
        An array persisted with the active distributed client.
    client : distributed.Client
        That client.

    Use :meth:`of`, which returns None when the array is not (wholly) held by a
    distributed cluster.
    """

    def __init__(self, X: da.Array, client: Any, futures: list):
        self.X = X
        self.client = client
        self.futures = futures
        self._batches: list[tuple[str, list[int]]] | None = None
        #: set when running on the workers failed once: the caller uses tasks from then on
        self.failed = False

    @classmethod
    def of(cls, X: da.Array) -> Resident | LocalBlocks | None:
        """X's blocks where they are held: by a distributed cluster's workers, or in this
        process (no client); None when X is not persisted."""
        if X.ndim == 2 and X.numblocks[1] != 1:
            return None  # blocks must be whole rows
        client = current_client()
        if client is None:
            return LocalBlocks.of(X)
        from distributed import futures_of

        by_key = {f.key: f for f in futures_of(X)}
        keys = list(flatten(X.__dask_keys__()))
        if not keys or any(key not in by_key for key in keys):
            return None
        return cls(X, client, [by_key[key] for key in keys])

    def batches(self) -> list[tuple[str, list[int]]]:
        """The blocks each task reads: every worker's blocks (in block order), split into
        as many contiguous runs as it has threads. Looked up once, when the blocks are in
        memory; a block that has moved since is fetched by its task (slower, same result).
        """
        if self._batches is None:
            from distributed import wait

            wait(self.futures)
            who_has = self.client.who_has(self.futures)
            nthreads = self.client.nthreads()
            held: dict[str, list[int]] = {}
            workers = sorted(nthreads)
            for i, future in enumerate(self.futures):
                holders = who_has.get(future.key) or [workers[i % len(workers)]]
                held.setdefault(sorted(holders)[0], []).append(i)
            batches = []
            for worker, blocks in sorted(held.items()):
                n = max(1, min(nthreads.get(worker, 1), len(blocks)))
                bounds = [len(blocks) * j // n for j in range(n + 1)]
                batches += [(worker, blocks[a:b]) for a, b in zip(bounds, bounds[1:])]
            self._batches = batches
        return self._batches

    def copies(self) -> int:
        """How many copies of the arguments one :meth:`map_blocks` sends."""
        return len({worker for worker, _ in self.batches()})

    def map_blocks(self, fn: Callable, *args) -> list | None:
        """``[fn(block, *args) for block in X's blocks]``, computed where the blocks are;
        None if that failed for any reason (then, and from then on: see the module).

        Examples
        --------
        >>> import numpy as np
        >>> from distributed import Client, LocalCluster
        >>> with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
        ...                   dashboard_address=None) as cluster, Client(cluster):
        ...     X = da.arange(10, chunks=3).persist()
        ...     [int(total) for total in Resident.of(X).map_blocks(np.sum)]
        [3, 12, 21, 9]
        """
        if self.failed or lost(self.client):  # the graph path reports a lost scheduler
            return None
        try:
            runs: dict[str, list[list[int]]] = {}  # worker -> its runs of block indices
            for worker, blocks in self.batches():
                runs.setdefault(worker, []).append(blocks)
            keys = {w: [[self.futures[i].key for i in r] for r in rs] for w, rs in runs.items()}
            answers = self.client.run(_run_here, fn, args, keys, workers=list(runs))
            results: list = [None] * len(self.futures)
            for worker, worker_runs in runs.items():
                for blocks, values in zip(worker_runs, answers[worker], strict=True):
                    for i, value in zip(blocks, values, strict=True):
                        results[i] = value
        except Exception as exc:  # the graph computes it again, and raises real errors
            logger.info("Running on the workers' blocks failed (%r); using tasks", exc)
            self.failed = True
            return None
        return results


class LocalBlocks:
    """The blocks of an array persisted in this process (dask's local schedulers), run on
    a thread pool of dask's size for them: an iteration without building a graph.

    Parameters
    ----------
    blocks : list of ndarray
        The blocks, in order.
    """

    #: running on local blocks does not fail in ways the graph would recover from
    failed = False

    def __init__(self, blocks: list[np.ndarray]):
        self.blocks = blocks

    @classmethod
    def of(cls, X: da.Array) -> LocalBlocks | None:
        """X's blocks if X is persisted here (its graph holds only its blocks, each of
        whole rows), else None."""
        if X.ndim == 2 and X.numblocks[1] != 1:
            return None
        graph = X.__dask_graph__()
        keys = list(flatten(X.__dask_keys__()))
        if len(graph) != len(keys):
            return None
        blocks = [graph.get(key) for key in keys]
        if not all(isinstance(block, np.ndarray) for block in blocks):
            return None
        return cls(blocks)

    def copies(self) -> int:
        """The arguments are shared, not copied."""
        return 0

    def map_blocks(self, fn: Callable, *args) -> list:
        """``[fn(block, *args) for block in blocks]``, on dask's number of local threads
        (``num_workers``, else every core; one with the synchronous scheduler).

        Examples
        --------
        >>> X = da.arange(10, chunks=3).persist()
        >>> [int(total) for total in LocalBlocks.of(X).map_blocks(np.sum)]
        [3, 12, 21, 9]
        """
        threads = _local_threads()
        if threads == 1 or len(self.blocks) == 1:
            return [fn(block, *args) for block in self.blocks]
        return list(_pool(threads).map(lambda block: fn(block, *args), self.blocks))


def _local_threads() -> int:
    """The threads dask's local scheduler would use now."""
    scheduler = dask.config.get("scheduler", None)
    if scheduler in ("sync", "synchronous", "single-threaded"):
        return 1
    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


@cache
def _pool(threads: int) -> ThreadPoolExecutor:
    """One pool per size, kept for the process (the kernels release the GIL)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="dshift")
