"""The transparency report (`accord report`): a scripted exchange between real nodes on the
federation's fast clock, whose figures are asserted exactly; aggregates only (no message id, user
name or content in any form); auditors and administrators only."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from accord.v1 import message_pb2 as pb
from node import wire
from node.clock import OffsetClock
from node.policy.access import User
from node.store import Store
from tests.harness import (
    Federation,
    RawExchange,
    add_user,
    complete,
    envelope_frame,
    liaison,
    member_key,
    until_delivered,
)
from tests.test_cli import Run, accord

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"
SECRET_TEXT = "Suspect Jan Jansen, born 1980"
READ_WHY = "case 2026/3141: reading the reply for the file"


async def user(store: Store, name: str) -> User:
    from node.store.access import AccessStore

    found = await AccessStore(store).user(name)
    assert found is not None
    return found


def request(to: str, purpose: str, *, urgent: bool) -> pb.MessageContent:
    content = liaison(to=[to], purpose=purpose, text=SECRET_TEXT)
    content.urgency = pb.URGENCY_URGENT if urgent else pb.URGENCY_NORMAL
    content.directly_accessible = urgent
    return content


def reply_to(request_id: str, *, purpose: str) -> pb.MessageContent:
    content = liaison(to=[NL], type_=pb.MESSAGE_TYPE_REPLY, purpose=purpose, text=SECRET_TEXT)
    content.in_reply_to = content.correlation_id = request_id
    return content


async def report(fed: Federation, agency: str, as_user: str, *form: str) -> Run:
    clock = fed.clock
    since = (clock.now() - timedelta(hours=12)).isoformat()
    until = (clock.now() + timedelta(hours=12)).isoformat()
    return await accord("report", "--from", since, "--to", until, *form,
                        "--home", fed.homes[agency], "--as", as_user)  # fmt: skip


async def test_a_scripted_exchange_gives_exact_figures_and_names_nothing(
    fed3: Federation,
) -> None:
    fed = fed3
    clock = fed.clock
    assert isinstance(clock, OffsetClock)
    nl, de, fr = await fed.start_all()
    for node in (nl, de, fr):
        await add_user(node, "officer", "liaison_officer")
    await add_user(nl, "auditor", "auditor")
    nl_officer = await user(nl.store, "officer")

    async def send(node_officer: User, node: object, content: pb.MessageContent) -> str:
        sent = await node.operations.send(node_officer, wire.draft(content))  # type: ignore[attr-defined]
        await until_delivered(node, sent)  # type: ignore[arg-type]
        return str(sent.message_id)

    # NL asks DE (urgent, 8 hours) and FR (twice: 7 days, and urgent), and informs both.
    r1 = await send(nl_officer, nl, request(DE, "missing-persons", urgent=True))
    r2 = await send(nl_officer, nl, request(FR, "missing-persons", urgent=False))
    r3 = await send(nl_officer, nl, request(FR, "counter-terrorism", urgent=True))
    info = liaison(to=[DE, FR], type_=pb.MESSAGE_TYPE_SPONTANEOUS_PROVISION,
                   purpose="counter-terrorism", text=SECRET_TEXT)  # fmt: skip
    provided = await send(nl_officer, nl, info)
    # ...and asks DE to erase what it provided (redress, by kind).
    erase = pb.MessageContent(
        recipients=[DE], type=pb.MESSAGE_TYPE_ERASURE_REQUEST, purpose="counter-terrorism",
        legal_basis="LED Art. 16", retention=pb.Retention(days=30),
    )  # fmt: skip
    erase.control.target_message_id = provided
    erase.control.reason = "provided in error"
    erasure = await send(nl_officer, nl, erase)
    # FR answers the 7-day request at once; a crafted envelope from FR is refused by NL.
    fr_reply = await send(
        await user(fr.store, "officer"), fr, reply_to(r2, purpose="missing-persons")
    )
    bad = complete(liaison(to=[NL], purpose="not-a-purpose"), sender=FR)
    async with RawExchange(fed, as_agency=FR, to=nl) as stream:
        receipt = await stream.send(envelope_frame(bad.SerializeToString(), member_key(fed, FR)))
    refused = pb.ReceiptContent.FromString(receipt.content)
    assert refused.status == pb.RECEIPT_STATUS_REJECTED
    # Nine hours on, DE answers late; FR never answers the urgent one.
    clock.advance(timedelta(hours=9))
    de_reply = await send(
        await user(de.store, "officer"), de, reply_to(r1, purpose="missing-persons")
    )
    # An officer reads DE's reply, and is refused once (no justification).
    await nl.operations.read(nl_officer, message_id=de_reply, sender=DE, justification=READ_WHY)
    try:
        await nl.operations.read(nl_officer, message_id=de_reply, sender=DE, justification="")
    except Exception as exc:  # the refusal is what is counted
        assert "JUSTIFICATION" in str(exc) or "justification" in str(exc)
    else:
        raise AssertionError("a read without justification was allowed")

    run = await report(fed, NL, "auditor", "--json")
    assert run.code == 0, run
    doc = json.loads(run.out)
    assert doc["agency"] == NL
    figures = {k: v for k, v in doc.items() if k not in ("agency", "from", "to", "as_of")}
    assert figures == {
        "messages": {
            "sent": {
                "total": 5,
                "by_purpose": {"counter-terrorism": 3, "missing-persons": 2},
                "by_type": {"ERASURE_REQUEST": 1, "REQUEST_INFO": 3, "SPONTANEOUS_PROVISION": 1},
                "by_peer": {DE: 3, FR: 3},
            },
            "received": {
                "total": 2,
                "by_purpose": {"missing-persons": 2},
                "by_type": {"REPLY": 2},
                "by_peer": {DE: 1, FR: 1},
            },
        },
        "refusals": {
            "by_this_node": {refused.reason_code: 1},
            "by_peers": {},
            "of_local_users": {"consult": 1},
        },
        "reads": {"granted": 1, "refused": 1},
        "evidence_exports": 0,
        "forwards": 0,
        "erasures": {"sent": 0, "received": 0},
        "redress": {
            "ERASURE_REQUEST": {"sent": 1, "received": 0},
            "RECTIFICATION": {"sent": 0, "received": 0},
            "INCIDENT_RETRACT": {"sent": 0, "received": 0},
        },
        "holds": {"held_for_approval": 0, "legal_holds": {"placed": 0, "released": 0}},
        "approvals": {"approved": 0, "rejected": 0, "pending": 0},
        "requests": {
            "received": {"answered_in_time": 0, "answered_late": 0, "overdue": 0, "open": 0},
            "sent": {"answered_in_time": 1, "answered_late": 1, "overdue": 1, "open": 0},
        },
    }
    assert refused.reason_code  # a named reason, counted under its name

    # The requested side counts the same request from its end.
    await add_user(de, "auditor", "auditor")
    run = await report(fed, DE, "auditor", "--json")
    de_doc = json.loads(run.out)
    assert de_doc["requests"]["received"] == {
        "answered_in_time": 0, "answered_late": 1, "overdue": 0, "open": 0
    }  # fmt: skip
    assert de_doc["messages"]["received"]["by_type"] == {
        "ERASURE_REQUEST": 1, "REQUEST_INFO": 1, "SPONTANEOUS_PROVISION": 1
    }  # fmt: skip
    assert de_doc["redress"]["ERASURE_REQUEST"] == {"sent": 0, "received": 1}

    # Aggregates only, in every form: no message id, user name, justification or content.
    outputs = [run.out]
    for form in ((), ("--md",), ("--json",)):
        run = await report(fed, NL, "auditor", *form)
        assert run.code == 0, run
        outputs.append(run.out)
    text = outputs[1].splitlines()
    assert "messages.sent.total: 5" in text and "requests.sent.overdue: 1" in text
    assert "holds.legal_holds.placed: 0" in text and "refusals.by_peers: none" in text
    md = outputs[2]
    assert md.startswith(f"# Transparency report: {NL}") and "| answered late | 0 | 1 |" in md
    ids = [r1, r2, r3, provided, erasure, fr_reply, de_reply, refused.message_id, bad.message_id]
    names = ["officer", "auditor", "admin"]
    forbidden = [*ids, *names, SECRET_TEXT, READ_WHY, "Aachen", "provided in error"]
    for out in outputs:
        for word in forbidden:
            assert word not in out, (word, out[:400])

    # Auditors and administrators may run it; liaison officers may not (and that is logged).
    run = await report(fed, NL, "admin")
    assert run.code == 0, run
    run = await report(fed, NL, "officer")
    assert run.code == 2 and "permission denied (ROLE)" in run.err, run
    assert "auditors and administrators" in run.err
    rows = await nl.access_store.entries(limit=5)
    assert (rows[0].action, rows[0].outcome, rows[0].user) == ("report", "refused", "officer")


async def test_a_bad_period_is_a_usage_error(fed2: Federation, tmp_short: Path) -> None:
    await fed2.start_all()
    home = fed2.homes[NL]
    for since, until, words in (
        ("2026-02-01", "2026-01-01", "is not after"),
        ("yesterday", "2026-01-01", "is not a date"),
        ("2026-01-01T00:00:00", "2026-02-01", "needs a UTC offset"),
    ):
        run = await accord("report", "--from", since, "--to", until, "--home", home)
        assert run.code == 2 and words in run.err, run
        assert len(run.err.strip().splitlines()) == 1
    # A date is a whole UTC day: --to includes the day it names.
    run = await accord("report", "--from", "2026-01-01", "--to", "2026-01-01", "--json",
                       "--home", home)  # fmt: skip
    assert run.code == 0, run
    doc = json.loads(run.out)
    assert (doc["from"], doc["to"]) == ("2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00")
