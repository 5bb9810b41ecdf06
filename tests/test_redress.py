"""Redress that reaches every holder: real nodes, real mutual TLS, real SQLite.

NL (the originator) sends an incident to DE, which forwards it to FR. NL's erasure, retraction,
handling update or rectification is applied at DE and, relayed by DE, at FR; each receipts it
with what it did, and NL's `redress status` lists both holders (docs/redress.md).
"""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from accord.v1 import local_pb2
from accord.v1 import message_pb2 as pb
from node.app import Node
from node.cli import main
from node.client import connect
from node.ids import uuid7
from node.wire import parse_receipt
from tests.attack.common import trailer
from tests.harness import (
    Federation,
    RawExchange,
    add_user,
    complete,
    envelope_frame,
    held,
    incident,
    member_key,
    node_send,
    open_agreement,
    wait_for,
)
from tests.test_onward_security import allow_onward

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"
WHY = "Case 2026/0042: the Venlo robbery"


def shareable(*, to: str) -> pb.MessageContent:
    content = incident(to=[to])
    content.onward_transfer = pb.ONWARD_TRANSFER_ALLOWED
    return content


async def users(*nodes: Node) -> None:
    for node in nodes:
        await add_user(node, "officer", "liaison_officer")
        await add_user(node, "chief", "supervisor")


async def chain(fed: Federation) -> tuple[Node, Node, Node, str, str]:
    """NL's incident held by DE, and DE's forward of it held by FR: (nodes..., original id,
    forward id)."""
    allow_onward(fed)
    nl, de, fr = await fed.start_all()
    await users(nl, de, fr)
    original = await node_send(nl, shareable(to=DE))
    await held(de, original.message_id, sender=NL)
    async with connect(de.config.home, user="officer") as c:
        forward = await c.api.Forward(
            local_pb2.ForwardRequest(message_id=original.message_id, to=FR, justification=WHY)
        )
    await held(fr, forward.message_id, sender=DE)
    return nl, de, fr, original.message_id, forward.message_id


async def redress(node: Node, request: local_pb2.RedressRequest) -> str:
    async with connect(node.config.home, user="officer") as c:
        sent = await c.api.Redress(request)
    message_id: str = sent.message_id
    return message_id


async def status(node: Node, message_id: str) -> list[local_pb2.RedressHolder]:
    async with connect(node.config.home, user="officer") as c:
        answer = await c.api.RedressStatus(local_pb2.RedressStatusRequest(message_id=message_id))
    return [h for r in answer.redresses for h in r.holders]


async def confirmed(node: Node, message_id: str, *holders: str) -> list[local_pb2.RedressHolder]:
    """Wait until every one of `holders` has confirmed the redress of `message_id`."""
    found: list[local_pb2.RedressHolder] = []

    async def all_confirmed() -> bool:
        nonlocal found
        found = await status(node, message_id)
        done = {h.agency for h in found if h.state == "confirmed"}
        return set(holders) <= done

    await wait_for(all_confirmed, timeout=20)
    return found


async def erased(node: Node, message_id: str, *, sender: str) -> None:
    async def shredded() -> bool:
        row = await node.store.get_message(message_id, sender=sender, direction="in")
        assert row is not None, "the tombstone stays"
        return row.erased_at is not None and row.sealed is None

    await wait_for(shredded, timeout=20)
    row = await node.store.get_message(message_id, sender=sender, direction="in")
    assert row is not None and "by its originator NL-POL" in row.erase_reason


async def read(node: Node, message_id: str, *, user: str = "officer") -> local_pb2.GetResponse:
    async with connect(node.config.home, user=user) as c:
        answer: local_pb2.GetResponse = await c.api.Get(
            local_pb2.GetRequest(message_id=message_id, justification=WHY)
        )
    return answer


def erasure(target: str, *, to: str) -> pb.MessageContent:
    return pb.MessageContent(
        recipients=[to],
        type=pb.MESSAGE_TYPE_ERASURE_REQUEST,
        purpose="serious-crime-investigation",
        control=pb.ControlBody(target_message_id=target, reason="erase it"),
    )


