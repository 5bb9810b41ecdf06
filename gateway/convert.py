"""Between the node's protobuf answers and the gateway's JSON: one place, both directions."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format

from accord.v1 import message_pb2 as pb
from certs.directory import tlp_label
from gateway.errors import bad_request
from gateway.models import SendIn
from node.wire import CONTROL_TYPES, INCIDENT_TYPES, set_time


def when(ts: Any) -> datetime | None:
    """A protobuf Timestamp as a UTC datetime; None when unset."""
    if not ts.seconds and not ts.nanos:
        return None
    result: datetime = ts.ToDatetime(tzinfo=UTC)
    return result


def name(enum: Any, value: int, prefix: str) -> str:
    try:
        return str(enum.Name(value)).removeprefix(prefix)
    except ValueError:
        return str(value)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def user(u: Any) -> dict[str, Any]:
    return {
        "name": u.name,
        "role": u.role,
        "clearances": list(u.clearances),
        "disabled": u.disabled,
    }


def summary(s: Any) -> dict[str, Any]:
    return {
        "message_id": s.message_id,
        "sender": s.sender,
        "type": name(pb.MessageType, s.type, "MESSAGE_TYPE_"),
        "purpose": s.purpose,
        "tlp": tlp_label(name(pb.Tlp, s.tlp, "TLP_")),
        "direction": s.direction,
        "correlation_id": s.correlation_id,
        "created_at": when(s.created_at),
        "received_at": when(s.received_at),
        "retain_until": when(s.retain_until),
        "reply_deadline": when(s.reply_deadline),
        "expected_by": when(s.expected_by),
        "status": s.status or None,
    }


def markings(c: pb.MessageContent) -> dict[str, Any]:
    kind = c.retention.WhichOneof("limit")
    return {
        "tlp": tlp_label(name(pb.Tlp, c.tlp, "TLP_")),
        "handling_codes": [name(pb.HandlingCode, h, "HANDLING_CODE_") for h in c.handling_codes],
        "handling_conditions": c.handling_conditions,
        "onward_transfer": name(pb.OnwardTransfer, c.onward_transfer, "ONWARD_TRANSFER_"),
        "retention_days": c.retention.days if kind == "days" else None,
        "retention_until": when(c.retention.until) if kind == "until" else None,
        "urgency": name(pb.Urgency, c.urgency, "URGENCY_"),
        "reply_deadline": when(c.reply_deadline),
        "legal_basis": c.legal_basis,
        "agreement_id": c.agreement_id,
    }


def message(response: Any) -> dict[str, Any]:
    """A read message (GetResponse): summary, markings and content; content None if erased."""
    held = response.HasField("envelope")
    c = response.content
    return {
        "summary": summary(response.summary),
        "recipients": list(c.recipients),
        "in_reply_to": c.in_reply_to,
        "markings": markings(c),
        "content": json_format.MessageToDict(c, preserving_proto_field_name=True) if held else None,
        "content_sha256": hashlib.sha256(response.envelope.content).hexdigest() if held else None,
        "signature": _b64(response.envelope.signature) if held else None,
        "signature_proof": _b64(response.envelope.proof) if held else None,
    }


def delivery(d: Any) -> dict[str, Any]:
    receipted = d.HasField("receipt")
    rc = d.receipt_content
    return {
        "recipient": d.recipient,
        "state": d.state.upper(),
        "reason_code": rc.reason_code or None,
        "reason_detail": rc.reason_detail or None,
        "received_at": when(rc.received_at) if receipted else None,
        "retained_until": when(rc.retained_until) if receipted else None,
        "content_sha256": rc.content_sha256.hex() if receipted else None,
        "receipt": _b64(d.receipt.content) if receipted else None,
        "receipt_signature": _b64(d.receipt.signature) if receipted else None,
        "receipt_proof": _b64(d.receipt.proof) if receipted else None,
        "attempts": d.attempts,
        "last_error": d.last_error,
    }


def approval(a: Any) -> dict[str, Any]:
    return {
        "message_id": a.message_id,
        "author": a.author,
        "recipients": list(a.recipients),
        "state": a.state,
        "type": name(pb.MessageType, a.type, "MESSAGE_TYPE_") if a.type else None,
        "purpose": a.purpose or None,
        "requested_at": a.requested_at,
        "decided_by": a.decided_by or None,
        "decided_at": a.decided_at or None,
        "note": a.note,
    }


def access_entry(e: Any) -> dict[str, Any]:
    return {
        "at": e.at,
        "user": e.user,
        "action": e.action,
        "outcome": e.outcome,
        "message_id": e.message_id,
        "purpose": e.purpose,
        "justification": e.justification,
        "recipient": e.recipient,
        "detail": e.detail,
    }


def hold(h: Any) -> dict[str, Any]:
    return {
        "id": h.id,
        "message_id": h.message_id or None,
        "correlation_id": h.correlation_id or None,
        "justification": h.justification,
        "held_by": h.held_by,
        "held_at": when(h.held_at),
        "released_by": h.released_by or None,
        "released_at": when(h.released_at),
        "release_note": h.release_note or None,
    }


def retention(r: Any) -> dict[str, Any]:
    return {
        "last_sweep_at": when(r.last_sweep_at),
        "last_expired": r.last_expired,
        "last_sunset": r.last_sunset,
        "last_keys_destroyed": r.last_keys_destroyed,
        "last_seconds": r.last_seconds,
        "live": r.live,
        "expired_waiting": r.expired_waiting,
        "erased": r.erased,
        "held": r.held,
        "holds": r.holds,
        "keys": r.keys,
        "sweep_seconds": r.sweep_seconds,
    }


def review_item(i: Any) -> dict[str, Any]:
    return {
        "summary": summary(i.summary),
        "why": i.why,
        "held": i.held,
        "keep_at_most": when(i.keep_at_most),
    }


def overdue_item(i: Any) -> dict[str, Any]:
    return {
        "summary": summary(i.summary),
        "peer": i.peer,
        "owed_by_us": i.owed_by_us,
        "deadline": when(i.deadline),
        "expected_by": when(i.expected_by),
        "delayed": i.delayed,
        "overdue_seconds": i.overdue_seconds,
    }


def redress(r: Any) -> dict[str, Any]:
    return {
        "redress_id": r.redress_id,
        "type": r.type,
        "target_message_id": r.target_message_id,
        "created_at": r.created_at,
        "holders": [
            {
                "agency": h.agency,
                "via": h.via or None,
                "state": h.state,
                "result": h.result or None,
                "detail": h.detail,
                "answered_at": h.answered_at or None,
            }
            for h in r.holders
        ],
    }


def body_kind(type_name: str) -> str:
    if type_name in INCIDENT_TYPES:
        return "incident"
    if type_name in CONTROL_TYPES:
        return "control"
    return "liaison"


def content(draft: SendIn) -> pb.MessageContent:
    """The MessageContent the node is asked to send; a body that does not parse is a 400."""
    msg = pb.MessageContent(
        recipients=draft.recipients,
        type=f"MESSAGE_TYPE_{draft.type}",
        purpose=draft.purpose,
        legal_basis=draft.legal_basis,
        handling_codes=[f"HANDLING_CODE_{h}" for h in draft.handling_codes],
        handling_conditions=draft.handling_conditions,
        urgency="URGENCY_URGENT" if draft.urgent else "URGENCY_NORMAL",
        in_reply_to=draft.in_reply_to,
        # A reply continues the thread of what it answers unless told otherwise (as the CLI).
        correlation_id=draft.correlation_id or draft.in_reply_to,
    )
    if draft.tlp:
        msg.tlp = f"TLP_{draft.tlp}"  # type: ignore[assignment]
    if draft.onward_transfer:
        msg.onward_transfer = f"ONWARD_TRANSFER_{draft.onward_transfer}"  # type: ignore[assignment]
    if draft.retention_days is not None:
        msg.retention.days = draft.retention_days
    elif draft.retention_until is not None:
        set_time(msg.retention.until, _utc(draft.retention_until, "retention_until"))
    if draft.reply_deadline is not None:
        set_time(msg.reply_deadline, _utc(draft.reply_deadline, "reply_deadline"))
    kind = body_kind(draft.type)
    try:
        json_format.ParseDict(draft.body, getattr(msg, kind))
    except json_format.ParseError as exc:
        problem = " ".join(str(exc).split())
        body_type = getattr(msg, kind).DESCRIPTOR.name
        raise bad_request(f"body: not a valid {body_type} for {draft.type}: {problem}") from exc
    return msg


def _utc(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise bad_request(f"{field}: give a time with its UTC offset (RFC 3339)")
    return value
