"""Purpose limitation between real nodes: agreements, access control, onward transfer,
four-eyes approval, directory reload and the published policy."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from accord.v1 import local_pb2
from accord.v1 import message_pb2 as pb
from certs.ca import FederationAuthority
from node.client import connect
from node.errors import Refused
from node.signing import ENVELOPE, public_key_of, verify, verify_signed
from node.wire import parse_receipt
from tests.harness import (
    ALL_PURPOSES,
    Federation,
    RawExchange,
    add_user,
    complete,
    envelope_frame,
    held,
    incident,
    liaison,
    member_key,
    node_send,
    open_agreement,
    until_delivered,
    wait_for,
)

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"


def set_agreement(fed: Federation, **changes: object) -> None:
    parties = changes.pop("parties", fed.agencies)
    fed.authority.set_agreements((open_agreement(parties, fed.now, **changes),), now=fed.now)  # type: ignore[arg-type]
    fed.reload_all()


CASES: list[tuple[str, dict[str, object], dict[str, object]]] = [
    ("NO_AGREEMENT", {"parties": (NL, FR)}, {}),
    ("PURPOSE_NOT_PERMITTED", {"purposes": ("missing-persons",)}, {}),
    ("TYPE_NOT_PERMITTED", {"message_types": ("REQUEST_INFO",)}, {}),
    ("RETENTION_EXCEEDS_AGREEMENT", {"max_retention_days": 10}, {}),
    ("AGREEMENT_NOT_YET_VALID", {"valid_from": "future"}, {}),
    ("AGREEMENT_EXPIRED", {"valid_until": "past"}, {}),
    ("TLP_EXCEEDS_AGREEMENT", {"max_tlp": "GREEN"}, {}),
    ("HANDLING_EXCEEDS_AGREEMENT", {"handling_codes": ("H1",)}, {}),
    ("ONWARD_TRANSFER_EXCEEDS_AGREEMENT", {"onward_transfer": "FORBIDDEN"}, {}),
    (
        "FIELDS_NOT_PERMITTED",
        {
            "allowed_fields": {
                "serious-crime-investigation": ("incident_id", "offence", "narrative")
            }
        },
        {},
    ),
    ("UNKNOWN_PURPOSE", {}, {"purpose": "fishing-expedition"}),
]


async def test_each_policy_refusal_on_both_sides(fed3: Federation) -> None:
    """The sender refuses locally, and the receiver (if asked anyway) refuses with the same code
    in a signed REJECTED receipt; nothing is stored on either side."""
    nl, de, _ = await fed3.start_all()
    nl_key = member_key(fed3, NL)
    for reason, changes, fields in CASES:
        resolved = dict(changes)
        if resolved.get("valid_from") == "future":
            resolved["valid_from"] = fed3.now + timedelta(days=2)
            resolved["valid_until"] = fed3.now + timedelta(days=30)
        if resolved.get("valid_until") == "past":
            resolved["valid_from"] = fed3.now - timedelta(days=30)
            resolved["valid_until"] = fed3.now - timedelta(days=1)
        set_agreement(fed3, **resolved)
        draft = incident(to=[DE])
        for key, value in fields.items():
            setattr(draft, key, value)
        with pytest.raises(Refused) as caught:
            await node_send(nl, draft)
        assert caught.value.reason.value == reason, f"sender side of {reason}: {caught.value}"

        content = complete(draft, sender=NL).SerializeToString()
        async with RawExchange(fed3, as_agency=NL, to=de) as raw:
            receipt = await raw.send(envelope_frame(content, nl_key))
        info = parse_receipt(receipt.content)
        assert not info.accepted and info.reason_code == reason, f"receiver side: {info}"
        assert verify_signed(
            public_key_of(de.trust.member_peer(DE, de.clock.now())[0].certificate()),
            receipt.content,
            receipt.signature,
        )
    assert await de.store.count("messages") == 0
    assert await nl.store.count("messages") == 0
    assert await de.store.count("rejections") == len(CASES)


async def test_directory_reload_takes_effect_without_restart(fed3: Federation) -> None:
    nl, de, _ = await fed3.start_all()
    set_agreement(fed3, purposes=("missing-persons",))
    with pytest.raises(Refused):
        await node_send(nl, incident(to=[DE]))
    # The authority publishes a wider agreement; the nodes notice on their own (polling).
    fed3.authority.set_agreements((open_agreement(fed3.agencies, fed3.now),), now=fed3.now)
    serial = fed3.authority.directory().serial

    async def loaded() -> bool:
        return all(
            n.trust.directory is not None and n.trust.directory.serial == serial for n in (nl, de)
        )

    await wait_for(loaded, timeout=nl.config.federation.reload_seconds * 3 + 2)
    sent = await node_send(nl, incident(to=[DE]))
    await until_delivered(nl, sent)


async def test_older_unsigned_or_foreign_directory_is_refused(fed3: Federation) -> None:
    nl, *_ = await fed3.start_all()
    path = fed3.authority.directory_path
    sig = path.with_name("directory.json.sig")
    old_doc, old_sig = path.read_bytes(), sig.read_bytes()
    set_agreement(fed3, purposes=("missing-persons",))
    assert nl.trust.directory is not None
    current = nl.trust.directory.serial

    path.write_bytes(old_doc)  # an older, validly signed directory
    sig.write_bytes(old_sig)
    nl.reload()
    assert nl.trust.directory.serial == current

    doc = json.loads(old_doc)  # a newer serial nobody signed
    doc["serial"] = current + 10
    path.write_bytes(json.dumps(doc).encode())
    nl.reload()
    assert nl.trust.directory.serial == current
    sig.unlink()  # no signature at all
    nl.reload()
    assert nl.trust.directory.serial == current

    other = FederationAuthority.init(fed3.root / "rogue", federation="accord.test", now=fed3.now)
    for _ in range(current + 1):
        other.publish_directory(now=fed3.now)  # a higher serial, signed by the wrong CA
    path.write_bytes(other.directory_path.read_bytes())
    sig.write_bytes(other.directory_path.with_name("directory.json.sig").read_bytes())
    nl.reload()
    assert nl.trust.directory.serial == current
    assert nl.trust.directory.agreements[0].purposes == ("missing-persons",)


async def test_reading_needs_role_clearance_and_justification(fed3: Federation) -> None:
    nl, de, _ = await fed3.start_all()
    await add_user(nl, "anna", "liaison_officer")
    await add_user(de, "bert", "liaison_officer", purposes=["serious-crime-investigation"])
    await add_user(de, "carl", "liaison_officer", purposes=["missing-persons"])
    await add_user(de, "olga", "auditor")
    await add_user(de, "sue", "supervisor")
    async with connect(nl.config.home, user="anna") as c:
        sent = await c.api.Send(local_pb2.SendRequest(content=incident(to=[DE])))
        red = incident(to=[DE])
        red.tlp = pb.TLP_RED
        sent_red = await c.api.Send(local_pb2.SendRequest(content=red))

    async def arrived() -> bool:
        return await de.store.count("messages") == 2

    await wait_for(arrived)
    why = "Case 2026/117: identify the suspect of the Venlo robbery"

    async def get(user: str, message_id: str, justification: str) -> pb.MessageContent:
        async with connect(de.config.home, user=user) as c:
            response = await c.api.Get(
                local_pb2.GetRequest(message_id=message_id, justification=justification)
            )
            content: pb.MessageContent = response.content
            return content

    for user, justification, denied in [
        ("carl", why, "CLEARANCE"),  # cleared for another purpose
        ("bert", "", "JUSTIFICATION"),
        ("olga", why, "ROLE"),  # auditors see logs, not content
        ("admin", why, "ROLE"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await get(user, sent.message_id, justification)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert dict(caught.value.trailing_metadata() or ())["accord-denied"] == denied, user
    content = await get("bert", sent.message_id, why)
    assert content.incident.narrative.startswith("Armed robbery")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get("bert", sent_red.message_id, why)
    assert "TLP:RED" in (caught.value.details() or "")
    assert (await get("sue", sent_red.message_id, why)).tlp == pb.TLP_RED

    async with connect(de.config.home, user="carl") as c:  # the inbox shows cleared purposes only
        assert len((await c.api.Inbox(local_pb2.InboxRequest())).messages) == 0
    async with connect(de.config.home, user="olga") as c:
        log = (
            await c.api.AccessLog(local_pb2.AccessLogRequest(message_id=sent.message_id))
        ).entries
    outcomes = {(e.user, e.outcome) for e in log if e.action == "consult"}
    assert outcomes == {
        ("carl", "refused"),
        ("bert", "refused"),
        ("olga", "refused"),
        ("admin", "refused"),
        ("bert", "granted"),
    }
    granted = next(e for e in log if e.outcome == "granted")
    assert granted.justification == why and granted.purpose == "serious-crime-investigation"


async def test_onward_transfer_needs_the_originators_grant(fed3: Federation) -> None:
    nl, de, fr = await fed3.start_all()
    await add_user(nl, "nina", "supervisor")
    await add_user(de, "dirk", "liaison_officer")
    await add_user(fr, "fleur", "liaison_officer")
    why = "Suspect believed to have crossed into France"
    async with connect(nl.config.home, user="nina") as c:
        original = await c.api.Send(local_pb2.SendRequest(content=incident(to=[DE])))
        forbidden_draft = incident(to=[DE])
        forbidden_draft.onward_transfer = pb.ONWARD_TRANSFER_FORBIDDEN
        forbidden = await c.api.Send(local_pb2.SendRequest(content=forbidden_draft))

    async def count(node_store: object, n: int) -> bool:
        return await node_store.count("messages") >= n  # type: ignore[attr-defined, no-any-return]

    await wait_for(lambda: count(de.store, 2))

    async def forward(message_id: str) -> grpc.aio.AioRpcError | local_pb2.SendResponse:
        async with connect(de.config.home, user="dirk") as c:
            try:
                response: local_pb2.SendResponse = await c.api.Forward(
                    local_pb2.ForwardRequest(message_id=message_id, to=FR, justification=why)
                )
                return response
            except grpc.aio.AioRpcError as exc:
                return exc

    for message_id, reason in [
        (original.message_id, "ONWARD_TRANSFER_NOT_AUTHORISED"),
        (forbidden.message_id, "ONWARD_TRANSFER_FORBIDDEN"),
    ]:
        refused = await forward(message_id)
        assert isinstance(refused, grpc.aio.AioRpcError)
        assert dict(refused.trailing_metadata() or ())["accord-reason"] == reason

    # DE asks, NL grants (request and grant are correlated messages).
    async with connect(de.config.home, user="dirk") as c:
        request = await c.api.Send(
            local_pb2.SendRequest(
                content=pb.MessageContent(
                    recipients=[NL],
                    type=pb.MESSAGE_TYPE_TRANSFER_AUTHORISATION_REQUEST,
                    purpose="serious-crime-investigation",
                    correlation_id=original.message_id,
                    control=pb.ControlBody(
                        target_message_id=original.message_id, third_agency=FR, reason=why
                    ),
                )
            )
        )
    await wait_for(lambda: count(nl.store, 3))
    async with connect(nl.config.home, user="nina") as c:
        await c.api.Send(
            local_pb2.SendRequest(
                content=pb.MessageContent(
                    recipients=[DE],
                    type=pb.MESSAGE_TYPE_TRANSFER_AUTHORISATION_GRANT,
                    purpose="serious-crime-investigation",
                    in_reply_to=request.message_id,
                    correlation_id=original.message_id,
                    control=pb.ControlBody(
                        target_message_id=original.message_id, third_agency=FR, granted=True
                    ),
                )
            )
        )
    await wait_for(lambda: count(de.store, 4))

    forwarded = await forward(original.message_id)
    assert isinstance(forwarded, local_pb2.SendResponse), forwarded
    await wait_for(lambda: count(fr.store, 1))
    async with connect(fr.config.home, user="fleur") as c:
        got = await c.api.Get(
            local_pb2.GetRequest(message_id=forwarded.message_id, justification=why)
        )
    inner = got.content.forwarded
    nl_key = public_key_of(fr.trust.member_peer(NL, fr.clock.now())[0].certificate())
    assert verify(nl_key, inner.content, inner.signature, ENVELOPE, inner.proof)  # NL signed it
    assert pb.MessageContent.FromString(inner.content).message_id == original.message_id
    assert got.content.transfer_authorisation.content  # the grant travels with it

    # The third agency checks for itself: a forward without the grant is refused there.
    bare = pb.MessageContent()
    bare.CopyFrom(got.content)
    bare.ClearField("transfer_authorisation")
    bare = complete(bare, sender=DE, message_id="01934f6e-0000-7000-8000-000000000001")
    async with RawExchange(fed3, as_agency=DE, to=fr) as raw:
        receipt = await raw.send(envelope_frame(bare.SerializeToString(), member_key(fed3, DE)))
    assert parse_receipt(receipt.content).reason_code == "ONWARD_TRANSFER_NOT_AUTHORISED"


async def test_consequential_reply_waits_for_a_second_supervisor(fed3: Federation) -> None:
    set_agreement(fed3, approval_required=("REPLY>HIT_NOTIFICATION",))
    nl, de, _ = await fed3.start_all()
    await add_user(de, "dora", "liaison_officer")
    await add_user(nl, "sam", "supervisor")
    await add_user(nl, "sue", "supervisor")
    await add_user(nl, "otto", "liaison_officer")
    async with connect(de.config.home, user="dora") as c:
        hit = await c.api.Send(
            local_pb2.SendRequest(
                content=liaison(
                    to=[NL],
                    type_=pb.MESSAGE_TYPE_HIT_NOTIFICATION,
                    purpose="serious-crime-investigation",
                    text="Prüm DNA comparison: hit on reference NL-2026-0042",
                )
            )
        )
    # NL's stream to DE is up and idle before the approval: the approved message must still
    # be picked up (it reaches the outbox by the approval, not by a send).
    opener = await node_send(nl, liaison(to=[DE], purpose="serious-crime-investigation"))

    await until_delivered(nl, opener)

    async def hit_arrived() -> bool:
        return await nl.store.get_message(hit.message_id, direction="in") is not None

    await wait_for(hit_arrived)
    reply = liaison(
        to=[DE],
        type_=pb.MESSAGE_TYPE_REPLY,
        purpose="serious-crime-investigation",
        text="Personal data of the person matched: ...",
    )
    reply.in_reply_to = hit.message_id
    async with connect(nl.config.home, user="sam") as c:
        held = await c.api.Send(local_pb2.SendRequest(content=reply))
        assert held.pending_approval
        pending = await c.api.ListApprovals(local_pb2.ListApprovalsRequest())
        assert [a.message_id for a in pending.approvals] == [held.message_id]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await c.api.Decide(local_pb2.DecideRequest(message_id=held.message_id, approve=True))
        assert dict(caught.value.trailing_metadata() or ())["accord-denied"] == "FOUR_EYES"
    async with connect(nl.config.home, user="otto") as c:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await c.api.Decide(local_pb2.DecideRequest(message_id=held.message_id, approve=True))
        assert dict(caught.value.trailing_metadata() or ())["accord-denied"] == "ROLE"
    assert await nl.store.deliveries(held.message_id) == []  # nothing left while held
    async with connect(nl.config.home, user="sue") as c:
        decided = await c.api.Decide(
            local_pb2.DecideRequest(message_id=held.message_id, approve=True, note="hit confirmed")
        )
        assert decided.state == "approved" and decided.decided_by == "sue"

    async def delivered() -> bool:
        return await de.store.get_message(held.message_id, direction="in") is not None

    await wait_for(delivered)
    # A plain reply (not after a hit) needs no approval.
    plain = liaison(to=[DE], type_=pb.MESSAGE_TYPE_REPLY, purpose="serious-crime-investigation")
    async with connect(nl.config.home, user="otto") as c:
        assert not (await c.api.Send(local_pb2.SendRequest(content=plain))).pending_approval


async def test_published_policy_is_signed_and_fetched_from_a_peer(fed3: Federation) -> None:
    nl, _de, _ = await fed3.start_all()
    await add_user(nl, "anna", "liaison_officer")
    async with connect(nl.config.home, user="anna") as c:
        own = await c.api.GetPolicy(local_pb2.PolicyRequest())
        peer = await c.api.GetPolicy(local_pb2.PolicyRequest(peer=DE))
    assert own.agency == NL and peer.agency == DE
    doc = json.loads(peer.policy_json)
    assert doc["agency"] == DE and doc["agreements"][0]["id"] == "AGR-TEST"
    assert set(doc["purposes"]) >= set(ALL_PURPOSES)
    de_key = public_key_of(nl.trust.member_peer(DE, nl.clock.now())[0].certificate())
    assert verify_signed(de_key, peer.policy_json, peer.signature)


async def test_receipts_are_shown_only_to_users_cleared_for_the_purpose(fed3: Federation) -> None:
    nl, _de, _ = await fed3.start_all()
    await add_user(nl, "anna", "liaison_officer")
    await add_user(nl, "nick", "liaison_officer", purposes=["missing-persons"])
    async with connect(nl.config.home, user="anna") as c:
        sent = await c.api.Send(local_pb2.SendRequest(content=incident(to=[DE])))
        mine = await c.api.Receipts(local_pb2.ReceiptsRequest(message_id=sent.message_id))
        assert [d.recipient for d in mine.deliveries] == [DE]
    for user, denied in (("nick", "CLEARANCE"), ("admin", "ROLE")):
        async with connect(nl.config.home, user=user) as c:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await c.api.Receipts(local_pb2.ReceiptsRequest(message_id=sent.message_id))
        assert dict(caught.value.trailing_metadata() or ())["accord-denied"] == denied


async def test_an_approval_is_sent_even_when_later_sends_overtake_its_audit_entry(
    fed3: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The approval's delivery commits, then its audit entry is written; a send committed in
    between must not make the live stream skip the approved message (it is picked up as the
    approval commits, not after the audit entry)."""
    set_agreement(fed3, approval_required=("REPLY>HIT_NOTIFICATION",))
    nl, de, _ = await fed3.start_all()
    await add_user(de, "dora", "liaison_officer")
    await add_user(nl, "sam", "supervisor")
    await add_user(nl, "sue", "supervisor")
    purpose = "serious-crime-investigation"
    async with connect(de.config.home, user="dora") as c:
        hit = await c.api.Send(
            local_pb2.SendRequest(
                content=liaison(to=[NL], type_=pb.MESSAGE_TYPE_HIT_NOTIFICATION, purpose=purpose)
            )
        )
    opener = await node_send(nl, liaison(to=[DE], purpose=purpose))

    async def hit_arrived() -> bool:
        return await nl.store.get_message(hit.message_id, direction="in") is not None

    await until_delivered(nl, opener)  # the stream is up, the hand-off live
    await wait_for(hit_arrived)
    reply = liaison(to=[DE], type_=pb.MESSAGE_TYPE_REPLY, purpose=purpose)
    reply.in_reply_to = hit.message_id
    async with connect(nl.config.home, user="sam") as c:
        held = await c.api.Send(local_pb2.SendRequest(content=reply))
    assert held.pending_approval

    real_log = nl.access_store.log
    logged = asyncio.Event()

    async def late_log(**fields: object) -> None:
        if fields.get("action") == "approve":
            await logged.wait()  # a busy writer: the audit entry lands after a send meanwhile
        await real_log(**fields)  # type: ignore[arg-type]

    monkeypatch.setattr(nl.access_store, "log", late_log)

    async def decide() -> None:
        async with connect(nl.config.home, user="sue") as c:
            await c.api.Decide(local_pb2.DecideRequest(message_id=held.message_id, approve=True))

    async def approval_committed() -> bool:
        return bool(await nl.store.deliveries(held.message_id))

    deciding = asyncio.create_task(decide())
    await wait_for(approval_committed)
    other = await node_send(nl, liaison(to=[DE], purpose=purpose, text="sent meanwhile"))
    logged.set()
    await deciding
    await until_delivered(nl, other)
    await until_delivered(nl, held.message_id, timeout=5)
    assert await de.store.get_message(held.message_id, direction="in") is not None


