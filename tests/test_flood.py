"""One member cannot exhaust a node: refusals cost one signature per batch and junk is not
kept, frames and streams are capped, a peer that keeps sending refused envelopes is slowed and
then cut off while the others flow, and stored refusals expire."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import grpc
import pytest

from accord.v1 import federation_pb2
from accord.v1 import message_pb2 as pb
from node.audit.verify import AuditEntry, parse_entry
from node.clock import OffsetClock
from node.store.audit import Filters
from node.wire import parse_receipt
from tests.harness import (
    Federation,
    RawExchange,
    batch_receipts,
    complete,
    configure,
    envelope_frame,
    held,
    incident,
    member_key,
    node_send,
    wait_for,
)

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"


def junk_frame(count: int) -> bytes:
    """`count` empty envelopes in one frame: 2 bytes each on the wire."""
    frame = federation_pb2.EnvelopeBatch()
    for _ in range(count):
        frame.envelopes.add()
    return frame.SerializeToString()


async def test_refusals_share_a_signature_and_junk_is_not_kept(fed3: Federation) -> None:
    _nl, de, _fr = await fed3.start_all()
    no_id = complete(incident(to=[DE]), sender=NL)
    no_id.message_id = ""
    signed_no_id = pb.Envelope.FromString(
        envelope_frame(no_id.SerializeToString(), member_key(fed3, NL))
    )
    frame = federation_pb2.EnvelopeBatch.FromString(junk_frame(300))
    frame.envelopes.append(signed_no_id)
    async with RawExchange(fed3, as_agency=NL, to=de, batched=True) as raw:
        receipts = await batch_receipts(raw, frame.SerializeToString(), expect=301)
    infos = [parse_receipt(r.content) for r in receipts]
    assert {i.reason_code for i in infos[:300]} == {"BAD_SIGNATURE"}
    assert infos[300].reason_code == "MALFORMED" and infos[300].final
    # The receiver admits up to 128 envelopes at a time: one signature for each such batch.
    assert len({r.signature for r in receipts}) <= 3
    assert await de.store.count("rejections") == 0
    assert await de.store.count("messages") == 0


async def test_a_frame_over_the_envelope_limit_ends_only_its_stream(fed3: Federation) -> None:
    _nl, de, _fr = await fed3.start_all()
    for count in (1025, 100_000):
        async with RawExchange(fed3, as_agency=NL, to=de, batched=True) as raw:
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await batch_receipts(raw, junk_frame(count), expect=1)
        assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "1024 envelopes" in (ended.value.details() or "")
    content = complete(incident(to=[DE]), sender=NL).SerializeToString()
    frame = federation_pb2.EnvelopeBatch(
        envelopes=[pb.Envelope.FromString(envelope_frame(content, member_key(fed3, NL)))]
    )
    async with RawExchange(fed3, as_agency=NL, to=de, batched=True) as raw:
        (receipt,) = await batch_receipts(raw, frame.SerializeToString(), expect=1)
    assert parse_receipt(receipt.content).accepted


async def test_streams_per_peer_are_capped_and_published(fed3: Federation) -> None:
    configure(fed3.homes[DE], "limits", max_streams_per_peer=2)
    _nl, de, _fr = await fed3.start_all()
    limits = json.loads(de.published_policy().policy_json)["limits"]
    assert limits == {
        "max_message_bytes": 1048576,
        "max_frame_bytes": 4 * 1048576 + (1 << 20),
        "max_envelopes_per_frame": 1024,
        "max_streams_per_peer": 2,
        "refusals_per_second": 10.0,
        "refusal_burst": 1000,
        "refusal_cooldown_seconds": 60.0,
        "rejection_retention_days": 30,
        "max_clock_skew_seconds": 300.0,
        "peer_bytes_per_day": 1024**3,
        "peer_bytes_burst": 16 * 1024**2,
    }
    key = member_key(fed3, NL)

    async def one(raw: RawExchange) -> bool:
        content = complete(incident(to=[DE]), sender=NL).SerializeToString()
        return parse_receipt((await raw.send(envelope_frame(content, key))).content).accepted

    async with (
        RawExchange(fed3, as_agency=NL, to=de) as first,
        RawExchange(fed3, as_agency=NL, to=de) as second,
    ):
        assert await one(first) and await one(second)
        async with RawExchange(fed3, as_agency=NL, to=de) as third:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await one(third)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_streams_per_peer" in (refused.value.details() or "")

        async def audited() -> list[AuditEntry]:
            found = await de.audit.query(Filters(action="receive-stream"))
            return [parse_entry(e.data) for e in found]

        (entry,) = await wait_for(audited)
        assert (entry.actor, entry.peer, entry.outcome) == ("node", NL, "refused")
        assert "max_streams_per_peer" in entry.detail
        async with RawExchange(fed3, as_agency=FR, to=de) as other_peer:
            assert parse_receipt(
                (
                    await other_peer.send(
                        envelope_frame(
                            complete(incident(to=[DE]), sender=FR).SerializeToString(),
                            member_key(fed3, FR),
                        )
                    )
                ).content
            ).accepted
    async with RawExchange(fed3, as_agency=NL, to=de) as again:
        assert await one(again)


async def test_a_peer_that_keeps_sending_refused_envelopes_is_slowed_then_cut_off(
    fed3: Federation,
) -> None:
    """A budget of 100 refusals refilled at 10/s: the first 100 pass, the next 100 are slowed,
    and beyond that NL's stream ends and NL is refused for the cool-down. FR is not affected."""
    configure(fed3.homes[DE], "limits", refusal_burst=100, refusals_per_second=10.0)
    _nl, de, fr = await fed3.start_all()
    loop = asyncio.get_running_loop()
    async with RawExchange(fed3, as_agency=NL, to=de, batched=True) as raw:
        started = loop.time()
        await batch_receipts(raw, junk_frame(100), expect=100)
        assert loop.time() - started < 5.0
        started = loop.time()
        await batch_receipts(raw, junk_frame(100), expect=100)
        assert loop.time() - started >= 0.9  # slowed
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            await batch_receipts(raw, junk_frame(100), expect=100)
    assert cut.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    async with RawExchange(fed3, as_agency=NL, to=de, batched=True) as again:
        # Refused as it opens: read, not write (a write racing the refusal is reported by
        # grpcio as INTERNAL instead of the refusal's status).
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await again.read()
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "refused for" in (refused.value.details() or "")
    sent = await node_send(fr, incident(to=[DE]))
    await held(de, sent.message_id, sender=FR)


