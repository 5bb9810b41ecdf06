"""Sample messages for the benchmarks and the tests: one place, so both exchange
the same realistic incident."""

from __future__ import annotations

from collections.abc import Sequence

from accord.v1 import message_pb2 as pb

ROBBERY = "Armed robbery of a cash transport on the A2 near the border."


def incident(
    *,
    to: Sequence[str],
    purpose: str = "serious-crime-investigation",
    retention_days: int = 30,
    narrative: str = ROBBERY,
    type_: pb.MessageType = pb.MESSAGE_TYPE_INCIDENT_PUBLISH,
) -> pb.MessageContent:
    """An incident about an armed robbery near Venlo, with one graded suspect."""
    content = pb.MessageContent(
        recipients=list(to),
        type=type_,
        purpose=purpose,
        legal_basis="Council Framework Decision 2006/960/JHA",
        handling_codes=[pb.HANDLING_CODE_H0],
        tlp=pb.TLP_AMBER,
        retention=pb.Retention(days=retention_days),
        onward_transfer=pb.ONWARD_TRANSFER_WITH_ORIGINATOR_CONSENT,
        urgency=pb.URGENCY_NORMAL,
    )
    body = content.incident
    body.incident_id = "INC-2026-0042"
    body.offence.CopyFrom(
        pb.OffenceCode(scheme="eu-eaw-32", code="armed-robbery", label="Organised or armed robbery")
    )
    body.location.CopyFrom(pb.Location(country="NL", place="Venlo"))
    body.narrative = narrative
    person = body.entities.add(entity_id="p1")
    person.person.CopyFrom(
        pb.Person(role=pb.PERSON_ROLE_SUSPECT, family_name="Jansen", given_names="Piet")
    )
    person.evaluation.CopyFrom(
        pb.Evaluation(source=pb.SOURCE_RELIABILITY_B, information=pb.INFORMATION_ACCURACY_2)
    )
    return content
