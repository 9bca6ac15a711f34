"""The distributed cluster a fit runs on: the client, whether its workers can run dshift,
how much memory they have free, and a lost scheduler turned into a prompt error.

A worker that cannot import dshift dies on its first task, and the scheduler only reports
lost workers while the client waits; a client whose scheduler died waits forever on any
computation submitted after the connection dropped. So before dshift's first task on a
set of workers, :func:`check_workers` compares their versions with the client's, and
:func:`watch_scheduler` ends a computation as soon as the client has lost its scheduler.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError
from typing import Any

#: Packages whose versions must match between the client and the workers.
PACKAGES = ("dshift", "numpy", "dask", "zarr")
#: Evaluated on each worker: imports each package (so a broken install fails here, not in
#: the first task) and returns its version. A builtin and a string pickle without dshift.
_PROBE = "[__import__(name).__version__ for name in {names!r}]"
#: Seconds between two looks at the client's connection while a computation runs.
WATCH_INTERVAL = 0.2

#: What a worker takes before it holds any data: the process, dask, zarr and numba with
#: dshift's compiled kernels loaded (213-218 MiB measured on Linux x86-64).
WORKER_BASELINE = 224 * 2**20

#: In-memory input up to this many bytes as float64 (one chunk of dshift's chunking) is
#: fitted in this process even when a distributed client is active: scattering it and a
#: round trip per iteration cost more than the whole fit (on 2 cores: 1e4 points, 0.015 s
#: here against 0.07 s on a 2-worker LocalCluster; 1e5 x 16 float64, 0.055 s against
#: 0.11 s). The dask config key ``dshift.fit-here-bytes`` overrides it (0: in-memory input
#: always goes to the cluster).
FIT_HERE_BYTES = 2**24
#: Set while a fit runs in this process in spite of a client (see :func:`in_this_process`).
_here: contextvars.ContextVar[bool] = contextvars.ContextVar("dshift_here", default=False)
#: ... and on how many threads (None: one per core).
_here_threads: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "dshift_here_threads", default=None
)

#: Client id -> the workers already checked (a new worker is checked when it appears).
_checked: dict[str, frozenset[str]] = {}


class SchedulerLostError(ConnectionError):
    """The client lost its connection to the Dask scheduler during a computation."""


def current_client() -> Any:
    """The active ``distributed.Client``, or None (dask's local schedulers run the work;
    also inside :func:`in_this_process`)."""
    if _here.get():
        return None
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def checked_client() -> Any:
    """The active client, once its workers are known to run this dshift (else None).

    Every public entry point calls it before building any task (see :func:`check_workers`).
    """
    client = current_client()
    if client is not None:
        check_workers(client)
    return client


def free_memory(client: Any) -> list[int]:
    """Each worker's free memory: its limit (this machine's memory if it has none) less
    what it uses, counted as at least :data:`WORKER_BASELINE` (a worker that has not yet
    loaded the kernels will); never below 0."""
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    free = []
    for worker in client.scheduler_info(n_workers=-1)["workers"].values():
        used = max(int(worker.get("metrics", {}).get("memory") or 0), WORKER_BASELINE)
        free.append(max(0, (worker.get("memory_limit") or host) - used))
    return free


def local_threads(n_jobs: int | None) -> contextlib.AbstractContextManager[Any]:
    """Run the block on ``n_jobs`` threads of dask's threaded scheduler, when no
    distributed client is active and ``n_jobs`` is given (joblib's count: -1 is every core,
    -2 every core but one). A distributed client's workers are what they are: ``n_jobs``
    does not change them.

    Examples
    --------
    >>> import dask
    >>> with local_threads(-1):
    ...     dask.config.get("num_workers") == (os.cpu_count() or 1)
    True
    >>> with local_threads(None):
    ...     dask.config.get("num_workers", None) is None
    True
    """
    if n_jobs is None or current_client() is not None:
        return contextlib.nullcontext()
    import dask

    return dask.config.set(scheduler="threads", num_workers=_threads(n_jobs))


def fits_here(in_memory: bool, n_values: int) -> bool:
    """Whether a fit of input held by the client (``in_memory``) of ``n_values`` values runs
    in this process although a distributed client is active: at most
    :data:`FIT_HERE_BYTES` as float64, whatever its dtype (the work, and so the place to do
    it, is the same for float32 and float64).

    Examples
    --------
    >>> fits_here(True, 10**6)  # no client: it runs here anyway
    False
    """
    import dask

    limit = int(dask.config.get("dshift.fit-here-bytes", FIT_HERE_BYTES))
    return in_memory and 8 * n_values <= limit and current_client() is not None


def _threads(n_jobs: int) -> int:
    """joblib's count of threads: -1 is every core, -2 every core but one."""
    cores = os.cpu_count() or 1
    return n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)


@contextlib.contextmanager
def in_this_process(n_jobs: int | None = None) -> Iterator[None]:
    """Run the block's dshift work in this process even if a distributed client is active:
    dshift sees no client, and its computations take :func:`scheduler_options` (local
    threads: ``n_jobs`` of them, else one per core). dask's process-wide config is left
    alone, so other threads' computations still go to the client.

    Examples
    --------
    >>> with in_this_process(2):
    ...     current_client() is None, scheduler_options()
    (True, {'scheduler': 'threads', 'num_workers': 2})
    """
    here = _here.set(True)
    threads = _here_threads.set(None if n_jobs is None else _threads(n_jobs))
    try:
        yield
    finally:
        _here_threads.reset(threads)
        _here.reset(here)


