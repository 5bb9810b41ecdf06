"""Agency identities: codes, SPIFFE-style URI SANs, DNS names and fingerprints."""

from __future__ import annotations

import hashlib
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.errors import PkiError

AGENCY_CODE = re.compile(r"^[A-Z]{2}-[A-Z0-9]{2,16}$")
FEDERATION_NAME = re.compile(
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"
)


def check_agency_code(code: str) -> str:
    if not AGENCY_CODE.match(code):
        raise PkiError(
            f"agency code {code!r} is not of the form CC-SHORT (ISO country, dash, 2-16 capitals "
            "or digits), e.g. NL-POL"
        )
    return code


def check_federation_name(name: str) -> str:
    if not FEDERATION_NAME.match(name):
        raise PkiError(f"federation name {name!r} must be a lower-case DNS name, e.g. accord.test")
    return name


def spiffe_id(federation: str, agency: str) -> str:
    return f"spiffe://{federation}/agency/{agency}"


def agency_dns_name(federation: str, agency: str) -> str:
    """The DNS SAN a client pins with ssl_target_name_override to authenticate a peer's agency."""
    return f"{agency.lower()}.agency.{federation}"


def agency_of(cert: x509.Certificate, federation: str) -> str:
    """The agency named by the certificate's SPIFFE URI SAN, or PkiError."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise PkiError("certificate has no subjectAltName") from exc
    prefix = f"spiffe://{federation}/agency/"
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    agencies = [u[len(prefix) :] for u in uris if u.startswith(prefix)]
    if len(agencies) != 1:
        raise PkiError(
            f"certificate must carry exactly one URI SAN {prefix}<CODE>; it has {uris or 'none'}"
        )
    return check_agency_code(agencies[0])


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 over the DER certificate, lower-case hex (as `openssl x509 -fingerprint -sha256`)."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
