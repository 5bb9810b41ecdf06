"""What the HTTP/JSON API takes and gives (these classes make the OpenAPI document).

Enumerations use the names without their protobuf prefix (`INCIDENT_PUBLISH`, `H0`), as the CLI
does, and TLP levels in the TLP 2.0 spelling (`AMBER+STRICT`); times are RFC 3339 UTC; typed
message bodies use the protobuf JSON mapping (the same as `accord send --body`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from accord.v1 import message_pb2 as pb
from certs.directory import TLP_LABELS, tlp_name
from node.wire import MESSAGE_TYPES


def _names(enum: Any, prefix: str) -> tuple[str, ...]:
    return tuple(str(v.name).removeprefix(prefix) for v in enum.DESCRIPTOR.values if v.number)


HANDLING = _names(pb.HandlingCode, "HANDLING_CODE_")
ONWARD = _names(pb.OnwardTransfer, "ONWARD_TRANSFER_")


def _one_of(values: tuple[str, ...], what: str) -> Any:
    def check(value: str) -> str:
        if value not in values:
            raise ValueError(f"{what} must be one of {', '.join(values)}")
        return value

    return AfterValidator(check)


MessageType = Annotated[
    str, Field(json_schema_extra={"enum": list(MESSAGE_TYPES)}), _one_of(MESSAGE_TYPES, "type")
]


def _tlp(value: str) -> str:
    name = tlp_name(value)
    if name is None:
        raise ValueError(f"tlp must be one of {', '.join(TLP_LABELS)}")
    return name


# Taken in any spelling the CLI takes (AMBER+STRICT, TLP:AMBER+STRICT, amber_strict), shown in
# the TLP 2.0 one.
TlpLevel = Annotated[str, Field(json_schema_extra={"enum": list(TLP_LABELS)}), AfterValidator(_tlp)]
HandlingCode = Annotated[
    str, Field(json_schema_extra={"enum": list(HANDLING)}), _one_of(HANDLING, "handling code")
]
OnwardRule = Annotated[
    str, Field(json_schema_extra={"enum": list(ONWARD)}), _one_of(ONWARD, "onward_transfer")
]
Text = Annotated[str, Field(max_length=10_000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- requests ----------------------------------------------------------------------------------


class LoginIn(Strict):
    name: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class PasswordIn(Strict):
    old_password: str = Field(default="", max_length=1024)
    new_password: str = Field(max_length=1024)


class SendIn(Strict):
    """A message to send. The node fills in id, sender, creation time and agreement, checks it
    against the agreements (refusing with a reason code) and signs it."""

    recipients: list[str] = Field(min_length=1, max_length=64, examples=[["DE-BKA"]])
    type: MessageType = Field(examples=["INCIDENT_PUBLISH"])
    purpose: str = Field(max_length=100, examples=["serious-crime-investigation"])
    body: dict[str, Any] = Field(
        description="The typed body in the protobuf JSON mapping: an IncidentBody for "
        "INCIDENT_PUBLISH and INCIDENT_UPDATE, a ControlBody for the control types, a "
        "LiaisonBody otherwise (protos/accord/v1/message.proto)",
        examples=[{"subject": "Vehicle B-XY 1234", "text": "Please confirm the keeper."}],
    )
    tlp: TlpLevel | None = None
    handling_codes: list[HandlingCode] = Field(default_factory=list, max_length=4)
    handling_conditions: Text = ""
    onward_transfer: OnwardRule | None = None
    retention_days: int | None = Field(default=None, ge=1, le=100_000)
    retention_until: datetime | None = None
    urgent: bool = False
    reply_deadline: datetime | None = None
    legal_basis: Text = ""
    in_reply_to: str = Field(default="", max_length=64)
    correlation_id: str = Field(
        default="", max_length=64, description="thread; default: in_reply_to"
    )


class ReadIn(Strict):
    justification: Text = Field(
        description="why you read it (at least 10 characters); the node logs it"
    )
    sender: str = Field(default="", max_length=32, description="the sender, if ids could repeat")


class ForwardIn(Strict):
    to: str = Field(max_length=32)
    justification: Text
    purpose: str = Field(default="", max_length=100, description="default: the original's")
    sender: str = Field(default="", max_length=32)


class DecideIn(Strict):
    note: Text = Field(default="", description="why; required to reject")


REDRESS_TYPES = ("ERASURE_REQUEST", "RECTIFICATION", "INCIDENT_RETRACT", "HANDLING_UPDATE")


class HoldIn(Strict):
    message_id: str = Field(default="", max_length=64, description="one of message_id and")
    correlation_id: str = Field(default="", max_length=64, description="correlation_id (thread)")
    justification: Text = Field(description="why it must not be erased (logged)")


class ReleaseIn(Strict):
    message_id: str = Field(default="", max_length=64, description="one of message_id and")
    correlation_id: str = Field(default="", max_length=64, description="correlation_id")
    note: Text = Field(default="", description="why the hold ends (logged)")


class RedressIn(Strict):
    """Redress of a message this node sent, to every recipient and, through them, to those
    they forwarded it to (docs/redress.md)."""

    type: Annotated[
        str,
        Field(json_schema_extra={"enum": list(REDRESS_TYPES)}),
        _one_of(REDRESS_TYPES, "type"),
    ]
    reason: Text = Field(description="why (sent to the holders)")
    tlp: TlpLevel | None = Field(default=None, description="HANDLING_UPDATE: the new TLP")
    handling_codes: list[HandlingCode] = Field(
        default_factory=list, max_length=4, description="HANDLING_UPDATE: codes added"
    )
    handling_conditions: Text = Field(default="", description="HANDLING_UPDATE: added")
    corrected_incident: dict[str, Any] | None = Field(
        default=None, description="RECTIFICATION: the corrected IncidentBody (protobuf JSON)"
    )


class EvidenceIn(Strict):
    justification: Text = Field(description="why the evidence is exported (logged)")
    sender: str = Field(default="", max_length=32, description="the sender, if ids could repeat")


# ---- answers -----------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    status: int
    code: str = Field(description="the gRPC status name the node answered with")
    reason: str | None = Field(description="the refusal's reason code (accord-reason)")
    denied: str | None = Field(description="the missing condition of a denial (accord-denied)")
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


class UserOut(BaseModel):
    name: str
    role: str
    clearances: list[str]
    disabled: bool


class SessionOut(BaseModel):
    user: UserOut
    csrf_token: str = Field(description="send as X-CSRF-Token with every state-changing request")
    expires_at: datetime | None
    idle_seconds: int


class MeOut(BaseModel):
    user: UserOut
    csrf_token: str | None = Field(description="for session (cookie) callers")


class SummaryOut(BaseModel):
    message_id: str
    sender: str
    type: str
    purpose: str
    tlp: str
    direction: str
    correlation_id: str
    created_at: datetime | None
    received_at: datetime | None
    retain_until: datetime | None
    reply_deadline: datetime | None = Field(
        description="the sender's reply deadline, or a request's legal time limit"
    )
    expected_by: datetime | None = Field(
        description="a received request: when its answer is due (moved by a delay notice)"
    )
    status: str | None = Field(
        description="received: received, answered, refused, delayed or overdue"
    )


class MessagesOut(BaseModel):
    messages: list[SummaryOut]
    next_before: str | None = Field(description="pass as `before` for the next (older) page")


class SentOut(BaseModel):
    message_id: str
    recipients: list[str]
    pending_approval: bool = Field(description="held until a supervisor other than you approves")


class MarkingsOut(BaseModel):
    tlp: str
    handling_codes: list[str]
    handling_conditions: str
    onward_transfer: str
    retention_days: int | None
    retention_until: datetime | None
    urgency: str
    reply_deadline: datetime | None
    legal_basis: str
    agreement_id: str


class MessageOut(BaseModel):
    summary: SummaryOut
    recipients: list[str]
    in_reply_to: str
    markings: MarkingsOut
    content: dict[str, Any] | None = Field(description="the MessageContent; null once erased")
    content_sha256: str | None
    signature: str | None = Field(description="base64, ECDSA P-256/SHA-256 by the sender")
    signature_proof: str | None = Field(description="base64 audit path; empty: signed alone")


class DeliveryOut(BaseModel):
    recipient: str
    state: str = Field(description="QUEUED, ACCEPTED, REJECTED, or APPROVAL-PENDING/-REJECTED")
    reason_code: str | None
    reason_detail: str | None
    received_at: datetime | None
    retained_until: datetime | None
    content_sha256: str | None = Field(description="what the recipient's receipt names")
    receipt: str | None = Field(description="base64 ReceiptContent, signed by the recipient")
    receipt_signature: str | None
    receipt_proof: str | None
    attempts: int
    last_error: str


class ReceiptsOut(BaseModel):
    message_id: str
    deliveries: list[DeliveryOut]


class ApprovalOut(BaseModel):
    message_id: str
    author: str
    recipients: list[str]
    state: str
    type: str | None
    purpose: str | None
    requested_at: str
    decided_by: str | None
    decided_at: str | None
    note: str


class ApprovalsOut(BaseModel):
    approvals: list[ApprovalOut]


class PolicyOut(BaseModel):
    agency: str
    policy: dict[str, Any] = Field(description="the published policy document")
    policy_json: str = Field(description="its exact signed bytes, base64")
    signature: str = Field(description="base64, by the agency's node key")
    certificate_pem: str


class MemberOut(BaseModel):
    agency: str
    name: str


class MembersOut(BaseModel):
    members: list[MemberOut]
    directory_serial: int


class AccessEntryOut(BaseModel):
    at: str
    user: str
    action: str
    outcome: str
    message_id: str
    purpose: str
    justification: str
    recipient: str
    detail: str


class AccessLogOut(BaseModel):
    entries: list[AccessEntryOut]


class OptionOut(BaseModel):
    value: str
    offered: bool
    why: str = Field(description="why it is not offered, or a note (e.g. approval needed)")


class ComposeOptionsOut(BaseModel):
    recipients: list[OptionOut]
    recipient: str | None
    purposes: list[OptionOut]
    types: list[OptionOut]
    tlp: list[OptionOut]
    handling_codes: list[OptionOut]
    onward_transfer: list[OptionOut]
    max_retention_days: int | None
    agreements: list[str]


class HoldOut(BaseModel):
    id: int
    message_id: str | None
    correlation_id: str | None
    justification: str
    held_by: str
    held_at: datetime | None
    released_by: str | None
    released_at: datetime | None = Field(description="null while the hold is in force")
    release_note: str | None


class ReleasedOut(BaseModel):
    released: list[HoldOut]


class RetentionOut(BaseModel):
    last_sweep_at: datetime | None = Field(description="null before the first sweep since start")
    last_expired: int
    last_sunset: int
    last_keys_destroyed: int
    last_seconds: float
    live: int
    expired_waiting: int
    erased: int
    held: int
    holds: int
    keys: int
    sweep_seconds: float


class ReviewItemOut(BaseModel):
    summary: SummaryOut
    why: str
    held: bool
    keep_at_most: datetime | None


class ReviewOut(BaseModel):
    items: list[ReviewItemOut]


class OverdueItemOut(BaseModel):
    summary: SummaryOut
    peer: str = Field(description="who asked (owed_by_us) or who was asked")
    owed_by_us: bool
    deadline: datetime | None
    expected_by: datetime | None = Field(description="the deadline, moved by a delay notice")
    delayed: bool
    overdue_seconds: float


class OverdueOut(BaseModel):
    requests: list[OverdueItemOut]
    now: datetime | None = Field(description="the node's clock")


class RedressHolderOut(BaseModel):
    agency: str
    via: str | None = Field(description="the agency it holds the message from; null: direct")
    state: str = Field(description="pending, confirmed or refused")
    result: str | None
    detail: str
    answered_at: str | None


class RedressOut(BaseModel):
    redress_id: str
    type: str
    target_message_id: str
    created_at: str
    holders: list[RedressHolderOut]


class RedressStatusOut(BaseModel):
    redresses: list[RedressOut]


class AuditOut(BaseModel):
    origin: str = Field(description="the log's origin (checkpoint name)")
    verifier_key: str = Field(description="the node's note key, to check checkpoints")
    entries: list[dict[str, Any]] = Field(
        description="entries, newest first: seq, at, actor, action, message_id, peer, purpose, "
        "justification, outcome, detail (docs/audit.md)"
    )
    next_before: int | None = Field(description="pass as `before` for the next (older) page")
