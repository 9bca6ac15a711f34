"""Where the data live during a fit: kept in the cluster's memory, or streamed.

numpy input is scattered to the workers once; dask and Zarr input is kept in memory when
it fits and streamed from its source every iteration otherwise. The copy the iterations
read may have its rows reordered within chunks (sums do not depend on the order).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import TypeVar

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize

from dshift import kernels
from dshift._cluster import current_client, free_memory, scheduler_options, watch_scheduler
from dshift._io import append_columns
from dshift._resident import LocalBlocks, Resident

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: How many times one step is retried after data were lost with a worker.
MAX_RECOVERIES = 3


def keep_in_cluster(X: da.Array) -> da.Array:
    """Persist an in-memory (numpy-backed) dask array where the computations run.

    With a distributed client the chunks are scattered to the workers once, rather than
    embedded in every task graph; otherwise the array is persisted locally.
    """
    client = current_client()
    if client is None:
        return X.persist(**scheduler_options())
    # As delayed objects: an array's compute copies a one-chunk result (dask's finalize),
    # which cost a fresh copy of all the data here (0.5 s per 240 MB of new memory).
    blocks = dask.compute(*X.to_delayed().ravel(), scheduler="sync")
    # Fresh keys per fit: with keys from the data two fits of the same array would share
    # them, and releasing the first fit's futures could drop the second's data. The
    # futures' keys are the array's own (as for a persisted array), so the workers holding
    # them can run functions on them without tasks (Resident).
    name = f"scattered-{uuid.uuid4().hex}"
    futures = client.scatter(
        {(name, i, 0): block for i, block in enumerate(blocks)}, direct=sends_directly(client)
    )
    return da.Array(
        dict(futures), name, chunks=(tuple(len(b) for b in blocks), (X.shape[1],)), dtype=X.dtype
    )


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def sends_directly(client) -> bool:
    """Whether data go from the client straight to the workers, not through the scheduler:
    as the client is set (``Client(direct_to_workers=...)``), else when every worker
    listens on this machine's loopback (a LocalCluster), where that halves the copies
    (240 MB of float64 points: 0.2-0.4 s against 1.0-1.7 s). Workers elsewhere may sit
    behind a proxy (dask-gateway) that only the scheduler's address passes.

    Examples
    --------
    >>> class Client:
    ...     direct_to_workers = None
    ...     def __init__(self, *addresses):
    ...         self.addresses = addresses
    ...     def scheduler_info(self, n_workers):
    ...         return {"workers": dict.fromkeys(self.addresses, {})}
    >>> sends_directly(Client("tcp://127.0.0.1:4001", "tcp://127.0.0.1:4002"))
    True
    >>> sends_directly(Client("tcp://127.0.0.1:4001", "tls://10.0.0.7:4002"))
    False
    >>> sends_directly(Client())
    False
    """
    if client.direct_to_workers is not None:
        return bool(client.direct_to_workers)
    workers = client.scheduler_info(n_workers=-1)["workers"]
    hosts = [address.split("://")[-1].rsplit(":", 1)[0].strip("[]") for address in workers]
    return bool(hosts) and all(host in _LOOPBACK for host in hosts)


#: Fraction of the cluster's (or this machine's) free memory the loop's copy of X may take.
PERSIST_FRACTION = 0.4


def available_memory() -> int:
    """Free memory of the active distributed cluster's workers, counted as the smallest
    one's times their number (the chunks spread evenly; see
    :func:`~dshift._cluster.free_memory`), else this machine's memory.

    Examples
    --------
    >>> available_memory() > 0  # no client: this machine's memory
    True
    """
    client = current_client()
    if client is None:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    free = free_memory(client)
    return min(free) * len(free) if free else 0


def loop_data(
    X: da.Array,
    *,
    persist: bool,
    spatial_order: bool,
    n_features: int | None = None,
    attempt: int = 0,
) -> da.Array:
    """The copy of X the iterations read: Morton-ordered within chunks, and/or persisted.

    Row order within a chunk does not change the sums (only their rounding), and spatially
    ordered rows let the compact kernels skip whole tiles. Sorting costs one pass, so it is
    done only for data kept in memory. The persisted copy's keys depend on ``attempt``: a
    copy placed again after a worker was lost never shares keys with the lost one (a
    computation on keys the scheduler is still releasing is cancelled as "lost
    dependencies").
    """
    if persist:
        name = "loop-data-" + tokenize(X.name, spatial_order, n_features, attempt)
        if spatial_order:
            X = X.map_blocks(kernels.spatially_sorted, n_features, dtype=X.dtype, name=name)
        elif attempt:
            X = X.map_blocks(np.asarray, dtype=X.dtype, name=name)
        X = X.persist(**scheduler_options())
    return X


class Placement:
    """The arrays a fit reads, placed in the cluster, and rebuilt if a worker is lost.

    ``data`` is X in its own row order (kept in the cluster for in-memory input), ``loop``
    the copy the iterations read (see :func:`loop_data`), with the column ``extra(data)``
    appended if given (per-point bandwidths: computed once when ``loop`` is persisted).
    Data computed from a graph (Zarr, dask) is recomputed by the scheduler when the worker
    holding it dies; scattered numpy chunks cannot be, so :meth:`run` places them again
    from the client's array and runs the step again. Steps are deterministic, so the
    result is the same.
    """

    def __init__(
        self,
        source: da.Array,
        *,
        in_memory: bool,
        persist: bool,
        spatial_order: bool,
        n_features: int | None = None,
        extra: Callable[[da.Array], da.Array] | None = None,
        checkpoint: str | os.PathLike | None = None,
    ):
        self.source = source
        #: Named in the error if the scheduler is lost (how to resume).
        self.checkpoint = checkpoint
        self.extra = extra
        self.n_features = n_features
        #: Rows of ``loop`` are Morton-ordered within chunks (see :func:`loop_data`).
        self.rows_sorted = persist and spatial_order
        self.in_memory = in_memory
        self.persist = persist
        self.spatial_order = spatial_order
        self.recoveries = 0
        self._place()

    def _place(self) -> None:
        self.data = keep_in_cluster(self.source) if self.in_memory else self.source
        full = self.data
        if self.extra is not None:  # a column computed from the placed data, on the workers
            if self.in_memory:
                # Persisted once, so the later graphs (loop, labels) refer to these keys
                # rather than each optimizing the scattered chunks' concatenation anew.
                self.data = self.data.persist(**scheduler_options())
            full = append_columns(self.data, self.extra(self.data))
        self.loop = loop_data(
            full,
            persist=self.persist,
            spatial_order=self.spatial_order,
            n_features=self.n_features,
            attempt=self.recoveries,
        )
        self._resident: Resident | LocalBlocks | None = None

    @property
    def resident(self) -> Resident | LocalBlocks | None:
        """``loop``'s blocks as held by the distributed cluster's workers or this
        process, when it is persisted (see :mod:`dshift._resident`); None otherwise."""
        if self._resident is None and self.persist:
            self._resident = Resident.of(self.loop)
        return self._resident

    def run(self, step: Callable[[], T]) -> T:
        """Run ``step()`` (which reads ``self.data``/``self.loop``), again if data were lost.

        A lost scheduler is not retried: it raises
        :class:`~dshift._cluster.SchedulerLostError` at once, naming the checkpoint.
        """
        client = current_client()
        for attempt in range(MAX_RECOVERIES + 1):
            try:
                with watch_scheduler(client, self.checkpoint):
                    return step()
            except CancelledError as exc:
                if attempt == MAX_RECOVERIES:
                    raise RuntimeError(
                        f"Data were lost with a worker {attempt + 1} times in one step ({exc}); "
                        "check the workers' logs (memory limits, crashes) and fit again."
                    ) from exc
                self.recoveries += 1
                logger.warning("Data lost with a worker (%s); placing it again and retrying", exc)
                self._place()
        raise AssertionError("unreachable")
