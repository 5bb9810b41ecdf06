import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MessageType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_TYPE_UNSPECIFIED: _ClassVar[MessageType]
    MESSAGE_TYPE_REQUEST_INFO: _ClassVar[MessageType]
    MESSAGE_TYPE_REPLY: _ClassVar[MessageType]
    MESSAGE_TYPE_REFUSAL: _ClassVar[MessageType]
    MESSAGE_TYPE_CLARIFICATION: _ClassVar[MessageType]
    MESSAGE_TYPE_DELAY_NOTICE: _ClassVar[MessageType]
    MESSAGE_TYPE_SPONTANEOUS_PROVISION: _ClassVar[MessageType]
    MESSAGE_TYPE_HIT_NOTIFICATION: _ClassVar[MessageType]
    MESSAGE_TYPE_PRESERVATION_REQUEST: _ClassVar[MessageType]
    MESSAGE_TYPE_EMERGENCY_DISCLOSURE_REQUEST: _ClassVar[MessageType]
    MESSAGE_TYPE_HOT_PURSUIT_NOTICE: _ClassVar[MessageType]
    MESSAGE_TYPE_ALERT: _ClassVar[MessageType]
    MESSAGE_TYPE_INCIDENT_PUBLISH: _ClassVar[MessageType]
    MESSAGE_TYPE_INCIDENT_UPDATE: _ClassVar[MessageType]
    MESSAGE_TYPE_INCIDENT_RETRACT: _ClassVar[MessageType]
    MESSAGE_TYPE_HANDLING_UPDATE: _ClassVar[MessageType]
    MESSAGE_TYPE_ERASURE_REQUEST: _ClassVar[MessageType]
    MESSAGE_TYPE_RECTIFICATION: _ClassVar[MessageType]
    MESSAGE_TYPE_TRANSFER_AUTHORISATION_REQUEST: _ClassVar[MessageType]
    MESSAGE_TYPE_TRANSFER_AUTHORISATION_GRANT: _ClassVar[MessageType]
    MESSAGE_TYPE_REDRESS_REPORT: _ClassVar[MessageType]

class HandlingCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HANDLING_CODE_UNSPECIFIED: _ClassVar[HandlingCode]
    HANDLING_CODE_H0: _ClassVar[HandlingCode]
    HANDLING_CODE_H1: _ClassVar[HandlingCode]
    HANDLING_CODE_H2: _ClassVar[HandlingCode]
    HANDLING_CODE_H3: _ClassVar[HandlingCode]

class Tlp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TLP_UNSPECIFIED: _ClassVar[Tlp]
    TLP_CLEAR: _ClassVar[Tlp]
    TLP_GREEN: _ClassVar[Tlp]
    TLP_AMBER: _ClassVar[Tlp]
    TLP_AMBER_STRICT: _ClassVar[Tlp]
    TLP_RED: _ClassVar[Tlp]

class OnwardTransfer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ONWARD_TRANSFER_UNSPECIFIED: _ClassVar[OnwardTransfer]
    ONWARD_TRANSFER_FORBIDDEN: _ClassVar[OnwardTransfer]
    ONWARD_TRANSFER_WITH_ORIGINATOR_CONSENT: _ClassVar[OnwardTransfer]
    ONWARD_TRANSFER_ALLOWED: _ClassVar[OnwardTransfer]

class Urgency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    URGENCY_UNSPECIFIED: _ClassVar[Urgency]
    URGENCY_NORMAL: _ClassVar[Urgency]
    URGENCY_URGENT: _ClassVar[Urgency]

class SourceReliability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_RELIABILITY_UNSPECIFIED: _ClassVar[SourceReliability]
    SOURCE_RELIABILITY_A: _ClassVar[SourceReliability]
    SOURCE_RELIABILITY_B: _ClassVar[SourceReliability]
    SOURCE_RELIABILITY_C: _ClassVar[SourceReliability]
    SOURCE_RELIABILITY_X: _ClassVar[SourceReliability]

class InformationAccuracy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INFORMATION_ACCURACY_UNSPECIFIED: _ClassVar[InformationAccuracy]
    INFORMATION_ACCURACY_1: _ClassVar[InformationAccuracy]
    INFORMATION_ACCURACY_2: _ClassVar[InformationAccuracy]
    INFORMATION_ACCURACY_3: _ClassVar[InformationAccuracy]
    INFORMATION_ACCURACY_4: _ClassVar[InformationAccuracy]

class PersonRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PERSON_ROLE_UNSPECIFIED: _ClassVar[PersonRole]
    PERSON_ROLE_SUSPECT: _ClassVar[PersonRole]
    PERSON_ROLE_VICTIM: _ClassVar[PersonRole]
    PERSON_ROLE_WITNESS: _ClassVar[PersonRole]
    PERSON_ROLE_MISSING: _ClassVar[PersonRole]
    PERSON_ROLE_CONTACT: _ClassVar[PersonRole]
    PERSON_ROLE_OTHER: _ClassVar[PersonRole]

class ReceiptStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECEIPT_STATUS_UNSPECIFIED: _ClassVar[ReceiptStatus]
    RECEIPT_STATUS_ACCEPTED: _ClassVar[ReceiptStatus]
    RECEIPT_STATUS_REJECTED: _ClassVar[ReceiptStatus]
    RECEIPT_STATUS_DEFERRED: _ClassVar[ReceiptStatus]

class RedressResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REDRESS_RESULT_UNSPECIFIED: _ClassVar[RedressResult]
    REDRESS_RESULT_ERASED: _ClassVar[RedressResult]
    REDRESS_RESULT_RETRACTED: _ClassVar[RedressResult]
    REDRESS_RESULT_REPLACED: _ClassVar[RedressResult]
    REDRESS_RESULT_HANDLING_UPDATED: _ClassVar[RedressResult]
    REDRESS_RESULT_HELD: _ClassVar[RedressResult]
MESSAGE_TYPE_UNSPECIFIED: MessageType
MESSAGE_TYPE_REQUEST_INFO: MessageType
MESSAGE_TYPE_REPLY: MessageType
MESSAGE_TYPE_REFUSAL: MessageType
MESSAGE_TYPE_CLARIFICATION: MessageType
MESSAGE_TYPE_DELAY_NOTICE: MessageType
MESSAGE_TYPE_SPONTANEOUS_PROVISION: MessageType
MESSAGE_TYPE_HIT_NOTIFICATION: MessageType
MESSAGE_TYPE_PRESERVATION_REQUEST: MessageType
MESSAGE_TYPE_EMERGENCY_DISCLOSURE_REQUEST: MessageType
MESSAGE_TYPE_HOT_PURSUIT_NOTICE: MessageType
MESSAGE_TYPE_ALERT: MessageType
MESSAGE_TYPE_INCIDENT_PUBLISH: MessageType
MESSAGE_TYPE_INCIDENT_UPDATE: MessageType
MESSAGE_TYPE_INCIDENT_RETRACT: MessageType
MESSAGE_TYPE_HANDLING_UPDATE: MessageType
MESSAGE_TYPE_ERASURE_REQUEST: MessageType
MESSAGE_TYPE_RECTIFICATION: MessageType
MESSAGE_TYPE_TRANSFER_AUTHORISATION_REQUEST: MessageType
MESSAGE_TYPE_TRANSFER_AUTHORISATION_GRANT: MessageType
MESSAGE_TYPE_REDRESS_REPORT: MessageType
HANDLING_CODE_UNSPECIFIED: HandlingCode
HANDLING_CODE_H0: HandlingCode
HANDLING_CODE_H1: HandlingCode
HANDLING_CODE_H2: HandlingCode
HANDLING_CODE_H3: HandlingCode
TLP_UNSPECIFIED: Tlp
TLP_CLEAR: Tlp
TLP_GREEN: Tlp
TLP_AMBER: Tlp
TLP_AMBER_STRICT: Tlp
TLP_RED: Tlp
ONWARD_TRANSFER_UNSPECIFIED: OnwardTransfer
ONWARD_TRANSFER_FORBIDDEN: OnwardTransfer
ONWARD_TRANSFER_WITH_ORIGINATOR_CONSENT: OnwardTransfer
ONWARD_TRANSFER_ALLOWED: OnwardTransfer
URGENCY_UNSPECIFIED: Urgency
URGENCY_NORMAL: Urgency
URGENCY_URGENT: Urgency
SOURCE_RELIABILITY_UNSPECIFIED: SourceReliability
SOURCE_RELIABILITY_A: SourceReliability
SOURCE_RELIABILITY_B: SourceReliability
SOURCE_RELIABILITY_C: SourceReliability
SOURCE_RELIABILITY_X: SourceReliability
INFORMATION_ACCURACY_UNSPECIFIED: InformationAccuracy
INFORMATION_ACCURACY_1: InformationAccuracy
INFORMATION_ACCURACY_2: InformationAccuracy
INFORMATION_ACCURACY_3: InformationAccuracy
INFORMATION_ACCURACY_4: InformationAccuracy
PERSON_ROLE_UNSPECIFIED: PersonRole
PERSON_ROLE_SUSPECT: PersonRole
PERSON_ROLE_VICTIM: PersonRole
PERSON_ROLE_WITNESS: PersonRole
PERSON_ROLE_MISSING: PersonRole
PERSON_ROLE_CONTACT: PersonRole
PERSON_ROLE_OTHER: PersonRole
RECEIPT_STATUS_UNSPECIFIED: ReceiptStatus
RECEIPT_STATUS_ACCEPTED: ReceiptStatus
RECEIPT_STATUS_REJECTED: ReceiptStatus
RECEIPT_STATUS_DEFERRED: ReceiptStatus
REDRESS_RESULT_UNSPECIFIED: RedressResult
REDRESS_RESULT_ERASED: RedressResult
REDRESS_RESULT_RETRACTED: RedressResult
REDRESS_RESULT_REPLACED: RedressResult
REDRESS_RESULT_HANDLING_UPDATED: RedressResult
REDRESS_RESULT_HELD: RedressResult

