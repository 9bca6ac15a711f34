"""A cluster with TLS: a `dask scheduler` and a `dask worker` on 127.0.0.1 with certificates
made by docker/make-certs.py. Fits over tls:// work from Python and from the CLI; clients
without the certificates, or with certificates from another CA, are refused, and the CLI
says so in one line."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
import zarr
from click.testing import CliRunner
from distributed import Client
from distributed.security import Security

import dshift
from dshift import datasets
from dshift.cli import main

ROOT = Path(__file__).parents[1]
MAKE_CERTS = ROOT / "docker" / "make-certs.py"
TLS_ENV = ("DASK_TLS_CA_FILE", "DASK_TLS_CERT", "DASK_TLS_KEY", "DASK_SCHEDULER_ADDRESS")


def _bin(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


def _clean_env() -> dict[str, str]:
    """The environment without TLS or scheduler settings that would change the CLI's answer."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in TLS_ENV and not k.startswith("DASK_DISTRIBUTED__COMM__")
    }


def make_certs(directory: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(MAKE_CERTS), str(directory), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def cert_flags(certs: Path) -> list[str]:
    return [
        "--tls-ca-file",
        str(certs / "ca.pem"),
        "--tls-cert",
        str(certs / "cluster.pem"),
        "--tls-key",
        str(certs / "cluster-key.pem"),
    ]


def security(certs: Path, ca: Path | None = None) -> Security:
    return Security(
        tls_ca_file=str((ca or certs) / "ca.pem"),
        tls_client_cert=str(certs / "cluster.pem"),
        tls_client_key=str(certs / "cluster-key.pem"),
        require_encryption=True,
    )


def dshift_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_bin("dshift"), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=_clean_env(),
        timeout=120,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory, dask_processes):
    """`dask scheduler --protocol tls` and one `dask worker` with the same certificates, on
    127.0.0.1; both terminated (killed if need be) afterwards. Also a second, unrelated CA
    with its own certificate, in `other`."""
    workdir = tmp_path_factory.mktemp("tls-cluster")
    certs, other = workdir / "certs", workdir / "other"
    for directory in (certs, other):
        proc = make_certs(directory)
        assert proc.returncode == 0, proc.stderr
    flags = cert_flags(certs)
    with dask_processes(
        workdir,
        1,
        scheduler_args=["--protocol", "tls", *flags],
        worker_args=["--no-nanny", *flags],
        security=security(certs),
    ) as address:
        yield SimpleNamespace(address=address, certs=certs, other=other, workdir=workdir)


