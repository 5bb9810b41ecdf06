"""The one boundary between the wire (accord.v1 protobuf) and the node's domain types
(node/messages.py): contents, envelopes, receipts, frames, Hello and published policies are
read and built here, and nowhere else in the node. Past it, policy, store, delivery and
operations see `MessageMeta`, `SignedEnvelope`, `SignedReceipt` and plain bytes.

Signatures are always over the exact bytes carried on the wire, never a re-serialisation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from google.protobuf.message import DecodeError

from accord.v1 import federation_pb2
from accord.v1 import message_pb2 as pb
from node import deadlines
from node.errors import InvalidRequest, Reason, Refused
from node.messages import (
    Draft,
    ForwardTerms,
    Message,
    MessageMeta,
    PublishedPolicy,
    ReceiptInfo,
    RedressOutcome,
    Retention,
    SignedEnvelope,
    SignedReceipt,
)

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
        "REDRESS_REPORT",
    }
)

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


_KNOWN_TYPE_NUMBERS = frozenset(v for v in pb.MessageType.values() if v != 0)
# Proto3 enums are open: a peer can send values this node has no name for (a newer schema, or
# a broken one). decode refuses them as MALFORMED instead of failing on them.
_KNOWN_TLP = frozenset(pb.Tlp.values())
_KNOWN_HANDLING = frozenset(pb.HandlingCode.values())
_KNOWN_ONWARD = frozenset(pb.OnwardTransfer.values())

# decode runs for every message on both sides: enum names come from dicts built once (values
# not in them still go through Name(), which raises as before), and ids are checked with a regex:
# a UUIDv7 (RFC 9562: version 7, variant 10) in the canonical lowercase 8-4-4-4-12 form.
_TYPE_NAMES = {v: n.removeprefix("MESSAGE_TYPE_") for n, v in pb.MessageType.items()}
_HANDLING_NAMES = {v: n.removeprefix("HANDLING_CODE_") for n, v in pb.HandlingCode.items()}
_TLP_NAMES = {v: n.removeprefix("TLP_") for n, v in pb.Tlp.items()}
_ONWARD_NAMES = {v: n.removeprefix("ONWARD_TRANSFER_") for n, v in pb.OnwardTransfer.items()}
_TLP_NUMBERS = {name: number for number, name in _TLP_NAMES.items() if number}
_HANDLING_NUMBERS = {name: number for number, name in _HANDLING_NAMES.items() if number}
_RESULT_NAMES = {v: n.removeprefix("REDRESS_RESULT_") for n, v in pb.RedressResult.items()}
_URGENCY_NAMES = {v: n.removeprefix("URGENCY_") for n, v in pb.Urgency.items() if v}
_canonical_uuid7 = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
).fullmatch


def tighter_terms(terms: ForwardTerms, *, tlp: str, handling_codes: Sequence[str]) -> ForwardTerms:
    """`terms` with a TLP no lower than `tlp` and `handling_codes` added (names, as the domain
    types carry them)."""
    floor = pb.Tlp.Value(f"TLP_{tlp}") if tlp in _TLP_NUMBERS else 0
    codes = tuple(_HANDLING_NUMBERS[c] for c in handling_codes if c in _HANDLING_NUMBERS)
    return ForwardTerms(
        onward_transfer=terms.onward_transfer,
        tlp=max(terms.tlp, floor),
        handling_codes=terms.handling_codes
        + tuple(c for c in codes if c not in terms.handling_codes),
        retention=terms.retention,
    )


def type_name(number: int) -> str:
    """A message type's name (REQUEST_INFO, ...), or its number if it has none."""
    return _TYPE_NAMES.get(number, str(number)) if number else ""


def _is_uuid(text: str) -> bool:
    """Whether `text` is a message id: a UUIDv7 in canonical form."""
    return _canonical_uuid7(text) is not None


# ---- times ---------------------------------------------------------------------------------

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


def _time_field(name: str, ts: object) -> datetime:
    try:
        return to_datetime(ts)
    except ValueError as exc:  # outside Timestamp's range (years 1-9999)
        raise Refused(Reason.MALFORMED, f"{name} is not a valid time: {exc}") from exc


# ---- message contents ----------------------------------------------------------------------


