"""The federation directory: who is in the federation, where they listen, and on what terms.

The directory is a JSON document signed by the federation authority (the CA key): the signature
(ECDSA P-256 / SHA-256, DER) sits beside it in `<file>.sig` and covers the exact file bytes, so
`openssl dgst -sha256 -verify ca-pub.pem -signature directory.json.sig directory.json` checks it.
Nodes accept a directory only when the signature verifies and its serial is newer than the one
they hold (and remember the highest serial they have seen across restarts), and stop trusting
it at its `valid_until`, which the authority sets each time it signs: a directory that is not
re-signed in time fails closed, as a CRL past its nextUpdate does.
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

from accord.v1 import message_pb2 as pb
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
    # What happens after valid_until to what each party received under it: "keep" (each
    # message keeps its own retain_until) or "erase" (erased at the next sweep).
    after_sunset: str = "keep"

    def covers(self, a: str, b: str) -> bool:
        return a in self.parties and b in self.parties


@dataclass(frozen=True, slots=True)
class Directory:
    federation: str
    serial: int
    issued_at: datetime
    valid_until: datetime
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
            "valid_until": self.valid_until.isoformat(),
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
        vocabulary = frozenset(p.code for p in purposes)
        agreements = [
            agreement_from_dict(a, f"directory.agreements[{i}]", purposes=vocabulary)
            for i, a in enumerate(_list(doc, "agreements"))
        ]
        serial = doc.get("serial")
        if not isinstance(serial, int) or serial < 1:
            raise PkiError("directory.serial must be a positive integer")
        issued_at = _time(doc, "issued_at", "directory")
        valid_until = _time(doc, "valid_until", "directory")
        if valid_until <= issued_at:
            raise PkiError("directory.valid_until must be after issued_at")
        return cls(
            federation=_str(doc, "federation", "directory"),
            serial=serial,
            issued_at=issued_at,
            valid_until=valid_until,
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
        "after_sunset": a.after_sunset,
    }


# What an agreement may say; any other key is refused (a typo such as `aproval_required` would
# otherwise drop a safeguard without a word).
AGREEMENT_KEYS = (
    "id",
    "title",
    "parties",
    "purposes",
    "message_types",
    "max_retention_days",
    "valid_from",
    "valid_until",
    "review_date",
    "max_tlp",
    "handling_codes",
    "onward_transfer",
    "approval_required",
    "allowed_fields",
    "after_sunset",
)
SUNSET_RULES = ("keep", "erase")
MAX_RETENTION_DAYS = 36500
MESSAGE_TYPES = tuple(
    v.name.removeprefix("MESSAGE_TYPE_") for v in pb.MessageType.DESCRIPTOR.values if v.number
)
# What `allowed_fields` may name: incident body fields, and entities by kind (entities.person).
INCIDENT_FIELDS = tuple(
    [f.name for f in pb.IncidentBody.DESCRIPTOR.fields]
    + [f"entities.{f.name}" for f in pb.Entity.DESCRIPTOR.oneofs_by_name["detail"].fields]
)


def agreement_from_dict(
    d: Any,
    where: str,
    *,
    purposes: frozenset[str] | None = None,
    members: frozenset[str] | None = None,
) -> Agreement:
    """Parse one agreement strictly: every key known, every value one the federation knows.

    `purposes`: the federation's purpose vocabulary (every purpose named must be in it);
    `members`: agencies the parties must be among (given when an agreement is published; a
    node loading a directory does not check it, since revoking a member drops it from the
    directory while agreements naming it stay).
    """
    if not isinstance(d, dict):
        raise PkiError(f"{where}: must be an object")
    agreement_id = d.get("id")
    if isinstance(agreement_id, str) and agreement_id:
        where = f"{where} (agreement {agreement_id})"
    unknown = sorted(str(k) for k in d if k not in AGREEMENT_KEYS)
    if unknown:
        raise PkiError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(AGREEMENT_KEYS)}"
        )
    days = d.get("max_retention_days")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_RETENTION_DAYS:
        raise PkiError(
            f"{where}.max_retention_days must be a whole number from 1 to {MAX_RETENTION_DAYS}"
        )
    max_tlp_text = d.get("max_tlp", "RED")
    max_tlp = tlp_name(max_tlp_text) if isinstance(max_tlp_text, str) else None
    if max_tlp is None:
        raise PkiError(f"{where}.max_tlp must be one of {', '.join(TLP_LABELS)}")
    onward = d.get("onward_transfer", "WITH_ORIGINATOR_CONSENT")
    if onward not in ONWARD_RULES:
        raise PkiError(f"{where}.onward_transfer must be one of {', '.join(ONWARD_RULES)}")
    handling = tuple(_strs(d, "handling_codes", where, default=list(HANDLING_CODES)))
    _known(handling, HANDLING_CODES, f"{where}.handling_codes", "handling code")
    parties = tuple(_strs(d, "parties", where))
    for p in parties:
        try:
            check_agency_code(p)
        except PkiError as exc:
            raise PkiError(f"{where}.parties: {exc}") from None
    if len(set(parties)) < 2:
        raise PkiError(f"{where}.parties must name at least two different agencies")
    if members is not None:
        _known(parties, tuple(sorted(members)), f"{where}.parties", "federation member")
    agreed = tuple(_strs(d, "purposes", where))
    if not agreed:
        raise PkiError(f"{where}.purposes must name at least one purpose")
    if purposes is not None:
        _known(agreed, tuple(sorted(purposes)), f"{where}.purposes", "purpose")
    types = tuple(_strs(d, "message_types", where))
    if not types:
        raise PkiError(f"{where}.message_types must name at least one message type")
    _known(types, MESSAGE_TYPES, f"{where}.message_types", "message type")
    approvals = tuple(_strs(d, "approval_required", where, default=[]))
    for rule in approvals:
        _known(
            tuple(rule.split(">", 1)),
            MESSAGE_TYPES,
            f"{where}.approval_required {rule!r}",
            "message type (TYPE or TYPE>REPLIED_TYPE)",
        )
    allowed = d.get("allowed_fields", {})
    if allowed is None:
        allowed = {}
    if not isinstance(allowed, dict):
        raise PkiError(f"{where}.allowed_fields must map purpose codes to field lists")
    _known(tuple(allowed), agreed, f"{where}.allowed_fields", "purpose of this agreement")
    allowed_fields = {
        str(k): tuple(_strs(allowed, str(k), f"{where}.allowed_fields")) for k in allowed
    }
    for purpose, names in allowed_fields.items():
        _known(names, INCIDENT_FIELDS, f"{where}.allowed_fields.{purpose}", "incident field")
    valid_from = _time(d, "valid_from", where)
    valid_until = _time(d, "valid_until", where)
    if valid_until <= valid_from:
        raise PkiError(f"{where}.valid_until must be after valid_from")
    title = d.get("title", "")
    if not isinstance(title, str):
        raise PkiError(f"{where}.title must be a string")
    after_sunset = d.get("after_sunset", "keep")
    if after_sunset not in SUNSET_RULES:
        raise PkiError(
            f"{where}.after_sunset must be one of {', '.join(SUNSET_RULES)} (what happens to "
            f"received messages after valid_until), not {after_sunset!r}"
        )
    return Agreement(
        id=_str(d, "id", where),
        title=title,
        parties=parties,
        purposes=agreed,
        message_types=types,
        max_retention_days=days,
        valid_from=valid_from,
        valid_until=valid_until,
        review_date=_date(d.get("review_date"), f"{where}.review_date"),
        max_tlp=max_tlp,
        handling_codes=handling,
        onward_transfer=onward,
        approval_required=approvals,
        allowed_fields=allowed_fields,
        after_sunset=after_sunset,
    )


def _known(values: tuple[str, ...], known: tuple[str, ...], where: str, what: str) -> None:
    unknown = [v for v in values if v not in known]
    if unknown:
        listed = ", ".join(known) if len(known) <= 40 else f"{len(known)} known values"
        raise PkiError(f"{where}: unknown {what} {', '.join(map(repr, unknown))} (known: {listed})")


def _date(value: Any, where: str) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PkiError(f"{where} must be a date YYYY-MM-DD or null")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise PkiError(f"{where}: {value!r} is not a date YYYY-MM-DD ({exc})") from None


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
    return verify_directory(*read_signed(path), ca_cert)


def read_signed(path: Path) -> tuple[bytes, bytes]:
    """A directory file's bytes and the signature beside it, unchecked."""
    sig_path = path.with_name(path.name + ".sig")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PkiError(f"cannot read directory {path}: {exc.strerror}") from exc
    try:
        signature = sig_path.read_bytes()
    except OSError as exc:
        raise PkiError(f"directory {path} is unsigned: cannot read {sig_path}") from exc
    return data, signature


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