async def test_reading_receipts_follows_the_listing_rule_and_refusals_are_logged(
    fed3: Federation,
) -> None:
    """Who received a message, when, and what they kept is metadata: it needs a role that sees
    traffic and a clearance for the message's purpose, and every refusal is in the access log."""
    nl, _de, _fr = await fed3.start_all()
    await add_user(nl, "nina", "liaison_officer", purposes=("serious-crime-investigation",))
    await add_user(nl, "carl", "liaison_officer", purposes=("missing-persons",))
    await add_user(nl, "olga", "auditor")
    sent = await node_send(nl, incident(to=[DE], purpose="serious-crime-investigation"))

    async def receipts(user: str) -> local_pb2.ReceiptsResponse:
        async with connect(nl.config.home, user=user) as c:
            response: local_pb2.ReceiptsResponse = await c.api.Receipts(
                local_pb2.ReceiptsRequest(message_id=sent.message_id)
            )
            return response

    for user, denied in [("carl", "CLEARANCE"), ("admin", "ROLE")]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await receipts(user)
        assert dict(caught.value.trailing_metadata() or ())["accord-denied"] == denied, user
    assert [d.recipient for d in (await receipts("nina")).deliveries] == [DE]
    assert [d.recipient for d in (await receipts("olga")).deliveries] == [DE]  # auditors see all
    async with connect(nl.config.home, user="olga") as c:
        log = (
            await c.api.AccessLog(local_pb2.AccessLogRequest(message_id=sent.message_id))
        ).entries
    refused = {(e.user, e.outcome, e.detail.split(":")[0]) for e in log if e.action == "receipts"}
    assert refused == {("carl", "refused", "CLEARANCE"), ("admin", "refused", "ROLE")}


