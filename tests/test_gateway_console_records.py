"""The console's review/hold queue, redress on a sent message, audit log, transparency report
and overdue badge, over real HTTP as a browser without script uses them."""

from __future__ import annotations

from datetime import timedelta

from accord.v1 import message_pb2 as pb
from node.clock import OffsetClock
from tests.gateway_harness import client, gateway, person
from tests.harness import Federation, liaison, node_send, until_delivered, wait_for
from tests.test_gateway_api import bearer, incident_json, receipts_state
from tests.test_gateway_console import csrf_of, log_in, text_of

NL, DE = "NL-POL", "DE-BKA"


async def test_review_holds_redress_audit_report_and_overdue(fed2: Federation) -> None:
    nl, de = await fed2.start_all()
    anna_token = await person(nl, "anna", "liaison_officer")
    await person(nl, "audrey", "auditor")
    await person(de, "bert", "liaison_officer")
    await person(de, "carla", "supervisor")
    async with (
        gateway(nl) as nl_url,
        gateway(de) as de_url,
        client(nl_url) as anna,
        client(nl_url) as audrey,
        client(de_url) as bert,
        client(de_url) as carla,
    ):
        for c, name in ((anna, "anna"), (audrey, "audrey"), (bert, "bert"), (carla, "carla")):
            await log_in(c, name)
        sent = await anna.post(
            "/api/v1/messages", json=incident_json(retention_days=5), headers=bearer(anna_token)
        )
        message_id = sent.json()["message_id"]

        async def accepted() -> bool:
            return await receipts_state(anna, message_id, anna_token) == ["ACCEPTED"]

        await wait_for(accepted)

        # DE's supervisor holds it from the review queue; an officer may not.
        queue = await carla.get("/review")
        assert queue.status_code == 200 and message_id in queue.text
        assert 'data-held="no"' in queue.text and "expires in" in queue.text
        target = f"message:{message_id}"
        form = {"csrf_token": csrf_of(queue), "target": target, "justification": ""}
        unjustified = await carla.post("/holds", data=form)
        assert unjustified.status_code == 403 and "JUSTIFICATION" in unjustified.text
        page = await bert.get("/review")
        assert page.status_code == 403 and "ROLE" in page.text
        by_officer = await bert.post(
            "/holds", data={**form, "csrf_token": csrf_of(await bert.get("/inbox"))}
        )
        assert by_officer.status_code == 403 and "ROLE" in by_officer.text
        untargeted = await carla.post("/holds", data={**form, "target": "everything"})
        assert untargeted.status_code == 400 and "name a message or a thread" in untargeted.text
        held = await carla.post("/holds", data={**form, "justification": "case 2026/0042"})
        assert held.status_code == 303 and held.headers["location"] == "/review"
        assert 'data-held="yes"' in (await carla.get("/review")).text

        # The originator's redress from the message view; its status there, holder by holder.
        view = await anna.get(f"/messages/{message_id}")
        assert "No redress of this message has been sent" in view.text
        assert 'action="/messages/' in view.text and "Send redress" in view.text
        telepathy = await anna.post(
            f"/messages/{message_id}/redress",
            data={"csrf_token": csrf_of(view), "type": "TELEPATHY", "reason": "wrong"},
        )
        assert telepathy.status_code == 400 and "type: Value error" in text_of(telepathy)
        asked = await anna.post(
            f"/messages/{message_id}/redress",
            data={"csrf_token": csrf_of(view), "type": "ERASURE_REQUEST", "reason": "wrong"},
        )
        assert asked.status_code == 303

        async def holder_answered() -> bool:
            text = text_of(await anna.get(f"/messages/{message_id}"))
            return f"{DE} (direct) confirmed held legal hold" in text

        await wait_for(holder_answered)
        # The holder cannot redress what it did not send: the node says so.
        theirs = await bert.get(f"/messages/{message_id}", params={"sender": NL})
        assert "Send redress" not in theirs.text
        refused = await bert.post(
            f"/messages/{message_id}/redress",
            data={"csrf_token": csrf_of(theirs), "type": "ERASURE_REQUEST", "reason": "x"},
        )
        assert refused.status_code == 404 and "originator" in refused.text

        queue = await carla.get("/review")
        release = {"csrf_token": csrf_of(queue), "target": target, "note": "ok"}
        too_short = await carla.post("/holds/release", data=release)
        assert too_short.status_code == 403 and "JUSTIFICATION" in too_short.text
        released = await carla.post(
            "/holds/release", data={**release, "note": "case 2026/0042 closed"}
        )
        assert released.status_code == 303, text_of(released)
        assert 'data-held="yes"' not in (await carla.get("/review")).text

        # Auditors: the audit log (filtered, paged) and the report; an officer gets 403.
        log = await audrey.get("/audit", params={"actor": "anna", "action": "send"})
        assert log.status_code == 200 and 'id="audit-log"' in log.text
        rows = log.text.count("<tr data-seq=")
        assert rows == 2  # the incident and the erasure request
        assert (await anna.get("/audit")).status_code == 403
        report = await audrey.get("/report")
        assert report.status_code == 200
        shown = text_of(report)
        assert "messages.sent.total 2" in shown and "redress.ERASURE_REQUEST.sent 1" in shown
        denied = await anna.get("/report")
        assert denied.status_code == 403 and "ROLE" in denied.text
        assert (await audrey.get("/report", params={"from": "soon"})).status_code == 400

        # An overdue request for information: a badge and its deadline in DE's inbox.
        request = liaison(to=[DE])
        request.urgency = pb.URGENCY_URGENT  # due in 8 hours
        request.directly_accessible = True
        asked_info = await node_send(nl, request)
        await until_delivered(nl, asked_info)
        assert "status-received" in (await bert.get("/inbox")).text
        clock = fed2.clock
        assert isinstance(clock, OffsetClock)
        clock.advance(timedelta(hours=9))
        await log_in(bert, "bert")  # the session expired with the hours
        inbox = await bert.get("/inbox")
        assert 'class="status status-overdue">overdue' in inbox.text and "was due" in inbox.text