async def refused_read(node: Node, message_id: str, *, user: str = "officer") -> str:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await read(node, message_id, user=user)
    return trailer(refused.value, "accord-reason") or trailer(refused.value, "accord-denied")


async def test_erasure_reaches_a_direct_and_an_onward_holder(
    fed3: Federation, capsys: pytest.CaptureFixture[str]
) -> None:
    nl, de, fr, original, forward = await chain(fed3)
    assert (await read(fr, forward)).content.message_id == forward

    erasure = await redress(
        nl,
        local_pb2.RedressRequest(
            message_id=original, type=pb.MESSAGE_TYPE_ERASURE_REQUEST, reason="unlawfully shared"
        ),
    )
    holders = await confirmed(nl, original, DE, FR)
    by_agency = {h.agency: h for h in holders}
    assert (by_agency[DE].via, by_agency[DE].result) == ("", "ERASED")
    assert (by_agency[FR].via, by_agency[FR].result) == (DE, "ERASED")

    # Each holder's own signed receipt says what it did, to which message.
    (delivery,) = await nl.store.deliveries(erasure)
    outcome = parse_receipt(delivery.receipt or b"").redress
    assert outcome is not None
    assert (outcome.redress_id, outcome.target_message_id, outcome.result) == (
        erasure,
        original,
        "ERASED",
    )
    assert await refused_read(de, original) == "REDRESSED"
    assert await refused_read(fr, forward, user="chief") == "REDRESSED"
    # Crypto-shredded at both holders (node/store/erasure.py), a tombstone left.
    await erased(de, original, sender=NL)
    await erased(fr, forward, sender=DE)

    # What the node signs says what it enforces.
    policy = json.loads(nl.published_policy().policy_json)["redress"]
    assert "NOT_ORIGINATOR" in policy["who"] and "REDRESSED" in policy["applied"]
    # The CLI shows the same chain.
    args = ["redress", "status", original, "--home", str(nl.config.home), "--as", "officer"]
    assert await asyncio.to_thread(main, args) == 0
    shown = capsys.readouterr().out
    assert f"ERASURE_REQUEST {erasure} of {original}" in shown
    assert [line.split()[:4] for line in shown.splitlines() if line.startswith(FR)] == [
        [FR, DE, "confirmed", "erased"]
    ]


async def test_a_retracted_message_cannot_be_forwarded_or_replied_to(fed3: Federation) -> None:
    allow_onward(fed3)
    nl, de, _ = await fed3.start_all()
    await users(nl, de)
    original = await node_send(nl, shareable(to=DE))
    await held(de, original.message_id, sender=NL)
    await redress(
        nl,
        local_pb2.RedressRequest(
            message_id=original.message_id, type=pb.MESSAGE_TYPE_INCIDENT_RETRACT
        ),
    )
    await confirmed(nl, original.message_id, DE)

    async with connect(de.config.home, user="officer") as c:
        with pytest.raises(grpc.aio.AioRpcError) as forwarding:
            await c.api.Forward(
                local_pb2.ForwardRequest(message_id=original.message_id, to=FR, justification=WHY)
            )
        reply = pb.MessageContent(
            recipients=[NL],
            type=pb.MESSAGE_TYPE_REPLY,
            purpose="serious-crime-investigation",
            in_reply_to=original.message_id,
            tlp=pb.TLP_AMBER,
            handling_codes=[pb.HANDLING_CODE_H0],
            retention=pb.Retention(days=5),
            liaison=pb.LiaisonBody(subject="re", text="noted"),
        )
        with pytest.raises(grpc.aio.AioRpcError) as replying:
            await c.api.Send(local_pb2.SendRequest(content=reply))
    assert trailer(forwarding.value, "accord-reason") == "REDRESSED"
    assert "retracted" in (forwarding.value.details() or "")
    assert trailer(replying.value, "accord-reason") == "REDRESSED"
    assert await fr_holds_nothing(fed3)


async def fr_holds_nothing(fed: Federation) -> bool:
    fr = fed.nodes[FR]
    return await fr.store.count("messages") == 0


