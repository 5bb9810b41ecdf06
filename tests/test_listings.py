"""What an officer lists (issue 11, items 9 and 10): sent messages with each recipient's state;
the inbox with urgency, deadline, status and thread; a forward's originator by agency code;
agreements and policy marked when expired; `--json` on every listing."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from accord.v1 import message_pb2 as pb
from node.policy.access import Role, User
from tests.harness import (
    ALL_PURPOSES,
    Federation,
    add_user,
    approved_user,
    liaison,
    node_send,
    open_agreement,
    wait_for,
)
from tests.test_cli import Run, accord
from tests.test_delivery import db_rows

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"
OFFICER = "officer"
WHY = "--justification=checking the case file for the listing test"


async def as_officer(fed: Federation, agency: str, *args: str | Path) -> Run:
    run = await accord(*args, "--home", fed.homes[agency], "--as", OFFICER)
    assert "Traceback" not in run.err, run.err
    return run


def accepted(fed: Federation, agency: str, message_id: str) -> bool:
    rows = db_rows(fed.homes[agency], "SELECT state FROM deliveries WHERE message_id = ?",
                   message_id)  # fmt: skip
    return bool(rows) and all(r[0] == "accepted" for r in rows)


async def test_inbox_shows_urgency_deadline_status_and_thread_and_sent_shows_states(
    fed3: Federation, tmp_short: Path
) -> None:
    fed = fed3
    for node in await fed.start_all():
        await add_user(node, OFFICER, "liaison_officer")
    nl = fed.nodes[NL]
    direct = liaison(to=[DE, FR])
    direct.directly_accessible = True
    request = await node_send(nl, direct)  # urgent, directly accessible: 8 hours
    normal = liaison(to=[DE])
    normal.urgency = pb.URGENCY_NORMAL
    later = await node_send(nl, normal)  # 7 days
    for sent in (request, later):
        await wait_for(lambda s=sent: _async(accepted(fed, NL, s.message_id)))

    run = await as_officer(fed, DE, "inbox", "--json")
    inbox = {m["message_id"]: m for m in json.loads(run.out)}
    first, second = inbox[request.message_id], inbox[later.message_id]
    created = datetime.fromisoformat(first["created_at"])
    assert first["urgency"] == "URGENT" and first["status"] == "received"
    assert datetime.fromisoformat(first["reply_deadline"]) == created + timedelta(hours=8)
    assert second["urgency"] == "NORMAL"
    assert datetime.fromisoformat(second["reply_deadline"]) == datetime.fromisoformat(
        second["created_at"]
    ) + timedelta(days=7)

    body = tmp_short / "reply.json"
    body.write_text('{"subject": "Re", "text": "Found."}')
    reply = ("send", "--to", NL, "--purpose", "missing-persons", "--body", body,
             "--tlp", "green", "--handling", "H0", "--retention-days", "30")  # fmt: skip
    run = await as_officer(fed, DE, *reply, "--type", "reply", "--reply-to", request.message_id)
    assert run.code == 0, run
    reply_id = run.out.strip()
    delay = tmp_short / "delay.json"
    reasons = {"reason": "judicial order pending", "expectedBy": "2099-01-01T00:00:00Z"}
    delay.write_text(json.dumps({"subject": "Delay", "text": "Needs an order.", "delay": reasons}))
    run = await as_officer(fed, DE, "send", "--to", NL, "--purpose", "missing-persons",
                           "--body", delay, "--tlp", "green", "--handling", "H0",
                           "--retention-days", "30", "--type", "delay_notice",
                           "--reply-to", later.message_id)  # fmt: skip
    assert run.code == 0, run

    lines = (await as_officer(fed, DE, "inbox")).out.splitlines()
    status = {line.split()[0]: line.split()[10] for line in lines[1:]}
    assert status == {request.message_id: "ANSWERED", later.message_id: "DELAYED"}

    # Nine hours on, the request FR-PN has not answered is overdue.
    fed.clock.advance(timedelta(hours=9))  # type: ignore[attr-defined]
    try:
        run = await as_officer(fed, FR, "inbox", "--json")
        (only,) = json.loads(run.out)
        assert only["status"] == "overdue"
    finally:
        fed.clock.advance(timedelta(hours=-9))  # type: ignore[attr-defined]

    await wait_for(lambda: _async(accepted(fed, DE, reply_id)))
    run = await as_officer(fed, NL, "inbox", "--json")
    (answer,) = [m for m in json.loads(run.out) if m["message_id"] == reply_id]
    assert answer["correlation_id"] == request.message_id  # the thread
    table = (await as_officer(fed, NL, "inbox")).out
    assert any(line.split()[0] == reply_id and request.message_id in line.split()
               for line in table.splitlines())  # fmt: skip

    run = await as_officer(fed, NL, "sent", "--json")
    listed = {m["message_id"]: m for m in json.loads(run.out)}
    assert [(d["recipient"], d["state"]) for d in listed[request.message_id]["deliveries"]] == [
        (DE, "ACCEPTED"), (FR, "ACCEPTED")
    ]  # fmt: skip
    table = (await as_officer(fed, NL, "sent")).out
    assert "DE-BKA ACCEPTED, FR-PN ACCEPTED" in table
    assert table.splitlines()[0].split() == ["ID", "TYPE", "PURPOSE", "SENT", "DELIVERY", "THREAD"]
    # An auditor sees every sent message; an administrator none.
    admin = await accord("sent", "--home", fed.homes[NL], "--as", "admin")
    assert admin.code == 2 and "permission denied (ROLE)" in admin.err


async def _async(value: bool) -> bool:
    return value


async def test_show_names_a_forwards_originator_by_agency_code(fed3: Federation) -> None:
    fed = fed3
    agreement = open_agreement([NL, DE, FR], fed.now, onward_transfer="ALLOWED")
    fed.authority.set_agreements((agreement,), now=fed.now)
    for node in await fed.start_all():
        await add_user(node, OFFICER, "liaison_officer")
    original = liaison(to=[DE])
    original.onward_transfer = pb.ONWARD_TRANSFER_ALLOWED
    sent = await node_send(fed.nodes[NL], original)
    await wait_for(lambda: _async(accepted(fed, NL, sent.message_id)))
    officer = User(OFFICER, Role.LIAISON_OFFICER, frozenset(ALL_PURPOSES))
    forward = await fed.nodes[DE].operations.forward(
        officer, message_id=sent.message_id, sender=NL, to=FR, purpose="",
        justification="the suspect crossed into France",
    )  # fmt: skip
    await wait_for(lambda: _async(accepted(fed, DE, forward.message_id)))

    run = await as_officer(fed, FR, "show", forward.message_id, WHY, "--json")
    assert run.code == 0, run
    doc = json.loads(run.out)
    inner = doc["content"]["forwarded"]
    assert inner["originator"] == NL and inner["message_id"] == sent.message_id
    assert inner["content"]["liaison"]["subject"] == "Missing minor, last seen near Aachen"
    text = await as_officer(fed, FR, "show", forward.message_id, WHY)
    assert f"forward of:     message {sent.message_id} by {NL}" in text.out
    assert '"originator": "NL-POL"' in text.out


async def test_expired_agreements_are_marked_and_policy_json_keeps_its_signature(
    fed3: Federation,
) -> None:
    fed = fed3
    now = fed.now
    expired = replace(
        open_agreement([NL, DE, FR], now, id="AGR-OLD"),
        valid_from=now - timedelta(days=400),
        valid_until=now - timedelta(days=1),
    )
    fed.authority.set_agreements((open_agreement([NL, DE, FR], now), expired), now=now)
    for node in await fed.start_all():
        await add_user(node, OFFICER, "liaison_officer")

    run = await accord("agreements", "show", "--dir", fed.authority.root)
    assert run.code == 0, run
    states = {line.split()[0]: line.split()[1] for line in run.out.splitlines()[2:]}
    assert states == {"AGR-TEST": "in", "AGR-OLD": "EXPIRED"}
    run = await accord("agreements", "show", "--dir", fed.authority.root, "--json")
    assert {a["id"]: a["state"] for a in json.loads(run.out)} == {
        "AGR-TEST": "in force", "AGR-OLD": "EXPIRED"
    }  # fmt: skip

    for peer in ((), ("--peer", DE)):
        run = await as_officer(fed, NL, "policy", "show", *peer)
        assert run.code == 0, run
        assert "signature verifies with" in run.out.splitlines()[0]
        rows = {line.split()[0]: line.split()[1] for line in run.out.splitlines()[2:4]}
        assert rows == {"AGR-TEST": "in", "AGR-OLD": "EXPIRED"}

        run = await as_officer(fed, NL, "policy", "show", "--json", *peer)
        doc = json.loads(run.out)
        assert doc["agreement_states"] == {"AGR-TEST": "in force", "AGR-OLD": "EXPIRED"}
        assert doc["signature_valid"] is True
        # What a third party needs: the exact signed bytes, the signature and the certificate.
        cert = x509.load_pem_x509_certificate(doc["certificate_pem"].encode())
        public = cert.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(
            base64.b64decode(doc["signature"]),
            doc["policy_json"].encode(),
            ec.ECDSA(hashes.SHA256()),
        )
        assert json.loads(doc["policy_json"]) == doc["policy"]
        assert doc["agency"] == (DE if peer else NL)
        assert doc["policy"]["handling"]["tlp"] == ["CLEAR", "GREEN", "AMBER", "AMBER+STRICT",
                                                    "RED"]  # fmt: skip


async def test_every_listing_prints_json(fed3: Federation) -> None:
    fed = fed3
    nl = (await fed.start_all())[0]
    await add_user(nl, OFFICER, "liaison_officer")
    await add_user(nl, "audrey", "auditor")
    await add_user(nl, "sam", "supervisor")
    home = fed.homes[NL]
    listings: list[tuple[str, ...]] = [
        ("inbox",),
        ("sent",),
        ("whoami",),
        ("approvals", "list"),
    ]
    for args in listings:
        run = await as_officer(fed, NL, *args, "--json")
        assert run.code == 0, (args, run)
        json.loads(run.out)
    for user, args in (
        ("admin", ("users", "list")),
        ("audrey", ("access-log",)),
        ("sam", ("approvals", "list", "--state", "all")),
    ):
        run = await accord(*args, "--json", "--home", home, "--as", user)
        assert run.code == 0, (args, run)
        assert isinstance(json.loads(run.out), list)
    await approved_user(nl, "newbie", "liaison_officer", [])
    users = json.loads((await accord("users", "list", "--json", "--home", home)).out)
    assert {u["name"]: u["role"] for u in users}["audrey"] == "auditor"
    # The user's state, as the table shows it: a user who has not redeemed the code is not
    # active, though not disabled either.
    states = {u["name"]: (u["state"], u["disabled"]) for u in users}
    assert states["audrey"] == ("active", False)
    assert states["newbie"] == ("not enrolled", False)
    log = json.loads((await accord("access-log", "--json", "--home", home, "--as", "audrey")).out)
    assert {"at", "user", "action", "outcome"} <= set(log[0])
    assert datetime.fromisoformat(log[0]["at"]) <= datetime.now(UTC)
