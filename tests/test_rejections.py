"""Every way an inbound envelope is refused, over one real mTLS stream to a real node.

Each refusal must come back as a REJECTED receipt with its own reason code, signed by the
receiver, leave nothing in the receiver's message store, and leave the stream working.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from accord.v1 import message_pb2 as pb
from certs.ca import load_cert
from node.app import Node
from node.audit.verify import parse_entry
from node.errors import InvalidRequest, Reason, Refused
from node.ids import uuid7
from node.messages import ReceiptInfo
from node.signing import RECEIPT, digest, public_key_of, verify
from node.store.audit import Filters
from node.wire import parse_receipt
from tests.harness import (
    Federation,
    RawExchange,
    complete,
    envelope_frame,
    incident,
    liaison,
    member_key,
    node_send,
)

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"


def receipt_checker(fed: Federation, receiver: Node) -> Callable[[pb.Receipt], ReceiptInfo]:
    """Parse a receipt after checking it is signed with the receiver's certificate."""
    key = public_key_of(load_cert(fed.homes[receiver.agency] / "node.pem"))

    def check(receipt: pb.Receipt) -> ReceiptInfo:
        assert verify(key, receipt.content, receipt.signature, RECEIPT, receipt.proof), (
            "receipt signature does not verify"
        )
        info = parse_receipt(receipt.content)
        assert info.receiver == receiver.agency
        return info

    return check