async def test_reason_codes_say_what_is_wrong(fed3: Federation, tmp_short: Path) -> None:
    """Issue 11, item 5: an unknown purpose is UNKNOWN_PURPOSE (not a clearance denial), a
    forward to a non-member says so (not that it needs a grant), and a home that does not
    exist is named as such."""
    nl, de, _ = await fed3.start_all()
    await add_user(nl, "alice", "liaison_officer", purposes=["missing-persons"])
    await add_user(de, "dirk", "supervisor")
    async with connect(nl.config.home, user="alice") as c:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await c.api.Send(
                local_pb2.SendRequest(content=incident(to=[DE], purpose="pizza-delivery"))
            )
    assert dict(refused.value.trailing_metadata() or ())["accord-reason"] == "UNKNOWN_PURPOSE"
    sent = await node_send(nl, incident(to=[DE]))
    await held(de, sent.message_id, sender=NL)
    async with connect(de.config.home, user="dirk") as c:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await c.api.Forward(
                local_pb2.ForwardRequest(
                    message_id=sent.message_id, to="ZZ-NOPE", justification="case 2026/0042 ok"
                )
            )
    assert dict(refused.value.trailing_metadata() or ())["accord-reason"] == "WRONG_RECIPIENT"
    assert "not a member of the federation" in (refused.value.details() or "")

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node.cli", "users", "add", "bob", "--role", "auditor",
        "--home", str(tmp_short / "nosuchhome"), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "nosuchhome does not exist" in err.decode() and "node run" not in err.decode()


