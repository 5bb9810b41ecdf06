"""The redress checks alone (node/policy/redress.py): no server, a held message given."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from accord.v1 import message_pb2 as pb
from node import wire
from node.errors import Refused
from node.ids import uuid7
from node.messages import RedressOutcome
from node.policy.redress import Decision, Held, Markings, check_redress, check_report
from node.signing import ENVELOPE, RECEIPT, sign
from tests.harness import complete

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"
PURPOSE = "serious-crime-investigation"
ORIGINAL = uuid7()
NL_KEY = ec.generate_private_key(ec.SECP256R1())


def held_from_nl(**changes: object) -> Held:
    fields: dict[str, object] = {
        "message_id": ORIGINAL,
        "sender": NL,
        "originator": NL,
        "origin_id": ORIGINAL,
        "type": "INCIDENT_PUBLISH",
        "purpose": PURPOSE,
        "markings": Markings("AMBER", ("H0",), ""),
        "retain_until": datetime(2027, 1, 1, tzinfo=UTC),
    }
    fields.update(changes)
    return Held(**fields)  # type: ignore[arg-type]


def redress(kind: pb.MessageType, *, sender: str = NL, **control: Any) -> pb.MessageContent:
    content = pb.MessageContent(
        recipients=[DE], type=kind, purpose=PURPOSE, control=pb.ControlBody(**control)
    )
    if not content.control.target_message_id:
        content.control.target_message_id = ORIGINAL
    return complete(content, sender=sender)


def check(content: pb.MessageContent, *, peer: str = NL, target: Held | None = None) -> Decision:
    held = target or held_from_nl()
    return check_redress(
        wire.decode(content.SerializeToString()),
        peer=peer,
        held=lambda message_id: held if message_id == held.message_id else None,
        member_key=lambda agency: NL_KEY.public_key() if agency == NL else None,
    )


def reason(content: pb.MessageContent, **kwargs: object) -> str:
    with pytest.raises(Refused) as refused:
        check(content, **kwargs)  # type: ignore[arg-type]
    return refused.value.reason.value


def test_each_redress_says_what_it_does() -> None:
    for kind, result in [
        (pb.MESSAGE_TYPE_ERASURE_REQUEST, "ERASED"),
        (pb.MESSAGE_TYPE_INCIDENT_RETRACT, "RETRACTED"),
    ]:
        assert check(redress(kind)).outcome.result == result
    fixed = redress(pb.MESSAGE_TYPE_RECTIFICATION)
    fixed.control.corrected_incident.narrative = "corrected"
    assert check(fixed).outcome.result == "REPLACED"
    update = check(
        redress(
            pb.MESSAGE_TYPE_HANDLING_UPDATE,
            tlp=pb.TLP_RED,
            handling_codes=[pb.HANDLING_CODE_H2],
            handling_conditions="no court use",
        )
    )
    assert update.outcome.result == "HANDLING_UPDATED"
    assert update.markings == Markings("RED", ("H0", "H2"), "no court use")
    held = check(
        redress(pb.MESSAGE_TYPE_ERASURE_REQUEST), target=held_from_nl(hold_reference="hold 7")
    )
    assert (held.outcome.result, held.outcome.hold_reference) == ("HELD", "hold 7")
    gone = check(
        redress(pb.MESSAGE_TYPE_HANDLING_UPDATE, tlp=pb.TLP_RED),
        target=held_from_nl(result="ERASED"),
    )
    assert gone.outcome.result == "ERASED"


def test_what_a_redress_may_not_do() -> None:
    assert reason(redress(pb.MESSAGE_TYPE_ERASURE_REQUEST, target_message_id=uuid7())) == (
        "UNKNOWN_TARGET"
    )
    forwarded_to_de = held_from_nl(sender=FR)  # DE holds NL's message as FR's forward
    assert (
        reason(redress(pb.MESSAGE_TYPE_ERASURE_REQUEST, sender=FR), peer=FR, target=forwarded_to_de)
        == "NOT_ORIGINATOR"
    )
    carrying = redress(pb.MESSAGE_TYPE_ERASURE_REQUEST)
    carrying.control.corrected_incident.narrative = "personal data in an erasure"
    assert reason(carrying) == "REDRESS_NOT_APPLICABLE"
    assert (
        reason(redress(pb.MESSAGE_TYPE_INCIDENT_RETRACT), target=held_from_nl(type="REQUEST_INFO"))
        == "REDRESS_NOT_APPLICABLE"
    )
    assert reason(redress(pb.MESSAGE_TYPE_HANDLING_UPDATE, tlp=pb.TLP_GREEN)) == "MARKINGS_LOOSENED"
    assert reason(redress(pb.MESSAGE_TYPE_HANDLING_UPDATE)) == "REDRESS_NOT_APPLICABLE"
    assert reason(redress(pb.MESSAGE_TYPE_RECTIFICATION)) == "REDRESS_NOT_APPLICABLE"
    other_purpose = redress(pb.MESSAGE_TYPE_ERASURE_REQUEST)
    other_purpose.purpose = "cybercrime"
    assert reason(other_purpose) == "REDRESS_NOT_APPLICABLE"


def relay(
    inner: pb.MessageContent,
    *,
    key: ec.EllipticCurvePrivateKey = NL_KEY,
    kind: pb.MessageType | None = None,
) -> pb.MessageContent:
    """FR's relay to DE of `inner`, signed by `key`, for DE's copy held from FR."""
    data = inner.SerializeToString()
    outer = pb.MessageContent(
        recipients=[DE],
        type=kind or inner.type,
        purpose=PURPOSE,
        control=pb.ControlBody(target_message_id=FORWARD, reason="relayed"),
    )
    outer.forwarded.CopyFrom(pb.Envelope(content=data, signature=sign(key, data, ENVELOPE)))
    return complete(outer, sender=FR)


FORWARD = uuid7()
HELD_FORWARD = held_from_nl(message_id=FORWARD, sender=FR)


def test_a_relay_carries_the_originators_signed_redress() -> None:
    erasure = redress(pb.MESSAGE_TYPE_ERASURE_REQUEST)
    decision = check(relay(erasure), peer=FR, target=HELD_FORWARD)
    assert (decision.outcome.redress_id, decision.outcome.held_as) == (
        erasure.message_id,
        FORWARD,
    )
    other_key = ec.generate_private_key(ec.SECP256R1())
    assert reason(relay(erasure, key=other_key), peer=FR, target=HELD_FORWARD) == "BAD_SIGNATURE"
    assert (
        reason(relay(erasure, kind=pb.MESSAGE_TYPE_HANDLING_UPDATE), peer=FR, target=HELD_FORWARD)
        == "MALFORMED"
    )
    elsewhere = redress(pb.MESSAGE_TYPE_ERASURE_REQUEST, target_message_id=uuid7())
    assert reason(relay(elsewhere), peer=FR, target=HELD_FORWARD) == "NOT_ORIGINATOR"
    by_fr = redress(pb.MESSAGE_TYPE_ERASURE_REQUEST, sender=FR)
    assert reason(relay(by_fr), peer=FR, target=HELD_FORWARD) == "UNKNOWN_SENDER"


DE_KEY = ec.generate_private_key(ec.SECP256R1())
KEYS = {NL: NL_KEY, DE: DE_KEY}


def holder_receipt(*, key: ec.EllipticCurvePrivateKey = DE_KEY) -> pb.Receipt:
    content = wire.receipt_content(
        message_id=uuid7(),
        content_sha256=bytes(32),
        sender=FR,
        receiver=DE,
        received_at=datetime.now(UTC),
        redress=RedressOutcome(
            redress_id=uuid7(),
            originator=NL,
            target_message_id=ORIGINAL,
            held_as=FORWARD,
            result="ERASED",
        ),
    )
    return pb.Receipt(content=content, signature=sign(key, content, RECEIPT))


def report_reason(**control: Any) -> str:
    content = complete(
        pb.MessageContent(
            recipients=[NL],
            type=pb.MESSAGE_TYPE_REDRESS_REPORT,
            purpose=PURPOSE,
            control=pb.ControlBody(target_message_id=uuid7(), **control),
        ),
        sender=FR,
    ).SerializeToString()
    receipts, relayed_to = wire.report_of(content)
    try:
        check_report(
            wire.decode(content),
            member_key=lambda agency: KEYS[agency].public_key() if agency in KEYS else None,
            receipts=receipts,
            relayed_to=relayed_to,
        )
    except Refused as refused:
        return refused.reason.value
    return ""


def test_a_report_carries_only_holders_signed_receipts_and_relays() -> None:
    assert report_reason(holder_receipts=[holder_receipt()], relayed_to=[f"{FR}>{DE}"]) == ""
    forged = holder_receipt(key=ec.generate_private_key(ec.SECP256R1()))
    assert report_reason(holder_receipts=[forged]) == "MALFORMED"
    assert report_reason(relayed_to=["Jansen, Piet, born 1980"]) == "MALFORMED"
    assert report_reason(relayed_to=[f"{FR}>{DE}"], reason="personal data") == (
        "REDRESS_NOT_APPLICABLE"
    )
    long_reason = redress(pb.MESSAGE_TYPE_ERASURE_REQUEST, reason="x" * 501)
    assert reason(long_reason) == "REDRESS_NOT_APPLICABLE"
