#!/usr/bin/env python3
"""Make the certificates a Dask cluster needs to run with TLS.

Writes three PEM files into DIRECTORY:

- ``ca.pem``: a new self-signed certificate authority (its key is not kept, so no other
  certificate can ever be signed by it);
- ``cluster.pem``: a certificate signed by that CA, for the scheduler, the workers and the
  clients alike (Dask's TLS is mutual: every side shows a certificate), with the subject
  alternative names 127.0.0.1, localhost, scheduler and worker (plus ``--san`` ones);
- ``cluster-key.pem``: the private key of ``cluster.pem``, readable by its owner only.

Usage::

    python docker/make-certs.py certs            # then see docker-compose.tls.yml
    dask scheduler --protocol tls --tls-ca-file certs/ca.pem \\
        --tls-cert certs/cluster.pem --tls-key certs/cluster-key.pem
    dshift fit ... --scheduler tls://HOST:8786 --tls-ca-file certs/ca.pem \\
        --tls-cert certs/cluster.pem --tls-key certs/cluster-key.pem

Existing files are never replaced unless ``--overwrite`` is given. Needs the
``cryptography`` package (``pip install "dshift[tls]"``).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from pathlib import Path

FILES = ("ca.pem", "cluster.pem", "cluster-key.pem")
DEFAULT_NAMES = ("127.0.0.1", "localhost", "scheduler", "worker")


def _general_name(name: str):
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def make_certs(
    directory: str | os.PathLike,
    *,
    names: tuple[str, ...] = DEFAULT_NAMES,
    days: int = 365,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write ca.pem, cluster.pem and cluster-key.pem into ``directory``; return their paths.

    Raises FileExistsError, before writing anything, if one of them exists and
    ``overwrite`` is false.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = Path(directory)
    paths = {name: directory / name for name in FILES}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{', '.join(existing)} already exist(s); pass --overwrite to replace them."
        )
    directory.mkdir(parents=True, exist_ok=True)

    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dshift cluster CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dshift cluster")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            # scheduler, workers and clients each act as TLS server and client
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in dict.fromkeys(names)]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    paths["ca.pem"].write_bytes(ca_cert.public_bytes(pem))
    paths["cluster.pem"].write_bytes(cert.public_bytes(pem))
    key_bytes = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path = paths["cluster-key.pem"]
    key_path.unlink(missing_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Make a self-signed CA and one certificate + key signed by it, for a "
        "Dask cluster with TLS (scheduler, workers and clients share them).",
    )
    parser.add_argument("directory", help="where to write ca.pem, cluster.pem, cluster-key.pem")
    parser.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="NAME",
        help="another host name or IP address for the certificate (repeatable); always "
        f"included: {', '.join(DEFAULT_NAMES)}",
    )
    parser.add_argument("--days", type=int, default=365, help="validity (default: 365)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    try:
        paths = make_certs(
            args.directory,
            names=(*DEFAULT_NAMES, *args.san),
            days=args.days,
            overwrite=args.overwrite,
        )
    except ImportError:
        print(
            "error: this script needs the cryptography package: pip install cryptography",
            file=sys.stderr,
        )
        return 1
    except (FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