async def test_a_reply_in_a_hits_thread_waits_however_it_names_the_hit(fed3: Federation) -> None:
    """Item 7: REPLY>HIT_NOTIFICATION is decided from the thread: a reply that names the hit
    only by its correlation id, or answers another message of the hit's thread, is held too."""
    set_agreement(fed3, approval_required=("REPLY>HIT_NOTIFICATION",))
    nl, de, _ = await fed3.start_all()
    hit = await node_send(
        de,
        liaison(
            to=[NL], type_=pb.MESSAGE_TYPE_HIT_NOTIFICATION, purpose="serious-crime-investigation"
        ),
    )
    follow_up = liaison(to=[NL], purpose="serious-crime-investigation", text="More on the hit")
    follow_up.correlation_id = hit.message_id
    later = await node_send(de, follow_up)
    await held(nl, later.message_id, sender=DE)

    def reply(**thread: str) -> pb.MessageContent:
        content = liaison(
            to=[DE], type_=pb.MESSAGE_TYPE_REPLY, purpose="serious-crime-investigation"
        )
        for name, value in thread.items():
            setattr(content, name, value)
        return content

    for named in (
        {"correlation_id": hit.message_id},
        {"in_reply_to": later.message_id, "correlation_id": hit.message_id},
        {"in_reply_to": later.message_id},
    ):
        assert (await node_send(nl, reply(**named))).pending_approval, named
    plain = await node_send(nl, reply())
    assert not plain.pending_approval