def test_make_certs_writes_a_ca_and_a_signed_cert_and_refuses_to_overwrite(tls_cluster):
    from cryptography import x509

    certs = tls_cluster.certs
    ca = x509.load_pem_x509_certificate((certs / "ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((certs / "cluster.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(n.value) for n in names} == {"127.0.0.1", "localhost", "scheduler", "worker"}
    assert (certs / "cluster-key.pem").stat().st_mode & 0o077 == 0  # owner only
    before = (certs / "ca.pem").read_bytes()
    proc = make_certs(certs)
    assert proc.returncode == 1 and "--overwrite" in proc.stderr
    assert (certs / "ca.pem").read_bytes() == before


def test_python_fit_over_tls_matches_a_local_fit(tls_cluster):
    assert tls_cluster.address.startswith("tls://")
    X = np.random.default_rng(0).normal(size=(3000, 2)) + np.repeat([[0, 0], [6, 6]], 1500, 0)
    local = dshift.MeanShift(bandwidth=2, kernel="flat").fit(X)
    with Client(tls_cluster.address, security=security(tls_cluster.certs)) as client:
        assert all(w.startswith("tls://") for w in client.scheduler_info()["workers"])
        remote = dshift.MeanShift(bandwidth=2, kernel="flat").fit(X)
    np.testing.assert_allclose(
        remote.cluster_centers_, local.cluster_centers_, rtol=1e-9, atol=1e-9
    )
    np.testing.assert_array_equal(remote.labels_, local.labels_)
    assert remote.n_iter_ == local.n_iter_ and len(local.cluster_centers_) == 2


def test_cli_make_blobs_and_fit_over_tls(tls_cluster, tmp_path):
    flags = ["--scheduler", tls_cluster.address, *cert_flags(tls_cluster.certs)]
    proc = dshift_cli(
        "make-blobs", str(tmp_path / "b.zarr"), "--n-samples", "6000", "--centers", "3",
        "--chunk-rows", "2000", *flags,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"Connected to {tls_cluster.address}" in proc.stderr
    data, out = str(tmp_path / "b.zarr" / "X"), tmp_path / "out.zarr"
    args = ["--kernel", "flat", "--bandwidth", "2", "--seeding", "bin"]
    proc = dshift_cli("fit", data, str(out), *args, *flags)
    assert proc.returncode == 0, proc.stderr
    assert (
        f"Connected to {tls_cluster.address}" in proc.stderr and "LocalCluster" not in proc.stderr
    )
    result = zarr.open_group(str(out), mode="r")
    local = dshift.MeanShift(bandwidth=2, kernel="flat", seeding="bin").fit(data)
    np.testing.assert_allclose(result["centers"][:], local.cluster_centers_, rtol=1e-9)
    np.testing.assert_array_equal(result["labels"][:], local.labels_.compute())


def tls_first_read(address: str, ca: Path, cert: Path | None) -> bytes:
    """Open a TLS connection to ``address`` trusting ``ca``, showing ``cert`` (and its key
    next to it) or no certificate, and return the first bytes the server sends."""
    host, port = address.removeprefix("tls://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False
    if cert:
        context.load_cert_chain(str(cert), str(cert.with_name("cluster-key.pem")))
    # the timeout only bounds a hang: the server answers (data or an alert) at once
    with (
        socket.create_connection((host, int(port)), timeout=60) as sock,
        context.wrap_socket(sock) as conn,
    ):
        return conn.recv(64)  # TLS 1.3: a refused client certificate is an alert here


def test_client_without_certificates_is_refused(tls_cluster, tmp_path):
    address, certs = tls_cluster.address, tls_cluster.certs
    # set_as_default=False: a Client that fails to start stays the default scheduler
    with pytest.raises((OSError, TypeError)):  # no certificate at all: cannot even start TLS
        Client(address, timeout="5s", set_as_default=False)
    with pytest.raises(OSError):  # plain TCP to the TLS port
        Client(address.replace("tls://", "tcp://"), timeout="5s", set_as_default=False)
    # trusting the scheduler's CA is not enough: the scheduler wants a client certificate
    # (TLS 1.3: an alert "certificate required" on the first read; else a failed handshake)
    refused = b""
    with contextlib.suppress(ssl.SSLError, ConnectionError):
        refused = tls_first_read(address, certs / "ca.pem", cert=None)
    assert refused == b""
    assert tls_first_read(address, certs / "ca.pem", cert=certs / "cluster.pem")  # control

    data = datasets.make_blobs(tmp_path / "b.zarr", 100, chunk_rows=50)
    out = tmp_path / "o.zarr"
    proc = dshift_cli("fit", data, str(out), "--scheduler", address)
    assert_one_line_error(proc, "uses TLS", "--tls-ca-file", "--tls-cert", "--tls-key")
    proc = dshift_cli("fit", data, str(out), "--scheduler", address.replace("tls://", "tcp://"))
    assert_one_line_error(proc, "closed the connection", "tls://")
    assert not out.exists()


def test_certificates_from_another_ca_are_refused(tls_cluster, tmp_path):
    certs, other = tls_cluster.certs, tls_cluster.other
    with pytest.raises(OSError):  # the scheduler's certificate is not signed by our CA
        Client(tls_cluster.address, timeout="5s", security=security(other), set_as_default=False)
    with pytest.raises(OSError):  # our certificate is not signed by the scheduler's CA
        Client(
            tls_cluster.address,
            timeout="5s",
            security=security(other, ca=certs),
            set_as_default=False,
        )

    data = datasets.make_blobs(tmp_path / "b.zarr", 100, chunk_rows=50)
    out = tmp_path / "o.zarr"
    for flags in (
        cert_flags(other),
        ["--tls-ca-file", str(certs / "ca.pem"), *cert_flags(other)[2:]],
    ):
        proc = dshift_cli("fit", data, str(out), "--scheduler", tls_cluster.address, *flags)
        assert_one_line_error(proc, "TLS handshake with the Dask scheduler", "failed")
    assert not out.exists()


@pytest.fixture
def connection_attempts(monkeypatch):
    """Every Client or LocalCluster the CLI creates from now on, recorded and refused (the
    CLI imports both from distributed when it connects)."""
    import distributed

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append((args, kwargs))
        raise OSError("connection attempts are refused in this test")

    monkeypatch.setattr(distributed, "Client", refuse)
    monkeypatch.setattr(distributed, "LocalCluster", refuse)
    return attempts


def test_connection_attempts_are_seen(tls_cluster, tmp_path, monkeypatch, connection_attempts):
    """Control for the next test: with valid options the CLI does try to connect."""
    for name in TLS_ENV:
        monkeypatch.delenv(name, raising=False)
    data = datasets.make_blobs(tmp_path / "b.zarr", 100, chunk_rows=50)
    flags = ["--scheduler", "tls://127.0.0.1:9", *cert_flags(tls_cluster.certs)]
    result = CliRunner().invoke(main, ["fit", data, str(tmp_path / "o.zarr"), *flags])
    assert result.exit_code == 1, result.output
    assert len(connection_attempts) == 1 and connection_attempts[0][0] == ("tls://127.0.0.1:9",)
    assert not (tmp_path / "o.zarr").exists()


@pytest.mark.parametrize(
    ("flags", "fragments"),
    [
        (
            ["--scheduler", "tls://127.0.0.1:9", "--tls-ca-file", "{certs}/ca.pem"],
            ["together", "missing --tls-cert and --tls-key"],
        ),
        (
            ["--scheduler", "tls://127.0.0.1:9", "--tls-cert", "{certs}/cluster.pem",
             "--tls-key", "{certs}/cluster-key.pem"],
            ["missing --tls-ca-file"],
        ),
        (
            ["--scheduler", "tls://127.0.0.1:9", "--tls-ca-file", "{certs}/ca.pem",
             "--tls-cert", "{certs}/nope.pem", "--tls-key", "{certs}/cluster-key.pem"],
            ["--tls-cert", "nope.pem", "does not exist"],
        ),
        (
            ["--scheduler", "tls://127.0.0.1:9", "--tls-ca-file", "{certs}/cluster-key.pem",
             "--tls-cert", "{certs}/cluster.pem", "--tls-key", "{certs}/cluster-key.pem"],
            ["--tls-ca-file", "is not a PEM CA certificate"],
        ),
        (
            ["--scheduler", "tls://127.0.0.1:9", "--tls-ca-file", "{certs}/ca.pem",
             "--tls-cert", "{certs}/cluster.pem", "--tls-key", "{other}/cluster-key.pem"],
            ["not a matching PEM certificate and private key"],
        ),
        (
            ["--scheduler", "tcp://127.0.0.1:9", "--tls-ca-file", "{certs}/ca.pem",
             "--tls-cert", "{certs}/cluster.pem", "--tls-key", "{certs}/cluster-key.pem"],
            ["need a tls:// scheduler address", "use tls://127.0.0.1:9"],
        ),
        (
            ["--tls-ca-file", "{certs}/ca.pem", "--tls-cert", "{certs}/cluster.pem",
             "--tls-key", "{certs}/cluster-key.pem"],
            ["--scheduler tls://HOST:PORT"],
        ),
        (["--scheduler", "tls://127.0.0.1:9"], ["uses TLS: pass --tls-ca-file"]),
    ],
)  # fmt: skip
def test_cli_tls_options_are_checked_before_connecting(
    tls_cluster, tmp_path, monkeypatch, connection_attempts, flags, fragments
):
    for name in TLS_ENV:
        monkeypatch.delenv(name, raising=False)
    data = datasets.make_blobs(tmp_path / "b.zarr", 100, chunk_rows=50)
    flags = [f.format(certs=tls_cluster.certs, other=tls_cluster.other) for f in flags]
    result = CliRunner().invoke(main, ["fit", data, str(tmp_path / "o.zarr"), *flags])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]
    assert connection_attempts == []  # refused up front, no connection attempt
    assert not (tmp_path / "o.zarr").exists()


def test_cli_tls_options_from_environment_variables(tls_cluster, tmp_path, monkeypatch):
    certs = tls_cluster.certs
    monkeypatch.setenv("DASK_TLS_CA_FILE", str(certs / "ca.pem"))
    monkeypatch.setenv("DASK_TLS_CERT", str(certs / "cluster.pem"))
    monkeypatch.setenv("DASK_TLS_KEY", str(certs / "cluster-key.pem"))
    data = datasets.make_blobs(tmp_path / "b.zarr", 400, chunk_rows=200)
    result = CliRunner().invoke(
        main, ["estimate-bandwidth", data, "--scheduler", tls_cluster.address]
    )
    assert result.exit_code == 0, result.output
    assert f"Connected to {tls_cluster.address}" in result.output
    assert float(result.output.strip().splitlines()[-1]) > 0


def test_compose_tls_notebook_settings_reach_the_cluster(tls_cluster, tmp_path):
    """docker-compose.tls.yml's notebook environment (Dask's own TLS settings, no --tls-*
    options) is enough for Client() and the CLI."""
    services = yaml.safe_load((ROOT / "docker-compose.tls.yml").read_text())["services"]
    env = {
        name: value.replace("/certs/", f"{tls_cluster.certs}/")
        for name, value in services["notebook"]["environment"].items()
    }
    env["DASK_SCHEDULER_ADDRESS"] = tls_cluster.address  # tls://scheduler:8786 in compose
    data = datasets.make_blobs(tmp_path / "b.zarr", 400, chunk_rows=200)
    proc = subprocess.run(
        [_bin("dshift"), "estimate-bandwidth", data],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**_clean_env(), **env},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"Connected to {tls_cluster.address}" in proc.stderr
