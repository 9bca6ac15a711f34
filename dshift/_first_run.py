"""A fit's first run: compiling the kernels where the fit runs, said once, shared out.

When numba's cache holds no compiled kernels where a fit runs (in this process without a
distributed client, else on the client's workers), the fit first says "compiling kernels
(first run only)" (on stderr where a person watches, and in the log), then compiles the
two :data:`~dshift.kernels._warm.PARTS` side by side: without a client in this process
and in a second one; with a client on two workers that share a host and a numba cache.
Each part lands in the shared cache, and the fit then loads it instead of compiling it.
Where nothing can be shared (one CPU, one worker per host, no cache directory) the fit
compiles everything as before; a failed warm-up only means the fit compiles the rest.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections import defaultdict
from typing import Any

from dshift._progress import wanted
from dshift.kernels import _cache
from dshift.kernels._warm import PARTS, compile_part

logger = logging.getLogger(__name__)

#: Said before a fit compiles the kernels (see :func:`say`).
COMPILING = "compiling kernels (first run only)"
#: Whether this process has said it (it says so once), and the clients whose workers
#: were found to have the kernels compiled already.
_said = False
_ready_clients: set[str] = set()
#: How long the second process may take to compile its part before it is stopped.
WARM_TIMEOUT = 600


def say(progress: bool | str) -> bool:
    """Say, once per process, that the fit about to run compiles dshift's kernels: on
    stderr when a person watches (see :func:`~dshift._progress.wanted`), and in the log
    (INFO). Returns whether it was said now.

    Examples
    --------
    >>> say(False)  # nobody watches, and the log shows no INFO
    False
    """
    global _said
    shown = wanted(progress)
    if _said or not (shown or logger.isEnabledFor(logging.INFO)):
        return False
    _said = True
    logger.info(COMPILING)
    if shown:
        print(COMPILING, file=sys.stderr, flush=True)
    return True


def prepare(progress: bool | str, dtype: Any) -> None:
    """Before a fit on points of ``dtype``: if its kernels need compiling where it runs,
    :func:`say` so and compile the parts side by side. A look or a warm-up that fails
    (a worker lost, no second process) leaves the compiling to the fit."""
    from dshift._cluster import current_client

    client = current_client()
    try:
        if client is None:
            if _cache.needs_compiling():
                say(progress)
                _compile_beside(str(dtype))
        elif client.id not in _ready_clients:
            states = client.run(_state)
            if not any(cold for _, _, cold in states.values()):
                _ready_clients.add(client.id)
                return
            say(progress)
            plan = assignments(states)
            if plan:
                client.run(_compile_assigned, plan, str(dtype), workers=list(plan))
    except Exception as error:  # the fit compiles what is missing
        logger.debug("sharing the first compile failed: %r", error)


def _compile_beside(dtype: str) -> None:
    """Compile the first part in a new process and the others here, at the same time."""
    if _cache.cache_dir_of(_cache_owner()) is None or _usable_cpus() < 2:
        return
    first, *rest = PARTS
    child = subprocess.Popen(
        [sys.executable, "-m", "dshift.kernels._warm", first, dtype],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for part in rest:
            compile_part(part, dtype)
        child.wait(timeout=WARM_TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cache_owner() -> Any:
    from dshift.kernels._tiles import tile_loop

    return tile_loop


def _state() -> tuple[str, str | None, bool]:
    """On a worker: its host, where numba caches dshift's kernels, whether they are cold."""
    return socket.gethostname(), _cache.cache_dir_of(_cache_owner()), _cache.needs_compiling()


def assignments(states: dict[str, tuple[str, str | None, bool]]) -> dict[str, str]:
    """Which worker compiles which part: among the cold workers sharing a host and a
    cache directory, one part each (two or more such workers needed).

    Examples
    --------
    >>> assignments({"w1": ("a", "/c", True), "w2": ("a", "/c", True), "w3": ("b", "/c", True)})
    {'w1': 'gaussian', 'w2': 'flat'}
    """
    shared: dict[tuple[str, str], list[str]] = defaultdict(list)
    for worker, (host, folder, cold) in states.items():
        if cold and folder is not None:
            shared[host, folder].append(worker)
    plan: dict[str, str] = {}
    for workers in shared.values():
        if len(workers) > 1:
            plan.update(zip(sorted(workers), PARTS, strict=False))
    return plan


async def _compile_assigned(plan: dict[str, str], dtype: str, dask_worker: Any = None) -> None:
    """On a worker: compile its part, on a thread (the worker's event loop stays free)."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, compile_part, plan[dask_worker.address], dtype)
