"""Build, sign and verify envelopes and receipts.

This is the one boundary between the wire types (accord.v1 protobuf) and the node's domain
types: everything past it (policy, store, retention) sees `MessageMeta` and plain bytes.
Signatures are always over the exact bytes carried on the wire, never a re-serialisation.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from accord.v1 import message_pb2 as pb
from node.errors import Reason, Refused

_ECDSA = ec.ECDSA(hashes.SHA256())

MESSAGE_TYPES: tuple[str, ...] = tuple(
    v.name.removeprefix("MESSAGE_TYPE_") for v in pb.MessageType.DESCRIPTOR.values if v.number
)
INCIDENT_TYPES = frozenset({"INCIDENT_PUBLISH", "INCIDENT_UPDATE"})
CONTROL_TYPES = frozenset(
    {
        "INCIDENT_RETRACT",
        "HANDLING_UPDATE",
        "ERASURE_REQUEST",
        "RECTIFICATION",
        "TRANSFER_AUTHORISATION_REQUEST",
        "TRANSFER_AUTHORISATION_GRANT",
    }
)
_KNOWN_TYPE_NUMBERS = frozenset(v for v in pb.MessageType.values() if v != 0)
# Proto3 enums are open: a peer can send values this node has no name for (a newer schema, or
# a broken one). meta_of refuses them as MALFORMED instead of failing on them.
_KNOWN_TLP = frozenset(pb.Tlp.values())
_KNOWN_HANDLING = frozenset(pb.HandlingCode.values())
_KNOWN_ONWARD = frozenset(pb.OnwardTransfer.values())
# Longer than any agreement allows, short enough that adding it to a date cannot overflow.
_MAX_RETENTION_DAYS = 1_000_000

# meta_of runs for every message on both sides: enum names come from dicts built once (values
# not in them still go through Name(), which raises as before), and ids are checked with a regex:
# a UUIDv7 (RFC 9562: version 7, variant 10) in the canonical lowercase 8-4-4-4-12 form.
_TYPE_NAMES = {v: n.removeprefix("MESSAGE_TYPE_") for n, v in pb.MessageType.items()}
_HANDLING_NAMES = {v: n.removeprefix("HANDLING_CODE_") for n, v in pb.HandlingCode.items()}
_TLP_NAMES = {v: n.removeprefix("TLP_") for n, v in pb.Tlp.items()}
_ONWARD_NAMES = {v: n.removeprefix("ONWARD_TRANSFER_") for n, v in pb.OnwardTransfer.items()}
_URGENCY_NAMES = {v: n.removeprefix("URGENCY_") for n, v in pb.Urgency.items() if v}
_canonical_uuid7 = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
).fullmatch


def _is_uuid(text: str) -> bool:
    """Whether `text` is a message id: a UUIDv7 in canonical form."""
    return _canonical_uuid7(text) is not None


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """What the node needs to know about a message to route, check and keep it."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]
    type: str
    purpose: str
    agreement_id: str
    created_at: datetime
    correlation_id: str
    in_reply_to: str
    handling_codes: tuple[str, ...]
    tlp: str
    onward_transfer: str
    retention_days: int | None
    retention_until: datetime | None
    body_kind: str  # "incident", "liaison", "control" or ""
    control_target: str
    forwarded: bool
    third_agency: str = ""
    transfer_purpose: str = ""
    granted: bool = False
    handling_conditions: str = ""
    grant_valid_until: datetime | None = None
    urgency: str = ""  # NORMAL, URGENT or "" (unspecified)
    reply_deadline: datetime | None = None
    # The populated incident fields, computed only if a minimisation rule asks for them.
    fields_of: Callable[[], frozenset[str]] = field(default=frozenset, repr=False, compare=False)

    @property
    def incident_fields(self) -> frozenset[str]:
        return self.fields_of()

    def retain_until(self, received_at: datetime) -> datetime | None:
        """The sender's own limit, before agreement and local policy shorten it."""
        limits = []
        if self.retention_days is not None:
            days = min(self.retention_days, _MAX_RETENTION_DAYS)
            limits.append(received_at + timedelta(days=days))
        if self.retention_until is not None:
            limits.append(self.retention_until)
        return min(limits) if limits else None


