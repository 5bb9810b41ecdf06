"""Error base, reason codes and the one mapping from domain errors to gRPC status."""

from __future__ import annotations

import enum
import sqlite3

import grpc


class Reason(enum.StrEnum):
    """Why a message was refused. Carried in REJECTED receipts and in local refusals."""

    # Envelope and transport.
    BAD_SIGNATURE = "BAD_SIGNATURE"
    SENDER_MISMATCH = "SENDER_MISMATCH"
    WRONG_RECIPIENT = "WRONG_RECIPIENT"
    MALFORMED = "MALFORMED"
    OVERSIZE = "OVERSIZE"
    UNKNOWN_MESSAGE_TYPE = "UNKNOWN_MESSAGE_TYPE"
    ID_CONFLICT = "ID_CONFLICT"
    UNKNOWN_SENDER = "UNKNOWN_SENDER"
    CREATED_AT_IN_FUTURE = "CREATED_AT_IN_FUTURE"
    # The receiver could not store the envelope (e.g. a full disk): not final.
    STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"
    # The sender is past the volume this node accepts from one peer (limits.peer_bytes_*):
    # not final, it is taken again once the peer's volume budget has refilled.
    VOLUME_EXCEEDED = "VOLUME_EXCEEDED"
    # This node's own trust (local refusals only).
    FEDERATION_STALE = "FEDERATION_STALE"
    OWN_CERTIFICATE_INVALID = "OWN_CERTIFICATE_INVALID"
    # Agreements and policy.
    NO_AGREEMENT = "NO_AGREEMENT"
    AGREEMENT_NOT_YET_VALID = "AGREEMENT_NOT_YET_VALID"
    AGREEMENT_EXPIRED = "AGREEMENT_EXPIRED"
    PURPOSE_NOT_PERMITTED = "PURPOSE_NOT_PERMITTED"
    UNKNOWN_PURPOSE = "UNKNOWN_PURPOSE"
    TYPE_NOT_PERMITTED = "TYPE_NOT_PERMITTED"
    RETENTION_EXCEEDS_AGREEMENT = "RETENTION_EXCEEDS_AGREEMENT"
    HANDLING_EXCEEDS_AGREEMENT = "HANDLING_EXCEEDS_AGREEMENT"
    TLP_EXCEEDS_AGREEMENT = "TLP_EXCEEDS_AGREEMENT"
    ONWARD_TRANSFER_EXCEEDS_AGREEMENT = "ONWARD_TRANSFER_EXCEEDS_AGREEMENT"
    FIELDS_NOT_PERMITTED = "FIELDS_NOT_PERMITTED"
    ONWARD_TRANSFER_FORBIDDEN = "ONWARD_TRANSFER_FORBIDDEN"
    ONWARD_TRANSFER_NOT_AUTHORISED = "ONWARD_TRANSFER_NOT_AUTHORISED"
    MARKINGS_LOOSENED = "MARKINGS_LOOSENED"
    MARKINGS_MISSING = "MARKINGS_MISSING"
    # Redress (docs/redress.md).
    UNKNOWN_TARGET = "UNKNOWN_TARGET"  # the receiver holds no such message from the sender
    NOT_ORIGINATOR = "NOT_ORIGINATOR"  # only the message's originator may redress it
    REDRESS_NOT_APPLICABLE = "REDRESS_NOT_APPLICABLE"  # wrong target type or body for it
    # A message its originator had erased or retracted (local refusals only).
    REDRESSED = "REDRESSED"
    # Retention (local refusals only): the message is past its retain_until, or erased.
    EXPIRED = "EXPIRED"
    ERASED = "ERASED"


# Refusals that are not decisions about verified content: the receipt says DEFERRED, nothing is
# stored, and the sender tries again later (the receiver's directory may not know a new key
# yet; its disk may have room again; the sender's volume budget refills).
TRANSIENT = frozenset(
    {
        Reason.BAD_SIGNATURE,
        Reason.UNKNOWN_SENDER,
        Reason.STORAGE_UNAVAILABLE,
        Reason.VOLUME_EXCEEDED,
    }
)


class AccordError(Exception):
    """Base of every error a user of the node can see."""

    status = grpc.StatusCode.INTERNAL


class ConfigError(AccordError):
    status = grpc.StatusCode.FAILED_PRECONDITION


class InvalidRequest(AccordError):
    status = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(AccordError):
    """The node is not in a state (or mode) where this can be done."""

    status = grpc.StatusCode.FAILED_PRECONDITION


class NotFound(AccordError):
    status = grpc.StatusCode.NOT_FOUND


class PermissionDenied(AccordError):
    """A local user may not do this; `code` names the missing condition for the access log."""

    status = grpc.StatusCode.PERMISSION_DENIED

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Unauthenticated(AccordError):
    status = grpc.StatusCode.UNAUTHENTICATED


class Gone(AccordError):
    """A stored message that may no longer be read, forwarded or replied to: past its
    retain_until (EXPIRED, even before the sweeper erases it) or erased (ERASED). Only its
    tombstone remains."""

    status = grpc.StatusCode.NOT_FOUND

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Unreadable(AccordError):
    """A stored message whose row does not open with what the row says (altered markings, or
    another master key): never shown."""

    status = grpc.StatusCode.DATA_LOSS


class StorageFull(AccordError, sqlite3.OperationalError):
    """The disk under HOME is full: the unit of work was not committed, nothing of it stored.

    Also an sqlite3.OperationalError, which it replaces where the writer reports a commit."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class AuditLogDamaged(AccordError, sqlite3.OperationalError):
    """The audit log in the database file was cut or renumbered outside the node: nothing that
    must be audited is done (its unit is not committed) until the file is restored.

    Also an sqlite3.OperationalError, as the writer's other failures of a commit are."""

    status = grpc.StatusCode.DATA_LOSS


class Refused(AccordError):
    """A message refused by policy or by envelope checks, with its reason code."""

    status = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
