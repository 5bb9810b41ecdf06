import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from accord.v1 import message_pb2 as _message_pb2
from accord.v1 import federation_pb2 as _federation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReportRequest(_message.Message):
    __slots__ = ("to",)
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    to: _timestamp_pb2.Timestamp
    def __init__(self, to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., **kwargs) -> None: ...

class ReportResponse(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class OverdueRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OverdueItem(_message.Message):
    __slots__ = ("summary", "peer", "owed_by_us", "deadline", "expected_by", "delayed", "overdue_seconds")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    OWED_BY_US_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_BY_FIELD_NUMBER: _ClassVar[int]
    DELAYED_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    summary: MessageSummary
    peer: str
    owed_by_us: bool
    deadline: _timestamp_pb2.Timestamp
    expected_by: _timestamp_pb2.Timestamp
    delayed: bool
    overdue_seconds: float
    def __init__(self, summary: _Optional[_Union[MessageSummary, _Mapping]] = ..., peer: _Optional[str] = ..., owed_by_us: _Optional[bool] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expected_by: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delayed: _Optional[bool] = ..., overdue_seconds: _Optional[float] = ...) -> None: ...

class OverdueResponse(_message.Message):
    __slots__ = ("requests", "now")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[OverdueItem]
    now: _timestamp_pb2.Timestamp
    def __init__(self, requests: _Optional[_Iterable[_Union[OverdueItem, _Mapping]]] = ..., now: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EvidenceRequest(_message.Message):
    __slots__ = ("message_id", "sender", "justification")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    sender: str
    justification: str
    def __init__(self, message_id: _Optional[str] = ..., sender: _Optional[str] = ..., justification: _Optional[str] = ...) -> None: ...

class EvidenceResponse(_message.Message):
    __slots__ = ("bundle",)
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    bundle: bytes
    def __init__(self, bundle: _Optional[bytes] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UserInfo(_message.Message):
    __slots__ = ("name", "role", "clearances", "disabled", "state", "requested_role", "requested_by", "requested_clearances", "has_requested_clearances", "requested_state")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CLEARANCES_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_ROLE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_CLEARANCES_FIELD_NUMBER: _ClassVar[int]
    HAS_REQUESTED_CLEARANCES_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_STATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    clearances: _containers.RepeatedScalarFieldContainer[str]
    disabled: bool
    state: str
    requested_role: str
    requested_by: str
    requested_clearances: _containers.RepeatedScalarFieldContainer[str]
    has_requested_clearances: bool
    requested_state: str
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., clearances: _Optional[_Iterable[str]] = ..., disabled: _Optional[bool] = ..., state: _Optional[str] = ..., requested_role: _Optional[str] = ..., requested_by: _Optional[str] = ..., requested_clearances: _Optional[_Iterable[str]] = ..., has_requested_clearances: _Optional[bool] = ..., requested_state: _Optional[str] = ...) -> None: ...

class AddUserRequest(_message.Message):
    __slots__ = ("name", "role", "clearances")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CLEARANCES_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    clearances: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., clearances: _Optional[_Iterable[str]] = ...) -> None: ...

class AddUserResponse(_message.Message):
    __slots__ = ("user", "enrolment_code", "code_expires_at", "pending_approval")
    USER_FIELD_NUMBER: _ClassVar[int]
    ENROLMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    CODE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    PENDING_APPROVAL_FIELD_NUMBER: _ClassVar[int]
    user: UserInfo
    enrolment_code: str
    code_expires_at: str
    pending_approval: bool
    def __init__(self, user: _Optional[_Union[UserInfo, _Mapping]] = ..., enrolment_code: _Optional[str] = ..., code_expires_at: _Optional[str] = ..., pending_approval: _Optional[bool] = ...) -> None: ...

class EnrolRequest(_message.Message):
    __slots__ = ("name", "code")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    code: str
    def __init__(self, name: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class EnrolResponse(_message.Message):
    __slots__ = ("user", "token")
    USER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    user: UserInfo
    token: str
    def __init__(self, user: _Optional[_Union[UserInfo, _Mapping]] = ..., token: _Optional[str] = ...) -> None: ...

class SetRoleRequest(_message.Message):
    __slots__ = ("name", "role")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class EnableUserRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DecideUserRequest(_message.Message):
    __slots__ = ("name", "approve")
    NAME_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    approve: bool
    def __init__(self, name: _Optional[str] = ..., approve: _Optional[bool] = ...) -> None: ...

class DecideUserResponse(_message.Message):
    __slots__ = ("user", "enrolment_code", "code_expires_at")
    USER_FIELD_NUMBER: _ClassVar[int]
    ENROLMENT_CODE_FIELD_NUMBER: _ClassVar[int]
    CODE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    user: UserInfo
    enrolment_code: str
    code_expires_at: str
    def __init__(self, user: _Optional[_Union[UserInfo, _Mapping]] = ..., enrolment_code: _Optional[str] = ..., code_expires_at: _Optional[str] = ...) -> None: ...

class ListUsersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListUsersResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[UserInfo]
    def __init__(self, users: _Optional[_Iterable[_Union[UserInfo, _Mapping]]] = ...) -> None: ...

class SetClearancesRequest(_message.Message):
    __slots__ = ("name", "clearances")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLEARANCES_FIELD_NUMBER: _ClassVar[int]
    name: str
    clearances: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., clearances: _Optional[_Iterable[str]] = ...) -> None: ...

class DisableUserRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListApprovalsRequest(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: str
    def __init__(self, state: _Optional[str] = ...) -> None: ...

class ApprovalInfo(_message.Message):
    __slots__ = ("message_id", "author", "recipients", "state", "requested_at", "decided_by", "decided_at", "note", "type", "purpose")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    author: str
    recipients: _containers.RepeatedScalarFieldContainer[str]
    state: str
    requested_at: str
    decided_by: str
    decided_at: str
    note: str
    type: _message_pb2.MessageType
    purpose: str
    def __init__(self, message_id: _Optional[str] = ..., author: _Optional[str] = ..., recipients: _Optional[_Iterable[str]] = ..., state: _Optional[str] = ..., requested_at: _Optional[str] = ..., decided_by: _Optional[str] = ..., decided_at: _Optional[str] = ..., note: _Optional[str] = ..., type: _Optional[_Union[_message_pb2.MessageType, str]] = ..., purpose: _Optional[str] = ...) -> None: ...

class ListApprovalsResponse(_message.Message):
    __slots__ = ("approvals",)
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    approvals: _containers.RepeatedCompositeFieldContainer[ApprovalInfo]
    def __init__(self, approvals: _Optional[_Iterable[_Union[ApprovalInfo, _Mapping]]] = ...) -> None: ...

class DecideRequest(_message.Message):
    __slots__ = ("message_id", "approve", "note")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    approve: bool
    note: str
    def __init__(self, message_id: _Optional[str] = ..., approve: _Optional[bool] = ..., note: _Optional[str] = ...) -> None: ...

class ForwardRequest(_message.Message):
    __slots__ = ("message_id", "sender", "to", "purpose", "justification", "onward_transfer", "tlp", "handling_codes", "retention")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    ONWARD_TRANSFER_FIELD_NUMBER: _ClassVar[int]
    TLP_FIELD_NUMBER: _ClassVar[int]
    HANDLING_CODES_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    sender: str
    to: str
    purpose: str
    justification: str
    onward_transfer: _message_pb2.OnwardTransfer
    tlp: _message_pb2.Tlp
    handling_codes: _containers.RepeatedScalarFieldContainer[_message_pb2.HandlingCode]
    retention: _message_pb2.Retention
    def __init__(self, message_id: _Optional[str] = ..., sender: _Optional[str] = ..., to: _Optional[str] = ..., purpose: _Optional[str] = ..., justification: _Optional[str] = ..., onward_transfer: _Optional[_Union[_message_pb2.OnwardTransfer, str]] = ..., tlp: _Optional[_Union[_message_pb2.Tlp, str]] = ..., handling_codes: _Optional[_Iterable[_Union[_message_pb2.HandlingCode, str]]] = ..., retention: _Optional[_Union[_message_pb2.Retention, _Mapping]] = ...) -> None: ...

class PolicyRequest(_message.Message):
    __slots__ = ("peer",)
    PEER_FIELD_NUMBER: _ClassVar[int]
    peer: str
    def __init__(self, peer: _Optional[str] = ...) -> None: ...

class AccessLogRequest(_message.Message):
    __slots__ = ("limit", "message_id")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    limit: int
    message_id: str
    def __init__(self, limit: _Optional[int] = ..., message_id: _Optional[str] = ...) -> None: ...

class AccessLogEntry(_message.Message):
    __slots__ = ("at", "user", "action", "message_id", "purpose", "justification", "recipient", "outcome", "detail")
    AT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    at: str
    user: str
    action: str
    message_id: str
    purpose: str
    justification: str
    recipient: str
    outcome: str
    detail: str
    def __init__(self, at: _Optional[str] = ..., user: _Optional[str] = ..., action: _Optional[str] = ..., message_id: _Optional[str] = ..., purpose: _Optional[str] = ..., justification: _Optional[str] = ..., recipient: _Optional[str] = ..., outcome: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class AccessLogResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AccessLogEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[AccessLogEntry, _Mapping]]] = ...) -> None: ...

