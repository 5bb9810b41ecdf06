from accord.v1 import message_pb2 as _message_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class HelloRequest(_message.Message):
    __slots__ = ("nonce",)
    NONCE_FIELD_NUMBER: _ClassVar[int]
    nonce: bytes
    def __init__(self, nonce: _Optional[bytes] = ...) -> None: ...

class HelloResponse(_message.Message):
    __slots__ = ("agency", "signature")
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    agency: str
    signature: bytes
    def __init__(self, agency: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

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
