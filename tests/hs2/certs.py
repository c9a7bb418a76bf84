"""Throw-away PKI for the HiveServer2 test server, generated at test time.

Two unrelated CAs: ``ca`` signs the server certificate (SAN ``localhost`` and ``127.0.0.1``,
what a verifying client checks), ``wrong_ca`` signs nothing the server uses, so a client that
trusts only it must fail verification exactly like a production client given the wrong bundle.
EC P-256 keys: generating them takes milliseconds, so every test session gets fresh ones and
nothing secret is ever committed. The extensions (SKI/AKI, key usages) satisfy the strict X.509
checks newer Pythons enable by default.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAMES = ("localhost",)
SERVER_IPS = ("127.0.0.1",)


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files (all in one directory)."""

    ca_pem: str  # the CA that signed the server certificate
    wrong_ca_pem: str  # an unrelated CA
    cert_pem: str  # server certificate (+ nothing else: the CA is the trust anchor)
    key_pem: str  # server private key (unencrypted, test only)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sentinel tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return builder.not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))


def _make_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    builder = _validity(
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
    )
    cert = (
        builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_server_cert(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
                      ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(n) for n in SERVER_NAMES] + [x509.IPAddress(ipaddress.ip_address(i)) for i in SERVER_IPS]
    builder = _validity(
        x509.CertificateBuilder()
        .subject_name(_name(SERVER_NAMES[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
    )
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=True,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _cert_bytes(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(directory: Path) -> Pki:
    """Write a CA, a server certificate + key it signed, and an unrelated CA into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _make_ca("sentinel test CA")
    _, wrong_ca = _make_ca("unrelated test CA")
    key, cert = _make_server_cert(ca_key, ca_cert)
    paths = Pki(
        ca_pem=str(directory / "ca.pem"),
        wrong_ca_pem=str(directory / "wrong-ca.pem"),
        cert_pem=str(directory / "server.pem"),
        key_pem=str(directory / "server-key.pem"),
    )
    Path(paths.ca_pem).write_bytes(_cert_bytes(ca_cert))
    Path(paths.wrong_ca_pem).write_bytes(_cert_bytes(wrong_ca))
    Path(paths.cert_pem).write_bytes(_cert_bytes(cert))
    Path(paths.key_pem).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    Path(paths.key_pem).chmod(0o600)
    return paths
