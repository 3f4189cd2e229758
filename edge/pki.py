"""The site CA, its certificates and CRL, with the ``cryptography`` package.

Only `lane broker certs` (``edge.broker.issue_site``) uses this, so the package is the
``broker`` extra, not a dependency of the agent. Keys are ECDSA P-256 and signatures
ECDSA-SHA256 (RFC 5480, RFC 5758): small, fast to make, and accepted by OpenSSL-based
Mosquitto and Python's ssl. Private keys are written 0600, unencrypted: they are handed to
the lane as a systemd credential (docs/security.md) and the broker reads its own at start.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge.broker import BrokerError

SKEW = dt.timedelta(minutes=5)  # not_before this far back: a controller's clock a little behind


@dataclass(frozen=True, slots=True)
class Profile:
    """What a certificate is for: a client (TLS client auth) or the broker (server auth)."""

    server: bool
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()


@dataclass(frozen=True, slots=True)
class Authority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    part = path.with_name(path.name + ".part")
    part.unlink(missing_ok=True)
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(part, path)


def _write_certificate(path: Path, certificate: x509.Certificate) -> None:
    part = path.with_name(path.name + ".part")
    part.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    part.chmod(0o644)
    os.replace(part, path)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def load_or_create_ca(
    directory: Path, common_name: str, *, days: int, now: dt.datetime
) -> tuple[Authority, bool]:
    """The CA in ``directory`` (ca.pem, ca.key), made when neither file exists."""
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    if cert_path.exists() or key_path.exists():
        try:
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise BrokerError(
                f"the CA in {directory} cannot be read ({exc}); a new CA would lock every "
                "lane out: restore ca.pem and ca.key, or remove both to start a new site"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key().public_numbers() != (
            certificate.public_key().public_numbers()  # type: ignore[union-attr]
        ):
            raise BrokerError(f"{key_path} is not the key of {cert_path}")
        return Authority(certificate, key), False
    key = _new_key()
    subject = _name(common_name)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    _write_certificate(cert_path, certificate)
    return Authority(certificate, key), True


def read_certificate(path: Path) -> x509.Certificate | None:
    """The certificate at ``path``; None when it is missing or not a certificate."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def signed_by(certificate: x509.Certificate, ca: Authority) -> bool:
    try:
        certificate.verify_directly_issued_by(ca.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _common_name(certificate: x509.Certificate) -> str | None:
    values = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if len(values) == 1 else None


def _alt_names(certificate: x509.Certificate) -> tuple[set[str], set[Any]]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    return set(san.get_values_for_type(x509.DNSName)), set(san.get_values_for_type(x509.IPAddress))


def fits(
    certificate: x509.Certificate,
    ca: Authority,
    name: str,
    profile: Profile,
    valid_until: dt.datetime,
) -> bool:
    """Whether ``certificate`` is still the right one for ``name``: this CA's, this CN, these
    broker names, and valid past ``valid_until``."""
    if not signed_by(certificate, ca) or _common_name(certificate) != name:
        return False
    if certificate.not_valid_after_utc <= valid_until:
        return False
    if profile.server:
        return _alt_names(certificate) == (set(profile.dns_names), set(profile.ip_addresses))
    return True


def issue(
    ca: Authority, stem: Path, name: str, profile: Profile, *, days: int, now: dt.datetime
) -> x509.Certificate:
    """A new key (``stem``.key) and certificate (``stem``.pem) for ``name``."""
    key = _new_key()
    public = key.public_key()
    purpose = ExtendedKeyUsageOID.SERVER_AUTH if profile.server else ExtendedKeyUsageOID.CLIENT_AUTH
    not_after = min(now + dt.timedelta(days=days), ca.certificate.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca.certificate.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([purpose]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if profile.server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in profile.dns_names]
                + [x509.IPAddress(ip) for ip in profile.ip_addresses]
            ),
            critical=False,
        )
    certificate = builder.sign(ca.key, hashes.SHA256())
    _write_key(stem.with_suffix(".key"), key)
    _write_certificate(stem.with_suffix(".pem"), certificate)
    return certificate


def crl(
    ca: Authority,
    revoked: Sequence[dict[str, Any]],
    live: Sequence[x509.Certificate | None],
    *,
    now: dt.datetime,
) -> str:
    """The CA's CRL (RFC 5280 section 5) listing ``revoked`` serials, in PEM.

    OpenSSL refuses every client once the CRL's nextUpdate has passed, so it is set to the
    last expiry among the live certificates: renewing those (running the command again)
    renews the CRL too."""
    expiries = [c.not_valid_after_utc for c in live if c is not None]
    next_update = max([*expiries, now + dt.timedelta(days=1)])
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - SKEW)
        .next_update(next_update)
    )
    for entry in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(int(entry["serial"]))
            .revocation_date(dt.datetime.fromisoformat(str(entry["at"])))
            .build()
        )
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
