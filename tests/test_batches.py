"""ExchangeBatches: several envelopes per frame, each still signed, checked and receipted alone."""

from __future__ import annotations

import grpc
import pytest

from accord.v1 import federation_pb2
from accord.v1 import message_pb2 as pb
from node.signing import ENVELOPE, digest, sign
from node.wire import parse_receipt
from tests.harness import (
    Federation,
    RawExchange,
    batch_receipts,
    complete,
    incident,
    member_key,
)

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"


async def test_each_envelope_in_a_frame_gets_its_own_receipt_in_order(fed3: Federation) -> None:
    _nl, de, _fr = await fed3.start_all()
    nl_key, fr_key = member_key(fed3, NL), member_key(fed3, FR)
    good = [complete(incident(to=[DE]), sender=NL).SerializeToString() for _ in range(3)]
    wrong_recipient = complete(incident(to=[FR]), sender=NL).SerializeToString()
    frame = federation_pb2.EnvelopeBatch()
    frame.envelopes.add(content=good[0], signature=sign(nl_key, good[0], ENVELOPE))
    frame.envelopes.add(content=good[1], signature=sign(fr_key, good[1], ENVELOPE))  # wrong key
    frame.envelopes.add(content=wrong_recipient, signature=sign(nl_key, wrong_recipient, ENVELOPE))
    frame.envelopes.add(content=b"\xff\xff not a message", signature=b"x")
    frame.envelopes.add(content=good[2], signature=sign(nl_key, good[2], ENVELOPE))
    frame.envelopes.add(content=good[0], signature=sign(nl_key, good[0], ENVELOPE))  # a resend
    async with RawExchange(fed3, as_agency=NL, to=de, batched=True) as raw:
        receipts = await batch_receipts(raw, frame.SerializeToString(), expect=6)
    infos = [parse_receipt(r.content) for r in receipts]
    assert [i.reason_code for i in infos] == [
        "", "BAD_SIGNATURE", "WRONG_RECIPIENT", "BAD_SIGNATURE", "", "",
    ]  # fmt: skip
    assert [i.content_sha256 for i in infos] == [digest(e.content) for e in frame.envelopes]
    assert receipts[5].content == receipts[0].content  # the resend gets the original receipt
    assert await de.store.count("messages") == 2


async def test_a_frame_that_is_not_a_batch_ends_only_its_stream(fed3: Federation) -> None:
    _nl, de, _fr = await fed3.start_all()
    async with RawExchange(fed3, as_agency=NL, to=de, batched=True) as raw:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await batch_receipts(raw, b"\xff\xff\xff garbage", expect=1)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "EnvelopeBatch" in (caught.value.details() or "")
    content = complete(incident(to=[DE]), sender=NL).SerializeToString()
    ok = federation_pb2.EnvelopeBatch(
        envelopes=[
            pb.Envelope(content=content, signature=sign(member_key(fed3, NL), content, ENVELOPE))
        ]
    )
    async with RawExchange(fed3, as_agency=NL, to=de, batched=True) as raw:
        (receipt,) = await batch_receipts(raw, ok.SerializeToString(), expect=1)
    assert parse_receipt(receipt.content).accepted
