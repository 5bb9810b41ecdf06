"""Attackers (a) and (b): sending what the cooperation agreement forbids, under another type.

docs/policy.md: an inbound message is accepted only if an agreement in force covers sender,
receiver, purpose and type, with its fields within `allowed_fields`; "Everything else stops at
sunset". Redress types (ERASURE_REQUEST, RECTIFICATION, INCIDENT_RETRACT, HANDLING_UPDATE) are
let through after sunset and without being listed, because they "act on an earlier message,
under its terms" -- but nothing checks that they act on one, and a RECTIFICATION carries a
whole incident.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from accord.v1 import local_pb2
from accord.v1 import message_pb2 as pb
from node.client import connect
from node.ids import uuid7
from tests.attack.common import WHY, assert_refusal, trailer
from tests.harness import Federation, add_user, incident, open_agreement, wait_for

PURPOSE = "serious-crime-investigation"


async def _send_as(home: Path, user: str, content: pb.MessageContent) -> str | None:
    """The message id if the node queued it, None if it refused it."""
    async with connect(home, user=user) as c:
        try:
            sent = await c.api.Send(local_pb2.SendRequest(content=content))
        except grpc.aio.AioRpcError as refused:
            assert_refusal(refused)
            return None
    message_id: str = sent.message_id
    return message_id


def _rectification(to: str) -> pb.MessageContent:
    """A RECTIFICATION of a message that never existed, carrying a full incident with a
    named suspect and no markings at all."""
    content = pb.MessageContent(
        recipients=[to], type=pb.MESSAGE_TYPE_RECTIFICATION, purpose=PURPOSE
    )
    content.control.target_message_id = uuid7()
    content.control.reason = "corrected suspect details"
    content.control.corrected_incident.CopyFrom(incident(to=[to]).incident)
    return content


async def _delivered(fed: Federation, receiver: str, message_id: str) -> bool:
    node = fed.nodes[receiver]
    assert node.store is not None
    return await node.store.get_message(message_id, direction="in") is not None


async def test_no_personal_data_flows_after_sunset_under_a_redress_type(tmp_short: Path) -> None:
    """The NL-DE agreement has ended (sunset). NL's officer cannot send an incident
    (AGREEMENT_EXPIRED), but sends the same suspect's details as a RECTIFICATION of a message
    that does not exist: NL queues it, DE accepts it, and DE's officer reads the suspect's name.
    Secure: refused at both ends (no agreement in force, and no earlier message to rectify)."""
    fed = Federation(tmp_short, ["NL-POL", "DE-BKA"])
    ended = open_agreement(
        fed.agencies,
        fed.now,
        valid_from=fed.now - timedelta(days=30),
        valid_until=fed.now - timedelta(hours=1),
    )
    fed.authority.set_agreements((ended,), now=fed.now)
    try:
        nl, de = await fed.start_all()
        await add_user(nl, "nina", "liaison_officer", [PURPOSE])
        await add_user(de, "dirk", "liaison_officer", [PURPOSE])
        assert await _send_as(nl.config.home, "nina", incident(to=["DE-BKA"])) is None

        smuggled = await _send_as(nl.config.home, "nina", _rectification("DE-BKA"))
        if smuggled is None:
            return  # refused by the sender: secure
        try:
            await wait_for(lambda: _delivered(fed, "DE-BKA", smuggled), timeout=5)
        except AssertionError:
            return  # refused by the receiver: secure
        async with connect(de.config.home, user="dirk") as c:
            got = await c.api.Get(local_pb2.GetRequest(message_id=smuggled, justification=WHY))
        name = got.content.control.corrected_incident.entities[0].person.family_name
        raise AssertionError(
            f"after sunset DE accepted a RECTIFICATION of nothing and its officer read {name!r}"
        )
    finally:
        await fed.stop_all()


async def test_data_minimisation_holds_for_persons_in_a_liaison_body(tmp_short: Path) -> None:
    """For missing-persons the agreement allows only incident_id, location and narrative: an
    incident naming a person is refused (FIELDS_NOT_PERMITTED). The same person sent as an
    entity of a SPONTANEOUS_PROVISION's liaison body goes through. Secure: a person entity is
    refused in whatever body carries it."""
    fed = Federation(tmp_short, ["NL-POL", "DE-BKA"])
    purpose = "missing-persons"
    minimal = open_agreement(
        fed.agencies,
        fed.now,
        allowed_fields={purpose: ("incident_id", "location", "narrative")},
    )
    fed.authority.set_agreements((minimal,), now=fed.now)
    try:
        nl, _ = await fed.start_all()
        await add_user(nl, "nina", "liaison_officer", [purpose])
        as_incident = incident(to=["DE-BKA"], purpose=purpose)
        async with connect(nl.config.home, user="nina") as c:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await c.api.Send(local_pb2.SendRequest(content=as_incident))
        assert trailer(refused.value, "accord-reason") == "FIELDS_NOT_PERMITTED"

        liaison = pb.MessageContent()
        liaison.CopyFrom(as_incident)
        liaison.ClearField("incident")
        liaison.type = pb.MESSAGE_TYPE_SPONTANEOUS_PROVISION
        liaison.liaison.subject = "Sighting"
        liaison.liaison.entities.extend(as_incident.incident.entities)
        sent = await _send_as(nl.config.home, "nina", liaison)
        assert sent is None, "a person entity the agreement excludes went out in a liaison body"
    finally:
        await fed.stop_all()
