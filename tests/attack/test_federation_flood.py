"""Attacker (a): a member with its own valid certificate keeping a node busy.

docs/security.md: a hostile member cannot exhaust the node: "refusals are signed a batch at a
time like acceptances", and a peer that keeps sending refused envelopes is slowed, then cut
off for a while (limits.refusal_burst, refusals_per_second, refusal_cooldown_seconds).
"""

from __future__ import annotations

import asyncio
import os

import grpc

from accord.v1 import federation_pb2
from accord.v1 import message_pb2 as pb
from node.wire import parse_receipt
from tests.harness import (
    Federation,
    RawExchange,
    batch_receipts,
    complete,
    configure,
    envelope_frame,
    incident,
    member_key,
)

NL, DE = "NL-POL", "DE-BKA"


async def test_resending_one_accepted_envelope_is_not_a_free_flood(fed2: Federation) -> None:
    """With a refusal budget of 100 (refilled 10/s), 300 junk envelopes get NL cut off
    (tests/test_flood.py). NL instead sends one good envelope, then the same envelope again and
    again, 100 copies a frame: each copy is parsed, checked, sealed, looked up in the store and
    answered "duplicate" -- never counted, never slowed, never cut off. Measured on a node
    process with 8 such streams: one core busy for as long as NL likes, 57 000-97 000 copies
    answered in 6 s, and a local user's Send went from 4 ms (p90) to 400-780 ms (max 1.5 s).
    Secure: copies beyond what a resend needs count against the peer like refusals, so 500
    copies are slowed (a second or more) or end the stream (RESOURCE_EXHAUSTED)."""
    configure(fed2.homes[DE], "limits", refusal_burst=100, refusals_per_second=10.0)
    _, de = await fed2.start_all()
    content = complete(incident(to=[DE]), sender=NL).SerializeToString()
    envelope = pb.Envelope.FromString(envelope_frame(content, member_key(fed2, NL)))
    frame = federation_pb2.EnvelopeBatch(envelopes=[envelope] * 100).SerializeToString()
    answered = 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with RawExchange(fed2, as_agency=NL, to=de, batched=True) as raw:
        try:
            for _ in range(5):
                receipts = await batch_receipts(raw, frame, expect=100)
                assert all(parse_receipt(r.content).accepted for r in receipts)
                answered += len(receipts)
        except grpc.aio.AioRpcError as cut:
            assert cut.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, cut
            return
    elapsed = loop.time() - started
    assert elapsed >= 0.9, (
        f"{answered} copies of one envelope answered in full in {elapsed:.2f} s, never slowed"
    )


async def test_refusals_share_a_signature_on_a_stream_without_features(
    fed2: Federation,
) -> None:
    """tests/test_flood.py shows 301 refusals answered with at most 3 signatures -- on a
    stream whose opener names the `receipt-proof/v1` feature. A member simply leaves the
    feature out of its stream metadata (the "older node" path, for a protocol version that
    never shipped) and every refusal is signed alone on the event loop again, as in issue 10
    item 5. Secure: refusals are signed a batch at a time whatever the caller claims."""
    _, de = await fed2.start_all()
    frame = federation_pb2.EnvelopeBatch()
    for _ in range(300):
        frame.envelopes.add()
    async with RawExchange(fed2, as_agency=NL, to=de, batched=True, features=None) as raw:
        try:
            receipts = await batch_receipts(raw, frame.SerializeToString(), expect=300)
        except grpc.aio.AioRpcError as refused:
            # A stream that does not say what it checks is refused outright: secure too.
            assert refused.code() != grpc.StatusCode.UNKNOWN, refused
            return
    assert {parse_receipt(r.content).reason_code for r in receipts} == {"BAD_SIGNATURE"}
    signatures = len({r.signature for r in receipts})
    assert signatures <= 3, f"300 refusals cost {signatures} signatures"


async def test_one_member_cannot_fill_the_disk_with_accepted_messages(fed2: Federation) -> None:
    """Nothing bounds what a member may have *accepted*: NL sends DE messages of ~1 MB that the
    agreement allows, as fast as loopback carries them. Measured: 48 MB stored in 0.6 s (85
    MB/s), kept up to the agreement's maximum retention; at that rate a member fills a 100 GB
    disk in 20 minutes, after which DE answers every peer STORAGE_UNAVAILABLE. Secure: a
    per-peer volume limit (published with the other limits) slows or defers a member far
    above it; here 24 MB in a burst is not all taken at full speed (more than 10 MB/s)."""
    _, de = await fed2.start_all()
    key = member_key(fed2, NL)
    loop = asyncio.get_running_loop()
    started = loop.time()
    taken = 0
    async with RawExchange(fed2, as_agency=NL, to=de, batched=True) as raw:
        try:
            for _ in range(6):
                envelopes = []
                for _ in range(4):
                    draft = incident(to=[DE], narrative=os.urandom(500_000).hex())
                    content = complete(draft, sender=NL).SerializeToString()
                    envelopes.append(pb.Envelope.FromString(envelope_frame(content, key)))
                frame = federation_pb2.EnvelopeBatch(envelopes=envelopes).SerializeToString()
                receipts = await batch_receipts(raw, frame, expect=4)
                taken += sum(parse_receipt(r.content).accepted for r in receipts)
        except grpc.aio.AioRpcError as cut:
            assert cut.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, cut
            return
    elapsed = loop.time() - started
    assert taken < 24 or elapsed >= 2.4, (
        f"one member had {taken} messages of 1 MB accepted in {elapsed:.1f} s, unthrottled"
    )
