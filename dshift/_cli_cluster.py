"""The Dask cluster of a ``dshift`` command: its options, the scheduler and TLS checks, and
the client.

A command either connects to a running scheduler (``--scheduler ADDRESS``, or
``--scheduler-file FILE`` as written by ``dask scheduler --scheduler-file``; over TLS with
``--tls-ca-file``, ``--tls-cert`` and ``--tls-key``) or starts an embedded LocalCluster on
127.0.0.1 (``--workers``, ``--threads``, ``--memory-limit``). The scheduler options and the
TLS files are checked before any cluster starts or any connection is attempted, and a
failed connection becomes a one-line error.

The cluster's status line (and the dashboard's link, when the dashboard works) goes to
stderr, as every status line (see :mod:`dshift._cli_output`).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from click.core import ParameterSource

from dshift._cli_output import status
from dshift._cluster import check_workers

#: Seconds to wait for a --scheduler-file to appear and hold an address (a scheduler
#: started just before the command has not written it yet).
SCHEDULER_FILE_WAIT = 10.0
#: Largest scheduler file read, in bytes (`dask scheduler` writes well under 1 KiB).
MAX_SCHEDULER_FILE_BYTES = 1 << 16
#: Evaluated on the scheduler: whether its dashboard is served. A scheduler imports this
#: module at start when bokeh is importable; without bokeh it serves a page asking to
#: install bokeh instead. A builtin and a string pickle without dshift.
_DASHBOARD_PROBE = "'distributed.dashboard.scheduler' in __import__('sys').modules"


def cluster_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options choosing the cluster: a running scheduler or an embedded LocalCluster.

    A decorator for a click command; the command receives the :data:`CLUSTER_OPTIONS` as
    keyword arguments, to pass on to :func:`dask_client`.
    """
    options = [
        click.option(
            "--scheduler",
            metavar="ADDRESS",
            envvar="DASK_SCHEDULER_ADDRESS",
            help="Address of a running scheduler (tcp://host:8786, or tls://host:8786 with "
            "the --tls-* options). Also read from DASK_SCHEDULER_ADDRESS.",
            show_default="none: start a LocalCluster on 127.0.0.1",
        ),
        click.option(
            "--scheduler-file",
            metavar="FILE",
            help="Instead of --scheduler: connect to the scheduler whose address is in FILE, "
            "as written by `dask scheduler --scheduler-file FILE` (waiting up to "
            f"{SCHEDULER_FILE_WAIT:g} s for FILE to appear).",
            show_default="none",
        ),
        click.option("--workers", default=2, show_default=True, help="LocalCluster workers."),
        click.option("--threads", default=1, show_default=True, help="Threads per worker."),
        click.option(
            "--memory-limit", default="2GiB", show_default=True, help="Per LocalCluster worker."
        ),
        click.option(
            "--tls-ca-file",
            metavar="PEM",
            envvar="DASK_TLS_CA_FILE",
            help="TLS: the CA certificate that signed the cluster's certificates (with "
            "--tls-cert, --tls-key and --scheduler tls://...). Also DASK_TLS_CA_FILE.",
            show_default="none: no TLS",
        ),
        click.option(
            "--tls-cert",
            metavar="PEM",
            envvar="DASK_TLS_CERT",
            help="TLS: this client's certificate. Also DASK_TLS_CERT.",
            show_default="none",
        ),
        click.option(
            "--tls-key",
            metavar="PEM",
            envvar="DASK_TLS_KEY",
            help="TLS: the private key of --tls-cert. Also DASK_TLS_KEY.",
            show_default="none",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


# the dask_client() arguments that cluster_options() adds to a command
CLUSTER_OPTIONS = (
    "scheduler",
    "scheduler_file",
    "workers",
    "threads",
    "memory_limit",
    "tls_ca_file",
    "tls_cert",
    "tls_key",
)
_TLS_FLAGS = {"tls_ca_file": "--tls-ca-file", "tls_cert": "--tls-cert", "tls_key": "--tls-key"}


def tls_security(
    scheduler: str | None, tls_ca_file: str | None, tls_cert: str | None, tls_key: str | None
) -> tuple[str | None, Any]:
    """Check the TLS options before connecting; return (scheduler address, Security or None).

    With all three files: a ``distributed.security.Security`` requiring encryption, and the
    address with ``tls://`` added if it had no scheme. With none: ``None``, except that a
    ``tls://`` address needs certificates, from the options or from Dask's configuration
    (``distributed.comm.tls.*``, e.g. the DASK_DISTRIBUTED__COMM__TLS__* variables).

    Examples
    --------
    >>> tls_security("tcp://127.0.0.1:8786", None, None, None)
    ('tcp://127.0.0.1:8786', None)
    >>> tls_security("tls://127.0.0.1:8786", "ca.pem", "cert.pem", None)
    Traceback (most recent call last):
    ValueError: TLS needs --tls-ca-file, --tls-cert and --tls-key together; missing --tls-key.
    """
    import ssl

    from distributed.security import Security

    files = {"tls_ca_file": tls_ca_file, "tls_cert": tls_cert, "tls_key": tls_key}
    given = {name: path for name, path in files.items() if path}
    if not given:
        if scheduler and scheduler.startswith("tls://"):
            configured = Security()
            if not (configured.tls_ca_file and configured.tls_client_cert):
                raise ValueError(
                    f"The scheduler at {scheduler} uses TLS: pass --tls-ca-file, --tls-cert "
                    "and --tls-key (or set DASK_TLS_CA_FILE, DASK_TLS_CERT and DASK_TLS_KEY)."
                )
        return scheduler, None
    if len(given) < len(files):
        missing = " and ".join(flag for name, flag in _TLS_FLAGS.items() if name not in given)
        raise ValueError(
            f"TLS needs --tls-ca-file, --tls-cert and --tls-key together; missing {missing}."
        )
    if not scheduler:
        raise ValueError(
            "--tls-ca-file/--tls-cert/--tls-key are for a running scheduler: pass "
            "--scheduler tls://HOST:PORT (the embedded LocalCluster does not use TLS)."
        )
    if "://" not in scheduler:
        scheduler = f"tls://{scheduler}"
    elif not scheduler.startswith("tls://"):
        raise ValueError(
            f"--tls-ca-file/--tls-cert/--tls-key need a tls:// scheduler address, got "
            f"{scheduler}; use tls://{scheduler.split('://', 1)[1]}."
        )
    for name, path in given.items():
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{_TLS_FLAGS[name]}: the file {path} does not exist.")
    try:
        ssl.create_default_context(cafile=tls_ca_file)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(
            f"--tls-ca-file {tls_ca_file} is not a PEM CA certificate ({exc})."
        ) from None
    try:
        ssl.create_default_context().load_cert_chain(tls_cert, tls_key)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(
            f"--tls-cert {tls_cert} and --tls-key {tls_key} are not a matching PEM "
            f"certificate and private key ({exc})."
        ) from None
    security = Security(
        tls_ca_file=tls_ca_file,
        tls_client_cert=tls_cert,
        tls_client_key=tls_key,
        require_encryption=True,
    )
    return scheduler, security


def _connect(scheduler: str, security: Any) -> Any:
    """``Client(scheduler)``, turning connection failures into one-line errors."""
    from distributed import Client
    from distributed.comm.core import CommClosedError

    try:
        return Client(scheduler, timeout="10s", security=security)
    except RuntimeError as exc:  # e.g. tcp:// while Dask's config requires encryption
        raise ValueError(f"Could not connect to the Dask scheduler at {scheduler}: {exc}") from None
    except OSError as exc:
        tls = scheduler.startswith("tls://")
        if tls and ("TLS" in str(exc) or "SSL" in str(exc) or isinstance(exc, CommClosedError)):
            raise ConnectionRefusedError(
                f"TLS handshake with the Dask scheduler at {scheduler} failed ({exc}); check "
                "that the scheduler runs with TLS, that --tls-ca-file is the CA that signed "
                "its certificate and that --tls-cert/--tls-key are signed by a CA it trusts."
            ) from None
        if not tls and isinstance(exc, CommClosedError):
            raise ConnectionRefusedError(
                f"The Dask scheduler at {scheduler} closed the connection ({exc}); if it uses "
                "TLS, connect to tls://HOST:PORT with --tls-ca-file, --tls-cert and --tls-key."
            ) from None
        raise TimeoutError(
            f"Could not reach the Dask scheduler at {scheduler} within 10 s ({exc}); check "
            "the address and that `dask scheduler` is running."
        ) from None


def scheduler_address_from_file(path: str, wait: float | None = None) -> str:
    """The scheduler address in the JSON file ``path`` (``dask scheduler --scheduler-file``).

    The file is untrusted: it must be a regular file of at most
    :data:`MAX_SCHEDULER_FILE_BYTES` holding a JSON object whose ``"address"`` is a string
    ``PROTOCOL://...``. A missing, incomplete or addressless file is read again until
    ``wait`` seconds (default :data:`SCHEDULER_FILE_WAIT`) have passed: a scheduler
    started just before may not have written it yet, and creates it before writing it. A
    missing directory or a file that is not a regular file is refused at once.

    Raises
    ------
    FileNotFoundError, ValueError
        One line naming the file, what is wrong and the remedy.

    Examples
    --------
    >>> import json, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "scheduler.json")
    ...     with open(path, "w") as f:
    ...         json.dump({"type": "Scheduler", "address": "tcp://127.0.0.1:8786"}, f)
    ...     scheduler_address_from_file(path)
    'tcp://127.0.0.1:8786'
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"--scheduler-file {path}: the directory {directory} does not exist."
        )
    wait = SCHEDULER_FILE_WAIT if wait is None else wait
    deadline = time.monotonic() + wait
    while True:
        address, problem = _read_scheduler_file(path)
        if address is not None:
            return address
        if time.monotonic() >= deadline:
            raise ValueError(
                f"--scheduler-file {path} {problem} (waited {wait:g} s); start the scheduler "
                f"with `dask scheduler --scheduler-file {path}`, or pass --scheduler ADDRESS."
            )
        time.sleep(0.05)


def _read_scheduler_file(path: str) -> tuple[str | None, str]:
    """(the address, "") or (None, what is wrong so far); raises for what waiting cannot fix."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None, "does not exist"
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SCHEDULER_FILE_BYTES:
        raise ValueError(
            f"--scheduler-file {path} is not a scheduler file: expected a regular file of at "
            f"most {MAX_SCHEDULER_FILE_BYTES} bytes, as `dask scheduler --scheduler-file` "
            "writes."
        )
    with open(path, "rb") as f:
        text = f.read(MAX_SCHEDULER_FILE_BYTES + 1)
    try:
        content = json.loads(text)
    except ValueError:
        return None, "holds no complete JSON document"
    address = content.get("address") if isinstance(content, dict) else None
    if not isinstance(address, str) or "://" not in address or len(address) > 1000:
        return None, 'holds no scheduler address ({"address": "tcp://HOST:PORT", ...})'
    return address, ""


def chosen_scheduler(scheduler: str | None, scheduler_file: str | None) -> str | None:
    """The address to connect to: ``--scheduler``, or the one in ``--scheduler-file``.

    The two are alternatives: both on the command line is an error, raised before any
    cluster starts; a --scheduler taken from DASK_SCHEDULER_ADDRESS gives way to an explicit
    --scheduler-file.

    Examples
    --------
    >>> chosen_scheduler("tcp://127.0.0.1:8786", None)
    'tcp://127.0.0.1:8786'
    >>> chosen_scheduler("tcp://127.0.0.1:8786", "scheduler.json")
    Traceback (most recent call last):
    ValueError: --scheduler and --scheduler-file are alternatives: pass one of them.
    """
    if scheduler_file is None:
        return scheduler
    if scheduler:
        ctx = click.get_current_context(silent=True)
        from_env = ctx is not None and (
            ctx.get_parameter_source("scheduler") == ParameterSource.ENVIRONMENT
        )
        if not from_env:
            raise ValueError("--scheduler and --scheduler-file are alternatives: pass one of them.")
    return scheduler_address_from_file(scheduler_file)


def dashboard_link(client: Any) -> str | None:
    """The link to the scheduler's dashboard, or None when it would not work.

    Without bokeh (the ``dashboard`` extra) where the scheduler runs, the scheduler still
    answers at ``client.dashboard_link`` but only with a page asking to install bokeh; a
    scheduler that cannot be asked counts as one without a dashboard.
    """
    link = client.dashboard_link
    if not link:
        return None
    try:
        served = client.run_on_scheduler(eval, _DASHBOARD_PROBE)
    except Exception:  # e.g. a scheduler that refuses to run functions
        return None
    return link if served is True else None


def _dashboard_note(client: Any) -> str:
    link = dashboard_link(client)
    return f"; dashboard: {link}" if link else ""


@contextmanager
def dask_client(
    scheduler: str | None,
    workers: int,
    threads: int,
    memory_limit: str,
    tls_ca_file: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    scheduler_file: str | None = None,
) -> Iterator[Any]:
    """A distributed Client on ``scheduler`` or the one of ``scheduler_file`` (over TLS
    with the three certificate files) or on a new LocalCluster bound to 127.0.0.1.

    Prints one status line (:func:`status`): the cluster, and the dashboard's link when the
    dashboard works (see :func:`dashboard_link`).
    """
    from distributed import Client, LocalCluster

    scheduler = chosen_scheduler(scheduler, scheduler_file)
    scheduler, security = tls_security(scheduler, tls_ca_file, tls_cert, tls_key)
    if scheduler:
        # Failures reach the user as one line; the client's logged tracebacks (a lost
        # scheduler, reconnection attempts) would not.
        for handler in logging.getLogger("distributed").handlers:
            handler.setLevel(logging.CRITICAL)
        with _connect(scheduler, security) as client:
            check_workers(client)  # before any task: a worker without dshift never answers
            status(f"Connected to {scheduler}{_dashboard_note(client)}")
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=threads,
            memory_limit=memory_limit,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            # Task errors reach the user as one line; the workers' tracebacks would not.
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster) as client,
    ):
        status(
            f"LocalCluster: {workers} workers x {threads} threads, {memory_limit} each"
            f"{_dashboard_note(client)}"
        )
        yield client
