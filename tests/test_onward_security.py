"""Onward transfer under attack: a forward keeps its originator's terms and consent.

Each test plays a federation member (its own valid certificate and key) or a local user with a
valid token trying to move a message further, or more loosely, than its originator allowed.
"""

from __future__ import annotations

import grpc
import pytest

from accord.v1 import local_pb2
from accord.v1 import message_pb2 as pb
from node.app import Node
from node.client import connect
from node.envelope import parse_receipt
from tests.harness import (
    Federation,
    RawExchange,
    add_user,
    complete,
    envelope_frame,
    grant,
    held,
    incident,
    member_key,
    open_agreement,
)

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"
WHY = "Suspect believed to have crossed into France"


def allow_onward(fed: Federation) -> None:
    """Agreements that allow any onward rule: what stops a loosened forward is the original."""
    fed.authority.set_agreements(
        (open_agreement(fed.agencies, fed.now, onward_transfer="ALLOWED"),), now=fed.now
    )


def red_incident(*, to: str) -> pb.MessageContent:
    content = incident(to=[to])
    content.tlp = pb.TLP_RED
    return content


async def envelope_of(node: Node, message_id: str, *, sender: str) -> pb.Envelope:
    """The envelope `node` holds for a received message, as it arrived."""
    assert node.store is not None
    row = await node.store.get_message(message_id, sender=sender, direction="in")
    assert row is not None
    content = node.store.open_content(row)
    assert content is not None
    return pb.Envelope(content=content, signature=row.signature, proof=row.signature_proof or b"")


async def forward_as(node: Node, user: str, message_id: str, *, to: str) -> local_pb2.SendResponse:
    async with connect(node.config.home, user=user) as c:
        response: local_pb2.SendResponse = await c.api.Forward(
            local_pb2.ForwardRequest(message_id=message_id, to=to, justification=WHY)
        )
        return response


def reason(exc: grpc.aio.AioRpcError) -> str:
    return dict(exc.trailing_metadata() or ()).get("accord-reason", "")  # type: ignore[no-any-return]


async def test_a_forward_cannot_loosen_the_originators_markings(fed3: Federation) -> None:
    """Item 1: DE holds NL's TLP:RED incident and NL's grant to pass it to FR. A hand-made
    forward marked GREEN and ALLOWED is refused by DE's Send (only Forward makes forwards) and,
    sent by a node that skips that check, by FR (MARKINGS_LOOSENED); the real forward keeps RED,
    so FR's liaison officer cannot read it."""
    allow_onward(fed3)
    nl, de, fr = await fed3.start_all()
    await add_user(de, "dora", "supervisor")
    await add_user(fr, "fleur", "liaison_officer")
    assert fr.store is not None
    original = await nl.send(red_incident(to=DE))
    await held(de, original.message_id, sender=NL)
    consent = await nl.send(grant(target=original.message_id, to=DE, third=FR))
    await held(de, consent.message_id, sender=NL)

    forged = incident(to=[FR])
    forged.tlp = pb.TLP_GREEN
    forged.onward_transfer = pb.ONWARD_TRANSFER_ALLOWED
    forged.forwarded.CopyFrom(await envelope_of(de, original.message_id, sender=NL))
    forged.transfer_authorisation.CopyFrom(await envelope_of(de, consent.message_id, sender=NL))

    async with connect(de.config.home, user="dora") as c:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await c.api.Send(local_pb2.SendRequest(content=forged))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Forward" in (refused.value.details() or "")
    assert de.store is not None
    (entry, *_) = await de.access_store.entries(limit=1)
    assert (entry.user, entry.action, entry.outcome) == ("dora", "send", "refused")

    # A node that skips its own check: FR compares the forward with the original it carries.
    outer = complete(forged, sender=DE).SerializeToString()
    async with RawExchange(fed3, as_agency=DE, to=fr) as raw:
        receipt = await raw.send(envelope_frame(outer, member_key(fed3, DE)))
    info = parse_receipt(receipt.content)
    assert (info.accepted, info.reason_code) == (False, "MARKINGS_LOOSENED"), info
    assert "TLP:GREEN" in info.reason_detail and "ALLOWED" in info.reason_detail
    assert await fr.store.count("messages") == 0

    forwarded = await forward_as(de, "dora", original.message_id, to=FR)
    await held(fr, forwarded.message_id, sender=DE)
    row = await fr.store.get_message(forwarded.message_id, sender=DE)
    assert row is not None and row.tlp == "RED"
    async with connect(fr.config.home, user="fleur") as c:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await c.api.Get(
                local_pb2.GetRequest(message_id=forwarded.message_id, justification=WHY)
            )
    assert dict(denied.value.trailing_metadata() or ())["accord-denied"] == "TLP"
