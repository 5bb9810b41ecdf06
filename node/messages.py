"""The node's own view of what travels: messages, envelopes, receipts, published policies.

Plain dataclasses, no protobuf: node/wire.py is the one place that converts between these and
the accord.v1 messages on the wire, so policy, store, delivery and operations see only these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# Longer than any agreement allows, short enough that adding it to a date cannot overflow.
_MAX_RETENTION_DAYS = 1_000_000


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
    directly_accessible: bool = False  # a REQUEST_INFO's (node/deadlines.py)
    expected_by: datetime | None = None  # a DELAY_NOTICE's new date for the answer
    # A control body's populated fields by name, and a HANDLING_UPDATE's terms (its TLP, ""
    # if unset, and the handling codes and conditions it adds).
    control_fields: frozenset[str] = frozenset()
    control_reason: str = ""
    new_tlp: str = ""
    new_handling_codes: tuple[str, ...] = ()
    new_handling_conditions: str = ""
    # The fields data minimisation checks, in whatever body carries them (wire.body_fields),
    # computed only if a minimisation rule asks for them.
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
class SignedEnvelope:
    """A message content with its sender's signature and the signature's audit path (empty:
    signed alone)."""

    content: bytes
    signature: bytes
    proof: bytes = b""


@dataclass(frozen=True, slots=True)
class SignedReceipt:
    """A receipt content with the receiver's signature and its audit path (empty: signed
    alone)."""

    content: bytes
    signature: bytes
    proof: bytes = b""


@dataclass(frozen=True, slots=True)
class Message:
    """A message content, decoded and structurally sound: its meta, and the envelopes a forward
    carries (the originator's, and the originator's grant when consent was needed)."""

    meta: MessageMeta
    forwarded: SignedEnvelope | None = None
    authorisation: SignedEnvelope | None = None


@dataclass(frozen=True, slots=True)
class RedressOutcome:
    """What a holder did on a redress (ReceiptContent.redress): `result` is ERASED, RETRACTED,
    REPLACED, HANDLING_UPDATED or HELD; the markings are those in force there now."""

    redress_id: str
    originator: str
    target_message_id: str
    held_as: str
    result: str
    tlp: str = ""
    handling_codes: tuple[str, ...] = ()
    handling_conditions: str = ""
    hold_reference: str = ""


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
    redress: RedressOutcome | None = None


@dataclass(frozen=True, slots=True)
class Draft:
    """A message as a local user composed it, before this node completes, checks and signs it.

    `body` is the composed content in its wire form: only node/wire.py reads or changes it
    (a draft the node completes is a copy, and belongs to that send)."""

    body: object = field(repr=False)
    message_id: str  # chosen by the caller, or "" (the node gives it a UUIDv7)
    sender: str  # "" or this node's agency
    recipients: tuple[str, ...]
    type: str  # the type's name (REQUEST_INFO, ...), or its number if it has none
    purpose: str
    texts: tuple[tuple[str, str], ...]  # what people wrote, by field: (field, text)
    forward: bool  # carries another agency's envelope (`forwarded`, `transfer_authorisation`)
    control_target: str = ""  # the message a control message acts on (a grant: what it releases)


@dataclass(frozen=True, slots=True)
class Retention:
    """How long the sender lets a message be kept: days from receipt, or until a time (neither:
    stated without a limit)."""

    days: int | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ForwardTerms:
    """Stricter terms a user sets for a forward, as the wire numbers its enums (0 or empty:
    keep the held message's)."""

    onward_transfer: int = 0
    tlp: int = 0
    handling_codes: tuple[int, ...] = ()  # added to the held message's
    retention: Retention | None = None


@dataclass(frozen=True, slots=True)
class PublishedPolicy:
    """A node's policy document (JSON) as it publishes it over GetPolicy, signed under POLICY
    with the key of `certificate_pem`."""

    policy_json: bytes
    signature: bytes
    agency: str
    certificate_pem: str