@dataclass(frozen=True, slots=True)
class ReceiptInfo:
    message_id: str
    content_sha256: bytes
    sender: str
    receiver: str
    received_at: datetime
    accepted: bool
    reason_code: str
    reason_detail: str
    retained_until: datetime | None
    final: bool = True  # False: deferred, not a decision (RECEIPT_STATUS_DEFERRED)


def hello_bytes(nonce: bytes, caller: str) -> bytes:
    """What a server signs to prove its key to a caller (see federation.proto, Hello)."""
    return b"accord-hello/v1\x00" + nonce + b"\x00" + caller.encode()


def digest(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


def sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, _ECDSA)


def verify(public_key: ec.EllipticCurvePublicKey, data: bytes, signature: bytes) -> bool:
    try:
        public_key.verify(signature, data, _ECDSA)
    except InvalidSignature:
        return False
    return True


# ---- signed a batch at a time (Envelope and Receipt in message.proto, docs/evidence.md) ----
#
# One ECDSA signature over the Merkle root (RFC 6962 hashing) of a batch's contents, each content
# with its audit path: the signer's cost is per batch, and every item still verifies alone with
# the signer's certificate. The root is signed with a prefix of its kind, so a root signature
# can never pass for an item signed alone, nor an envelope root for a receipt root.

# What a node checks, named in its Hello answer and in the metadata of each stream it opens
# (federation.proto). Protocol v1 needs both: a link does not send to a server that does not
# name them, and a server does not take a stream whose caller does not.
ENVELOPE_PROOF = "envelope-proof/v1"  # checks envelopes' audit paths
RECEIPT_PROOF = "receipt-proof/v1"  # checks receipts' audit paths
FEATURES = (ENVELOPE_PROOF, RECEIPT_PROOF)
FEATURES_KEY = "accord-features"  # stream metadata: what the caller checks, comma-separated


def missing_features(named: frozenset[str]) -> str:
    """The features protocol v1 needs that `named` lacks, comma-separated ("" if none)."""
    return ", ".join(f for f in FEATURES if f not in named)


# A node puts at most this many envelopes in one frame; no node's limit
# (limits.max_envelopes_per_frame) is lower.
FRAME_ENVELOPES = 512

RECEIPT_ROOT = b"accord-receipt-root/v1\x00"
ENVELOPE_ROOT = b"accord-envelope-root/v1\x00"
_PROOF_STEP = 33  # side byte + SHA-256
MAX_PROOF_STEPS = 32  # a batch of up to 2**32 items; anything longer is not a proof


def _leaf(content: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + content).digest()


