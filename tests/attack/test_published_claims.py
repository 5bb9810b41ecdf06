"""What a node signs and publishes must be true of the code (BRIEF): its GetPolicy answer says
expired messages are erased by crypto-shredding, and each receipt names a `retained_until`."""

from __future__ import annotations

import json
from datetime import timedelta

import grpc

from accord.v1 import local_pb2
from node.client import connect
from tests.attack.common import WHY
from tests.harness import Federation, add_user, held, incident, node_send


async def test_a_message_past_its_signed_retained_until_is_no_longer_readable(
    fed2: Federation,
) -> None:
    """NL sends DE an incident to be kept one day. DE's signed receipt says retained until
    then, and DE's signed policy says expired messages are erased ("crypto-shredding of the
    per-message data key; tombstone kept"). Two days later DE's officer still reads it in full
    (and could still forward it). Issue 13 (open) is to build the sweeper; until it lands the
    published policy states as fact what no code does. Secure: past retained_until the content
    is gone (or the policy does not claim it)."""
    nl, de = await fed2.start_all()
    token = await add_user(de, "dirk", "liaison_officer")
    sent = await node_send(nl, incident(to=[de.agency], retention_days=1))
    await held(de, sent.message_id, sender=nl.agency)
    policy = json.loads(de.published_policy().policy_json)
    if "crypto-shredding" not in json.dumps(policy.get("retention", {})):
        return  # the policy no longer claims erasure
    fed2.clock.advance(timedelta(days=2))  # type: ignore[attr-defined]
    async with connect(de.config.home, token=token) as c:
        try:
            got = await c.api.Get(
                local_pb2.GetRequest(message_id=sent.message_id, justification=WHY)
            )
        except grpc.aio.AioRpcError as gone:
            assert gone.code() == grpc.StatusCode.NOT_FOUND, gone
            return
    assert not got.HasField("envelope"), (
        "two days past its signed retained_until, the content is still served: "
        + got.content.incident.narrative[:40]
    )
