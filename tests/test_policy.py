"""The inbound policy as a pure object: no server, no I/O (STYLE.md's sigstore habit)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from accord.v1 import message_pb2 as pb
from certs.directory import Directory, Purpose
from node.errors import Reason, Refused
from node.messages import MessageMeta
from node.policy import Policy
from tests.harness import ALL_PURPOSES, complete, incident, liaison, meta_of, open_agreement

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"


def directory(**changes: object) -> Directory:
    return Directory(
        federation="accord.test",
        serial=1,
        issued_at=NOW,
        valid_until=NOW + timedelta(days=30),
        purposes=tuple(Purpose(p, p) for p in ALL_PURPOSES),
        agreements=(open_agreement(changes.pop("parties", (NL, DE)), NOW, **changes),),  # type: ignore[arg-type]
    )


def meta(**fields: object) -> MessageMeta:
    content = complete(incident(to=[DE]), sender=NL)
    for key, value in fields.items():
        if key == "retention_days":
            content.retention.days = value  # type: ignore[assignment]
        elif key == "handling":
            del content.handling_codes[:]
            content.handling_codes.extend(value)  # type: ignore[arg-type]
        else:
            setattr(content, key, value)
    return meta_of(content)


def refusal(policy: Policy, m: MessageMeta, *, now: datetime = NOW) -> str:
    with pytest.raises(Refused) as caught:
        policy.check_inbound(m, peer=NL, now=now)
    return caught.value.reason.value


def test_accepts_and_takes_the_shortest_retention() -> None:
    policy = Policy(
        directory=directory(max_retention_days=60), agency=DE, local_max_retention_days=20
    )
    decision = policy.check_inbound(meta(retention_days=30), peer=NL, now=NOW)
    assert decision.agreement.id == "AGR-TEST"
    assert decision.retain_until == NOW + timedelta(days=20)
    decision = Policy(directory=directory(), agency=DE).check_inbound(
        meta(retention_days=30),
        peer=NL,
        now=NOW,
    )
    assert decision.retain_until == NOW + timedelta(days=30)


@pytest.mark.parametrize(
    ("changes", "fields", "reason"),
    [
        ({"parties": (NL, FR)}, {}, "NO_AGREEMENT"),
        ({}, {"agreement_id": "AGR-OTHER"}, "NO_AGREEMENT"),
        ({"purposes": ("missing-persons",)}, {}, "PURPOSE_NOT_PERMITTED"),
        ({}, {"purpose": "fishing-expedition"}, "UNKNOWN_PURPOSE"),
        ({"message_types": ("REQUEST_INFO",)}, {}, "TYPE_NOT_PERMITTED"),
        ({"max_retention_days": 10}, {"retention_days": 30}, "RETENTION_EXCEEDS_AGREEMENT"),
        ({"valid_from": NOW + timedelta(days=1)}, {}, "AGREEMENT_NOT_YET_VALID"),
        ({"valid_until": NOW - timedelta(seconds=1)}, {}, "AGREEMENT_EXPIRED"),
        ({"max_tlp": "GREEN"}, {}, "TLP_EXCEEDS_AGREEMENT"),
        (
            {"handling_codes": ("H0",)},
            {"handling": [pb.HANDLING_CODE_H2]},
            "HANDLING_EXCEEDS_AGREEMENT",
        ),
        ({"onward_transfer": "FORBIDDEN"}, {}, "ONWARD_TRANSFER_EXCEEDS_AGREEMENT"),
        (
            {
                "allowed_fields": {
                    "serious-crime-investigation": ("incident_id", "offence", "narrative")
                }
            },
            {},
            "FIELDS_NOT_PERMITTED",
        ),
        ({}, {"sender": FR}, "SENDER_MISMATCH"),
    ],
)
def test_each_refusal_names_its_reason(
    changes: dict[str, object], fields: dict[str, object], reason: str
) -> None:
    policy = Policy(directory=directory(**changes), agency=DE)
    assert refusal(policy, meta(**fields)) == reason


def test_wrong_recipient() -> None:
    assert refusal(Policy(directory=directory(), agency=FR), meta()) == "WRONG_RECIPIENT"


def test_minimisation_allows_listed_fields_and_entity_kinds() -> None:
    allowed = ("incident_id", "offence", "location", "narrative", "entities.person")
    policy = Policy(
        directory=directory(allowed_fields={"serious-crime-investigation": allowed}), agency=DE
    )
    policy.check_inbound(meta(), peer=NL, now=NOW)


def test_redress_flows_after_sunset_but_not_without_any_agreement() -> None:
    erasure = complete(
        pb.MessageContent(
            recipients=[DE],
            type=pb.MESSAGE_TYPE_ERASURE_REQUEST,
            purpose="serious-crime-investigation",
            control=pb.ControlBody(target_message_id="01234567-89ab-7def-8123-456789abcdef"),
        ),
        sender=NL,
    )
    ended = Policy(directory=directory(valid_until=NOW - timedelta(days=1)), agency=DE)
    ended.check_inbound(meta_of(erasure), peer=NL, now=NOW)
    nobody = Policy(directory=directory(parties=(NL, FR)), agency=DE)
    with pytest.raises(Refused) as caught:
        nobody.check_inbound(meta_of(erasure), peer=NL, now=NOW)
    assert caught.value.reason is Reason.NO_AGREEMENT


def test_a_rectification_carries_data_and_stops_at_sunset_and_at_the_field_rules() -> None:
    """Unlike an erasure, a RECTIFICATION carries a new version of personal data: it needs the
    agreement in force, and its corrected incident meets the agreement's field rules."""
    content = pb.MessageContent(
        recipients=[DE],
        type=pb.MESSAGE_TYPE_RECTIFICATION,
        purpose="serious-crime-investigation",
        control=pb.ControlBody(target_message_id="01234567-89ab-7def-8123-456789abcdef"),
    )
    content.control.corrected_incident.CopyFrom(incident(to=[DE]).incident)
    rectification = meta_of(complete(content, sender=NL))
    ended = Policy(directory=directory(valid_until=NOW - timedelta(days=1)), agency=DE)
    assert refusal(ended, rectification) == "AGREEMENT_EXPIRED"
    narrow = Policy(
        directory=directory(allowed_fields={"serious-crime-investigation": ("narrative",)}),
        agency=DE,
    )
    assert refusal(narrow, rectification) == "FIELDS_NOT_PERMITTED"
    Policy(directory=directory(), agency=DE).check_inbound(rectification, peer=NL, now=NOW)


