"""A progress bar for fits, where a person watches: a notebook, or a terminal.

The bar counts converged seeds (a fit ends when every seed has stopped moving or reached
``max_iter``), and shows the iteration, the centers still moving and the largest shift.
In a Jupyter kernel with ipywidgets it is a widget; elsewhere a text bar on stderr (tqdm).

Before the first fit that has to compile dshift's kernels (numba, some 15 s when its
cache is empty), a line says so: on stderr where a person watches, and in the log.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Generator, Iterable
from typing import Any

from dshift._iterate import Step

logger = logging.getLogger(__name__)

#: Said before a fit compiles the kernels (see :func:`announce_compiling`).
COMPILING = "compiling kernels (first run only)"
#: Whether this process has said it (it says so once), and the clients whose workers
#: were found to have the kernels compiled already.
_said = False
_ready_clients: set[str] = set()


def in_notebook() -> bool:
    """Whether this process is a Jupyter (IPython) kernel.

    Examples
    --------
    >>> in_notebook()
    False
    """
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None else None
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def wanted(progress: bool | str) -> bool:
    """Whether to show a bar: ``progress`` itself, or with "auto", whether a person
    watches (a notebook, or stderr on a terminal).

    Examples
    --------
    >>> wanted(True), wanted(False)
    (True, False)
    """
    if progress != "auto":
        return bool(progress)
    return in_notebook() or sys.stderr.isatty()


def _kernels_compile() -> bool:
    """Whether the fit about to run compiles the kernels where it runs: in this process
    without a distributed client, else on any of the client's workers (which may keep
    numba's cache elsewhere than the client does)."""
    from dshift._cluster import current_client
    from dshift.kernels import _cache

    client = current_client()
    if client is None:
        return _cache.needs_compiling()
    if client.id in _ready_clients:
        return False
    cold = any(client.run(_cache.needs_compiling).values())
    if not cold:
        _ready_clients.add(client.id)
    return cold


def announce_compiling(progress: bool | str) -> bool:
    """Say, once per process, that the fit about to run compiles dshift's kernels: on
    stderr when a person watches (see :func:`wanted`), and in the log (INFO).

    Nothing is said when the kernels are compiled or in numba's cache already.

    Parameters
    ----------
    progress : bool or "auto"
        The fit's ``progress`` parameter.

    Returns
    -------
    bool
        Whether it was said now.
    """
    global _said
    shown = wanted(progress)
    if _said or not (shown or logger.isEnabledFor(logging.INFO)):
        return False
    try:
        if not _kernels_compile():
            return False
    except Exception:  # a look that fails (a worker lost...) must not fail the fit
        return False
    _said = True
    logger.info(COMPILING)
    if shown:
        print(COMPILING, file=sys.stderr, flush=True)
    return True


def _bar_class() -> Any:
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401  (tqdm's notebook bar needs it)
            from tqdm.notebook import tqdm

            return tqdm
        except ImportError:
            pass
    from tqdm.std import tqdm

    return tqdm


def with_bar(steps: Iterable[Step], n_seeds: int, progress: bool | str) -> Generator[Step]:
    """Pass the steps through, showing a bar of converged seeds when :func:`wanted`;
    first, :func:`announce_compiling`.

    Examples
    --------
    >>> import io, numpy as np
    >>> from dshift import MeanShift
    >>> ms = MeanShift(bandwidth=2)
    >>> steps = ms.iter_fit(np.array([[0.0], [1.0], [9.0]]))
    >>> [s.n_active for s in with_bar(steps, 3, False)]
    [2, 0]
    """
    announce_compiling(progress)
    if not wanted(progress):
        yield from steps
        return
    bar = _bar_class()(total=n_seeds, desc="mean shift", unit="seed", leave=True)
    try:
        for step in steps:
            bar.n = n_seeds - step.n_active
            bar.set_postfix(
                iteration=step.iteration, moving=step.n_active, shift=f"{step.max_shift:.3g}"
            )
            yield step
    finally:
        bar.close()
