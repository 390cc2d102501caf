"""A local certificate authority and the server certificates it signs, for the secure local stack.

Written once under ``run_dir`` (kept across restarts, so clients holding the CA keep trusting it)::

    <folder>/ca.pem, ca.key         the local CA (10 years), the file clients name as their CA
    <folder>/<name>.pem, <name>.key a server certificate for 127.0.0.1 and localhost (its key 0600)

Kafka reads PEM directly (``ssl.keystore.type=PEM``), PostgreSQL and Redis too.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from infra.security import write_secret

__all__ = ["ServerCert", "local_ca", "server_cert"]

VALID_DAYS = 3650


@dataclass(frozen=True, slots=True)
class ServerCert:
    """A server's certificate chain and key files, and the CA that signed it."""

    cert: Path
    key: Path
    ca: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _builder(
    subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
    )


def local_ca(folder: Path) -> tuple[Path, Path]:
    """(ca.pem, ca.key) in ``folder``, created on first use."""
    cert, key_path = folder / "ca.pem", folder / "ca.key"
    if cert.is_file() and key_path.is_file():
        return cert, key_path
    key = _key()
    ca = (
        _builder("esports-live local CA", _name("esports-live local CA"), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    write_secret(key_path, _pem_key(key))
    cert.write_text(ca.public_bytes(serialization.Encoding.PEM).decode())
    return cert, key_path


def server_cert(folder: Path, name: str) -> ServerCert:
    """``name``.pem (the certificate, then the CA's) and ``name``.key for 127.0.0.1 and localhost,
    signed by the local CA of ``folder``; created on first use."""
    ca_pem, ca_key_path = local_ca(folder)
    cert, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    if cert.is_file() and key_path.is_file():
        return ServerCert(cert, key_path, ca_pem)
    ca = x509.load_pem_x509_certificate(ca_pem.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _key()
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    signed = (
        _builder(f"esports-{name}", ca.subject, key.public_key())
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_secret(key_path, _pem_key(key))
    cert.write_text(signed.public_bytes(serialization.Encoding.PEM).decode() + ca_pem.read_text())
    return ServerCert(cert, key_path, ca_pem)
