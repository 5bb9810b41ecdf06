"""Onward transfer under attack: a forward keeps its originator's terms and consent.

Each test plays a federation member (its own valid certificate and key) or a local user with a
valid token trying to move a message further, or more loosely, than its originator allowed.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from accord.v1 import local_pb2
from accord.v1 import message_pb2 as pb
from node.app import Node
from node.client import connect
from node.delivery.outbound import Sent
from node.errors import Reason, Refused
from node.policy import onward
from node.wire import parse_receipt
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
    meta_of,
    node_send,
    open_agreement,
)

NL, DE, FR, BE = "NL-POL", "DE-BKA", "FR-PN", "BE-FPP"
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


async def red_with_consent(nl: Node, de: Node, *, third: str) -> tuple[Sent, Sent]:
    """NL's TLP:RED incident to DE, and NL's grant letting DE pass it on to `third`, held."""
    original = await node_send(nl, red_incident(to=de.agency))
    consent = await node_send(nl, grant(target=original.message_id, to=de.agency, third=third))
    await held(de, consent.message_id, sender=nl.agency)  # the original came first
    return original, consent


async def envelope_of(node: Node, message_id: str, *, sender: str) -> pb.Envelope:
    """The envelope `node` holds for a received message, as it arrived."""
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
    original, consent = await red_with_consent(nl, de, third=FR)

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


async def raw_forward(
    fed: Federation,
    *,
    by: str,
    to: Node,
    inner: pb.Envelope,
    authorisation: pb.Envelope | None,
    tlp: pb.Tlp = pb.TLP_RED,
) -> str:
    """What a member's node that skips its own checks could send: a forward of `inner` signed
    with its own key; the reason code the receiver answers."""
    outer = incident(to=[to.agency])
    outer.tlp = tlp
    outer.forwarded.CopyFrom(inner)
    if authorisation is not None:
        outer.transfer_authorisation.CopyFrom(authorisation)
    data = complete(outer, sender=by).SerializeToString()
    async with RawExchange(fed, as_agency=by, to=to) as raw:
        receipt = await raw.send(envelope_frame(data, member_key(fed, by)))
    return parse_receipt(receipt.content).reason_code


async def test_only_the_originators_consent_counts_over_two_hops(tmp_short: Path) -> None:
    """Item 2: DE forwards NL's RED message to FR with NL's grant. DE's consent to pass it on to
    BE is worth nothing (only NL, the originator, decides), whether it names DE's forward or
    NL's original; FR's own forward is refused locally, and hand-made ones are refused at BE.
    With NL's grant to FR, the forward to BE carries NL's own envelope and grant."""
    fed = Federation(tmp_short, [NL, DE, FR, BE])
    try:
        nl, de, fr, be = await fed.start_all()
        await add_user(de, "dora", "supervisor")
        await add_user(fr, "fred", "supervisor")
        original, to_fr = await red_with_consent(nl, de, third=FR)
        forwarded = await forward_as(de, "dora", original.message_id, to=FR)
        await held(fr, forwarded.message_id, sender=DE)
        by_de = [
            await node_send(de, grant(target=target, to=FR, third=BE))
            for target in (forwarded.message_id, original.message_id)
        ]
        for g in by_de:
            await held(fr, g.message_id, sender=DE)

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await forward_as(fr, "fred", forwarded.message_id, to=BE)
        assert reason(refused.value) == "ONWARD_TRANSFER_NOT_AUTHORISED"
        assert f"from {NL}" in (refused.value.details() or "")

        # FR's node skipping its checks: BE refuses a forward of a forward, DE's grant beside
        # NL's envelope, and NL's grant made out to DE for FR.
        held_forward = await envelope_of(fr, forwarded.message_id, sender=DE)
        nl_envelope = pb.MessageContent.FromString(held_forward.content).forwarded
        de_grant = await envelope_of(fr, by_de[1].message_id, sender=DE)
        nl_grant_to_de = await envelope_of(de, to_fr.message_id, sender=NL)
        for inner, authorisation, expected in [
            (held_forward, await envelope_of(fr, by_de[0].message_id, sender=DE), "MALFORMED"),
            (nl_envelope, de_grant, "BAD_SIGNATURE"),
            (nl_envelope, nl_grant_to_de, "ONWARD_TRANSFER_NOT_AUTHORISED"),
        ]:
            got = await raw_forward(fed, by=FR, to=be, inner=inner, authorisation=authorisation)
            assert got == expected
        assert await be.store.count("messages") == 0

        to_be = await node_send(nl, grant(target=original.message_id, to=FR, third=BE))
        await held(fr, to_be.message_id, sender=NL)
        onward = await forward_as(fr, "fred", forwarded.message_id, to=BE)
        await held(be, onward.message_id, sender=FR)
        row = await be.store.get_message(onward.message_id, sender=FR)
        assert row is not None and row.tlp == "RED"
        content = be.store.open_content(row)
        assert content is not None
        outer = pb.MessageContent.FromString(content)
        assert pb.MessageContent.FromString(outer.forwarded.content).sender == NL
        consent = pb.MessageContent.FromString(outer.transfer_authorisation.content)
        assert (consent.message_id, consent.sender) == (to_be.message_id, NL)
    finally:
        await fed.stop_all()


async def test_the_newest_grant_decides_and_expires(fed3: Federation) -> None:
    """Item 13: of two grants the matching one travels; a later withdrawal makes the holder
    refuse the forward, as does an expired grant; the third agency refuses an expired one."""
    nl, de, fr = await fed3.start_all()
    await add_user(de, "dora", "supervisor")
    original = await node_send(nl, incident(to=[DE]))
    await held(de, original.message_id, sender=NL)
    with pytest.raises(Refused) as two:
        to_two = grant(target=original.message_id, to=DE, third=FR)
        to_two.recipients.append(FR)
        await node_send(nl, to_two)
    assert two.value.reason == Reason.MALFORMED

    other = await node_send(
        nl, grant(target=original.message_id, to=DE, third=FR, transfer_purpose="missing-persons")
    )
    matching = await node_send(nl, grant(target=original.message_id, to=DE, third=FR))
    for g in (other, matching):
        await held(de, g.message_id, sender=NL)
    forwarded = await forward_as(de, "dora", original.message_id, to=FR)
    await held(fr, forwarded.message_id, sender=DE)
    row = await fr.store.get_message(forwarded.message_id, sender=DE)
    assert row is not None
    content = fr.store.open_content(row)
    assert content is not None
    attached = pb.MessageContent.FromString(content).transfer_authorisation.content
    assert pb.MessageContent.FromString(attached).message_id == matching.message_id

    withdrawn = await node_send(
        nl, grant(target=original.message_id, to=DE, third=FR, granted=False)
    )
    await held(de, withdrawn.message_id, sender=NL)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await forward_as(de, "dora", original.message_id, to=FR)
    assert reason(refused.value) == "ONWARD_TRANSFER_NOT_AUTHORISED"
    assert "withdrew" in (refused.value.details() or "")

    lapsed_draft = grant(target=original.message_id, to=DE, third=FR)
    lapsed_draft.control.valid_until.FromDatetime(datetime.now(UTC) - timedelta(minutes=1))
    lapsed = await node_send(nl, lapsed_draft)
    await held(de, lapsed.message_id, sender=NL)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await forward_as(de, "dora", original.message_id, to=FR)
    assert "expired" in (refused.value.details() or "")
    got = await raw_forward(
        fed3,
        by=DE,
        to=fr,
        inner=await envelope_of(de, original.message_id, sender=NL),
        authorisation=await envelope_of(de, lapsed.message_id, sender=NL),
        tlp=pb.TLP_AMBER,
    )
    assert got == "ONWARD_TRANSFER_NOT_AUTHORISED"
    assert await fr.store.count("messages") == 1


async def test_forwarding_needs_the_right_to_read(fed3: Federation) -> None:
    """Item 14: a liaison officer may not read TLP:RED, so may not forward it either, even with
    the originator's grant; a supervisor may."""
    nl, de, fr = await fed3.start_all()
    await add_user(de, "otto", "liaison_officer")
    await add_user(de, "dora", "supervisor")
    original, _ = await red_with_consent(nl, de, third=FR)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await forward_as(de, "otto", original.message_id, to=FR)
    assert dict(denied.value.trailing_metadata() or ())["accord-denied"] == "TLP"
    assert await de.store.count("deliveries") == 0
    forwarded = await forward_as(de, "dora", original.message_id, to=FR)
    await held(fr, forwarded.message_id, sender=DE)


