"""What a ``dshift`` command prints, and where.

stdout holds a command's result only (the bandwidth; the clusters found). Status lines
(the cluster, per-iteration progress, what was written) go to stderr through
:func:`status`, which the ``--quiet`` flag of every command (:func:`quiet_option`)
silences. Notes (something asked for was skipped: :func:`note`) and errors (see
``dshift.cli``) are not status: they go to stderr even with ``--quiet``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import click
import numpy as np

if TYPE_CHECKING:
    from dshift._estimator import MeanShift

#: Most clusters listed by the summary of ``fit`` and ``demo`` (the largest ones).
SUMMARY_CLUSTERS = 20

#: Where --quiet is kept, in ``click.Context.meta`` (shared by a command and its group).
_QUIET = "dshift.quiet"


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    ctx.meta[_QUIET] = value
    return value


def quiet_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--quiet`` / ``-q`` flag of a click command: no status lines (see :func:`status`).

    The flag is not passed to the command: it is kept in the click context.
    """
    return click.option(
        "--quiet",
        "-q",
        is_flag=True,
        expose_value=False,
        callback=_set_quiet,
        help="Print no status or progress on stderr; results and errors still print.",
    )(func)


def quiet() -> bool:
    """Whether the running command was given ``--quiet``."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.meta.get(_QUIET, False)


def status(message: str) -> None:
    """Print a status line (what the command is doing) on stderr, unless ``--quiet``.

    stdout is kept for the command's result, so that ``$(dshift ...)`` and ``> file``
    capture only the result.
    """
    if not quiet():
        click.echo(message, err=True)


def _stderr_is_a_terminal() -> bool:
    return sys.stderr.isatty()


def note(message: str) -> None:
    """Print ``Note: message`` on stderr, even with ``--quiet``: something the user asked
    for was skipped (the command still succeeds)."""
    click.echo(f"Note: {message}", err=True)


class _StatusLines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        status(record.getMessage())


@contextmanager
def _first_run_as_status() -> Iterator[None]:
    """While a fit runs without a bar: its "compiling kernels (first run only)" line (an
    INFO message of ``dshift._first_run``; with a bar the fit prints it itself) as a
    status line."""
    log = logging.getLogger("dshift._first_run")
    handler, level = _StatusLines(logging.INFO), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def fit_with_progress(
    model: MeanShift, X: Any, sample_weight: Any = None, point_bandwidth: Any = None
) -> MeanShift:
    """Fit, showing its progress on stderr: on a terminal, MeanShift's progress bar;
    otherwise (stderr redirected to a log) a status line per iteration (active centers,
    largest shift, elapsed time), after "compiling kernels (first run only)" when the fit
    compiles them; nothing with ``--quiet``. Sets ``model.progress``."""
    bar = not quiet() and _stderr_is_a_terminal()
    model.set_params(progress=bar)
    told = False

    def tell_resumed() -> None:
        nonlocal told
        if not told and getattr(model, "resumed_from_", None) is not None:
            status(f"Resumed from checkpoint {model.checkpoint} at iteration {model.resumed_from_}")
        told = True

    steps = model.iter_fit(X, sample_weight=sample_weight, point_bandwidth=point_bandwidth)
    with _first_run_as_status() if not bar and not quiet() else nullcontext():
        for step in steps:
            tell_resumed()
            if bar:
                continue
            status(
                f"  iteration {step.iteration:4d}  active {step.n_active:6d}/"
                f"{len(step.active):<6d} computed {step.n_computed:6d}"
                f"  max shift {step.max_shift:10.4g}  {step.elapsed:7.1f}s"
            )
    tell_resumed()
    return model


def cluster_summary(model: Any, limit: int = SUMMARY_CLUSTERS) -> list[str]:
    """The lines describing a fitted model: a header, then its ``limit`` largest clusters
    (by ``cluster_sizes_``, largest first, each with its label), then how many more.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> model = SimpleNamespace(
    ...     cluster_centers_=np.array([[0.0, 1], [5, 5], [9, 0]]),
    ...     cluster_sizes_=np.array([10, 30, 5]), n_iter_=4, bandwidth_=2.0,
    ...     seeding_="bin", seeds_=np.zeros((7, 2)))
    >>> for line in cluster_summary(model, limit=2):
    ...     print(line)
    3 clusters after 4 iterations (bandwidth 2, bin seeding, 7 seeds):
      cluster   1: size         30  center [   5.000,    5.000]
      cluster   0: size         10  center [   0.000,    1.000]
      ... and 1 more cluster (size 5)
    """
    centers, sizes = model.cluster_centers_, np.asarray(model.cluster_sizes_)
    lines = [
        f"{len(centers)} clusters after {model.n_iter_} iterations "
        f"(bandwidth {model.bandwidth_:.4g}, {model.seeding_} seeding, "
        f"{len(model.seeds_)} seeds):"
    ]
    order = np.argsort(-sizes, kind="stable")  # largest first; ties in intensity order

    def shown(size: Any) -> str:
        return f"{size:>10d}" if sizes.dtype.kind in "iu" else f"{size:>10.6g}"

    for k in order[:limit]:
        coords = ", ".join(f"{v:8.3f}" for v in centers[k][:6])
        more = ", ..." if len(centers[k]) > 6 else ""
        lines.append(f"  cluster {k:3d}: size {shown(sizes[k])}  center [{coords}{more}]")
    rest = sizes[order[limit:]]
    if len(rest) == 1:
        lines.append(f"  ... and 1 more cluster (size {shown(rest[0]).strip()})")
    elif len(rest):
        small, large, total = (shown(v).strip() for v in (rest.min(), rest.max(), rest.sum()))
        lines.append(
            f"  ... and {len(rest)} more clusters (sizes {small} to {large}, {total} in all)"
        )
    return lines


def report(model: MeanShift) -> None:
    """The summary of a fit: the command's result, on stdout."""
    for line in cluster_summary(model):
        click.echo(line)