def _parse(content: bytes) -> pb.MessageContent:
    msg = pb.MessageContent()
    try:
        msg.ParseFromString(content)
    except DecodeError as exc:
        raise Refused(Reason.MALFORMED, f"content is not a MessageContent: {exc}") from exc
    return msg


def decode(content: bytes) -> Message:
    """A content's message, checked for structure (Refused, with its reason, otherwise)."""
    msg = _parse(content)
    meta = _meta_of(msg)
    forwarded = _envelope(msg.forwarded) if msg.HasField("forwarded") else None
    authorisation = (
        _envelope(msg.transfer_authorisation) if msg.HasField("transfer_authorisation") else None
    )
    return Message(meta, forwarded, authorisation)


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


def body_fields(msg: pb.MessageContent) -> frozenset[str]:
    """What data minimisation (`allowed_fields`) looks at, in whatever body carries it: an
    incident's fields, a RECTIFICATION's corrected incident's, and the entities of a liaison
    body by kind (`entities.person`, ...), so a person the agreement excludes cannot travel
    as an entity of another type's body."""
    kind = msg.WhichOneof("body")
    if kind == "incident":
        return incident_fields(msg.incident)
    if kind == "control" and msg.control.HasField("corrected_incident"):
        return incident_fields(msg.control.corrected_incident)
    if kind == "liaison":
        return frozenset(
            f"entities.{e.WhichOneof('detail')}" if e.WhichOneof("detail") else "entities"
            for e in msg.liaison.entities
        )
    return frozenset()


def _meta_of(msg: pb.MessageContent) -> MessageMeta:
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
        # A grant covers one forwarding agency: its recipient (policy/onward.py).
        if len(msg.recipients) != 1:
            raise Refused(Reason.MALFORMED, "a grant names exactly one recipient")
        if msg.control.granted and not msg.control.HasField("valid_until"):
            raise Refused(Reason.MALFORMED, "a grant needs valid_until")
    _check_reasons(msg, type_name)
    retention_days: int | None = None
    retention_until: datetime | None = None
    control = msg.control
    control_fields = (
        frozenset(d.name for d, _ in control.ListFields())
        if body_kind == "control"
        else frozenset()
    )
    if control.tlp not in _KNOWN_TLP or any(
        h not in _KNOWN_HANDLING for h in control.handling_codes
    ):
        raise Refused(Reason.MALFORMED, "control body names an unknown TLP or handling code")
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
        fields_of=lambda: body_fields(msg),
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
        directly_accessible=msg.directly_accessible,
        expected_by=_time_field("expected_by", msg.liaison.delay.expected_by)
        if type_name == "DELAY_NOTICE"
        else None,
        control_fields=control_fields,
        control_reason=control.reason,
        new_tlp=_TLP_NAMES[control.tlp] if control.tlp else "",
        new_handling_codes=tuple(_HANDLING_NAMES[h] for h in control.handling_codes),
        new_handling_conditions=control.handling_conditions,
    )


def _check_reasons(msg: pb.MessageContent, type_name: str) -> None:
    """Directive (EU) 2023/977: a refusal is reasoned, and so is a delay notice, which also
    says when the answer will come; both answer a request (`in_reply_to`)."""
    if type_name not in ("REFUSAL", "DELAY_NOTICE"):
        return
    if not msg.in_reply_to:
        raise Refused(Reason.MALFORMED, f"a {type_name} answers a request: in_reply_to is empty")
    details = msg.liaison.WhichOneof("details") if msg.WhichOneof("body") == "liaison" else None
    if type_name == "REFUSAL" and (details != "refusal" or not msg.liaison.refusal.grounds.strip()):
        raise Refused(
            Reason.MALFORMED, "a REFUSAL states its grounds (liaison body, refusal.grounds)"
        )
    if type_name == "DELAY_NOTICE" and (
        details != "delay"
        or not msg.liaison.delay.reason.strip()
        or not msg.liaison.delay.HasField("expected_by")
    ):
        raise Refused(
            Reason.MALFORMED,
            "a DELAY_NOTICE states its reason and when the answer will come "
            "(liaison body, delay.reason and delay.expected_by)",
        )


def content_message(content: bytes) -> pb.MessageContent:
    """A stored content as the local API shows it (`Get`)."""
    return _parse(content)


# ---- drafts: what local users compose --------------------------------------------------------