async def test_consent_needs_the_right_to_see_what_it_releases(fed3: Federation) -> None:
    """A grant discloses the message it names: its author must be cleared for that message's
    purpose (and its TLP, tests/attack/test_onward.py), and the message must be this agency's."""
    nl, de, _ = await fed3.start_all()
    await add_user(nl, "nick", "liaison_officer", ["missing-persons"])
    await add_user(nl, "nora", "liaison_officer")
    sent = await node_send(nl, incident(to=[DE]))  # serious-crime-investigation
    await held(de, sent.message_id, sender=NL)
    consent = grant(target=sent.message_id, to=DE, third=FR, purpose="missing-persons")

    async def send_as(user: str, content: pb.MessageContent) -> grpc.aio.AioRpcError:
        async with connect(nl.config.home, user=user) as c:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await c.api.Send(local_pb2.SendRequest(content=content))
        return refused.value

    uncleared = await send_as("nick", consent)
    assert dict(uncleared.trailing_metadata() or ())["accord-denied"] == "CLEARANCE"
    unknown = await send_as("nora", grant(target=sent.message_id[:-4] + "0000", to=DE, third=FR))
    assert unknown.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sent no such message" in (unknown.details() or "")
    log = await nl.access_store.entries()
    assert any(e.user == "nick" and e.outcome == "refused" for e in log)
    async with connect(nl.config.home, user="nora") as c:
        await c.api.Send(
            local_pb2.SendRequest(content=grant(target=sent.message_id, to=DE, third=FR))
        )