def test_sender_runs_the_same_checks_for_every_recipient() -> None:
    policy = Policy(directory=replace(directory(), members=()), agency=NL)
    with pytest.raises(Refused) as caught:
        policy.check_outbound(meta(), now=NOW)
    assert caught.value.reason is Reason.WRONG_RECIPIENT  # DE-BKA is not a member here


def test_approval_required_for_reply_after_hit() -> None:
    reply = liaison(to=[DE], type_=pb.MESSAGE_TYPE_REPLY, purpose="serious-crime-investigation")
    reply.in_reply_to = "01234567-89ab-7def-8123-456789abcdef"
    reply = complete(reply, sender=NL)
    d = directory(approval_required=("REPLY>HIT_NOTIFICATION",))
    members = Directory.from_json(d.to_json())  # round trip through the signed format
    policy = Policy(directory=members, agency=DE)
    decision = policy.check_inbound(meta_of(reply), peer=NL, now=NOW)
    assert decision.needs_approval is False  # inbound: no replied type known
    out = Policy(directory=members, agency=NL)
    assert out._check_pair(
        meta_of(reply), sender=NL, receiver=DE, now=NOW, thread=frozenset({"HIT_NOTIFICATION"})
    ).needs_approval
    assert not out._check_pair(
        meta_of(reply), sender=NL, receiver=DE, now=NOW, thread=frozenset({"REQUEST_INFO"})
    ).needs_approval