def draft(content: pb.MessageContent) -> Draft:
    """A local user's composed content (the local API's, or a test's) as a draft."""
    known = content.type in _KNOWN_TYPE_NUMBERS
    control = content.control
    return Draft(
        body=content,
        message_id=content.message_id,
        sender=content.sender,
        recipients=tuple(content.recipients),
        type=_TYPE_NAMES[content.type] if known else str(content.type),
        purpose=content.purpose,
        texts=(
            ("legal_basis", content.legal_basis),
            ("handling_conditions", content.handling_conditions),
            ("control.reason", control.reason),
            ("control.conditions", control.conditions),
            ("control.handling_conditions", control.handling_conditions),
        ),
        forward=content.HasField("forwarded") or content.HasField("transfer_authorisation"),
        control_target=control.target_message_id if content.HasField("control") else "",
    )


def _body(d: Draft) -> pb.MessageContent:
    return cast(pb.MessageContent, d.body)


def complete(
    d: Draft, *, message_id: str, sender: str, now: datetime, grant_until: datetime
) -> tuple[Draft, MessageMeta]:
    """The draft as this node sends it (a copy: `message_id` and `sender` set, created now
    unless it says otherwise, and a grant that gives no end lasting until `grant_until`), and
    its meta, checked for structure (Refused otherwise)."""
    content = pb.MessageContent()
    content.CopyFrom(_body(d))
    content.message_id = message_id
    content.sender = sender
    if not content.HasField("created_at"):
        set_time(content.created_at, now)
    if content.type == pb.MESSAGE_TYPE_REQUEST_INFO:
        _set_deadline(content)
    if (
        content.type == pb.MESSAGE_TYPE_TRANSFER_AUTHORISATION_GRANT
        and content.control.granted
        and not content.control.HasField("valid_until")
    ):
        set_time(content.control.valid_until, grant_until)
    meta = _meta_of(content)
    done = Draft(
        body=content,
        message_id=message_id,
        sender=sender,
        recipients=d.recipients,
        type=d.type,
        purpose=d.purpose,
        texts=d.texts,
        forward=d.forward,
        control_target=d.control_target,
    )
    return done, meta


def _set_deadline(content: pb.MessageContent) -> None:
    """A request's reply deadline: the limit of node/deadlines.py from its creation, or the
    earlier one its author asked for (a later one is refused, before anything is signed)."""
    created = _time_field("created_at", content.created_at)
    span = deadlines.limit(
        urgent=content.urgency == pb.URGENCY_URGENT, direct=content.directly_accessible
    )
    if not content.HasField("reply_deadline"):
        set_time(content.reply_deadline, created + span)
        return
    asked = _time_field("reply_deadline", content.reply_deadline)
    if asked > created + span:
        raise InvalidRequest(
            f"reply_deadline {asked.isoformat()} is later than Directive (EU) 2023/977 allows "
            f"for this request ({span} from its creation, so at most "
            f"{(created + span).isoformat()}): ask for an earlier one or none"
        )


def serialise(d: Draft, *, agreement_id: str) -> bytes:
    """A completed draft's content bytes, naming `agreement_id` unless it names one already."""
    content = _body(d)
    if not content.agreement_id:
        content.agreement_id = agreement_id
    return content.SerializeToString()


def forward_draft(
    held: bytes,
    *,
    original: SignedEnvelope,
    to: str,
    purpose: str,
    terms: ForwardTerms,
) -> Draft:
    """A forward of the held content `held` to `to` for `purpose`: the held message's markings
    (never looser than the original's), tightened by `terms`, carrying the originator's own
    envelope `original`."""
    outer = pb.MessageContent()
    outer.CopyFrom(_parse(held))
    for name in ("message_id", "sender", "created_at", "agreement_id", "in_reply_to"):
        outer.ClearField(name)
    outer.ClearField("transfer_authorisation")
    del outer.recipients[:]
    outer.recipients.append(to)
    outer.purpose = purpose
    outer.forwarded.CopyFrom(_envelope_message(original))
    if terms.onward_transfer:
        outer.onward_transfer = terms.onward_transfer  # type: ignore[assignment]
    if terms.tlp:
        outer.tlp = terms.tlp  # type: ignore[assignment]
    for code in terms.handling_codes:
        if code not in outer.handling_codes:
            outer.handling_codes.append(code)  # type: ignore[arg-type]
    if terms.retention is not None:
        outer.retention.CopyFrom(_retention_message(terms.retention))
    return draft(outer)