async def test_a_handling_update_to_red_applies_at_every_holder(fed3: Federation) -> None:
    nl, de, fr, original, forward = await chain(fed3)
    await read(de, original)  # AMBER: the officer may read it
    await redress(
        nl,
        local_pb2.RedressRequest(
            message_id=original,
            type=pb.MESSAGE_TYPE_HANDLING_UPDATE,
            tlp=pb.TLP_RED,
            handling_codes=[pb.HANDLING_CODE_H2],
        ),
    )
    holders = await confirmed(nl, original, DE, FR)
    assert {h.result for h in holders} == {"HANDLING_UPDATED"}
    assert all("TLP:RED" in h.detail for h in holders)
    assert await refused_read(de, original) == "TLP"
    assert await refused_read(fr, forward) == "TLP"
    assert (await read(de, original, user="chief")).content.message_id == original
    # H2 now needs the originator's consent for any onward transfer.
    async with connect(de.config.home, user="chief") as c:
        with pytest.raises(grpc.aio.AioRpcError) as forwarding:
            await c.api.Forward(
                local_pb2.ForwardRequest(message_id=original, to=FR, justification=WHY)
            )
    assert trailer(forwarding.value, "accord-reason") == "ONWARD_TRANSFER_NOT_AUTHORISED"

    # An update can only tighten: DE refuses one back to GREEN, and NL's status says so.
    loosen = await redress(
        nl,
        local_pb2.RedressRequest(
            message_id=original, type=pb.MESSAGE_TYPE_HANDLING_UPDATE, tlp=pb.TLP_GREEN
        ),
    )

    async def refused() -> bool:
        return any(
            h.state == "refused" and "MARKINGS_LOOSENED" in h.detail
            for h in await status(nl, loosen)
        )

    await wait_for(refused, timeout=20)
    assert await refused_read(de, original) == "TLP"


async def test_rectification_replaces_the_body_at_every_holder(fed3: Federation) -> None:
    nl, de, fr, original, forward = await chain(fed3)
    corrected = incident(to=[DE]).incident
    corrected.entities[0].person.family_name = "Janssen"
    await redress(
        nl,
        local_pb2.RedressRequest(
            message_id=original,
            type=pb.MESSAGE_TYPE_RECTIFICATION,
            corrected_incident=corrected,
        ),
    )
    holders = await confirmed(nl, original, DE, FR)
    assert {h.result for h in holders} == {"REPLACED"}
    at_de = (await read(de, original)).content.control.corrected_incident
    assert at_de.entities[0].person.family_name == "Janssen"
    relayed = (await read(fr, forward)).content.forwarded.content
    at_fr = pb.MessageContent.FromString(relayed).control.corrected_incident
    assert at_fr.entities[0].person.family_name == "Janssen"
    # The old version is erased at both; a handling update afterwards applies to the new one.
    await erased(de, original, sender=NL)
    await erased(fr, forward, sender=DE)
    update = await redress(
        nl,
        local_pb2.RedressRequest(
            message_id=original, type=pb.MESSAGE_TYPE_HANDLING_UPDATE, tlp=pb.TLP_RED
        ),
    )

    async def updated() -> bool:
        found = {(h.agency, h.result) for h in await status(nl, update) if h.state == "confirmed"}
        return {(DE, "HANDLING_UPDATED"), (FR, "HANDLING_UPDATED")} <= found

    await wait_for(updated, timeout=20)
    assert await refused_read(de, original) == "TLP"
    again = (await read(de, original, user="chief")).content.control.corrected_incident
    assert again.entities[0].person.family_name == "Janssen"
    # An erasure afterwards erases the new version too.
    erasure_id = await redress(
        nl, local_pb2.RedressRequest(message_id=original, type=pb.MESSAGE_TYPE_ERASURE_REQUEST)
    )

    async def both_erased() -> bool:
        found = await status(nl, erasure_id)
        # (the status lists each redress of the message: the rectification's holders too)
        return {(DE, "ERASED"), (FR, "ERASED")} <= {
            (h.agency, h.result) for h in found if h.state == "confirmed"
        }

    await wait_for(both_erased, timeout=20)
    assert await refused_read(de, original) == "REDRESSED"
    for node in (de, fr):

        async def versions_gone(node: Node = node) -> bool:
            rows = await node.store.list_messages(type="RECTIFICATION")
            return bool(rows) and all(r.sealed is None for r in rows)

        await wait_for(versions_gone, timeout=20)


