from accord.v1 import message_pb2 as _message_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HelloRequest(_message.Message):
    __slots__ = ("nonce",)
    NONCE_FIELD_NUMBER: _ClassVar[int]
    nonce: bytes
    def __init__(self, nonce: _Optional[bytes] = ...) -> None: ...

class HelloResponse(_message.Message):
    __slots__ = ("agency", "signature", "features")
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    agency: str
    signature: bytes
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, agency: _Optional[str] = ..., signature: _Optional[bytes] = ..., features: _Optional[_Iterable[str]] = ...) -> None: ...

class EnvelopeBatch(_message.Message):
    __slots__ = ("envelopes",)
    ENVELOPES_FIELD_NUMBER: _ClassVar[int]
    envelopes: _containers.RepeatedCompositeFieldContainer[_message_pb2.Envelope]
    def __init__(self, envelopes: _Optional[_Iterable[_Union[_message_pb2.Envelope, _Mapping]]] = ...) -> None: ...

class ReceiptBatch(_message.Message):
    __slots__ = ("receipts",)
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[_message_pb2.Receipt]
    def __init__(self, receipts: _Optional[_Iterable[_Union[_message_pb2.Receipt, _Mapping]]] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SignedPolicy(_message.Message):
    __slots__ = ("policy_json", "signature", "agency", "certificate_pem")
    POLICY_JSON_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    policy_json: bytes
    signature: bytes
    agency: str
    certificate_pem: str
    def __init__(self, policy_json: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., agency: _Optional[str] = ..., certificate_pem: _Optional[str] = ...) -> None: ...