def authorised(d: Draft, grant: SignedEnvelope) -> Draft:
    """A forward draft that carries the originator's grant beside the original."""
    content = pb.MessageContent()
    content.CopyFrom(_body(d))
    content.transfer_authorisation.CopyFrom(_envelope_message(grant))
    return draft(content)


def redress_draft(
    *,
    type_name: str,
    target: str,
    recipients: Sequence[str],
    purpose: str,
    reason: str,
    tlp: int = 0,
    handling_codes: Sequence[int] = (),
    handling_conditions: str = "",
    corrected_incident: Any = None,
) -> Draft:
    """A redress of the sent message `target`, to its recipients, under its purpose: the
    `RedressRequest`'s terms (`corrected_incident`: its IncidentBody, or None)."""
    content = pb.MessageContent(
        type=f"MESSAGE_TYPE_{type_name}",
        recipients=list(recipients),
        purpose=purpose,
        correlation_id=target,
    )
    control = content.control
    control.target_message_id = target
    control.reason = reason
    if tlp:
        control.tlp = tlp  # type: ignore[assignment]
    control.handling_codes.extend(handling_codes)  # type: ignore[arg-type]
    control.handling_conditions = handling_conditions
    if corrected_incident is not None:
        control.corrected_incident.CopyFrom(corrected_incident)
    return draft(content)


def relay_draft(
    inner: SignedEnvelope, *, type_name: str, target: str, to: str, purpose: str
) -> Draft:
    """A holder's relay of the originator's redress `inner` to `to`, which holds the message as
    the forward `target` this node sent it: the originator's envelope travels unchanged, so
    `to` checks the originator's signature itself."""
    content = pb.MessageContent(
        type=f"MESSAGE_TYPE_{type_name}",
        recipients=[to],
        purpose=purpose,
        correlation_id=target,
    )
    content.control.target_message_id = target
    content.control.reason = f"relayed redress of {target} from its originator"
    content.forwarded.CopyFrom(_envelope_message(inner))
    return draft(content)


def report_draft(
    *,
    target: str,
    to: str,
    purpose: str,
    receipts: Sequence[SignedReceipt],
    relayed_to: Sequence[str],
) -> Draft:
    """A REDRESS_REPORT to `to` about the redress `target` it sent this node: the onward
    holders' signed receipts, and those relayed to that have not answered yet."""
    content = pb.MessageContent(
        type=pb.MESSAGE_TYPE_REDRESS_REPORT,
        recipients=[to],
        purpose=purpose,
        correlation_id=target,
    )
    control = content.control
    control.target_message_id = target
    control.holder_receipts.extend(receipt_message(r) for r in receipts)
    control.relayed_to.extend(relayed_to)
    return draft(content)


def report_of(content: bytes) -> tuple[list[SignedReceipt], tuple[str, ...]]:
    """A REDRESS_REPORT's holder receipts and the agencies it names as relayed to."""
    control = _parse(content).control
    receipts = [SignedReceipt(r.content, r.signature, r.proof) for r in control.holder_receipts]
    return receipts, tuple(control.relayed_to)


def _retention_message(r: Retention) -> pb.Retention:
    out = pb.Retention()
    if r.days is not None:
        out.days = r.days
    elif r.until is not None:
        set_time(out.until, r.until)
    return out


def forward_terms(
    *, onward_transfer: int, tlp: int, handling_codes: Sequence[int], retention: Any
) -> ForwardTerms:
    """The stricter terms of a ForwardRequest (`retention`: its Retention, or None)."""
    kept: Retention | None = None
    if retention is not None:
        which = retention.WhichOneof("limit")
        if which == "days":
            kept = Retention(days=retention.days)
        elif which == "until":
            kept = Retention(until=_time_field("retention.until", retention.until))
        else:
            kept = Retention()
    return ForwardTerms(
        onward_transfer=onward_transfer,
        tlp=tlp,
        handling_codes=tuple(handling_codes),
        retention=kept,
    )


# ---- envelopes and frames ------------------------------------------------------------------

# What a stream hands the receiver for each envelope: the content, the sender's signature (None:
# the frame was not an Envelope at all) and its audit path (empty: signed alone).
Arrival = tuple[bytes, bytes | None, bytes]


def _envelope(env: pb.Envelope) -> SignedEnvelope:
    return SignedEnvelope(env.content, env.signature, env.proof)