async def test_stored_refusals_expire(fed3: Federation) -> None:
    configure(fed3.homes[DE], "limits", rejection_retention_days=1)
    _nl, de, _fr = await fed3.start_all()
    key = member_key(fed3, NL)
    async with RawExchange(fed3, as_agency=NL, to=de) as raw:
        for _ in range(3):
            wrong = complete(incident(to=[FR]), sender=NL).SerializeToString()
            info = parse_receipt((await raw.send(envelope_frame(wrong, key))).content)
            assert info.reason_code == "WRONG_RECIPIENT" and info.final
    assert await de.store.count("rejections") == 3
    assert await de.sweep_rejections() == 0  # not yet a day old
    clock = fed3.clock
    assert isinstance(clock, OffsetClock)
    clock.advance(timedelta(days=2))
    assert await de.store.sweep_rejections(before=clock.now(), limit=2) == 2  # bounded
    assert await de.sweep_rejections() == 1
    assert await de.store.count("rejections") == 0


def big(narrative_bytes: int) -> pb.MessageContent:
    return incident(to=[DE], narrative="x" * narrative_bytes)


async def test_a_peer_past_its_volume_is_deferred_then_taken(fed3: Federation) -> None:
    """DE takes at most 2 MiB at once from one peer (refilled at about 2 MiB a second here):
    NL's third message of 900 kB in a burst is answered DEFERRED (VOLUME_EXCEEDED), not kept;
    NL's node sends it again and it is taken once the budget has refilled. FR's budget is its
    own."""
    configure(
        fed3.homes[DE],
        "limits",
        peer_bytes_burst=2 * 1024**2,
        peer_bytes_per_day=2 * 1024**2 * 86400,
    )
    _nl, de, _fr = await fed3.start_all()
    key = member_key(fed3, NL)
    frame = federation_pb2.EnvelopeBatch(
        envelopes=[
            pb.Envelope.FromString(
                envelope_frame(complete(big(900_000), sender=NL).SerializeToString(), key)
            )
            for _ in range(3)
        ]
    ).SerializeToString()
    async with RawExchange(fed3, as_agency=NL, to=de, batched=True) as raw:
        receipts = [parse_receipt(r.content) for r in await batch_receipts(raw, frame, expect=3)]
    assert [r.accepted for r in receipts] == [True, True, False]
    assert receipts[2].reason_code == "VOLUME_EXCEEDED" and not receipts[2].final
    assert await de.store.get_message(receipts[2].message_id, direction="in") is None

    fr_key = member_key(fed3, FR)
    fr_one = envelope_frame(complete(big(900_000), sender=FR).SerializeToString(), fr_key)
    async with RawExchange(fed3, as_agency=FR, to=de) as raw:
        assert parse_receipt((await raw.send(fr_one)).content).accepted

    sent = [await node_send(fed3.nodes[NL], big(900_000)) for _ in range(3)]
    for s in sent:
        await held(de, s.message_id, sender=NL, timeout=20)


async def test_copies_of_one_envelope_count_against_the_peer(fed3: Federation) -> None:
    """A resend costs a few copies; NL sending one accepted envelope 300 times over is cut off
    like a peer sending junk (tests/attack/test_federation_flood.py: slowed first)."""
    configure(fed3.homes[DE], "limits", refusal_burst=100, refusals_per_second=1.0)
    _nl, de, _fr = await fed3.start_all()
    content = complete(incident(to=[DE]), sender=NL).SerializeToString()
    envelope = pb.Envelope.FromString(envelope_frame(content, member_key(fed3, NL)))
    frame = federation_pb2.EnvelopeBatch(envelopes=[envelope] * 150).SerializeToString()
    async with RawExchange(fed3, as_agency=NL, to=de, batched=True) as raw:
        first = await batch_receipts(raw, frame, expect=150)
        assert all(parse_receipt(r.content).accepted for r in first)
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            for _ in range(3):
                await batch_receipts(raw, frame, expect=150)
    assert cut.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
