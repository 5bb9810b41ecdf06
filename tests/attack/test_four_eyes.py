"""Attacker (b): a liaison officer releasing data after a hit without a second person.

docs/policy.md: `approval_required` names "replies to a type (`TYPE>REPLIED_TYPE`, e.g. a
reply releasing data after a Prüm-style hit)"; "a reply's thread decides, not only
`in_reply_to`".
"""

from __future__ import annotations

import grpc
import pytest

from accord.v1 import local_pb2
from accord.v1 import message_pb2 as pb
from node.client import connect
from tests.attack.common import assert_refusal
from tests.harness import Federation, add_user, held, liaison, node_send, open_agreement

PURPOSE = "serious-crime-investigation"


@pytest.mark.parametrize(
    "released_as",
    [pb.MESSAGE_TYPE_CLARIFICATION, pb.MESSAGE_TYPE_SPONTANEOUS_PROVISION],
    ids=["clarification", "spontaneous_provision"],
)
async def test_data_released_in_answer_to_a_hit_waits_whatever_its_type(
    fed2: Federation, released_as: pb.MessageType
) -> None:
    """The NL-DE agreement holds REPLY>HIT_NOTIFICATION for four eyes. DE notifies NL of a hit;
    NL's officer answers it -- in_reply_to the hit, in its thread, with the suspect's details --
    as a CLARIFICATION (or SPONTANEOUS_PROVISION) instead of a REPLY, and it goes out at once.
    Secure: a message answering a hit waits for a supervisor whatever type it claims (or only
    REPLY may answer a hit)."""
    agreement = open_agreement(
        fed2.agencies, fed2.now, approval_required=("REPLY>HIT_NOTIFICATION",)
    )
    fed2.authority.set_agreements((agreement,), now=fed2.now)
    nl, de = await fed2.start_all()
    await add_user(nl, "nina", "liaison_officer", [PURPOSE])
    hit = await node_send(
        de, liaison(to=[nl.agency], type_=pb.MESSAGE_TYPE_HIT_NOTIFICATION, purpose=PURPOSE)
    )
    await held(nl, hit.message_id, sender=de.agency)

    def answer(type_: pb.MessageType) -> pb.MessageContent:
        content = liaison(to=[de.agency], type_=type_, purpose=PURPOSE, text="Jansen, Piet, 1987")
        content.in_reply_to = hit.message_id
        content.correlation_id = hit.message_id
        return content

    async with connect(nl.config.home, user="nina") as c:
        as_reply = await c.api.Send(local_pb2.SendRequest(content=answer(pb.MESSAGE_TYPE_REPLY)))
        assert as_reply.pending_approval  # the rule as written: held
        try:
            other = await c.api.Send(local_pb2.SendRequest(content=answer(released_as)))
        except grpc.aio.AioRpcError as refused:
            assert_refusal(refused)  # only a REPLY may answer a hit: secure too
            return
    assert other.pending_approval, (
        f"the hit was answered as {pb.MessageType.Name(released_as)} without a second person"
    )