def scheduler_options() -> dict[str, Any]:
    """Keyword arguments for dshift's own ``compute``/``persist`` calls: none (dask's
    current scheduler), or local threads inside :func:`in_this_process`.

    >>> scheduler_options()
    {}
    """
    if not _here.get():
        return {}
    threads = _here_threads.get()
    return {"scheduler": "threads", **({"num_workers": threads} if threads else {})}


def steps_in_this_process(steps: Iterator[Any], n_jobs: int | None = None) -> Iterator[Any]:
    """The items of ``steps``, each computed :func:`in_this_process`; between them (in the
    caller's code) the client is the default again.

    Examples
    --------
    >>> list(steps_in_this_process(iter([1, 2])))
    [1, 2]
    """
    while True:
        with in_this_process(n_jobs):
            try:
                step = next(steps)
            except StopIteration:
                return
        yield step


def _local_versions() -> list[str]:
    return eval(_PROBE.format(names=PACKAGES))


def check_workers(client: Any) -> None:
    """Raise one line if a worker cannot import dshift or has other versions than here.

    Checked once per client and set of workers (one ``client.run`` round trip).

    Raises
    ------
    RuntimeError
        Naming the worker, the package, both versions and how to install dshift there.
    """
    workers = frozenset(client.scheduler_info(n_workers=-1)["workers"])
    if workers <= _checked.get(client.id, frozenset()):
        return
    want = dict(zip(PACKAGES, _local_versions()))
    seen = client.run(eval, _PROBE.format(names=PACKAGES), on_error="return")
    for worker, got in sorted(seen.items()):
        if isinstance(got, BaseException):
            raise RuntimeError(
                f"Worker {worker} cannot run dshift ({type(got).__name__}: {got}); install "
                f"the client's versions on every worker: {_pins(want)} (see the README, "
                "'Cluster use')."
            )
        for name, have in zip(PACKAGES, got):
            if have != want[name]:
                raise RuntimeError(
                    f"Worker {worker} has {name} {have}, this client {want[name]}; install "
                    f"the same versions on the client and every worker: {_pins(want)}."
                )
    _checked[client.id] = workers


def _pins(versions: dict[str, str]) -> str:
    return "pip install " + " ".join(f"{name}=={v}" for name, v in versions.items())


def lost(client: Any) -> bool:
    """Whether ``client`` has lost its scheduler (reconnecting, or closed)."""
    return client is not None and client.status not in ("running", "newly-created")


def lost_scheduler_error(checkpoint: Any = None) -> SchedulerLostError:
    """The one-line error for a lost scheduler, saying how to resume."""
    if checkpoint is not None:
        how = (
            f"the checkpoint {str(checkpoint)!r} holds the progress: run the same fit again "
            "(same data, parameters and checkpoint) once the scheduler is back, and it resumes"
        )
    else:
        how = (
            "the fit must start again once the scheduler is back; pass a checkpoint (CLI: "
            "--checkpoint FILE) to make a fit resumable"
        )
    return SchedulerLostError(f"Lost the connection to the Dask scheduler during the fit; {how}.")


#: The clients whose computations are watched now (client -> number of watches).
_watched: dict[Any, int] = {}
_watched_lock = threading.Lock()
_watcher: threading.Thread | None = None


def _watch_all() -> None:
    """One daemon thread for all watches: cancel a watched client's futures once it has
    lost its scheduler (FutureState.cancel must run on the client's event loop)."""
    while True:
        time.sleep(WATCH_INTERVAL)
        with _watched_lock:
            clients = list(_watched)
        for client in clients:
            if lost(client):
                with contextlib.suppress(RuntimeError):  # the loop closed: nothing waits
                    client.loop.add_callback(_cancel_all, client)


@contextlib.contextmanager
def watch_scheduler(client: Any, checkpoint: Any = None) -> Iterator[None]:
    """Run the block's computation, ending it promptly if the scheduler is lost.

    A computation submitted while the client reconnects is never cancelled by
    ``distributed`` and would wait forever; while a watch is open, a watcher thread (one
    for the process, started on first use) cancels the client's futures within
    ``WATCH_INTERVAL`` seconds of the loss, and the block then raises
    :class:`SchedulerLostError`.
    """
    global _watcher
    if client is None:
        yield
        return
    with _watched_lock:
        _watched[client] = _watched.get(client, 0) + 1
        if _watcher is None:
            _watcher = threading.Thread(target=_watch_all, name="dshift-watch", daemon=True)
            _watcher.start()
    try:
        yield
    except (CancelledError, OSError) as exc:
        if lost(client):
            raise lost_scheduler_error(checkpoint) from exc
        raise
    finally:
        with _watched_lock:
            _watched[client] -= 1
            if not _watched[client]:
                del _watched[client]


def _cancel_all(client: Any) -> None:
    for state in list(client.futures.values()):
        state.cancel(reason="scheduler-connection-lost", msg="dshift: the scheduler was lost")
