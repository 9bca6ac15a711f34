"""A progress bar for fits, where a person watches: a notebook, or a terminal.

The bar counts converged seeds (a fit ends when every seed has stopped moving or reached
``max_iter``), and shows the iteration, the centers still moving and the largest shift.
In a Jupyter kernel with ipywidgets it is a widget; elsewhere a text bar on stderr (tqdm).
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterable
from typing import Any

from dshift._iterate import Step


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
    """Pass the steps through, showing a bar of converged seeds when :func:`wanted`.

    Examples
    --------
    >>> import io, numpy as np
    >>> from dshift import MeanShift
    >>> ms = MeanShift(bandwidth=2)
    >>> steps = ms.iter_fit(np.array([[0.0], [1.0], [9.0]]))
    >>> [s.n_active for s in with_bar(steps, 3, False)]
    [2, 0]
    """
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
