"""The federation authority: CA key, node certificate issuance, revocation, CRL and directory.

Everything lives in one directory (`--dir`):

    ca.key            CA private key (0600)
    ca.pem            CA certificate, distributed to every node
    crl.pem           current CRL, republished by `accord certs crl`
    directory.json    signed federation directory (+ directory.json.sig)
    state.json        serial counters and the register of issued certificates
    issued/CODE/      node.key, node.pem and ca.pem handed to an agency
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.directory import Agreement, Directory, Member, Purpose, load_directory, sign_directory
from certs.errors import PkiError
from certs.identity import (
    agency_dns_name,
    check_agency_code,
    check_federation_name,
    fingerprint,
    spiffe_id,
)

DEFAULT_PURPOSES = (
    ("serious-crime-investigation", "Investigation of serious crime"),
    ("counter-terrorism", "Prevention and investigation of terrorist offences"),
    ("organised-crime", "Combating organised crime groups"),
    ("cybercrime", "Investigation of cybercrime"),
    ("trafficking-in-human-beings", "Combating trafficking in human beings"),
    ("drug-trafficking", "Combating illicit drug trafficking"),
    ("missing-persons", "Tracing missing persons"),
    ("public-order-major-event", "Public order at a major event"),
    ("fugitive-tracing", "Tracing fugitives"),
    ("asset-recovery", "Tracing and recovery of criminal assets"),
)


# How long a signed directory stays valid unless the authority says otherwise.
DIRECTORY_DAYS = 30


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file created 0600 from the start, never briefly world-readable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path} is not an EC private key")
    return key


def load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot load certificate {path}: {exc}") from exc


def host_of(endpoint: str) -> str:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise PkiError(f"endpoint {endpoint!r} must be HOST:PORT")
    return host.strip("[]")


def _san_for_host(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


@dataclass(frozen=True, slots=True)
class IssuedNode:
    agency: str
    directory: Path
    key_path: Path
    cert_path: Path
    ca_path: Path
    serial: int


class FederationAuthority:
    """Operations of the federation authority over its state directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        if not (root / "ca.key").exists():
            raise PkiError(f"{root} is not a federation directory (no ca.key); run init-federation")
        self.ca_key = load_key(root / "ca.key")
        self.ca_cert = load_cert(root / "ca.pem")
        self._state: dict[str, Any] = json.loads((root / "state.json").read_text())

    @property
    def name(self) -> str:
        return str(self._state["federation"])

    @property
    def directory_path(self) -> Path:
        return self.root / "directory.json"

    @property
    def crl_path(self) -> Path:
        return self.root / "crl.pem"

    @property
    def ca_path(self) -> Path:
        return self.root / "ca.pem"

    # ---- set-up -----------------------------------------------------------------------------

    @classmethod
    def init(
        cls, root: Path, *, federation: str, now: datetime, years: int = 10
    ) -> FederationAuthority:
        check_federation_name(federation)
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        if (root / "ca.key").exists():
            raise PkiError(f"{root} already holds a federation; refusing to overwrite its CA key")
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"Accord federation {federation}"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{federation} federation CA"),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=365 * years))
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
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        write_private(root / "ca.key", key_pem(key))
        (root / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        state = {
            "federation": federation,
            "crl_number": 0,
            "directory_serial": 0,
            "directory_days": DIRECTORY_DAYS,
            "issued": [],
        }
        (root / "state.json").write_text(json.dumps(state, indent=2))
        authority = cls(root)
        authority.publish_crl(now=now)
        authority.publish_directory(
            now=now, purposes=tuple(Purpose(c, d) for c, d in DEFAULT_PURPOSES)
        )
        return authority

    # ---- issuance ---------------------------------------------------------------------------

    def issue(
        self,
        *,
        agency: str,
        endpoint: str,
        now: datetime,
        name: str = "",
        days: int = 365,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        uris: Sequence[str] | None = None,
        publish: bool = True,
        out: Path | None = None,
    ) -> IssuedNode:
        """Issue a key and certificate for an agency's node and (by default) list it.

        `uris` overrides the SPIFFE URI SAN; tests use it to make certificates with a wrong
        identity, which every node must refuse.
        """
        check_agency_code(agency)
        host = host_of(endpoint)
        if not name and publish:
            listed = self.directory().member(agency)
            name = listed.name if listed is not None else ""  # a re-issue keeps the name
        key = ec.generate_private_key(ec.SECP256R1())
        serial = x509.random_serial_number()
        sans: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(u)
            for u in (uris if uris is not None else [spiffe_id(self.name, agency)])
        ]
        sans.append(x509.DNSName(agency_dns_name(self.name, agency)))
        sans.append(_san_for_host(host))
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, name or agency),
                        x509.NameAttribute(NameOID.COMMON_NAME, agency),
                    ]
                )
            )
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(not_before or now - timedelta(minutes=5))
            .not_valid_after(not_after or now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
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
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        target = out or self.root / "issued" / agency
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, 0o700)
        write_private(target / "node.key", key_pem(key))
        (target / "node.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (target / "ca.pem").write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))
        self._state["issued"].append(
            {
                "serial": serial,
                "agency": agency,
                "sha256": fingerprint(cert),
                "not_after": cert.not_valid_after_utc.isoformat(),
                "revoked_at": None,
            }
        )
        self._save_state()
        if publish:
            member = Member(
                agency=agency,
                name=name or agency,
                endpoint=endpoint,
                certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
                certificate_sha256=fingerprint(cert),
            )
            current = self.directory()
            members = [m for m in current.members if m.agency != agency] + [member]
            self.publish_directory(now=now, members=tuple(sorted(members, key=lambda m: m.agency)))
        return IssuedNode(
            agency=agency,
            directory=target,
            key_path=target / "node.key",
            cert_path=target / "node.pem",
            ca_path=target / "ca.pem",
            serial=serial,
        )

    def unrevoked(self, agency: str, now: datetime) -> list[int]:
        """Serials of the agency's certificates issued here, neither revoked nor expired."""
        return [
            int(e["serial"])
            for e in self._state["issued"]
            if e["agency"] == agency
            and e["revoked_at"] is None
            and datetime.fromisoformat(e["not_after"]) > now
        ]

    # ---- revocation -------------------------------------------------------------------------

    def revoke(
        self, *, now: datetime, agency: str | None = None, serial: int | None = None
    ) -> list[int]:
        """Revoke one certificate (by serial) or every certificate of an agency; republish."""
        if (agency is None) == (serial is None):
            raise PkiError("name exactly one of --agency or --serial")
        hit = []
        for entry in self._state["issued"]:
            if entry["revoked_at"] is None and (
                entry["agency"] == agency or entry["serial"] == serial
            ):
                entry["revoked_at"] = now.isoformat()
                hit.append(int(entry["serial"]))
        if not hit:
            raise PkiError(f"no unrevoked certificate matches {agency or serial}")
        self._save_state()
        self.publish_crl(now=now)
        revoked_fps = {e["sha256"] for e in self._state["issued"] if e["revoked_at"]}
        current = self.directory()
        kept = tuple(m for m in current.members if m.certificate_sha256 not in revoked_fps)
        self.publish_directory(now=now, members=kept)
        return hit

    def publish_crl(self, *, now: datetime, next_update: timedelta = timedelta(days=7)) -> Path:
        self._state["crl_number"] += 1
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca_cert.subject)
            .last_update(now - timedelta(minutes=1))
            .next_update(now + next_update)
            .add_extension(x509.CRLNumber(self._state["crl_number"]), critical=False)
        )
        for entry in self._state["issued"]:
            if entry["revoked_at"]:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(int(entry["serial"]))
                    .revocation_date(datetime.fromisoformat(entry["revoked_at"]))
                    .build()
                )
        crl = builder.sign(self.ca_key, hashes.SHA256())
        self._save_state()
        write_atomic(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))
        return self.crl_path

    # ---- directory --------------------------------------------------------------------------

    def directory(self) -> Directory:
        return load_directory(self.directory_path, self.ca_cert)

    def publish_directory(
        self,
        *,
        now: datetime,
        members: tuple[Member, ...] | None = None,
        purposes: tuple[Purpose, ...] | None = None,
        agreements: tuple[Agreement, ...] | None = None,
        days: int | None = None,
    ) -> Directory:
        """Sign and publish a new directory serial, changing only what is given. It is valid
        for `days` (default: the last number given, at first DIRECTORY_DAYS): nodes refuse it
        after that, so the authority must sign again in time (`accord certs directory`)."""
        if days is not None:
            if days < 1:
                raise PkiError(f"directory validity must be at least 1 day, got {days}")
            self._state["directory_days"] = days
        valid_until = now + timedelta(days=int(self._state.get("directory_days", DIRECTORY_DAYS)))
        self._state["directory_serial"] += 1
        serial = self._state["directory_serial"]
        if self.directory_path.exists():
            base = replace(self.directory(), serial=serial, issued_at=now, valid_until=valid_until)
        else:
            base = Directory(
                federation=self.name, serial=serial, issued_at=now, valid_until=valid_until
            )
        new = replace(
            base,
            members=base.members if members is None else members,
            purposes=base.purposes if purposes is None else purposes,
            agreements=base.agreements if agreements is None else agreements,
        )
        data, signature = sign_directory(new, self.ca_key)
        self._save_state()
        # Signature first: a reader that sees the new document also finds its signature; one
        # that sees the old document with the new signature refuses it and retries later.
        write_atomic(self.directory_path.with_name("directory.json.sig"), signature)
        write_atomic(self.directory_path, data)
        return new

    def set_endpoint(self, *, agency: str, endpoint: str, now: datetime) -> Directory:
        host_of(endpoint)
        current = self.directory()
        if current.member(agency) is None:
            raise PkiError(f"{agency} is not a member of the federation")
        members = tuple(
            replace(m, endpoint=endpoint) if m.agency == agency else m for m in current.members
        )
        return self.publish_directory(now=now, members=members)

    def set_agreements(self, agreements: tuple[Agreement, ...], *, now: datetime) -> Directory:
        ids = [a.id for a in agreements]
        if len(set(ids)) != len(ids):
            raise PkiError("agreement ids must be unique")
        return self.publish_directory(now=now, agreements=agreements)

    def _save_state(self) -> None:
        write_atomic(self.root / "state.json", json.dumps(self._state, indent=2).encode())