def _envelope_message(env: SignedEnvelope) -> pb.Envelope:
    return pb.Envelope(content=env.content, signature=env.signature, proof=env.proof)


def envelope_message(env: SignedEnvelope) -> pb.Envelope:
    """An envelope as the local API shows it (`Get`)."""
    return _envelope_message(env)


def arrival_of_envelope(raw: bytes) -> Arrival:
    """What an Exchange frame holds: one envelope (signature None if it is not an Envelope)."""
    env = pb.Envelope()
    try:
        env.ParseFromString(raw)
    except DecodeError:
        return (raw, None, b"")
    return (env.content, env.signature, env.proof)


class MalformedFrameError(Exception):
    """A batched frame that does not parse: its envelopes cannot be counted or answered."""


def arrivals_of_batch(raw: bytes) -> list[Arrival]:
    """What an ExchangeBatches frame holds, or MalformedFrameError."""
    try:
        batch = federation_pb2.EnvelopeBatch.FromString(raw)
    except DecodeError as exc:
        raise MalformedFrameError("frame is not an EnvelopeBatch") from exc
    return [(env.content, env.signature, env.proof) for env in batch.envelopes]


def envelope_batch(envelopes: Sequence[SignedEnvelope]) -> federation_pb2.EnvelopeBatch:
    frame = federation_pb2.EnvelopeBatch()
    add = frame.envelopes.add
    for env in envelopes:
        add(content=env.content, signature=env.signature, proof=env.proof)
    return frame


def receipt_message(receipt: SignedReceipt) -> pb.Receipt:
    return pb.Receipt(content=receipt.content, signature=receipt.signature, proof=receipt.proof)


def receipt_batch(receipts: Sequence[SignedReceipt]) -> federation_pb2.ReceiptBatch:
    frame = federation_pb2.ReceiptBatch()
    add = frame.receipts.add
    for r in receipts:
        add(content=r.content, signature=r.signature, proof=r.proof)
    return frame


def receipts_of_batch(frame: federation_pb2.ReceiptBatch) -> list[SignedReceipt]:
    return [SignedReceipt(r.content, r.signature, r.proof) for r in frame.receipts]


# ---- receipts ------------------------------------------------------------------------------


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
    redress: RedressOutcome | None = None,
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
    if redress is not None:
        out = rc.redress
        out.redress_id = redress.redress_id
        out.originator = redress.originator
        out.target_message_id = redress.target_message_id
        out.held_as = redress.held_as
        out.result = pb.RedressResult.Value(f"REDRESS_RESULT_{redress.result}")  # type: ignore[assignment]
        out.tlp = pb.Tlp.Value(f"TLP_{redress.tlp or 'UNSPECIFIED'}")  # type: ignore[assignment]
        out.handling_codes.extend(
            pb.HandlingCode.Value(f"HANDLING_CODE_{h}")  # type: ignore[misc]
            for h in redress.handling_codes
        )
        out.handling_conditions = redress.handling_conditions
        out.hold_reference = redress.hold_reference
    return rc.SerializeToString()


def _outcome(rc: pb.ReceiptContent) -> RedressOutcome | None:
    if not rc.HasField("redress"):
        return None
    r = rc.redress
    return RedressOutcome(
        redress_id=r.redress_id,
        originator=r.originator,
        target_message_id=r.target_message_id,
        held_as=r.held_as,
        result=_RESULT_NAMES.get(r.result, "UNSPECIFIED"),
        tlp=_TLP_NAMES.get(r.tlp, "") if r.tlp else "",
        handling_codes=tuple(_HANDLING_NAMES.get(h, str(h)) for h in r.handling_codes),
        handling_conditions=r.handling_conditions,
        hold_reference=r.hold_reference,
    )


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
        redress=_outcome(rc),
    )


# ---- Hello and published policies ----------------------------------------------------------


def signed_policy_message(policy: PublishedPolicy) -> federation_pb2.SignedPolicy:
    return federation_pb2.SignedPolicy(
        policy_json=policy.policy_json,
        signature=policy.signature,
        agency=policy.agency,
        certificate_pem=policy.certificate_pem,
    )


def published_policy(message: federation_pb2.SignedPolicy) -> PublishedPolicy:
    return PublishedPolicy(
        message.policy_json, message.signature, message.agency, message.certificate_pem
    )
