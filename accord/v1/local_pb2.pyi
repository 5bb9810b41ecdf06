import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from accord.v1 import message_pb2 as _message_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SendRequest(_message.Message):
    __slots__ = ("content",)
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    content: _message_pb2.MessageContent
    def __init__(self, content: _Optional[_Union[_message_pb2.MessageContent, _Mapping]] = ...) -> None: ...

class SendResponse(_message.Message):
    __slots__ = ("message_id", "recipients")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    recipients: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, message_id: _Optional[str] = ..., recipients: _Optional[_Iterable[str]] = ...) -> None: ...

class InboxRequest(_message.Message):
    __slots__ = ("limit", "before_message_id")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    limit: int
    before_message_id: str
    def __init__(self, limit: _Optional[int] = ..., before_message_id: _Optional[str] = ...) -> None: ...

class MessageSummary(_message.Message):
    __slots__ = ("message_id", "sender", "type", "purpose", "created_at", "received_at", "retain_until", "correlation_id", "tlp", "direction")
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
    def __init__(self, message_id: _Optional[str] = ..., sender: _Optional[str] = ..., type: _Optional[_Union[_message_pb2.MessageType, str]] = ..., purpose: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., retain_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., correlation_id: _Optional[str] = ..., tlp: _Optional[_Union[_message_pb2.Tlp, str]] = ..., direction: _Optional[str] = ...) -> None: ...

class InboxResponse(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[MessageSummary]
    def __init__(self, messages: _Optional[_Iterable[_Union[MessageSummary, _Mapping]]] = ...) -> None: ...

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