class SendRequest(_message.Message):
    __slots__ = ("content",)
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    content: _message_pb2.MessageContent
    def __init__(self, content: _Optional[_Union[_message_pb2.MessageContent, _Mapping]] = ...) -> None: ...

class SendResponse(_message.Message):
    __slots__ = ("message_id", "recipients", "pending_approval")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    PENDING_APPROVAL_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    recipients: _containers.RepeatedScalarFieldContainer[str]
    pending_approval: bool
    def __init__(self, message_id: _Optional[str] = ..., recipients: _Optional[_Iterable[str]] = ..., pending_approval: _Optional[bool] = ...) -> None: ...

class InboxRequest(_message.Message):
    __slots__ = ("limit", "before_message_id", "type", "purpose", "peer", "correlation_id", "direction", "message_id")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    limit: int
    before_message_id: str
    type: _message_pb2.MessageType
    purpose: str
    peer: str
    correlation_id: str
    direction: str
    message_id: str
    def __init__(self, limit: _Optional[int] = ..., before_message_id: _Optional[str] = ..., type: _Optional[_Union[_message_pb2.MessageType, str]] = ..., purpose: _Optional[str] = ..., peer: _Optional[str] = ..., correlation_id: _Optional[str] = ..., direction: _Optional[str] = ..., message_id: _Optional[str] = ...) -> None: ...