async def test_approvals_follow_purpose_clearance(fed3: Federation) -> None:
    """Item 8: a held message of a purpose a user is not cleared for is not listed to them, and
    a supervisor not cleared for it cannot approve it."""
    set_agreement(fed3, approval_required=("REPLY>HIT_NOTIFICATION",))
    nl, de, _ = await fed3.start_all()
    await add_user(nl, "sam", "supervisor")
    await add_user(nl, "mia", "supervisor", purposes=["missing-persons"])
    await add_user(nl, "ole", "liaison_officer", purposes=["missing-persons"])
    hit = await node_send(
        de,
        liaison(
            to=[NL], type_=pb.MESSAGE_TYPE_HIT_NOTIFICATION, purpose="serious-crime-investigation"
        ),
    )
    await held(nl, hit.message_id, sender=DE)
    reply = liaison(to=[DE], type_=pb.MESSAGE_TYPE_REPLY, purpose="serious-crime-investigation")
    reply.in_reply_to = hit.message_id
    async with connect(nl.config.home, user="sam") as c:
        waiting = await c.api.Send(local_pb2.SendRequest(content=reply))
        listed = await c.api.ListApprovals(local_pb2.ListApprovalsRequest())
    assert waiting.pending_approval
    assert [a.message_id for a in listed.approvals] == [waiting.message_id]
    for user in ("mia", "ole"):
        async with connect(nl.config.home, user=user) as c:
            assert not (await c.api.ListApprovals(local_pb2.ListApprovalsRequest())).approvals
    async with connect(nl.config.home, user="mia") as c:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await c.api.Decide(local_pb2.DecideRequest(message_id=waiting.message_id, approve=True))
    assert dict(denied.value.trailing_metadata() or ())["accord-denied"] == "CLEARANCE"
    decision = await nl.access_store.approval(waiting.message_id)
    assert decision is not None and decision.state == "pending"


