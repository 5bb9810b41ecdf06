"""What an evidence bundle needs from the audit log about one message, as an interface: the
log (node/audit/ and the store) provides it, the bundle writer (evidence) consumes it, and
neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ProvenEntry:
    """One audit entry with its RFC 6962 inclusion proof in the tree a checkpoint signs."""

    seq: int  # the entry's position, from 1: leaf seq - 1
    data: bytes  # the entry's canonical bytes (node.audit.verify.canonical)
    proof: tuple[bytes, ...]  # the inclusion proof of leaf seq - 1 in the checkpoint's tree


@dataclass(frozen=True, slots=True)
class MessageEvidence:
    """The audit entries about one message, each proven against `checkpoint`: a signed note
    (C2SP tlog-checkpoint) whose tree covers every one of them."""

    entries: tuple[ProvenEntry, ...]
    checkpoint: bytes  # the signed note's bytes, as `node.audit.checkpoint.sign` writes them


class AuditSource(Protocol):
    async def evidence_for(self, message_id: str) -> MessageEvidence:
        """The entries about `message_id` and a signed checkpoint covering them all (signing a
        new one first when the latest does not cover the newest entry)."""
        ...