class MessageSummary(_message.Message):
    __slots__ = ("message_id", "sender", "type", "purpose", "created_at", "received_at", "retain_until", "correlation_id", "tlp", "direction", "urgency", "reply_deadline", "status", "expected_by", "answered_at", "seconds_left", "erased_at", "erase_reason")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    RETAIN_UNTIL_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    TLP_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    URGENCY_FIELD_NUMBER: _ClassVar[int]
    REPLY_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_BY_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_AT_FIELD_NUMBER: _ClassVar[int]
    SECONDS_LEFT_FIELD_NUMBER: _ClassVar[int]
    ERASED_AT_FIELD_NUMBER: _ClassVar[int]
    ERASE_REASON_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    sender: str
    type: _message_pb2.MessageType
    purpose: str
    created_at: _timestamp_pb2.Timestamp
    received_at: _timestamp_pb2.Timestamp
    retain_until: _timestamp_pb2.Timestamp
    correlation_id: str
    tlp: _message_pb2.Tlp
    direction: str
    urgency: _message_pb2.Urgency
    reply_deadline: _timestamp_pb2.Timestamp
    status: str
    expected_by: _timestamp_pb2.Timestamp
    answered_at: _timestamp_pb2.Timestamp
    seconds_left: float
    erased_at: _timestamp_pb2.Timestamp
    erase_reason: str
    def __init__(self, message_id: _Optional[str] = ..., sender: _Optional[str] = ..., type: _Optional[_Union[_message_pb2.MessageType, str]] = ..., purpose: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., retain_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., correlation_id: _Optional[str] = ..., tlp: _Optional[_Union[_message_pb2.Tlp, str]] = ..., direction: _Optional[str] = ..., urgency: _Optional[_Union[_message_pb2.Urgency, str]] = ..., reply_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[str] = ..., expected_by: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., answered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., seconds_left: _Optional[float] = ..., erased_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., erase_reason: _Optional[str] = ...) -> None: ...