async def test_a_legal_hold_keeps_the_message_and_the_receipt_names_it(
    fed3: Federation,
) -> None:
    allow_onward(fed3)
    nl, de, _ = await fed3.start_all()
    await users(nl, de)
    original = await node_send(nl, shareable(to=DE))
    await held(de, original.message_id, sender=NL)
    async with connect(de.config.home, user="chief") as c:
        hold = await c.api.Hold(
            local_pb2.HoldRequest(
                message_id=original.message_id, justification="evidence in case 2026/0042"
            )
        )
    await redress(
        nl,
        local_pb2.RedressRequest(
            message_id=original.message_id, type=pb.MESSAGE_TYPE_ERASURE_REQUEST
        ),
    )
    (holder,) = await confirmed(nl, original.message_id, DE)
    assert (holder.result, holder.detail) == ("HELD", f"legal hold hold {hold.id}")
    assert (await read(de, original.message_id)).content.message_id == original.message_id


async def test_only_the_originator_may_redress(fed3: Federation) -> None:
    """DE holds NL's message and forwarded it to FR: DE's own node refuses to send an erasure
    of it (it sent no such message), and one sent by a DE node that skips its checks is
    refused by FR (NOT_ORIGINATOR); an erasure naming a message FR never had from NL is
    answered UNKNOWN_TARGET."""
    _nl, de, fr, original, forward = await chain(fed3)
    async with connect(de.config.home, user="officer") as c:
        with pytest.raises(grpc.aio.AioRpcError) as own:
            await c.api.Redress(
                local_pb2.RedressRequest(message_id=original, type=pb.MESSAGE_TYPE_ERASURE_REQUEST)
            )
    assert own.value.code() == grpc.StatusCode.NOT_FOUND
    assert "originator" in (own.value.details() or "")

    # The same through Send, by hand: DE's node names what it may not do before anything leaves.
    async with connect(de.config.home, user="officer") as c:
        for target, why in ((original, "UNKNOWN_TARGET"), (forward, "NOT_ORIGINATOR")):
            with pytest.raises(grpc.aio.AioRpcError) as by_hand:
                await c.api.Send(local_pb2.SendRequest(content=erasure(target, to=FR)))
            assert trailer(by_hand.value, "accord-reason") == why

    async def answer(by: str, to: Node, content: pb.MessageContent) -> tuple[bool, str, str]:
        data = complete(content, sender=by).SerializeToString()
        async with RawExchange(fed3, as_agency=by, to=to) as raw:
            receipt = await raw.send(envelope_frame(data, member_key(fed3, by)))
        info = parse_receipt(receipt.content)
        return info.accepted, info.reason_code, info.reason_detail

    accepted, code, detail = await answer(DE, fr, erasure(forward, to=FR))
    assert (accepted, code) == (False, "NOT_ORIGINATOR")
    assert NL in detail
    unknown = uuid7()
    accepted, code, detail = await answer(NL, fr, erasure(unknown, to=FR))
    assert (accepted, code) == (False, "UNKNOWN_TARGET")
    assert unknown in detail
    # NL's own erasure of the original, sent straight to FR (which holds it only as DE's
    # forward) names nothing FR holds from NL.
    accepted, code, _ = await answer(NL, fr, erasure(original, to=FR))
    assert (accepted, code) == (False, "UNKNOWN_TARGET")
    assert (await read(fr, forward)).content.message_id == forward


async def test_a_holder_that_was_down_applies_the_redress_after_restart(
    fed3: Federation,
) -> None:
    nl, _de, fr, original, forward = await chain(fed3)
    await fed3.stop(FR)
    await redress(
        nl,
        local_pb2.RedressRequest(message_id=original, type=pb.MESSAGE_TYPE_ERASURE_REQUEST),
    )
    await confirmed(nl, original, DE)

    async def fr_pending() -> bool:
        return any(
            h.agency == FR and h.state == "pending" and h.via == DE
            for h in await status(nl, original)
        )

    await wait_for(fr_pending, timeout=20)
    fr = await fed3.start(FR)
    await confirmed(nl, original, DE, FR)
    assert await refused_read(fr, forward) == "REDRESSED"


