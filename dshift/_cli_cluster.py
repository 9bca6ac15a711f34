"""The Dask cluster of a ``dshift`` command: its options, the TLS checks, and the client.

A command either connects to a running scheduler (``--scheduler``, over TLS with
``--tls-ca-file``, ``--tls-cert`` and ``--tls-key``) or starts an embedded LocalCluster on
127.0.0.1 (``--workers``, ``--threads``, ``--memory-limit``). The TLS options are checked
before any connection is attempted, and a failed connection becomes a one-line error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from dshift._cluster import check_workers


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
            "the --tls-* options); default: start a LocalCluster on 127.0.0.1. Also read "
            "from DASK_SCHEDULER_ADDRESS.",
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
        ),
        click.option(
            "--tls-cert",
            metavar="PEM",
            envvar="DASK_TLS_CERT",
            help="TLS: this client's certificate. Also DASK_TLS_CERT.",
        ),
        click.option(
            "--tls-key",
            metavar="PEM",
            envvar="DASK_TLS_KEY",
            help="TLS: the private key of --tls-cert. Also DASK_TLS_KEY.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


# the dask_client() arguments that cluster_options() adds to a command
CLUSTER_OPTIONS = (
    "scheduler",
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


@contextmanager
def dask_client(
    scheduler: str | None,
    workers: int,
    threads: int,
    memory_limit: str,
    tls_ca_file: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> Iterator[Any]:
    """A distributed Client on ``scheduler`` (over TLS with the three certificate files)
    or on a new LocalCluster bound to 127.0.0.1."""
    from distributed import Client, LocalCluster

    scheduler, security = tls_security(scheduler, tls_ca_file, tls_cert, tls_key)
    if scheduler:
        # Failures reach the user as one line; the client's logged tracebacks (a lost
        # scheduler, reconnection attempts) would not.
        for handler in logging.getLogger("distributed").handlers:
            handler.setLevel(logging.CRITICAL)
        with _connect(scheduler, security) as client:
            check_workers(client)  # before any task: a worker without dshift never answers
            click.echo(f"Connected to {scheduler}; dashboard: {client.dashboard_link}")
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
        click.echo(
            f"LocalCluster: {workers} workers x {threads} threads, {memory_limit} each; "
            f"dashboard: {client.dashboard_link}"
        )
        yield client