async def run_accord(*args: str | Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node.cli", *map(str, args),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_forward_may_set_stricter_terms_never_looser(fed3: Federation) -> None:
    """Issue 11, item 9: NL lets DE pass its incident on with consent, but DE and FR agreed to
    no onward transfer at all: `accord forward --onward FORBIDDEN` makes the forward fit that
    agreement; a lower TLP is refused locally (MARKINGS_LOOSENED)."""
    fed3.authority.set_agreements(
        (
            open_agreement((NL, DE), fed3.now, id="AGR-NL-DE"),
            open_agreement((DE, FR), fed3.now, id="AGR-DE-FR", onward_transfer="FORBIDDEN"),
        ),
        now=fed3.now,
    )
    nl, de, fr = await fed3.start_all()
    await add_user(de, "dora", "supervisor")
    original = await node_send(nl, incident(to=[DE]))
    consent = await node_send(nl, grant(target=original.message_id, to=DE, third=FR))
    await held(de, consent.message_id, sender=NL)
    base = ("forward", original.message_id, "--to", FR, "--justification", WHY)
    where = ("--home", de.config.home, "--as", "dora")
    code, _, err = await run_accord(*base, *where)
    assert code == 2 and "ONWARD_TRANSFER_EXCEEDS_AGREEMENT" in err, err
    code, _, err = await run_accord(*base, "--onward", "forbidden", "--tlp", "clear", *where)
    assert code == 2 and "MARKINGS_LOOSENED" in err and "TLP:CLEAR" in err, err
    code, out, err = await run_accord(*base, "--onward", "forbidden", "--tlp", "red", *where)
    assert code == 0, err
    forwarded = out.strip()
    await held(fr, forwarded, sender=DE)
    row = await fr.store.get_message(forwarded, sender=DE)
    assert row is not None and row.tlp == "RED"
    content = fr.store.open_content(row)
    assert content is not None
    assert pb.MessageContent.FromString(content).onward_transfer == pb.ONWARD_TRANSFER_FORBIDDEN


def test_a_loosened_tlp_is_named_in_the_one_spelling_outputs_use() -> None:
    """TLP 2.0's AMBER+STRICT, as every listing and refusal prints it (issue 11, item 7)."""
    original = complete(incident(to=[DE]), sender=NL)
    original.tlp = pb.TLP_AMBER_STRICT
    forward = complete(incident(to=[FR]), sender=DE)
    forward.tlp = pb.TLP_GREEN
    with pytest.raises(Refused, match="TLP:GREEN is lower than the original's TLP:AMBER\\+STRICT"):
        onward.check_markings_kept(
            meta_of(forward), meta_of(original), purposes=[original.purpose], now=datetime.now(UTC)
        )