async def test_free_text_refuses_control_characters_and_output_escapes_them(
    fed3: Federation,
) -> None:
    """Item 10: a justification (or note, reason, condition) with a newline is refused with a
    clear error and nothing is logged as granted; text already stored with one is printed
    escaped by `accord access-log`, one row per entry."""
    nl, de, _ = await fed3.start_all()
    await add_user(de, "bert", "liaison_officer")
    await add_user(de, "olga", "auditor")
    sent = await node_send(nl, incident(to=[DE]))
    await held(de, sent.message_id, sender=NL)
    forged = "case 2026/1\n2026-01-01T00:00:00  admin  consult  granted"
    async with connect(de.config.home, user="bert") as c:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await c.api.Get(local_pb2.GetRequest(message_id=sent.message_id, justification=forged))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "justification: contains the control character U+000A" in (
            refused.value.details() or ""
        )
        grant_with_newline = pb.MessageContent(
            recipients=[NL],
            type=pb.MESSAGE_TYPE_TRANSFER_AUTHORISATION_REQUEST,
            purpose="serious-crime-investigation",
            control=pb.ControlBody(
                target_message_id=sent.message_id, third_agency="FR-PN", reason="a\u202eb"
            ),
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await c.api.Send(local_pb2.SendRequest(content=grant_with_newline))
        assert "control.reason" in (refused.value.details() or "")
    assert not [e for e in await de.access_store.entries() if e.action == "consult"]

    # Stored before this rule (or by another tool): printed escaped, on one line.
    await de.access_store.log(
        at=de.clock.now(), user="bert", action="consult", outcome="refused", justification=forged
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node.cli", "access-log", "--as", "olga",
        "--home", str(de.config.home), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    lines = out.decode().splitlines()
    assert proc.returncode == 0
    assert any("case 2026/1\\n2026-01-01" in line for line in lines)
    assert not any(line.startswith("2026-01-01T00:00:00  admin") for line in lines)
