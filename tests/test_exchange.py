from __future__ import annotations

import asyncio

from accord.v1 import message_pb2 as pb
from node.signing import RECEIPT, digest, verify, verify_signed
from node.wire import parse_receipt
from tests.harness import Federation, incident, node_send, until_delivered, wait_for


async def test_round_trip_three_nodes(fed3: Federation) -> None:
    nl, de, fr = await fed3.start_all()
    sent = await node_send(nl, incident(to=["DE-BKA", "FR-PN"]))

    async def both_receipted() -> bool:
        ds = await nl.store.deliveries(sent.message_id)
        return all(d.state == "accepted" for d in ds) and len(ds) == 2

    await wait_for(both_receipted)
    for receiver in (de, fr):
        stored = await receiver.store.get_message(sent.message_id, sender="NL-POL")
        assert stored is not None
        assert receiver.store.open_content(stored) == sent.content
        assert verify_signed(
            nl.trust.member_peer("NL-POL", nl.clock.now())[1].public_key,
            sent.content,
            stored.signature,
        )
    for d in await nl.store.deliveries(sent.message_id):
        assert d.receipt is not None and d.receipt_signature is not None
        info = parse_receipt(d.receipt)
        assert info.accepted and info.content_sha256 == digest(sent.content)
        assert info.sender == "NL-POL" and info.receiver == d.recipient
        _, peer = nl.trust.member_peer(d.recipient, nl.clock.now())
        assert verify(
            peer.public_key, d.receipt, d.receipt_signature, RECEIPT, d.receipt_proof or b""
        )
    _ = pb


async def test_stop_ends_open_streams_without_waiting_out_the_grace_period(
    fed3: Federation,
) -> None:
    nl, de, _ = await fed3.start_all()
    sent = await node_send(nl, incident(to=["DE-BKA"]))

    await until_delivered(nl, sent)
    assert nl.links["DE-BKA"].connected  # the stream stays open after the work is done
    loop = asyncio.get_running_loop()
    started = loop.time()
    del fed3.nodes["DE-BKA"]
    await de.stop(grace=20.0)
    assert loop.time() - started < 5, "stop waited for the open stream's grace period"