class InboxResponse(_message.Message):
    __slots__ = ("messages", "now")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[MessageSummary]
    now: _timestamp_pb2.Timestamp
    def __init__(self, messages: _Optional[_Iterable[_Union[MessageSummary, _Mapping]]] = ..., now: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("message_id", "sender", "justification")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    sender: str
    justification: str
    def __init__(self, message_id: _Optional[str] = ..., sender: _Optional[str] = ..., justification: _Optional[str] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("summary", "envelope", "content")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    summary: MessageSummary
    envelope: _message_pb2.Envelope
    content: _message_pb2.MessageContent
    def __init__(self, summary: _Optional[_Union[MessageSummary, _Mapping]] = ..., envelope: _Optional[_Union[_message_pb2.Envelope, _Mapping]] = ..., content: _Optional[_Union[_message_pb2.MessageContent, _Mapping]] = ...) -> None: ...

class ReceiptsRequest(_message.Message):
    __slots__ = ("message_id",)
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    def __init__(self, message_id: _Optional[str] = ...) -> None: ...

class DeliveryStatus(_message.Message):
    __slots__ = ("recipient", "state", "receipt", "receipt_content", "attempts", "last_error")
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_CONTENT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    recipient: str
    state: str
    receipt: _message_pb2.Receipt
    receipt_content: _message_pb2.ReceiptContent
    attempts: int
    last_error: str
    def __init__(self, recipient: _Optional[str] = ..., state: _Optional[str] = ..., receipt: _Optional[_Union[_message_pb2.Receipt, _Mapping]] = ..., receipt_content: _Optional[_Union[_message_pb2.ReceiptContent, _Mapping]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class ReceiptsResponse(_message.Message):
    __slots__ = ("message_id", "deliveries")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    deliveries: _containers.RepeatedCompositeFieldContainer[DeliveryStatus]
    def __init__(self, message_id: _Optional[str] = ..., deliveries: _Optional[_Iterable[_Union[DeliveryStatus, _Mapping]]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OutboxRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PeerOutbox(_message.Message):
    __slots__ = ("peer", "queued", "oldest_queued_at", "last_receipt_at", "connected", "last_error")
    PEER_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    OLDEST_QUEUED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_RECEIPT_AT_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    peer: str
    queued: int
    oldest_queued_at: _timestamp_pb2.Timestamp
    last_receipt_at: _timestamp_pb2.Timestamp
    connected: bool
    last_error: str
    def __init__(self, peer: _Optional[str] = ..., queued: _Optional[int] = ..., oldest_queued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_receipt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., connected: _Optional[bool] = ..., last_error: _Optional[str] = ...) -> None: ...

class OutboxResponse(_message.Message):
    __slots__ = ("peers",)
    PEERS_FIELD_NUMBER: _ClassVar[int]
    peers: _containers.RepeatedCompositeFieldContainer[PeerOutbox]
    def __init__(self, peers: _Optional[_Iterable[_Union[PeerOutbox, _Mapping]]] = ...) -> None: ...

class AdvanceClockRequest(_message.Message):
    __slots__ = ("seconds",)
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    seconds: float
    def __init__(self, seconds: _Optional[float] = ...) -> None: ...

class ClockInfo(_message.Message):
    __slots__ = ("now", "offset_seconds")
    NOW_FIELD_NUMBER: _ClassVar[int]
    OFFSET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    now: _timestamp_pb2.Timestamp
    offset_seconds: float
    def __init__(self, now: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., offset_seconds: _Optional[float] = ...) -> None: ...

class LoginRequest(_message.Message):
    __slots__ = ("name", "password")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    name: str
    password: str
    def __init__(self, name: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ("session_token", "user", "expires_at", "idle_seconds")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    IDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    user: UserInfo
    expires_at: _timestamp_pb2.Timestamp
    idle_seconds: int
    def __init__(self, session_token: _Optional[str] = ..., user: _Optional[_Union[UserInfo, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idle_seconds: _Optional[int] = ...) -> None: ...

class LogoutRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogoutResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetPasswordRequest(_message.Message):
    __slots__ = ("old_password", "new_password")
    OLD_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    old_password: str
    new_password: str
    def __init__(self, old_password: _Optional[str] = ..., new_password: _Optional[str] = ...) -> None: ...

class SetPasswordResponse(_message.Message):
    __slots__ = ("sessions_revoked",)
    SESSIONS_REVOKED_FIELD_NUMBER: _ClassVar[int]
    sessions_revoked: int
    def __init__(self, sessions_revoked: _Optional[int] = ...) -> None: ...

class MembersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Member(_message.Message):
    __slots__ = ("agency", "name")
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    agency: str
    name: str
    def __init__(self, agency: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class MembersResponse(_message.Message):
    __slots__ = ("members", "directory_serial")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_SERIAL_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[Member]
    directory_serial: int
    def __init__(self, members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., directory_serial: _Optional[int] = ...) -> None: ...

class ListSentRequest(_message.Message):
    __slots__ = ("limit", "before_message_id")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    limit: int
    before_message_id: str
    def __init__(self, limit: _Optional[int] = ..., before_message_id: _Optional[str] = ...) -> None: ...

class SentMessage(_message.Message):
    __slots__ = ("summary", "deliveries")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    summary: MessageSummary
    deliveries: _containers.RepeatedCompositeFieldContainer[DeliveryStatus]
    def __init__(self, summary: _Optional[_Union[MessageSummary, _Mapping]] = ..., deliveries: _Optional[_Iterable[_Union[DeliveryStatus, _Mapping]]] = ...) -> None: ...

class ListSentResponse(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[SentMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[SentMessage, _Mapping]]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PeerStatus(_message.Message):
    __slots__ = ("agency", "link", "last_error", "queued", "oldest_queued_at", "sent", "receipted")
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    OLDEST_QUEUED_AT_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    RECEIPTED_FIELD_NUMBER: _ClassVar[int]
    agency: str
    link: str
    last_error: str
    queued: int
    oldest_queued_at: _timestamp_pb2.Timestamp
    sent: int
    receipted: int
    def __init__(self, agency: _Optional[str] = ..., link: _Optional[str] = ..., last_error: _Optional[str] = ..., queued: _Optional[int] = ..., oldest_queued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sent: _Optional[int] = ..., receipted: _Optional[int] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("agency", "health", "crl_state", "crl_next_update", "directory_serial", "directory_issued_at", "peers", "now")
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    CRL_STATE_FIELD_NUMBER: _ClassVar[int]
    CRL_NEXT_UPDATE_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_SERIAL_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    agency: str
    health: str
    crl_state: str
    crl_next_update: _timestamp_pb2.Timestamp
    directory_serial: int
    directory_issued_at: _timestamp_pb2.Timestamp
    peers: _containers.RepeatedCompositeFieldContainer[PeerStatus]
    now: _timestamp_pb2.Timestamp
    def __init__(self, agency: _Optional[str] = ..., health: _Optional[str] = ..., crl_state: _Optional[str] = ..., crl_next_update: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., directory_serial: _Optional[int] = ..., directory_issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., peers: _Optional[_Iterable[_Union[PeerStatus, _Mapping]]] = ..., now: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RedressRequest(_message.Message):
    __slots__ = ("message_id", "type", "reason", "tlp", "handling_codes", "handling_conditions", "corrected_incident")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TLP_FIELD_NUMBER: _ClassVar[int]
    HANDLING_CODES_FIELD_NUMBER: _ClassVar[int]
    HANDLING_CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_INCIDENT_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    type: _message_pb2.MessageType
    reason: str
    tlp: _message_pb2.Tlp
    handling_codes: _containers.RepeatedScalarFieldContainer[_message_pb2.HandlingCode]
    handling_conditions: str
    corrected_incident: _message_pb2.IncidentBody
    def __init__(self, message_id: _Optional[str] = ..., type: _Optional[_Union[_message_pb2.MessageType, str]] = ..., reason: _Optional[str] = ..., tlp: _Optional[_Union[_message_pb2.Tlp, str]] = ..., handling_codes: _Optional[_Iterable[_Union[_message_pb2.HandlingCode, str]]] = ..., handling_conditions: _Optional[str] = ..., corrected_incident: _Optional[_Union[_message_pb2.IncidentBody, _Mapping]] = ...) -> None: ...

class RedressStatusRequest(_message.Message):
    __slots__ = ("message_id",)
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    def __init__(self, message_id: _Optional[str] = ...) -> None: ...

class RedressHolder(_message.Message):
    __slots__ = ("agency", "via", "state", "result", "detail", "answered_at")
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    VIA_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_AT_FIELD_NUMBER: _ClassVar[int]
    agency: str
    via: str
    state: str
    result: str
    detail: str
    answered_at: str
    def __init__(self, agency: _Optional[str] = ..., via: _Optional[str] = ..., state: _Optional[str] = ..., result: _Optional[str] = ..., detail: _Optional[str] = ..., answered_at: _Optional[str] = ...) -> None: ...

class RedressInfo(_message.Message):
    __slots__ = ("redress_id", "type", "target_message_id", "created_at", "holders")
    REDRESS_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    redress_id: str
    type: str
    target_message_id: str
    created_at: str
    holders: _containers.RepeatedCompositeFieldContainer[RedressHolder]
    def __init__(self, redress_id: _Optional[str] = ..., type: _Optional[str] = ..., target_message_id: _Optional[str] = ..., created_at: _Optional[str] = ..., holders: _Optional[_Iterable[_Union[RedressHolder, _Mapping]]] = ...) -> None: ...

class RedressStatusResponse(_message.Message):
    __slots__ = ("redresses",)
    REDRESSES_FIELD_NUMBER: _ClassVar[int]
    redresses: _containers.RepeatedCompositeFieldContainer[RedressInfo]
    def __init__(self, redresses: _Optional[_Iterable[_Union[RedressInfo, _Mapping]]] = ...) -> None: ...

class RetentionSweepRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RetentionStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RetentionStatus(_message.Message):
    __slots__ = ("last_sweep_at", "last_expired", "last_sunset", "last_keys_destroyed", "last_seconds", "live", "expired_waiting", "erased", "held", "holds", "keys", "sweep_seconds")
    LAST_SWEEP_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_EXPIRED_FIELD_NUMBER: _ClassVar[int]
    LAST_SUNSET_FIELD_NUMBER: _ClassVar[int]
    LAST_KEYS_DESTROYED_FIELD_NUMBER: _ClassVar[int]
    LAST_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_WAITING_FIELD_NUMBER: _ClassVar[int]
    ERASED_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    HOLDS_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    SWEEP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    last_sweep_at: _timestamp_pb2.Timestamp
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
    def __init__(self, last_sweep_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_expired: _Optional[int] = ..., last_sunset: _Optional[int] = ..., last_keys_destroyed: _Optional[int] = ..., last_seconds: _Optional[float] = ..., live: _Optional[int] = ..., expired_waiting: _Optional[int] = ..., erased: _Optional[int] = ..., held: _Optional[int] = ..., holds: _Optional[int] = ..., keys: _Optional[int] = ..., sweep_seconds: _Optional[float] = ...) -> None: ...

class HoldRequest(_message.Message):
    __slots__ = ("message_id", "correlation_id", "justification")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    correlation_id: str
    justification: str
    def __init__(self, message_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., justification: _Optional[str] = ...) -> None: ...

class HoldInfo(_message.Message):
    __slots__ = ("id", "message_id", "correlation_id", "justification", "held_by", "held_at", "released_by", "released_at", "release_note")
    ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    HELD_BY_FIELD_NUMBER: _ClassVar[int]
    HELD_AT_FIELD_NUMBER: _ClassVar[int]
    RELEASED_BY_FIELD_NUMBER: _ClassVar[int]
    RELEASED_AT_FIELD_NUMBER: _ClassVar[int]
    RELEASE_NOTE_FIELD_NUMBER: _ClassVar[int]
    id: int
    message_id: str
    correlation_id: str
    justification: str
    held_by: str
    held_at: _timestamp_pb2.Timestamp
    released_by: str
    released_at: _timestamp_pb2.Timestamp
    release_note: str
    def __init__(self, id: _Optional[int] = ..., message_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., justification: _Optional[str] = ..., held_by: _Optional[str] = ..., held_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., released_by: _Optional[str] = ..., released_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., release_note: _Optional[str] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("message_id", "correlation_id", "note")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    correlation_id: str
    note: str
    def __init__(self, message_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: _containers.RepeatedCompositeFieldContainer[HoldInfo]
    def __init__(self, released: _Optional[_Iterable[_Union[HoldInfo, _Mapping]]] = ...) -> None: ...

class ReviewRequest(_message.Message):
    __slots__ = ("within_days", "limit")
    WITHIN_DAYS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    within_days: int
    limit: int
    def __init__(self, within_days: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ReviewItem(_message.Message):
    __slots__ = ("summary", "why", "held", "keep_at_most")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    WHY_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    KEEP_AT_MOST_FIELD_NUMBER: _ClassVar[int]
    summary: MessageSummary
    why: str
    held: bool
    keep_at_most: _timestamp_pb2.Timestamp
    def __init__(self, summary: _Optional[_Union[MessageSummary, _Mapping]] = ..., why: _Optional[str] = ..., held: _Optional[bool] = ..., keep_at_most: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReviewResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ReviewItem]
    def __init__(self, items: _Optional[_Iterable[_Union[ReviewItem, _Mapping]]] = ...) -> None: ...

class KeepRequest(_message.Message):
    __slots__ = ("message_id", "sender", "until", "justification")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    sender: str
    until: _timestamp_pb2.Timestamp
    justification: str
    def __init__(self, message_id: _Optional[str] = ..., sender: _Optional[str] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., justification: _Optional[str] = ...) -> None: ...

class AuditLogRequest(_message.Message):
    __slots__ = ("first", "last", "message_id", "actor", "peer", "action", "since", "until", "limit", "checkpoints")
    FIRST_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    first: int
    last: int
    message_id: str
    actor: str
    peer: str
    action: str
    since: str
    until: str
    limit: int
    checkpoints: bool
    def __init__(self, first: _Optional[int] = ..., last: _Optional[int] = ..., message_id: _Optional[str] = ..., actor: _Optional[str] = ..., peer: _Optional[str] = ..., action: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ..., limit: _Optional[int] = ..., checkpoints: _Optional[bool] = ...) -> None: ...

class AuditRecord(_message.Message):
    __slots__ = ("seq", "data", "leaf_hash")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LEAF_HASH_FIELD_NUMBER: _ClassVar[int]
    seq: int
    data: bytes
    leaf_hash: bytes
    def __init__(self, seq: _Optional[int] = ..., data: _Optional[bytes] = ..., leaf_hash: _Optional[bytes] = ...) -> None: ...

class AuditLogChunk(_message.Message):
    __slots__ = ("entries", "checkpoints", "origin", "verifier_key")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_KEY_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditRecord]
    checkpoints: _containers.RepeatedScalarFieldContainer[bytes]
    origin: str
    verifier_key: str
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditRecord, _Mapping]]] = ..., checkpoints: _Optional[_Iterable[bytes]] = ..., origin: _Optional[str] = ..., verifier_key: _Optional[str] = ...) -> None: ...

class AuditProveRequest(_message.Message):
    __slots__ = ("seq", "size")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    size: int
    def __init__(self, seq: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class AuditConsistencyRequest(_message.Message):
    __slots__ = ("old_size", "new_size")
    OLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEW_SIZE_FIELD_NUMBER: _ClassVar[int]
    old_size: int
    new_size: int
    def __init__(self, old_size: _Optional[int] = ..., new_size: _Optional[int] = ...) -> None: ...

class AuditProof(_message.Message):
    __slots__ = ("seq", "entry", "hashes", "checkpoint", "old_checkpoint")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    OLD_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    entry: bytes
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    checkpoint: bytes
    old_checkpoint: bytes
    def __init__(self, seq: _Optional[int] = ..., entry: _Optional[bytes] = ..., hashes: _Optional[_Iterable[bytes]] = ..., checkpoint: _Optional[bytes] = ..., old_checkpoint: _Optional[bytes] = ...) -> None: ...