async def test_a_holder_whose_copy_is_already_erased_still_answers_and_relays(
    fed3: Federation,
) -> None:
    """DE's copy went at expiry (only its tombstone is left) after DE forwarded it to FR:
    NL's erasure is answered ERASED by DE and still reaches FR."""
    nl, de, fr, original, forward = await chain(fed3)
    await de.store.erase_message(
        original, direction="in", reason="expired", actor="sweeper", sender=NL
    )
    await redress(
        nl,
        local_pb2.RedressRequest(message_id=original, type=pb.MESSAGE_TYPE_ERASURE_REQUEST),
    )
    holders = await confirmed(nl, original, DE, FR)
    assert {(h.agency, h.result) for h in holders} == {(DE, "ERASED"), (FR, "ERASED")}
    await erased(fr, forward, sender=DE)


async def test_a_holder_stopped_before_relaying_erases_and_relays_on_start(
    fed3: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DE commits NL's erasure and stops before its work after the commit (as if killed then):
    on its next start it erases its copy and relays the erasure to FR."""
    nl, de, fr, original, forward = await chain(fed3)
    monkeypatch.setattr(de.redress, "stored", lambda message: None)  # the lost after-commit work
    await redress(
        nl,
        local_pb2.RedressRequest(message_id=original, type=pb.MESSAGE_TYPE_ERASURE_REQUEST),
    )
    await confirmed(nl, original, DE)
    row = await de.store.get_message(original, sender=NL, direction="in")
    assert row is not None and row.erased_at is None  # applied (unreadable), not yet erased
    assert await refused_read(de, original) == "REDRESSED"
    assert await fr.store.list_messages(type="ERASURE_REQUEST") == []
    await fed3.stop(DE)
    de = await fed3.start(DE)
    await erased(de, original, sender=NL)
    await confirmed(nl, original, DE, FR)
    await erased(fr, forward, sender=DE)


async def test_a_relayed_rectification_meets_the_onward_agreements_field_rules(
    fed3: Federation,
) -> None:
    """NL-DE allows persons, DE-FR only narrative and location. DE's forward of an incident
    without persons reaches FR; NL's rectification adding a suspect reaches DE, and its relay
    is refused by FR (FIELDS_NOT_PERMITTED), which NL's status shows."""
    purpose = "serious-crime-investigation"
    nl_de = open_agreement((NL, DE), fed3.now, id="AGR-NL-DE", onward_transfer="ALLOWED")
    de_fr = open_agreement(
        (DE, FR),
        fed3.now,
        id="AGR-DE-FR",
        onward_transfer="ALLOWED",
        allowed_fields={purpose: ("incident_id", "offence", "location", "narrative")},
    )
    fed3.authority.set_agreements((nl_de, de_fr), now=fed3.now)
    nl, de, fr = await fed3.start_all()
    await users(nl, de, fr)
    bare = shareable(to=DE)
    del bare.incident.entities[:]
    original = await node_send(nl, bare)
    await held(de, original.message_id, sender=NL)
    async with connect(de.config.home, user="officer") as c:
        forward = await c.api.Forward(
            local_pb2.ForwardRequest(message_id=original.message_id, to=FR, justification=WHY)
        )
    await held(fr, forward.message_id, sender=DE)
    await redress(
        nl,
        local_pb2.RedressRequest(
            message_id=original.message_id,
            type=pb.MESSAGE_TYPE_RECTIFICATION,
            corrected_incident=incident(to=[DE]).incident,
        ),
    )

    async def fr_refused() -> bool:
        return any(
            h.agency == FR and h.state == "refused" and "FIELDS_NOT_PERMITTED" in h.detail
            for h in await status(nl, original.message_id)
        )

    await wait_for(fr_refused, timeout=20)
    assert (await read(fr, forward.message_id)).content.message_id == forward.message_id
