"""Only decisions about verified content are final.

A refusal for a signature that does not verify, or a key the receiver does not know yet, claims
nothing: its receipt says DEFERRED, nothing is kept, and the sender's link keeps the message
queued and sends it again. A policy refusal remembers the directory it was made under and is
decided afresh under a newer one.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest

from accord.v1 import message_pb2 as pb
from node import config as config_mod
from node.app import Node
from node.policy.access import Role, User
from node.signing import ENVELOPE, sign
from node.wire import parse_receipt
from tests.disk import fill, small_disk
from tests.harness import (
    ALL_PURPOSES,
    Federation,
    RawExchange,
    complete,
    configure,
    envelope_frame,
    grant,
    held,
    incident,
    member_key,
    node_send,
    open_agreement,
    until_delivered,
    wait_for,
)

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"


async def test_a_tampered_copy_claims_nothing(fed3: Federation) -> None:
    """Item 15: a copy whose signature does not verify is answered DEFERRED and not kept; the
    genuine envelope sent after it is accepted (not ID_CONFLICT), and the same bytes sent again
    with a good signature are accepted too (not the stored BAD_SIGNATURE)."""
    _nl, de, _fr = await fed3.start_all()
    key = member_key(fed3, NL)
    genuine = complete(incident(to=[DE]), sender=NL)
    tampered = pb.MessageContent()
    tampered.CopyFrom(genuine)
    tampered.incident.narrative = "Forged by a relay."
    forged = pb.Envelope(
        content=tampered.SerializeToString(),
        signature=sign(key, genuine.SerializeToString(), ENVELOPE),
    )
    same_bytes_bad = pb.Envelope(content=genuine.SerializeToString(), signature=b"\x30\x00")
    async with RawExchange(fed3, as_agency=NL, to=de) as raw:
        for frame in (forged, same_bytes_bad):
            info = parse_receipt((await raw.send(frame.SerializeToString())).content)
            assert (info.reason_code, info.final) == ("BAD_SIGNATURE", False), info
        assert await de.store.count("rejections") == 0
        info = parse_receipt(
            (await raw.send(envelope_frame(genuine.SerializeToString(), key))).content
        )
        assert info.accepted and info.final
        # A tampered copy after the genuine one is its own (unkept) refusal, not a conflict.
        info = parse_receipt((await raw.send(forged.SerializeToString())).content)
        assert (info.reason_code, info.final) == ("BAD_SIGNATURE", False)
    assert await de.store.count("messages") == 1


async def test_a_policy_refusal_is_decided_afresh_under_a_newer_directory(
    fed3: Federation,
) -> None:
    """Item 15: a refusal is kept with its directory serial: a copy under the same directory
    gets the same receipt, a copy under a newer one is checked again."""
    fed3.authority.set_agreements(
        (open_agreement(fed3.agencies, fed3.now, purposes=("missing-persons",)),), now=fed3.now
    )
    _nl, de, _fr = await fed3.start_all()
    frame = envelope_frame(
        complete(incident(to=[DE]), sender=NL).SerializeToString(), member_key(fed3, NL)
    )
    async with RawExchange(fed3, as_agency=NL, to=de) as raw:
        first = await raw.send(frame)
        assert parse_receipt(first.content).reason_code == "PURPOSE_NOT_PERMITTED"
        again = await raw.send(frame)
        assert again.SerializeToString() == first.SerializeToString()
        fed3.authority.set_agreements((open_agreement(fed3.agencies, fed3.now),), now=fed3.now)
        de.reload()
        info = parse_receipt((await raw.send(frame)).content)
        assert info.accepted, info
        assert parse_receipt((await raw.send(frame)).content).accepted
    assert await de.store.count("messages") == 1


async def test_a_deferred_delivery_stays_queued_and_goes_again(tmp_short: Path) -> None:
    """Item 15, both links: FR has not yet loaded the directory that lists NL, so a forward of
    NL's message is answered DEFERRED (UNKNOWN_SENDER); DE keeps it queued, and it is accepted
    once FR reloads."""
    fed = Federation(tmp_short, [DE, FR])
    configure(fed.homes[FR], "federation", reload_seconds=3600.0)  # FR reloads when told below
    try:
        de, fr = await fed.start_all()
        fed.add_member(NL)
        fed.authority.set_agreements((open_agreement((NL, DE, FR), fed.now),), now=fed.now)
        nl = await Node.open(config_mod.load(fed.homes[NL]), clock=fed.clock)
        fed.nodes[NL] = nl
        fed.authority.set_endpoint(agency=NL, endpoint=f"127.0.0.1:{nl.port}", now=fed.now)
        nl.reload()
        de.reload()
        original = await node_send(nl, incident(to=[DE]))
        consent = await node_send(nl, grant(target=original.message_id, to=DE, third=FR))
        await held(de, consent.message_id, sender=NL)
        forwarded = await de.operations.forward(
            User("dora", Role.SUPERVISOR, frozenset(ALL_PURPOSES)),
            message_id=original.message_id,
            sender=NL,
            to=FR,
            purpose="",
            justification="Suspect believed to have crossed into France",
        )

        async def deferred() -> bool:
            (d,) = await de.store.deliveries(forwarded.message_id)
            return d.state == "queued" and "UNKNOWN_SENDER" in d.last_error

        await wait_for(deferred)
        assert await fr.store.count("messages") == 0
        assert await fr.store.count("rejections") == 0
        fr.reload()
        await held(fr, forwarded.message_id, sender=DE)
        # DE stores FR's receipt after FR stored the message: waited for, not raced.
        await until_delivered(de, forwarded)
    finally:
        await fed.stop_all()


async def test_a_receiver_with_a_full_disk_defers_and_resumes_when_space_returns(
    tmp_short: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11, item 16: DE's home is on a small filesystem that fills up. NL's message is
    answered DEFERRED (STORAGE_UNAVAILABLE), stays queued at NL, DE logs it once (no
    traceback), and it is delivered within seconds of space coming back."""
    with small_disk("16m") as disk:
        fed = Federation(tmp_short, [NL, DE])
        home = disk / "de"
        shutil.move(fed.homes[DE], home)  # the receiver's home on the small disk
        fed.homes[DE] = home
        try:
            nl, de = await fed.start_all()
            caplog.set_level(logging.INFO)
            filler = fill(disk)
            sent = await node_send(nl, incident(to=[DE]))

            async def deferred_twice() -> bool:
                (d,) = await nl.store.deliveries(sent.message_id)
                return (
                    d.state == "queued"
                    and "STORAGE_UNAVAILABLE" in d.last_error
                    and (d.attempts >= 2)
                )

            await wait_for(deferred_twice, timeout=20)
            filler.unlink()
            loop = asyncio.get_running_loop()
            freed = loop.time()
            await held(de, sent.message_id, sender=NL, timeout=15)
            assert loop.time() - freed < 8.0
            # NL stores DE's receipt after DE stored the message: waited for, not raced.
            await until_delivered(nl, sent)
        finally:
            await fed.stop_all()
    said = [
        r
        for r in caplog.records
        if r.name == "node.delivery.receiver" and r.levelno >= logging.ERROR
    ]
    assert len(said) == 1 and "STORAGE_UNAVAILABLE" in said[0].getMessage()
    text = caplog.text
    assert "Traceback" not in text and "never retrieved" not in text