class Evaluation(_message.Message):
    __slots__ = ("source", "information")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    INFORMATION_FIELD_NUMBER: _ClassVar[int]
    source: SourceReliability
    information: InformationAccuracy
    def __init__(self, source: _Optional[_Union[SourceReliability, str]] = ..., information: _Optional[_Union[InformationAccuracy, str]] = ...) -> None: ...

class Retention(_message.Message):
    __slots__ = ("days", "until")
    DAYS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    days: int
    until: _timestamp_pb2.Timestamp
    def __init__(self, days: _Optional[int] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OffenceCode(_message.Message):
    __slots__ = ("scheme", "code", "label")
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    scheme: str
    code: str
    label: str
    def __init__(self, scheme: _Optional[str] = ..., code: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class Location(_message.Message):
    __slots__ = ("country", "place", "has_coordinates", "latitude", "longitude")
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    PLACE_FIELD_NUMBER: _ClassVar[int]
    HAS_COORDINATES_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    country: str
    place: str
    has_coordinates: bool
    latitude: float
    longitude: float
    def __init__(self, country: _Optional[str] = ..., place: _Optional[str] = ..., has_coordinates: _Optional[bool] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ...) -> None: ...

class Person(_message.Message):
    __slots__ = ("role", "family_name", "given_names", "date_of_birth", "nationalities", "description")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    FAMILY_NAME_FIELD_NUMBER: _ClassVar[int]
    GIVEN_NAMES_FIELD_NUMBER: _ClassVar[int]
    DATE_OF_BIRTH_FIELD_NUMBER: _ClassVar[int]
    NATIONALITIES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    role: PersonRole
    family_name: str
    given_names: str
    date_of_birth: str
    nationalities: _containers.RepeatedScalarFieldContainer[str]
    description: str
    def __init__(self, role: _Optional[_Union[PersonRole, str]] = ..., family_name: _Optional[str] = ..., given_names: _Optional[str] = ..., date_of_birth: _Optional[str] = ..., nationalities: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ...) -> None: ...

class Organisation(_message.Message):
    __slots__ = ("name", "registration_number", "country")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    name: str
    registration_number: str
    country: str
    def __init__(self, name: _Optional[str] = ..., registration_number: _Optional[str] = ..., country: _Optional[str] = ...) -> None: ...

class Vehicle(_message.Message):
    __slots__ = ("registration", "registration_country", "vin", "make", "model", "colour")
    REGISTRATION_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_COUNTRY_FIELD_NUMBER: _ClassVar[int]
    VIN_FIELD_NUMBER: _ClassVar[int]
    MAKE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    COLOUR_FIELD_NUMBER: _ClassVar[int]
    registration: str
    registration_country: str
    vin: str
    make: str
    model: str
    colour: str
    def __init__(self, registration: _Optional[str] = ..., registration_country: _Optional[str] = ..., vin: _Optional[str] = ..., make: _Optional[str] = ..., model: _Optional[str] = ..., colour: _Optional[str] = ...) -> None: ...

class IdentityDocument(_message.Message):
    __slots__ = ("kind", "number", "issuing_country", "valid_until")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ISSUING_COUNTRY_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    kind: str
    number: str
    issuing_country: str
    valid_until: str
    def __init__(self, kind: _Optional[str] = ..., number: _Optional[str] = ..., issuing_country: _Optional[str] = ..., valid_until: _Optional[str] = ...) -> None: ...

class CommunicationIdentifier(_message.Message):
    __slots__ = ("kind", "value")
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    value: str
    def __init__(self, kind: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Property(_message.Message):
    __slots__ = ("kind", "description", "serial_number")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SERIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    kind: str
    description: str
    serial_number: str
    def __init__(self, kind: _Optional[str] = ..., description: _Optional[str] = ..., serial_number: _Optional[str] = ...) -> None: ...

class Entity(_message.Message):
    __slots__ = ("entity_id", "person", "organisation", "vehicle", "document", "communication", "property", "evaluation")
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    PERSON_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_FIELD_NUMBER: _ClassVar[int]
    VEHICLE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    COMMUNICATION_FIELD_NUMBER: _ClassVar[int]
    PROPERTY_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    entity_id: str
    person: Person
    organisation: Organisation
    vehicle: Vehicle
    document: IdentityDocument
    communication: CommunicationIdentifier
    property: Property
    evaluation: Evaluation
    def __init__(self, entity_id: _Optional[str] = ..., person: _Optional[_Union[Person, _Mapping]] = ..., organisation: _Optional[_Union[Organisation, _Mapping]] = ..., vehicle: _Optional[_Union[Vehicle, _Mapping]] = ..., document: _Optional[_Union[IdentityDocument, _Mapping]] = ..., communication: _Optional[_Union[CommunicationIdentifier, _Mapping]] = ..., property: _Optional[_Union[Property, _Mapping]] = ..., evaluation: _Optional[_Union[Evaluation, _Mapping]] = ...) -> None: ...

class EntityLink(_message.Message):
    __slots__ = ("from_entity", "to_entity", "relation", "evaluation")
    FROM_ENTITY_FIELD_NUMBER: _ClassVar[int]
    TO_ENTITY_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    from_entity: str
    to_entity: str
    relation: str
    evaluation: Evaluation
    def __init__(self, from_entity: _Optional[str] = ..., to_entity: _Optional[str] = ..., relation: _Optional[str] = ..., evaluation: _Optional[_Union[Evaluation, _Mapping]] = ...) -> None: ...

class AttachmentRef(_message.Message):
    __slots__ = ("sha256", "name", "media_type", "size")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    sha256: bytes
    name: str
    media_type: str
    size: int
    def __init__(self, sha256: _Optional[bytes] = ..., name: _Optional[str] = ..., media_type: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class IncidentBody(_message.Message):
    __slots__ = ("incident_id", "offence", "occurred_at", "reported_at", "location", "narrative", "narrative_evaluation", "entities", "links", "attachments")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFENCE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    REPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    NARRATIVE_FIELD_NUMBER: _ClassVar[int]
    NARRATIVE_EVALUATION_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    offence: OffenceCode
    occurred_at: _timestamp_pb2.Timestamp
    reported_at: _timestamp_pb2.Timestamp
    location: Location
    narrative: str
    narrative_evaluation: Evaluation
    entities: _containers.RepeatedCompositeFieldContainer[Entity]
    links: _containers.RepeatedCompositeFieldContainer[EntityLink]
    attachments: _containers.RepeatedCompositeFieldContainer[AttachmentRef]
    def __init__(self, incident_id: _Optional[str] = ..., offence: _Optional[_Union[OffenceCode, _Mapping]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reported_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., location: _Optional[_Union[Location, _Mapping]] = ..., narrative: _Optional[str] = ..., narrative_evaluation: _Optional[_Union[Evaluation, _Mapping]] = ..., entities: _Optional[_Iterable[_Union[Entity, _Mapping]]] = ..., links: _Optional[_Iterable[_Union[EntityLink, _Mapping]]] = ..., attachments: _Optional[_Iterable[_Union[AttachmentRef, _Mapping]]] = ...) -> None: ...

class PreservationDetails(_message.Message):
    __slots__ = ("requesting_authority", "facts", "data_sought", "relation_to_offence", "holder_or_location", "necessity", "mla_request_to_follow")
    REQUESTING_AUTHORITY_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    DATA_SOUGHT_FIELD_NUMBER: _ClassVar[int]
    RELATION_TO_OFFENCE_FIELD_NUMBER: _ClassVar[int]
    HOLDER_OR_LOCATION_FIELD_NUMBER: _ClassVar[int]
    NECESSITY_FIELD_NUMBER: _ClassVar[int]
    MLA_REQUEST_TO_FOLLOW_FIELD_NUMBER: _ClassVar[int]
    requesting_authority: str
    facts: str
    data_sought: str
    relation_to_offence: str
    holder_or_location: str
    necessity: str
    mla_request_to_follow: bool
    def __init__(self, requesting_authority: _Optional[str] = ..., facts: _Optional[str] = ..., data_sought: _Optional[str] = ..., relation_to_offence: _Optional[str] = ..., holder_or_location: _Optional[str] = ..., necessity: _Optional[str] = ..., mla_request_to_follow: _Optional[bool] = ...) -> None: ...

class EmergencyDetails(_message.Message):
    __slots__ = ("risk_to_life_or_safety", "data_sought")
    RISK_TO_LIFE_OR_SAFETY_FIELD_NUMBER: _ClassVar[int]
    DATA_SOUGHT_FIELD_NUMBER: _ClassVar[int]
    risk_to_life_or_safety: str
    data_sought: str
    def __init__(self, risk_to_life_or_safety: _Optional[str] = ..., data_sought: _Optional[str] = ...) -> None: ...

class HotPursuitDetails(_message.Message):
    __slots__ = ("crossing_point", "crossed_at", "officers", "pursued_vehicle", "grounds")
    CROSSING_POINT_FIELD_NUMBER: _ClassVar[int]
    CROSSED_AT_FIELD_NUMBER: _ClassVar[int]
    OFFICERS_FIELD_NUMBER: _ClassVar[int]
    PURSUED_VEHICLE_FIELD_NUMBER: _ClassVar[int]
    GROUNDS_FIELD_NUMBER: _ClassVar[int]
    crossing_point: str
    crossed_at: _timestamp_pb2.Timestamp
    officers: str
    pursued_vehicle: str
    grounds: str
    def __init__(self, crossing_point: _Optional[str] = ..., crossed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., officers: _Optional[str] = ..., pursued_vehicle: _Optional[str] = ..., grounds: _Optional[str] = ...) -> None: ...

class RefusalDetails(_message.Message):
    __slots__ = ("grounds",)
    GROUNDS_FIELD_NUMBER: _ClassVar[int]
    grounds: str
    def __init__(self, grounds: _Optional[str] = ...) -> None: ...

class DelayDetails(_message.Message):
    __slots__ = ("reason", "expected_by")
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_BY_FIELD_NUMBER: _ClassVar[int]
    reason: str
    expected_by: _timestamp_pb2.Timestamp
    def __init__(self, reason: _Optional[str] = ..., expected_by: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class HitDetails(_message.Message):
    __slots__ = ("reference", "hit")
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    HIT_FIELD_NUMBER: _ClassVar[int]
    reference: str
    hit: bool
    def __init__(self, reference: _Optional[str] = ..., hit: _Optional[bool] = ...) -> None: ...

class LiaisonBody(_message.Message):
    __slots__ = ("subject", "text", "offence", "grounds", "entities", "links", "attachments", "preservation", "emergency", "hot_pursuit", "refusal", "delay", "hit")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OFFENCE_FIELD_NUMBER: _ClassVar[int]
    GROUNDS_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    PRESERVATION_FIELD_NUMBER: _ClassVar[int]
    EMERGENCY_FIELD_NUMBER: _ClassVar[int]
    HOT_PURSUIT_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    HIT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    text: str
    offence: OffenceCode
    grounds: str
    entities: _containers.RepeatedCompositeFieldContainer[Entity]
    links: _containers.RepeatedCompositeFieldContainer[EntityLink]
    attachments: _containers.RepeatedCompositeFieldContainer[AttachmentRef]
    preservation: PreservationDetails
    emergency: EmergencyDetails
    hot_pursuit: HotPursuitDetails
    refusal: RefusalDetails
    delay: DelayDetails
    hit: HitDetails
    def __init__(self, subject: _Optional[str] = ..., text: _Optional[str] = ..., offence: _Optional[_Union[OffenceCode, _Mapping]] = ..., grounds: _Optional[str] = ..., entities: _Optional[_Iterable[_Union[Entity, _Mapping]]] = ..., links: _Optional[_Iterable[_Union[EntityLink, _Mapping]]] = ..., attachments: _Optional[_Iterable[_Union[AttachmentRef, _Mapping]]] = ..., preservation: _Optional[_Union[PreservationDetails, _Mapping]] = ..., emergency: _Optional[_Union[EmergencyDetails, _Mapping]] = ..., hot_pursuit: _Optional[_Union[HotPursuitDetails, _Mapping]] = ..., refusal: _Optional[_Union[RefusalDetails, _Mapping]] = ..., delay: _Optional[_Union[DelayDetails, _Mapping]] = ..., hit: _Optional[_Union[HitDetails, _Mapping]] = ...) -> None: ...

class ControlBody(_message.Message):
    __slots__ = ("target_message_id", "reason", "handling_codes", "handling_conditions", "tlp", "corrected_incident", "third_agency", "transfer_purpose", "granted", "conditions", "valid_until", "holder_receipts", "relayed_to")
    TARGET_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HANDLING_CODES_FIELD_NUMBER: _ClassVar[int]
    HANDLING_CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    TLP_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_INCIDENT_FIELD_NUMBER: _ClassVar[int]
    THIRD_AGENCY_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_PURPOSE_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    HOLDER_RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    RELAYED_TO_FIELD_NUMBER: _ClassVar[int]
    target_message_id: str
    reason: str
    handling_codes: _containers.RepeatedScalarFieldContainer[HandlingCode]
    handling_conditions: str
    tlp: Tlp
    corrected_incident: IncidentBody
    third_agency: str
    transfer_purpose: str
    granted: bool
    conditions: str
    valid_until: _timestamp_pb2.Timestamp
    holder_receipts: _containers.RepeatedCompositeFieldContainer[Receipt]
    relayed_to: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, target_message_id: _Optional[str] = ..., reason: _Optional[str] = ..., handling_codes: _Optional[_Iterable[_Union[HandlingCode, str]]] = ..., handling_conditions: _Optional[str] = ..., tlp: _Optional[_Union[Tlp, str]] = ..., corrected_incident: _Optional[_Union[IncidentBody, _Mapping]] = ..., third_agency: _Optional[str] = ..., transfer_purpose: _Optional[str] = ..., granted: _Optional[bool] = ..., conditions: _Optional[str] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., holder_receipts: _Optional[_Iterable[_Union[Receipt, _Mapping]]] = ..., relayed_to: _Optional[_Iterable[str]] = ...) -> None: ...

class MessageContent(_message.Message):
    __slots__ = ("message_id", "correlation_id", "in_reply_to", "sender", "recipients", "created_at", "type", "purpose", "legal_basis", "agreement_id", "handling_codes", "handling_conditions", "tlp", "retention", "onward_transfer", "urgency", "reply_deadline", "incident", "liaison", "control", "forwarded", "transfer_authorisation", "directly_accessible")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    IN_REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    HANDLING_CODES_FIELD_NUMBER: _ClassVar[int]
    HANDLING_CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    TLP_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    ONWARD_TRANSFER_FIELD_NUMBER: _ClassVar[int]
    URGENCY_FIELD_NUMBER: _ClassVar[int]
    REPLY_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_FIELD_NUMBER: _ClassVar[int]
    LIAISON_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    FORWARDED_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_AUTHORISATION_FIELD_NUMBER: _ClassVar[int]
    DIRECTLY_ACCESSIBLE_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    correlation_id: str
    in_reply_to: str
    sender: str
    recipients: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    type: MessageType
    purpose: str
    legal_basis: str
    agreement_id: str
    handling_codes: _containers.RepeatedScalarFieldContainer[HandlingCode]
    handling_conditions: str
    tlp: Tlp
    retention: Retention
    onward_transfer: OnwardTransfer
    urgency: Urgency
    reply_deadline: _timestamp_pb2.Timestamp
    incident: IncidentBody
    liaison: LiaisonBody
    control: ControlBody
    forwarded: Envelope
    transfer_authorisation: Envelope
    directly_accessible: bool
    def __init__(self, message_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., in_reply_to: _Optional[str] = ..., sender: _Optional[str] = ..., recipients: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[_Union[MessageType, str]] = ..., purpose: _Optional[str] = ..., legal_basis: _Optional[str] = ..., agreement_id: _Optional[str] = ..., handling_codes: _Optional[_Iterable[_Union[HandlingCode, str]]] = ..., handling_conditions: _Optional[str] = ..., tlp: _Optional[_Union[Tlp, str]] = ..., retention: _Optional[_Union[Retention, _Mapping]] = ..., onward_transfer: _Optional[_Union[OnwardTransfer, str]] = ..., urgency: _Optional[_Union[Urgency, str]] = ..., reply_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., incident: _Optional[_Union[IncidentBody, _Mapping]] = ..., liaison: _Optional[_Union[LiaisonBody, _Mapping]] = ..., control: _Optional[_Union[ControlBody, _Mapping]] = ..., forwarded: _Optional[_Union[Envelope, _Mapping]] = ..., transfer_authorisation: _Optional[_Union[Envelope, _Mapping]] = ..., directly_accessible: _Optional[bool] = ...) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("content", "signature", "proof")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    signature: bytes
    proof: bytes
    def __init__(self, content: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., proof: _Optional[bytes] = ...) -> None: ...

class ReceiptContent(_message.Message):
    __slots__ = ("message_id", "content_sha256", "sender", "receiver", "received_at", "status", "reason_code", "reason_detail", "retained_until", "redress")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_DETAIL_FIELD_NUMBER: _ClassVar[int]
    RETAINED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    REDRESS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    content_sha256: bytes
    sender: str
    receiver: str
    received_at: _timestamp_pb2.Timestamp
    status: ReceiptStatus
    reason_code: str
    reason_detail: str
    retained_until: _timestamp_pb2.Timestamp
    redress: RedressOutcome
    def __init__(self, message_id: _Optional[str] = ..., content_sha256: _Optional[bytes] = ..., sender: _Optional[str] = ..., receiver: _Optional[str] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[ReceiptStatus, str]] = ..., reason_code: _Optional[str] = ..., reason_detail: _Optional[str] = ..., retained_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., redress: _Optional[_Union[RedressOutcome, _Mapping]] = ...) -> None: ...

class RedressOutcome(_message.Message):
    __slots__ = ("redress_id", "originator", "target_message_id", "held_as", "result", "tlp", "handling_codes", "handling_conditions", "hold_reference")
    REDRESS_ID_FIELD_NUMBER: _ClassVar[int]
    ORIGINATOR_FIELD_NUMBER: _ClassVar[int]
    TARGET_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    HELD_AS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TLP_FIELD_NUMBER: _ClassVar[int]
    HANDLING_CODES_FIELD_NUMBER: _ClassVar[int]
    HANDLING_CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    HOLD_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    redress_id: str
    originator: str
    target_message_id: str
    held_as: str
    result: RedressResult
    tlp: Tlp
    handling_codes: _containers.RepeatedScalarFieldContainer[HandlingCode]
    handling_conditions: str
    hold_reference: str
    def __init__(self, redress_id: _Optional[str] = ..., originator: _Optional[str] = ..., target_message_id: _Optional[str] = ..., held_as: _Optional[str] = ..., result: _Optional[_Union[RedressResult, str]] = ..., tlp: _Optional[_Union[Tlp, str]] = ..., handling_codes: _Optional[_Iterable[_Union[HandlingCode, str]]] = ..., handling_conditions: _Optional[str] = ..., hold_reference: _Optional[str] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("content", "signature", "proof")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    signature: bytes
    proof: bytes
    def __init__(self, content: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., proof: _Optional[bytes] = ...) -> None: ...