def _inner(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _merkle(contents: Sequence[bytes]) -> tuple[bytes, list[bytes]]:
    """The Merkle root over the contents, and each content's audit path. An unpaired last
    node moves up a level unchanged (no step is added for it)."""
    level = [_leaf(c) for c in contents]
    paths: list[list[bytes]] = [[] for _ in contents]
    where = list(range(len(contents)))  # each leaf's index in the current level
    while len(level) > 1:
        for leaf, index in enumerate(where):
            if index % 2:
                paths[leaf].append(b"\x00" + level[index - 1])
            elif index + 1 < len(level):
                paths[leaf].append(b"\x01" + level[index + 1])
        level = [
            _inner(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
        where = [index // 2 for index in where]
    return level[0], [b"".join(path) for path in paths]


def sign_batch(
    key: ec.EllipticCurvePrivateKey, contents: Sequence[bytes], *, kind: bytes
) -> list[tuple[bytes, bytes]]:
    """(signature, proof) for each content, with one signature for all of them (a lone
    content is signed directly, with an empty proof). `kind` is RECEIPT_ROOT or ENVELOPE_ROOT."""
    if len(contents) <= 1:
        return [(sign(key, c), b"") for c in contents]
    root, proofs = _merkle(contents)
    signature = sign(key, kind + root)
    return [(signature, proof) for proof in proofs]


def signed_bytes(content: bytes, proof: bytes, *, kind: bytes) -> bytes | None:
    """What the signature of a content with this proof is over, or None when the proof is not
    well formed."""
    if not proof:
        # A batch root's signature never passes for a content signed alone, even one whose
        # content would parse: the two signed forms cannot be confused.
        return None if content.startswith((RECEIPT_ROOT, ENVELOPE_ROOT)) else content
    if len(proof) % _PROOF_STEP or len(proof) > MAX_PROOF_STEPS * _PROOF_STEP:
        return None
    node = _leaf(content)
    for at in range(0, len(proof), _PROOF_STEP):
        side, sibling = proof[at], proof[at + 1 : at + _PROOF_STEP]
        if side == 0:
            node = _inner(sibling, node)
        elif side == 1:
            node = _inner(node, sibling)
        else:
            return None
    return kind + node


def verify_signed(
    public_key: ec.EllipticCurvePublicKey,
    content: bytes,
    signature: bytes,
    proof: bytes,
    *,
    kind: bytes,
) -> bool:
    """Check one item on its own, signed alone (empty proof) or with its batch."""
    signed = signed_bytes(content, proof, kind=kind)
    return signed is not None and verify(public_key, signed, signature)


def sign_receipts(
    key: ec.EllipticCurvePrivateKey, contents: Sequence[bytes]
) -> list[tuple[bytes, bytes]]:
    """(signature, proof) for each receipt content of a batch: the receiver's signing cost is
    per batch, not per message (docs/benchmarks.md)."""
    return sign_batch(key, contents, kind=RECEIPT_ROOT)


def receipt_signed_bytes(content: bytes, proof: bytes) -> bytes | None:
    """What a receipt's signature is over, or None when the proof is not well formed."""
    return signed_bytes(content, proof, kind=RECEIPT_ROOT)


def verify_receipt(
    public_key: ec.EllipticCurvePublicKey, content: bytes, signature: bytes, proof: bytes = b""
) -> bool:
    """Check one receipt on its own, whether it was signed alone or in a batch."""
    return verify_signed(public_key, content, signature, proof, kind=RECEIPT_ROOT)


def sign_envelopes(
    key: ec.EllipticCurvePrivateKey, contents: Sequence[bytes]
) -> list[tuple[bytes, bytes]]:
    """(signature, proof) for each message content of a batch of sends (node/signer.py)."""
    return sign_batch(key, contents, kind=ENVELOPE_ROOT)


def envelope_signed_bytes(content: bytes, proof: bytes) -> bytes | None:
    """What an envelope's signature is over, or None when the proof is not well formed."""
    return signed_bytes(content, proof, kind=ENVELOPE_ROOT)


def verify_envelope(
    public_key: ec.EllipticCurvePublicKey, content: bytes, signature: bytes, proof: bytes = b""
) -> bool:
    """Check one envelope (message content and its sender's signature) on its own, whether it
    was signed alone or with other sends of its batch."""
    return verify_signed(public_key, content, signature, proof, kind=ENVELOPE_ROOT)


def public_key_of(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("certificate does not hold an EC public key")
    return key


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIMESTAMP_SECONDS = range(-62_135_596_800, 253_402_300_800)  # Timestamp's valid range


def to_datetime(ts: Any) -> datetime:
    """`ts.ToDatetime(tzinfo=UTC)`, computed directly: it runs three times per message."""
    seconds, nanos = ts.seconds, ts.nanos
    if seconds in _TIMESTAMP_SECONDS and 0 <= nanos < 1_000_000_000:
        return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    result: datetime = ts.ToDatetime(tzinfo=UTC)  # out of range: raises as it always did
    return result


def set_time(ts: Any, when: datetime) -> None:
    """`ts.FromDatetime(when.astimezone(UTC))`, without its time-tuple round trip."""
    delta = when.astimezone(UTC) - _EPOCH
    ts.seconds = delta.days * 86_400 + delta.seconds
    ts.nanos = delta.microseconds * 1000


def parse_content(content: bytes) -> pb.MessageContent:
    msg = pb.MessageContent()
    try:
        msg.ParseFromString(content)
    except DecodeError as exc:
        raise Refused(Reason.MALFORMED, f"content is not a MessageContent: {exc}") from exc
    return msg


def message_id_hint(content: bytes) -> str:
    """Best effort: the message id of content that may be malformed, for a rejection receipt."""
    try:
        msg = pb.MessageContent()
        msg.ParseFromString(content)
    except DecodeError:
        return ""
    return msg.message_id if _is_uuid(msg.message_id) else ""


def incident_fields(incident: pb.IncidentBody) -> frozenset[str]:
    """The populated fields of an incident body, as dotted paths (for minimisation checks).

    Entity details are named by kind: `entities.person`, `entities.vehicle`, ...
    """
    fields: set[str] = set()
    for desc, value in incident.ListFields():
        if desc.name == "entities":
            for entity in value:
                kind = entity.WhichOneof("detail")
                fields.add(f"entities.{kind}" if kind else "entities")
        else:
            fields.add(desc.name)
    return frozenset(fields)


def _time_field(name: str, ts: object) -> datetime:
    try:
        return to_datetime(ts)
    except ValueError as exc:  # outside Timestamp's range (years 1-9999)
        raise Refused(Reason.MALFORMED, f"{name} is not a valid time: {exc}") from exc


def meta_of(msg: pb.MessageContent) -> MessageMeta:
    """Check the structure of a parsed content and reduce it to the domain view."""
    if not _is_uuid(msg.message_id):
        raise Refused(
            Reason.MALFORMED,
            f"message_id {msg.message_id!r} is not a UUIDv7 (RFC 9562, lowercase canonical form)",
        )
    if not msg.sender:
        raise Refused(Reason.MALFORMED, "sender is empty")
    if not msg.recipients:
        raise Refused(Reason.MALFORMED, "recipients is empty")
    if len(set(msg.recipients)) != len(msg.recipients):
        raise Refused(Reason.MALFORMED, "recipients repeat an agency")
    if not msg.HasField("created_at"):
        raise Refused(Reason.MALFORMED, "created_at is missing")
    if msg.tlp not in _KNOWN_TLP:
        raise Refused(Reason.MALFORMED, f"tlp {msg.tlp} is not a known TLP value")
    if msg.onward_transfer not in _KNOWN_ONWARD:
        raise Refused(Reason.MALFORMED, f"onward_transfer {msg.onward_transfer} is not known")
    if any(h not in _KNOWN_HANDLING for h in msg.handling_codes):
        raise Refused(Reason.MALFORMED, f"handling_codes {list(msg.handling_codes)}: unknown code")
    if msg.type not in _KNOWN_TYPE_NUMBERS:
        raise Refused(Reason.UNKNOWN_MESSAGE_TYPE, f"message type {msg.type} is not known")
    type_name = _TYPE_NAMES[msg.type]
    if not msg.purpose:
        raise Refused(Reason.MALFORMED, "purpose is empty")
    body_kind = msg.WhichOneof("body") or ""
    if not body_kind:
        raise Refused(Reason.MALFORMED, f"{type_name} has no body")
    if not getattr(msg, body_kind).ListFields():
        raise Refused(Reason.MALFORMED, f"the {body_kind} body of {type_name} is empty")
    if type_name not in CONTROL_TYPES:
        # The provider's terms travel with what it shares: required, never assumed. (A control
        # message acts on an earlier message and is bound by that one's terms.)
        missing = [
            what
            for what, absent in (
                ("TLP", msg.tlp == pb.TLP_UNSPECIFIED),
                ("handling code", not msg.handling_codes),
                ("retention", not msg.HasField("retention")),
            )
            if absent
        ]
        if missing:
            raise Refused(
                Reason.MARKINGS_MISSING,
                f"{type_name} has no {', no '.join(missing)}: every message states its TLP, "
                "at least one handling code and a retention",
            )
    if type_name in INCIDENT_TYPES and body_kind != "incident":
        raise Refused(Reason.MALFORMED, f"{type_name} needs an incident body")
    if type_name in CONTROL_TYPES and body_kind != "control":
        raise Refused(Reason.MALFORMED, f"{type_name} needs a control body")
    if body_kind == "control" and not _is_uuid(msg.control.target_message_id):
        raise Refused(Reason.MALFORMED, "control body needs target_message_id (a UUIDv7)")
    if type_name == "TRANSFER_AUTHORISATION_GRANT":
        # A grant covers one forwarding agency: its recipient (onward.py).
        if len(msg.recipients) != 1:
            raise Refused(Reason.MALFORMED, "a grant names exactly one recipient")
        if msg.control.granted and not msg.control.HasField("valid_until"):
            raise Refused(Reason.MALFORMED, "a grant needs valid_until")
    retention_days: int | None = None
    retention_until: datetime | None = None
    which = msg.retention.WhichOneof("limit") if msg.HasField("retention") else None
    if which == "days":
        retention_days = msg.retention.days
    elif which == "until":
        retention_until = _time_field("retention.until", msg.retention.until)
    return MessageMeta(
        message_id=msg.message_id,
        sender=msg.sender,
        recipients=tuple(msg.recipients),
        type=type_name,
        purpose=msg.purpose,
        agreement_id=msg.agreement_id,
        created_at=_time_field("created_at", msg.created_at),
        correlation_id=msg.correlation_id,
        in_reply_to=msg.in_reply_to,
        handling_codes=tuple(
            _HANDLING_NAMES.get(h) or pb.HandlingCode.Name(h).removeprefix("HANDLING_CODE_")
            for h in msg.handling_codes
        ),
        tlp=_TLP_NAMES.get(msg.tlp) or pb.Tlp.Name(msg.tlp).removeprefix("TLP_"),
        onward_transfer=_ONWARD_NAMES.get(msg.onward_transfer)
        or pb.OnwardTransfer.Name(msg.onward_transfer).removeprefix("ONWARD_TRANSFER_"),
        retention_days=retention_days,
        retention_until=retention_until,
        body_kind=body_kind,
        control_target=msg.control.target_message_id if body_kind == "control" else "",
        fields_of=(lambda: incident_fields(msg.incident)) if body_kind == "incident" else frozenset,
        forwarded=msg.HasField("forwarded"),
        third_agency=msg.control.third_agency if body_kind == "control" else "",
        transfer_purpose=msg.control.transfer_purpose if body_kind == "control" else "",
        granted=msg.control.granted if body_kind == "control" else False,
        handling_conditions=msg.handling_conditions,
        grant_valid_until=_time_field("valid_until", msg.control.valid_until)
        if body_kind == "control" and msg.control.HasField("valid_until")
        else None,
        urgency=_URGENCY_NAMES.get(msg.urgency, ""),
        reply_deadline=_time_field("reply_deadline", msg.reply_deadline)
        if msg.HasField("reply_deadline")
        else None,
    )


def check_created_at(meta: MessageMeta, *, now: datetime, skew: timedelta) -> None:
    """Refused if the message says it was made further in the future than clocks disagree."""
    if meta.created_at > now + skew:
        raise Refused(
            Reason.CREATED_AT_IN_FUTURE,
            f"created_at {meta.created_at.isoformat()} is more than {skew.total_seconds():.0f} s "
            f"ahead of the receiving clock ({now.isoformat()})",
        )


def receipt_content(
    *,
    message_id: str,
    content_sha256: bytes,
    sender: str,
    receiver: str,
    received_at: datetime,
    reason: Reason | None = None,
    detail: str = "",
    retained_until: datetime | None = None,
    final: bool = True,
) -> bytes:
    """The ReceiptContent bytes of a receipt, to be signed alone or with its batch: accepted
    (no reason), rejected, or, not `final`, deferred (the sender tries again later)."""
    if reason is None:
        status = pb.RECEIPT_STATUS_ACCEPTED
    else:
        status = pb.RECEIPT_STATUS_REJECTED if final else pb.RECEIPT_STATUS_DEFERRED
    rc = pb.ReceiptContent(
        message_id=message_id,
        content_sha256=content_sha256,
        sender=sender,
        receiver=receiver,
        status=status,
        reason_code="" if reason is None else reason.value,
        reason_detail=detail,
    )
    set_time(rc.received_at, received_at)
    if retained_until is not None:
        set_time(rc.retained_until, retained_until)
    return rc.SerializeToString()


def parse_receipt(data: bytes) -> ReceiptInfo:
    rc = pb.ReceiptContent()
    rc.ParseFromString(data)
    return ReceiptInfo(
        message_id=rc.message_id,
        content_sha256=rc.content_sha256,
        sender=rc.sender,
        receiver=rc.receiver,
        received_at=to_datetime(rc.received_at),
        accepted=rc.status == pb.RECEIPT_STATUS_ACCEPTED,
        reason_code=rc.reason_code,
        reason_detail=rc.reason_detail,
        retained_until=to_datetime(rc.retained_until) if rc.HasField("retained_until") else None,
        final=rc.status != pb.RECEIPT_STATUS_DEFERRED,
    )


def content_from_json(text: str) -> pb.MessageContent:
    """A MessageContent from its protobuf JSON mapping (what `accord send --body` reads)."""
    msg = pb.MessageContent()
    json_format.Parse(text, msg)
    return msg


def content_to_json(msg: pb.MessageContent) -> str:
    return json_format.MessageToJson(msg, preserving_proto_field_name=True, indent=2)