@pytest.mark.parametrize(
    "type_",
    [
        pb.MESSAGE_TYPE_CLARIFICATION,
        pb.MESSAGE_TYPE_SPONTANEOUS_PROVISION,
        pb.MESSAGE_TYPE_DELAY_NOTICE,  # its free text can carry the data too
        pb.MESSAGE_TYPE_REQUEST_INFO,
    ],
)
def test_an_answer_to_a_hit_is_held_whatever_type_it_claims(type_: pb.MessageType) -> None:
    """`REPLY>HIT_NOTIFICATION` holds what answers a hit by what it does: any message that can
    carry data, sent into the hit's thread."""
    answer = liaison(to=[DE], type_=type_, purpose="serious-crime-investigation")
    answer.in_reply_to = "01234567-89ab-7def-8123-456789abcdef"
    if type_ == pb.MESSAGE_TYPE_DELAY_NOTICE:  # reasoned and dated, as every delay notice is
        answer.liaison.delay.reason = "the registry is offline until Monday"
        answer.liaison.delay.expected_by.FromDatetime(NOW + timedelta(days=2))
    d = directory(approval_required=("REPLY>HIT_NOTIFICATION",))
    out = Policy(directory=Directory.from_json(d.to_json()), agency=NL)
    check = meta_of(complete(answer, sender=NL))
    hit = frozenset({"HIT_NOTIFICATION"})
    assert out._check_pair(check, sender=NL, receiver=DE, now=NOW, thread=hit).needs_approval
    other = frozenset({"REQUEST_INFO"})
    assert not out._check_pair(check, sender=NL, receiver=DE, now=NOW, thread=other).needs_approval


def test_control_messages_that_carry_no_data_are_not_held_as_answers() -> None:
    d = directory(approval_required=("REPLY>HIT_NOTIFICATION",))
    out = Policy(directory=Directory.from_json(d.to_json()), agency=NL)
    target = "01234567-89ab-7def-8123-456789abcdef"
    erase = pb.MessageContent(
        recipients=[DE],
        type=pb.MESSAGE_TYPE_ERASURE_REQUEST,
        purpose="serious-crime-investigation",
        correlation_id=target,
        control=pb.ControlBody(target_message_id=target, reason="wrong person"),
    )
    check = meta_of(complete(erase, sender=NL))
    hit = frozenset({"HIT_NOTIFICATION"})
    assert not out._check_pair(check, sender=NL, receiver=DE, now=NOW, thread=hit).needs_approval


@pytest.mark.parametrize("carrier", ["liaison", "rectification"])
def test_minimisation_holds_in_every_body_that_carries_entities(carrier: str) -> None:
    """A person the agreement excludes is refused as a liaison body's entity, or in a
    RECTIFICATION's corrected incident, as in an incident body."""
    allowed = ("incident_id", "offence", "location", "narrative")
    policy = Policy(
        directory=directory(allowed_fields={"serious-crime-investigation": allowed}), agency=DE
    )
    content = incident(to=[DE])
    person = pb.IncidentBody()
    person.CopyFrom(content.incident)
    assert any(e.WhichOneof("detail") == "person" for e in person.entities)
    content.ClearField("incident")
    if carrier == "liaison":
        content.type = pb.MESSAGE_TYPE_SPONTANEOUS_PROVISION
        content.liaison.subject = "Sighting"
        content.liaison.entities.extend(person.entities)
    else:
        content.type = pb.MESSAGE_TYPE_RECTIFICATION
        content.control.target_message_id = "01234567-89ab-7def-8123-456789abcdef"
        content.control.corrected_incident.CopyFrom(person)
    assert refusal(policy, meta_of(complete(content, sender=NL))) == "FIELDS_NOT_PERMITTED"
