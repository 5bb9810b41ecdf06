"""Attackers (a) and (b): onward transfer beyond what the originator agreed to."""

from __future__ import annotations

import grpc

from accord.v1 import local_pb2
from node.client import connect
from tests.attack.common import (
    FR,
    NL,
    SECRET,
    WHY,
    assert_refusal,
    read_as_token,
    red_incident_at,
)
from tests.harness import Federation, add_user, grant, held


async def test_consent_to_pass_on_red_needs_the_right_to_read_it(fed3: Federation) -> None:
    """At NL, a liaison officer may not read NL's own TLP:RED incident (supervisors only), and
    may not forward it either (issue 10 item 14). Yet the same officer can send DE a
    TRANSFER_AUTHORISATION_GRANT for that very message, naming FR: NL's consent, given by
    someone who may not see what it releases; DE then forwards it and FR's supervisor reads it.
    Secure: a grant needs the right to read the message it releases (refused with TLP)."""
    nl, de, fr = await fed3.start_all()
    await add_user(nl, "nora", "liaison_officer")
    await add_user(de, "dora", "supervisor")
    fr_token = await add_user(fr, "fred", "supervisor")
    red = await red_incident_at(nl, de)
    async with connect(nl.config.home, user="nora") as c:
        try:
            sent = await c.api.Send(
                local_pb2.SendRequest(content=grant(target=red, to=de.agency, third=FR))
            )
        except grpc.aio.AioRpcError as refused:
            assert_refusal(refused)
            return
    if sent.pending_approval:
        return  # held for a supervisor, who may read it: secure too
    await held(de, sent.message_id, sender=NL)
    async with connect(de.config.home, user="dora") as c:
        forwarded = await c.api.Forward(
            local_pb2.ForwardRequest(message_id=red, to=FR, justification=WHY)
        )
    await held(fr, forwarded.message_id, sender=de.agency)
    got = await read_as_token(fr.config.home, fr_token, forwarded.message_id)
    assert got != SECRET, "an officer who may not read it released NL's TLP:RED content to FR"
