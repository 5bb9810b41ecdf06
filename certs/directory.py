"""The federation directory: who is in the federation, where they listen, and on what terms.

The directory is a JSON document signed by the federation authority (the CA key): the signature
(ECDSA P-256 / SHA-256, DER) sits beside it in `<file>.sig` and covers the exact file bytes, so
`openssl dgst -sha256 -verify ca-pub.pem -signature directory.json.sig directory.json` checks it.
Nodes accept a directory only when the signature verifies and its serial is newer than the one
they hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from certs.errors import PkiError
from certs.identity import check_agency_code, fingerprint

FORMAT = "accord-directory/1"
ONWARD_RULES = ("FORBIDDEN", "WITH_ORIGINATOR_CONSENT", "ALLOWED")
TLP_ORDER = ("CLEAR", "GREEN", "AMBER", "AMBER_STRICT", "RED")
HANDLING_CODES = ("H0", "H1", "H2", "H3")


def tlp_name(text: str) -> str | None:
    """A TLP level as typed (`AMBER+STRICT`, `amber_strict`, `TLP:AMBER+STRICT`, ...) as its
    name in TLP_ORDER, or None if it is no level."""
    name = text.strip().upper().removeprefix("TLP:").removeprefix("TLP_")
    name = name.replace("+", "_").replace("-", "_")
    return name if name in TLP_ORDER else None


def tlp_label(name: str) -> str:
    """The TLP 2.0 spelling of a level, as every output shows it (AMBER+STRICT)."""
    return name.replace("_", "+")


TLP_LABELS = tuple(tlp_label(t) for t in TLP_ORDER)


@dataclass(frozen=True, slots=True)
class Member:
    agency: str
    name: str
    endpoint: str
    certificate_pem: str
    certificate_sha256: str

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem.encode())


@dataclass(frozen=True, slots=True)
class Purpose:
    code: str
    description: str


@dataclass(frozen=True, slots=True)
class Agreement:
    """A cooperation agreement between parties, as the federation authority published it."""

    id: str
    parties: tuple[str, ...]
    purposes: tuple[str, ...]
    message_types: tuple[str, ...]
    max_retention_days: int
    valid_from: datetime
    valid_until: datetime
    review_date: date | None = None
    max_tlp: str = "RED"
    handling_codes: tuple[str, ...] = HANDLING_CODES
    onward_transfer: str = "WITH_ORIGINATOR_CONSENT"
    approval_required: tuple[str, ...] = ()
    # Minimisation: purpose -> incident fields it allows. A purpose absent here allows all.
    allowed_fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    title: str = ""

    def covers(self, a: str, b: str) -> bool:
        return a in self.parties and b in self.parties


@dataclass(frozen=True, slots=True)
class Directory:
    federation: str
    serial: int
    issued_at: datetime
    members: tuple[Member, ...] = ()
    purposes: tuple[Purpose, ...] = ()
    agreements: tuple[Agreement, ...] = ()

    def member(self, agency: str) -> Member | None:
        for m in self.members:
            if m.agency == agency:
                return m
        return None

    def purpose_codes(self) -> frozenset[str]:
        return frozenset(p.code for p in self.purposes)

    def to_json(self) -> bytes:
        doc = {
            "format": FORMAT,
            "federation": self.federation,
            "serial": self.serial,
            "issued_at": self.issued_at.isoformat(),
            "members": [
                {
                    "agency": m.agency,
                    "name": m.name,
                    "endpoint": m.endpoint,
                    "certificate_sha256": m.certificate_sha256,
                    "certificate_pem": m.certificate_pem,
                }
                for m in self.members
            ],
            "purposes": [{"code": p.code, "description": p.description} for p in self.purposes],
            "agreements": [agreement_to_dict(a) for a in self.agreements],
        }
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Directory:
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PkiError(f"directory is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise PkiError(f"directory: format must be {FORMAT!r}")
        members = []
        for i, m in enumerate(_list(doc, "members")):
            where = f"directory.members[{i}]"
            pem = _str(m, "certificate_pem", where)
            try:
                cert = x509.load_pem_x509_certificate(pem.encode())
            except ValueError as exc:
                raise PkiError(f"{where}.certificate_pem: not a PEM certificate") from exc
            fp = _str(m, "certificate_sha256", where)
            if fp != fingerprint(cert):
                raise PkiError(f"{where}.certificate_sha256 does not match certificate_pem")
            members.append(
                Member(
                    agency=check_agency_code(_str(m, "agency", where)),
                    name=_str(m, "name", where),
                    endpoint=_str(m, "endpoint", where),
                    certificate_pem=pem,
                    certificate_sha256=fp,
                )
            )
        purposes = [
            Purpose(
                code=_str(p, "code", "directory.purposes"),
                description=str(p.get("description", "")),
            )
            for p in _list(doc, "purposes")
        ]
        agreements = [
            agreement_from_dict(a, f"directory.agreements[{i}]")
            for i, a in enumerate(_list(doc, "agreements"))
        ]
        serial = doc.get("serial")
        if not isinstance(serial, int) or serial < 1:
            raise PkiError("directory.serial must be a positive integer")
        return cls(
            federation=_str(doc, "federation", "directory"),
            serial=serial,
            issued_at=_time(doc, "issued_at", "directory"),
            members=tuple(members),
            purposes=tuple(purposes),
            agreements=tuple(agreements),
        )


def agreement_to_dict(a: Agreement) -> dict[str, Any]:
    return {
        "id": a.id,
        "title": a.title,
        "parties": list(a.parties),
        "purposes": list(a.purposes),
        "message_types": list(a.message_types),
        "max_retention_days": a.max_retention_days,
        "valid_from": a.valid_from.isoformat(),
        "valid_until": a.valid_until.isoformat(),
        "review_date": a.review_date.isoformat() if a.review_date else None,
        "max_tlp": tlp_label(a.max_tlp),
        "handling_codes": list(a.handling_codes),
        "onward_transfer": a.onward_transfer,
        "approval_required": list(a.approval_required),
        "allowed_fields": {k: list(v) for k, v in sorted(a.allowed_fields.items())},
    }


def agreement_from_dict(d: Any, where: str) -> Agreement:
    if not isinstance(d, dict):
        raise PkiError(f"{where}: must be an object")
    days = d.get("max_retention_days")
    if not isinstance(days, int) or days < 1:
        raise PkiError(f"{where}.max_retention_days must be a positive integer")
    max_tlp = tlp_name(str(d.get("max_tlp", "RED")))
    if max_tlp is None:
        raise PkiError(f"{where}.max_tlp must be one of {', '.join(TLP_LABELS)}")
    onward = str(d.get("onward_transfer", "WITH_ORIGINATOR_CONSENT"))
    if onward not in ONWARD_RULES:
        raise PkiError(f"{where}.onward_transfer must be one of {', '.join(ONWARD_RULES)}")
    handling = tuple(_strs(d, "handling_codes", where, default=list(HANDLING_CODES)))
    for h in handling:
        if h not in HANDLING_CODES:
            raise PkiError(f"{where}.handling_codes: unknown code {h!r}")
    review = d.get("review_date")
    allowed = d.get("allowed_fields") or {}
    if not isinstance(allowed, dict):
        raise PkiError(f"{where}.allowed_fields must map purpose codes to field lists")
    parties = tuple(check_agency_code(p) for p in _strs(d, "parties", where))
    if len(parties) < 2:
        raise PkiError(f"{where}.parties must name at least two agencies")
    valid_from = _time(d, "valid_from", where)
    valid_until = _time(d, "valid_until", where)
    if valid_until <= valid_from:
        raise PkiError(f"{where}.valid_until must be after valid_from")
    return Agreement(
        id=_str(d, "id", where),
        title=str(d.get("title", "")),
        parties=parties,
        purposes=tuple(_strs(d, "purposes", where)),
        message_types=tuple(_strs(d, "message_types", where)),
        max_retention_days=days,
        valid_from=valid_from,
        valid_until=valid_until,
        review_date=date.fromisoformat(review) if isinstance(review, str) else None,
        max_tlp=max_tlp,
        handling_codes=handling,
        onward_transfer=onward,
        approval_required=tuple(_strs(d, "approval_required", where, default=[])),
        allowed_fields={
            str(k): tuple(_strs(allowed, str(k), f"{where}.allowed_fields")) for k in allowed
        },
    )


def sign_directory(directory: Directory, key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    data = directory.to_json()
    return data, key.sign(data, ec.ECDSA(hashes.SHA256()))


def verify_directory(data: bytes, signature: bytes, ca_cert: x509.Certificate) -> Directory:
    """Parse a directory only after its signature by the federation authority verifies."""
    public = ca_cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise PkiError("federation CA key is not an EC key")
    try:
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise PkiError("directory signature does not verify against the federation CA") from exc
    return Directory.from_json(data)


def load_directory(path: Path, ca_cert: x509.Certificate) -> Directory:
    sig_path = path.with_name(path.name + ".sig")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PkiError(f"cannot read directory {path}: {exc.strerror}") from exc
    try:
        signature = sig_path.read_bytes()
    except OSError as exc:
        raise PkiError(f"directory {path} is unsigned: cannot read {sig_path}") from exc
    return verify_directory(data, signature, ca_cert)


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise PkiError(f"directory.{key} must be a list")
    return value


def _str(d: Any, key: str, where: str) -> str:
    value = d.get(key) if isinstance(d, dict) else None
    if not isinstance(value, str) or not value:
        raise PkiError(f"{where}.{key} must be a non-empty string")
    return value


def _strs(d: dict[str, Any], key: str, where: str, default: list[str] | None = None) -> list[str]:
    value = d.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PkiError(f"{where}.{key} must be a list of strings")
    return value


def _time(d: dict[str, Any], key: str, where: str) -> datetime:
    value = _str(d, key, where)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise PkiError(f"{where}.{key}: {value!r} is not an RFC 3339 time") from exc
    if parsed.tzinfo is None:
        raise PkiError(f"{where}.{key}: {value!r} must carry a UTC offset")
    return parsed