def signed(content: pb.MessageContent, key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    data = content.SerializeToString()
    return data, envelope_frame(data, key)


async def test_each_refusal_has_its_reason_and_the_stream_survives(fed3: Federation) -> None:
    _nl, de, _fr = await fed3.start_all()
    nl_key, fr_key = member_key(fed3, NL), member_key(fed3, FR)
    check = receipt_checker(fed3, de)
    limit = de.config.limits.max_message_bytes

    def good() -> pb.MessageContent:
        return complete(incident(to=[DE]), sender=NL)

    bad_signature = good()
    sender_mismatch = complete(incident(to=[DE]), sender=FR)
    wrong_recipient = complete(incident(to=[FR]), sender=NL)
    no_id = good()
    no_id.message_id = ""
    no_recipients = good()
    del no_recipients.recipients[:]
    repeated_recipient = complete(incident(to=[DE, DE]), sender=NL)
    no_created_at = good()
    no_created_at.ClearField("created_at")
    no_purpose = good()
    no_purpose.purpose = ""
    incident_without_body = good()
    incident_without_body.ClearField("incident")
    retract_without_target = complete(liaison(to=[DE]), sender=NL)
    retract_without_target.type = pb.MESSAGE_TYPE_INCIDENT_RETRACT
    unknown_type = complete(liaison(to=[DE]), sender=NL)
    unknown_type.type = 999  # type: ignore[assignment]
    oversize = complete(incident(to=[DE], narrative="x" * (limit + 1)), sender=NL)

    def case(reason: str, c: pb.MessageContent, *, names_id: bool = True) -> tuple[str, bytes, str]:
        return reason, signed(c, nl_key)[1], c.message_id if names_id else ""

    by_fr = signed(bad_signature, fr_key)[1]  # a valid signature, by the wrong member
    unsigned, not_der = good(), good()
    no_signature = pb.Envelope(content=unsigned.SerializeToString()).SerializeToString()
    garbage = pb.Envelope(content=not_der.SerializeToString(), signature=b"\x30\x02garbage")
    cases: list[tuple[str, bytes, str]] = [  # (reason, frame, message id the receipt names)
        ("BAD_SIGNATURE", by_fr, bad_signature.message_id),
        ("BAD_SIGNATURE", no_signature, unsigned.message_id),
        ("BAD_SIGNATURE", garbage.SerializeToString(), not_der.message_id),
        case("SENDER_MISMATCH", sender_mismatch),
        case("WRONG_RECIPIENT", wrong_recipient),
        ("MALFORMED", envelope_frame(b"\x0a\xff\x01garbage", nl_key), ""),
        case("MALFORMED", no_id, names_id=False),
        case("MALFORMED", no_recipients),
        case("MALFORMED", repeated_recipient),
        case("MALFORMED", no_created_at),
        case("MALFORMED", no_purpose),
        case("MALFORMED", incident_without_body),
        case("MALFORMED", retract_without_target),
        case("UNKNOWN_MESSAGE_TYPE", unknown_type),
        case("OVERSIZE", oversize, names_id=False),  # too big to look inside
    ]

    async with RawExchange(fed3, as_agency=NL, to=de) as stream:
        for reason, frame, message_id in cases:
            info = check(await stream.send(frame))
            sent = pb.Envelope.FromString(frame).content
            assert (info.accepted, info.reason_code) == (False, reason), (reason, info)
            assert info.reason_detail, f"{reason} receipt says nothing about why"
            assert info.message_id == message_id
            assert info.content_sha256 == digest(sent)
            assert info.sender == NL

        # A frame that is not an Envelope at all: refused as MALFORMED, the server carries on.
        junk = b"\x0a\x05ab"
        info = check(await stream.send(junk))
        assert (info.accepted, info.reason_code) == (False, "MALFORMED")
        assert info.content_sha256 == digest(junk)
        info = check(await stream.send(b""))  # an empty frame is an empty Envelope
        assert not info.accepted and info.reason_code in ("BAD_SIGNATURE", "MALFORMED")

        assert await de.store.count("messages") == 0
        for _, _, message_id in cases:
            if message_id:
                assert await de.store.get_message(message_id) is None

        # The same stream still delivers.
        valid = good()
        info = check(await stream.send(signed(valid, nl_key)[1]))
        assert info.accepted and info.reason_code == "" and info.message_id == valid.message_id
        stored = await de.store.get_message(valid.message_id, sender=NL)
        assert stored is not None
        assert de.store.open_content(stored) == valid.SerializeToString()

        # Same id, different content: refused, and the first copy stands.
        conflicting = pb.MessageContent()
        conflicting.CopyFrom(valid)
        conflicting.incident.narrative = "A different story under the same id."
        info = check(await stream.send(signed(conflicting, nl_key)[1]))
        assert (info.accepted, info.reason_code) == (False, "ID_CONFLICT")
        assert info.message_id == valid.message_id
        assert info.content_sha256 == digest(conflicting.SerializeToString())
        stored = await de.store.get_message(valid.message_id, sender=NL)
        assert stored is not None
        assert de.store.open_content(stored) == valid.SerializeToString()
        assert await de.store.count("messages") == 1

    # A new stream from the same peer works too: nothing about the junk hurt the server.
    async with RawExchange(fed3, as_agency=NL, to=de) as stream:
        after = good()
        info = check(await stream.send(signed(after, nl_key)[1]))
        assert info.accepted
    assert await de.store.count("messages") == 2

    # Each arrival left one audit entry on the refusing side, with its reason, in order.
    logged = [parse_entry(e.data) for e in await de.audit.query(Filters(action="collect"))]
    assert {(e.actor, e.peer) for e in logged} == {("node", NL)}
    expected = [("refused", reason, mid) for reason, _, mid in cases]
    empty = logged[len(cases) + 1].detail.partition(":")[0]  # the empty frame's (as above)
    assert empty in ("BAD_SIGNATURE", "MALFORMED")
    expected += [("refused", "MALFORMED", ""), ("refused", empty, "")]
    expected += [("accepted", "", valid.message_id), ("refused", "ID_CONFLICT", valid.message_id)]
    expected += [("accepted", "", after.message_id)]
    assert [
        (e.outcome, e.detail.partition(":")[0] if e.outcome == "refused" else "", e.message_id)
        for e in logged
    ] == expected


async def test_refusal_is_repeated_identically_for_a_resend(fed3: Federation) -> None:
    _nl, de, _fr = await fed3.start_all()
    check = receipt_checker(fed3, de)
    wrong = complete(incident(to=[FR]), sender=NL)
    frame = signed(wrong, member_key(fed3, NL))[1]
    async with RawExchange(fed3, as_agency=NL, to=de) as stream:
        first = await stream.send(frame)
        again = await stream.send(frame)
    assert check(first).reason_code == "WRONG_RECIPIENT"
    assert again.SerializeToString() == first.SerializeToString()
    assert await de.store.count("rejections") == 1
    assert await de.store.count("messages") == 0


async def test_same_message_id_from_two_senders_is_two_messages(fed3: Federation) -> None:
    """Dedupe is by (sender, id): another agency reusing an id neither conflicts nor overwrites."""
    _nl, de, _fr = await fed3.start_all()
    check = receipt_checker(fed3, de)
    shared_id = uuid7()
    from_nl = complete(incident(to=[DE]), sender=NL, message_id=shared_id)
    from_fr = complete(incident(to=[DE], narrative="Rapport."), sender=FR, message_id=shared_id)
    async with RawExchange(fed3, as_agency=NL, to=de) as stream:
        assert check(await stream.send(signed(from_nl, member_key(fed3, NL))[1])).accepted
    async with RawExchange(fed3, as_agency=FR, to=de) as stream:
        assert check(await stream.send(signed(from_fr, member_key(fed3, FR))[1])).accepted
    for sender, content in ((NL, from_nl), (FR, from_fr)):
        stored = await de.store.get_message(shared_id, sender=sender)
        assert stored is not None
        assert de.store.open_content(stored) == content.SerializeToString()


async def test_policy_refusal_arrives_as_a_receipt(fed3: Federation) -> None:
    """Smoke test: an agreement refusal travels the same way as an envelope refusal."""
    _nl, de, _fr = await fed3.start_all()
    check = receipt_checker(fed3, de)
    unknown_purpose = complete(incident(to=[DE], purpose="curiosity"), sender=NL)
    too_long = complete(incident(to=[DE], retention_days=3650), sender=NL)
    key = member_key(fed3, NL)
    async with RawExchange(fed3, as_agency=NL, to=de) as stream:
        info = check(await stream.send(signed(unknown_purpose, key)[1]))
        assert (info.accepted, info.reason_code) == (False, "UNKNOWN_PURPOSE")
        info = check(await stream.send(signed(too_long, key)[1]))
        assert (info.accepted, info.reason_code) == (False, "RETENTION_EXCEEDS_AGREEMENT")
    assert await de.store.count("messages") == 0


async def test_out_of_range_fields_are_malformed_not_fatal(fed3: Federation) -> None:
    """Enum values and timestamps a protobuf parser accepts but the node cannot use."""
    _nl, de, _fr = await fed3.start_all()
    check = receipt_checker(fed3, de)
    key = member_key(fed3, NL)
    tlp = complete(incident(to=[DE]), sender=NL)
    tlp.tlp = 99  # type: ignore[assignment]
    handling = complete(incident(to=[DE]), sender=NL)
    handling.handling_codes.append(77)  # type: ignore[arg-type]
    onward = complete(incident(to=[DE]), sender=NL)
    onward.onward_transfer = 55  # type: ignore[assignment]
    until = complete(incident(to=[DE]), sender=NL)
    until.retention.until.seconds = 10**13  # past year 9999
    created = complete(incident(to=[DE]), sender=NL)
    created.created_at.seconds = -(10**13)
    async with RawExchange(fed3, as_agency=NL, to=de) as stream:
        for content in (tlp, handling, onward, until, created):
            info = check(await stream.send(signed(content, key)[1]))
            assert (info.accepted, info.reason_code) == (False, "MALFORMED"), info
            assert info.message_id == content.message_id
        forever = complete(incident(to=[DE], retention_days=4_000_000_000), sender=NL)
        info = check(await stream.send(signed(forever, key)[1]))
        assert (info.accepted, info.reason_code) == (False, "RETENTION_EXCEEDS_AGREEMENT"), info
        info = check(await stream.send(signed(complete(incident(to=[DE]), sender=NL), key)[1]))
        assert info.accepted
    assert await de.store.count("messages") == 1


async def test_a_frame_beyond_the_transport_limit_ends_only_its_stream(fed3: Federation) -> None:
    """Far past limits.max_message_bytes gRPC itself refuses the frame; the node carries on."""
    _nl, de, _fr = await fed3.start_all()
    huge = b"\x0a" + b"\xff" * (4 * de.config.limits.max_message_bytes + (2 << 20))
    async with RawExchange(fed3, as_agency=NL, to=de) as stream:
        await stream.write(huge)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await stream.read()
        assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    check = receipt_checker(fed3, de)
    async with RawExchange(fed3, as_agency=NL, to=de) as stream:
        content = complete(incident(to=[DE]), sender=NL)
        assert check(await stream.send(signed(content, member_key(fed3, NL))[1])).accepted
    assert await de.store.count("messages") == 1


async def test_created_at_and_message_id_are_checked_on_both_sides(fed3: Federation) -> None:
    """Item 16: created_at beyond the clock skew (5 minutes) is refused, and the message id
    must be a UUIDv7, by the receiver and, for what a caller hands it, by the sender."""
    nl, de, _fr = await fed3.start_all()
    check = receipt_checker(fed3, de)
    key = member_key(fed3, NL)
    now = datetime.now(UTC)

    def created(at: datetime) -> pb.MessageContent:
        content = complete(incident(to=[DE]), sender=NL)
        content.created_at.FromDatetime(at)
        return content

    far = created(datetime(9999, 1, 1, tzinfo=UTC))
    ahead = created(now + timedelta(minutes=6))
    within = created(now + timedelta(minutes=4))
    version4 = complete(incident(to=[DE]), sender=NL, message_id=str(uuid.uuid4()))
    async with RawExchange(fed3, as_agency=NL, to=de) as stream:
        for content, reason in [
            (far, "CREATED_AT_IN_FUTURE"),
            (ahead, "CREATED_AT_IN_FUTURE"),
            (version4, "MALFORMED"),
        ]:
            info = check(await stream.send(signed(content, key)[1]))
            assert (info.accepted, info.reason_code) == (False, reason), info
        assert check(await stream.send(signed(within, key)[1])).accepted
    assert await de.store.count("messages") == 1

    draft = incident(to=[DE])
    draft.created_at.FromDatetime(now + timedelta(hours=1))
    with pytest.raises(Refused) as refused:
        await node_send(nl, draft)
    assert refused.value.reason == Reason.CREATED_AT_IN_FUTURE
    draft = incident(to=[DE])
    draft.message_id = str(uuid.uuid4())
    with pytest.raises(Refused, match="UUIDv7"):
        await node_send(nl, draft)


async def test_markings_and_a_body_are_required_and_a_reply_names_a_known_message(
    fed3: Federation,
) -> None:
    """Issue 11, item 8: no TLP, no handling code, no retention, or an empty body is refused by
    the receiver (with its reason code) and by the sender, and a reply must answer a message
    the sending node holds."""
    nl, de, _fr = await fed3.start_all()
    check = receipt_checker(fed3, de)
    key = member_key(fed3, NL)

    def without(field: str) -> pb.MessageContent:
        content = incident(to=[DE])
        if field == "incident":
            content.incident.Clear()
            content.incident.SetInParent()  # an empty {} body
        else:
            content.ClearField(field)
        return content

    cases = [
        ("tlp", "MARKINGS_MISSING"),
        ("handling_codes", "MARKINGS_MISSING"),
        ("retention", "MARKINGS_MISSING"),
        ("incident", "MALFORMED"),
    ]
    async with RawExchange(fed3, as_agency=NL, to=de) as stream:
        for field, reason in cases:
            content = complete(without(field), sender=NL)
            info = check(await stream.send(signed(content, key)[1]))
            assert (info.accepted, info.reason_code) == (False, reason), (field, info)
    for field, reason in cases:
        with pytest.raises(Refused) as refused:
            await node_send(nl, without(field))
        assert refused.value.reason == reason, field
    assert await de.store.count("messages") == 0

    reply = liaison(to=[DE], type_=pb.MESSAGE_TYPE_REPLY)
    reply.in_reply_to = "0000"
    with pytest.raises(InvalidRequest, match="holds no such message"):
        await node_send(nl, reply)
