"""Sizes of the real frames, so the baseline carries the same bytes as the node does."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ec

from accord.v1 import message_pb2 as pb
from bench.cluster import incident
from node.ids import uuid7
from node.signing import ENVELOPE, RECEIPT, digest, sign
from node.wire import receipt_content


def frame_sizes() -> tuple[int, int]:
    """(Envelope bytes, Receipt bytes) of one benchmark incident and its accepted receipt."""
    key = ec.generate_private_key(ec.SECP256R1())
    content = incident(to=["DE-BKA"])
    content.message_id = uuid7()
    content.sender = "NL-POL"
    content.agreement_id = "AGR-BENCH"
    content.created_at.FromDatetime(datetime.now(UTC))
    data = content.SerializeToString()
    envelope = pb.Envelope(content=data, signature=sign(key, data, ENVELOPE)).SerializeToString()
    now = datetime.now(UTC)
    r = receipt_content(message_id=content.message_id, content_sha256=digest(data),
                        sender="NL-POL", receiver="DE-BKA", received_at=now,
                        retained_until=now)  # fmt: skip
    receipt = pb.Receipt(content=r, signature=sign(key, r, RECEIPT)).SerializeToString()
    return len(envelope), len(receipt)
