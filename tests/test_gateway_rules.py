"""What the compose form offers, and why not the rest: the pure rules, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from certs.directory import agreement_to_dict
from gateway.rules import compose_options
from tests.harness import open_agreement

NL, DE, FR, BE = "NL-POL", "DE-BKA", "FR-PN", "BE-FP"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
PURPOSES = {"serious-crime-investigation": "", "missing-persons": "", "cybercrime": ""}


def policy(*agreements: Any) -> dict[str, Any]:
    return {"purposes": PURPOSES, "agreements": [agreement_to_dict(a) for a in agreements]}


def options(doc: dict[str, Any], *, to: str | None, role: str = "liaison_officer") -> Any:
    return compose_options(
        policy=doc,
        members=[NL, DE, FR, BE],
        me=NL,
        role=role,
        clearances=["serious-crime-investigation"],
        now=NOW,
        recipient=to,
    )


def why(found: list[dict[str, Any]], value: str) -> str | None:
    """None if offered, else the reason."""
    option = next(o for o in found if o["value"] == value)
    return None if option["offered"] else str(option["why"])


def test_recipients_need_an_agreement_in_force() -> None:
    doc = policy(
        open_agreement([NL, DE], NOW, id="AGR-DE"),
        open_agreement(
            [NL, FR],
            NOW,
            id="AGR-FR",
            valid_from=NOW - timedelta(days=30),
            valid_until=NOW - timedelta(days=2),
        ),
        open_agreement(
            [NL, BE],
            NOW,
            id="AGR-BE",
            valid_from=NOW + timedelta(days=3),
            valid_until=NOW + timedelta(days=30),
        ),
    )
    found = options(doc, to=FR)["recipients"]
    assert [o["value"] for o in found] == sorted([DE, FR, BE])  # not oneself
    assert why(found, DE) is None
    assert why(found, FR) == "agreement AGR-FR ended (sunset) on 2026-05-30"
    assert why(found, BE) == "agreement AGR-BE is in force from 2026-06-04"
    # A recipient that is not offered cannot be chosen: nothing else is offered then.
    chosen = options(doc, to=FR)
    assert chosen["recipient"] is None and chosen["agreements"] == []
    assert why(chosen["purposes"], "missing-persons") == "choose a recipient first"


def test_choices_follow_the_agreement_and_the_clearances() -> None:
    doc = policy(
        open_agreement(
            [NL, DE],
            NOW,
            id="AGR-1",
            purposes=("serious-crime-investigation", "missing-persons"),
            message_types=("INCIDENT_PUBLISH", "REQUEST_INFO", "ERASURE_REQUEST"),
            max_tlp="AMBER",
            handling_codes=("H0", "H1"),
            onward_transfer="FORBIDDEN",
            approval_required=("REQUEST_INFO",),
            max_retention_days=90,
        ),
        open_agreement(
            [NL, DE], NOW, id="AGR-2", purposes=("missing-persons",), max_retention_days=30
        ),
    )
    o = options(doc, to=DE)
    assert o["recipient"] == DE and o["agreements"] == ["AGR-1", "AGR-2"]
    assert why(o["purposes"], "serious-crime-investigation") is None
    assert why(o["purposes"], "missing-persons") == "you are not cleared for this purpose"
    assert why(o["purposes"], "cybercrime") == "not a purpose of agreement AGR-1, AGR-2"
    assert why(o["types"], "INCIDENT_PUBLISH") is None
    # AGR-2 (all types) does not hold it back, so no approval note.
    assert next(t for t in o["types"] if t["value"] == "REQUEST_INFO")["why"] == ""
    assert why(o["types"], "ERASURE_REQUEST") == (
        "control messages are sent from the message they act on"
    )
    assert why(o["tlp"], "RED") is None  # AGR-2 allows up to RED
    assert o["max_retention_days"] == 90


def test_one_agreement_marks_what_needs_approval_and_its_ceilings() -> None:
    doc = policy(
        open_agreement(
            [NL, DE],
            NOW,
            id="AGR-1",
            max_tlp="AMBER",
            handling_codes=("H0",),
            onward_transfer="WITH_ORIGINATOR_CONSENT",
            approval_required=("HIT_NOTIFICATION",),
        )
    )
    o = options(doc, to=DE)
    hit = next(t for t in o["types"] if t["value"] == "HIT_NOTIFICATION")
    assert hit["offered"] and hit["why"] == "held until a supervisor approves it (AGR-1)"
    assert why(o["tlp"], "AMBER") is None
    assert why(o["tlp"], "AMBER+STRICT") == "above the highest TLP agreement AGR-1 allows"
    assert why(o["handling_codes"], "H2") == "agreement AGR-1 does not permit handling code H2"
    assert why(o["onward_transfer"], "ALLOWED") == "looser than agreement AGR-1 allows"
    assert why(o["onward_transfer"], "FORBIDDEN") is None


def test_only_officers_and_supervisors_are_offered_anything() -> None:
    doc = policy(open_agreement([NL, DE], NOW))
    o = options(doc, to=DE, role="auditor")
    assert {x["why"] for x in o["types"] + o["purposes"] + o["tlp"]} == {
        "sending needs a liaison officer or supervisor"
    }
