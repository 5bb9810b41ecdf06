"""Attackers (a) and (b): onward transfer beyond what the originator agreed to."""

from __future__ import annotations

from datetime import timedelta

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
from tests.harness import Federation, add_user, grant, held, incident, node_send


async def test_a_forward_does_not_restart_the_originators_retention(fed3: Federation) -> None:
    """NL shares an incident with DE to be kept 2 days (counted from DE's receipt), and allows
    DE to pass it on to FR. A day and a half later DE forwards it: the forward carries "2 days"
    again, counted from FR's receipt, so FR may keep NL's data until day 3.5, beyond the date
    DE itself must let it go. Hop by hop the data outlives its originator's limit without end.
    Secure: the third agency keeps it no longer than the forwarding agency may."""
    nl, de, fr = await fed3.start_all()
    await add_user(de, "dora", "supervisor")
    assert de.store is not None and fr.store is not None
    original = await node_send(nl, incident(to=[de.agency], retention_days=2))
    consent = await node_send(nl, grant(target=original.message_id, to=de.agency, third=FR))
    await held(de, consent.message_id, sender=NL)
    at_de = await de.store.get_message(original.message_id, sender=NL)
    assert at_de is not None and at_de.retain_until is not None

    fed3.clock.advance(timedelta(hours=36))  # type: ignore[attr-defined]
    async with connect(de.config.home, user="dora") as c:
        try:
            forwarded = await c.api.Forward(
                local_pb2.ForwardRequest(message_id=original.message_id, to=FR, justification=WHY)
            )
        except grpc.aio.AioRpcError as refused:
            assert_refusal(refused)  # e.g. MARKINGS_LOOSENED: the forward would keep it longer
            return
    await held(fr, forwarded.message_id, sender=de.agency)
    at_fr = await fr.store.get_message(forwarded.message_id, sender=de.agency)
    assert at_fr is not None and at_fr.retain_until is not None
    assert at_fr.retain_until <= at_de.retain_until + timedelta(minutes=5), (
        f"DE must let NL's data go at {at_de.retain_until:%Y-%m-%d %H:%M}, and its forward lets "
        f"FR keep it until {at_fr.retain_until:%Y-%m-%d %H:%M}"
    )


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
