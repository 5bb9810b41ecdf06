"""The gateway's retention, redress, deadline, evidence and audit routes over real HTTP, in front
of real nodes: each answers as the node does for the calling user, refusals with its codes."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from accord.v1 import message_pb2 as pb
from node.clock import OffsetClock
from tests.gateway_harness import client, gateway, person
from tests.harness import Federation, liaison, node_send, until_delivered, wait_for
from tests.test_gateway_api import JUSTIFICATION, bearer, error_of, incident_json, receipts_state

NL, DE = "NL-POL", "DE-BKA"


async def test_redress_holds_review_evidence_and_overdue(fed2: Federation) -> None:
    nl, de = await fed2.start_all()
    anna = await person(nl, "anna", "liaison_officer")
    bert = await person(de, "bert", "liaison_officer")
    carla = await person(de, "carla", "supervisor")
    async with (
        gateway(nl) as nl_url,
        gateway(de) as de_url,
        client(nl_url) as c,
        client(de_url) as d,
    ):
        sent = await c.post("/api/v1/messages", json=incident_json(), headers=bearer(anna))
        assert sent.status_code == 201, sent.text
        message_id = sent.json()["message_id"]

        async def accepted() -> bool:
            return await receipts_state(c, message_id, anna) == ["ACCEPTED"]

        await wait_for(accepted)

        # Legal holds at DE: supervisors only, on one of a message and a thread.
        hold = {"message_id": message_id, "justification": "evidence in case 2026/0042"}
        refused = await d.post("/api/v1/holds", json=hold, headers=bearer(bert))
        assert refused.status_code == 403 and error_of(refused)["denied"] == "ROLE"
        both = {**hold, "correlation_id": "thread-1"}
        bad = await d.post("/api/v1/holds", json=both, headers=bearer(carla))
        assert bad.status_code == 400 and "one of" in error_of(bad)["message"]
        held = await d.post("/api/v1/holds", json=hold, headers=bearer(carla))
        assert held.status_code == 201, held.text
        assert held.json()["held_by"] == "carla" and held.json()["released_at"] is None
        status = (await d.get("/api/v1/retention", headers=bearer(bert))).json()
        assert (status["holds"], status["held"]) == (1, 1)
        review = await d.get("/api/v1/review?within_days=60", headers=bearer(carla))
        assert review.status_code == 200, review.text
        (item,) = review.json()["items"]
        assert item["summary"]["message_id"] == message_id and item["held"] is True
        assert "expires in" in item["why"]
        denied = await d.get("/api/v1/review", headers=bearer(bert))
        assert denied.status_code == 403 and error_of(denied)["denied"] == "ROLE"

        # Evidence: what reading needs, a justification included; the bundle is a zip.
        no_reason = await d.post(
            f"/api/v1/messages/{message_id}/evidence",
            json={"justification": ""},
            headers=bearer(bert),
        )
        assert no_reason.status_code == 403 and error_of(no_reason)["denied"] == "JUSTIFICATION"
        bundle = await d.post(
            f"/api/v1/messages/{message_id}/evidence",
            json={"justification": JUSTIFICATION},
            headers=bearer(bert),
        )
        assert bundle.status_code == 200, bundle.text
        assert bundle.headers["content-type"] == "application/zip"
        assert "attachment" in bundle.headers["content-disposition"]
        names = zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
        assert "VERIFY.sh" in names

        # Redress: the originator's, never a holder's; the held copy answers HELD.
        redress = {"type": "ERASURE_REQUEST", "reason": "unlawfully shared"}
        path = f"/api/v1/messages/{message_id}/redress"
        not_theirs = await d.post(path, json=redress, headers=bearer(bert))
        assert not_theirs.status_code == 404 and "originator" in error_of(not_theirs)["message"]
        wrong = await c.post(path, json={**redress, "type": "REPLY"}, headers=bearer(anna))
        assert wrong.status_code == 400
        bad_body = await c.post(
            path,
            json={"type": "RECTIFICATION", "reason": "x", "corrected_incident": {"nope": 1}},
            headers=bearer(anna),
        )
        assert bad_body.status_code == 400 and "IncidentBody" in error_of(bad_body)["message"]
        erasure = await c.post(path, json=redress, headers=bearer(anna))
        assert erasure.status_code == 201, erasure.text
        redress_id = erasure.json()["message_id"]

        async def answered() -> list[dict[str, Any]]:
            listed = (await c.get(path, headers=bearer(anna))).json()["redresses"]
            return [h for r in listed for h in r["holders"] if h["state"] != "pending"]

        (holder,) = await wait_for(answered)
        assert (holder["agency"], holder["result"]) == (DE, "HELD")
        assert holder["detail"] == f"legal hold hold {held.json()['id']}"
        (listed,) = (await c.get(path, headers=bearer(anna))).json()["redresses"]
        assert (listed["redress_id"], listed["type"]) == (redress_id, "ERASURE_REQUEST")

        release = {"message_id": message_id, "note": "case closed"}
        by_officer = await d.post("/api/v1/holds/release", json=release, headers=bearer(bert))
        assert by_officer.status_code == 403
        released = await d.post("/api/v1/holds/release", json=release, headers=bearer(carla))
        assert released.status_code == 200, released.text
        (gone,) = released.json()["released"]
        assert (gone["released_by"], gone["release_note"]) == ("carla", "case closed")
        assert (await d.get("/api/v1/retention", headers=bearer(bert))).json()["holds"] == 0
        # The transparency report counts the legal hold placed and released.
        dora = await person(de, "dora", "auditor")
        at = de.clock.now()
        period = {
            "from": (at - timedelta(days=1)).isoformat(),
            "to": (at + timedelta(hours=1)).isoformat(),
        }
        figures = (await d.get("/api/v1/report", params=period, headers=bearer(dora))).json()
        assert figures["holds"]["legal_holds"] == {"placed": 1, "released": 1}

        # A request for information past its legal time limit: overdue on both sides.
        request = liaison(to=[DE])
        request.urgency = pb.URGENCY_URGENT  # due in 8 hours
        request.directly_accessible = True
        asked = await node_send(nl, request)
        await until_delivered(nl, asked)
        assert (await c.get("/api/v1/overdue", headers=bearer(anna))).json()["requests"] == []
        clock = fed2.clock
        assert isinstance(clock, OffsetClock)
        clock.advance(timedelta(hours=9))
        owed = (await d.get("/api/v1/overdue", headers=bearer(bert))).json()
        (late,) = owed["requests"]
        assert (late["summary"]["message_id"], late["peer"], late["owed_by_us"]) == (
            asked.message_id,
            NL,
            True,
        )
        assert late["overdue_seconds"] > 3000
        inbox = (await d.get("/api/v1/messages", headers=bearer(bert))).json()["messages"]
        row = next(m for m in inbox if m["message_id"] == asked.message_id)
        assert row["status"] == "overdue" and row["expected_by"] is not None


async def test_audit_query_paging_and_the_transparency_report(fed2: Federation) -> None:
    nl, _ = await fed2.start_all()
    anna = await person(nl, "anna", "liaison_officer")
    audrey = await person(nl, "audrey", "auditor")
    async with gateway(nl) as url, client(url) as c:
        for _ in range(2):
            sent = await c.post("/api/v1/messages", json=incident_json(), headers=bearer(anna))
            assert sent.status_code == 201, sent.text

        denied = await c.get("/api/v1/audit", headers=bearer(anna))
        assert denied.status_code == 403 and error_of(denied)["denied"] == "ROLE"
        whole = (await c.get("/api/v1/audit", headers=bearer(audrey))).json()
        assert whole["origin"].endswith(f"/agency/{NL}/audit") and whole["verifier_key"]
        seqs = [e["seq"] for e in whole["entries"]]
        assert seqs == sorted(seqs, reverse=True) and whole["next_before"] is None
        # The refusal above is in the log, as the node wrote it.
        assert any((e["actor"], e["outcome"]) == ("anna", "refused") for e in whole["entries"])

        async def page(**params: Any) -> httpx.Response:
            return await c.get("/api/v1/audit", params=params, headers=bearer(audrey))

        first = (await page(limit=3)).json()
        assert [e["seq"] for e in first["entries"]] == seqs[:3]
        second = (await page(limit=3, before=first["next_before"])).json()
        assert [e["seq"] for e in second["entries"]] == seqs[3:6]
        sends = (await page(action="send", actor="anna")).json()["entries"]
        assert len(sends) == 2 and {e["outcome"] for e in sends} == {"queued"}
        later = (await page(since=datetime.now(UTC) + timedelta(days=1))).json()
        assert later["entries"] == []
        naive = await page(since="2026-01-01T00:00:00")
        assert naive.status_code == 400 and "UTC offset" in error_of(naive)["message"]
        assert (await page(before=1)).status_code == 400

        now = nl.clock.now()
        period = {
            "from": (now - timedelta(days=1)).isoformat(),
            "to": (now + timedelta(hours=1)).isoformat(),
        }
        report = await c.get("/api/v1/report", params=period, headers=bearer(audrey))
        assert report.status_code == 200, report.text
        doc = report.json()
        assert doc["agency"] == NL
        assert doc["messages"]["sent"]["total"] == 2
        assert doc["refusals"]["of_local_users"] == {"read-audit-log": 1}
        refused = await c.get("/api/v1/report", params=period, headers=bearer(anna))
        assert refused.status_code == 403 and error_of(refused)["denied"] == "ROLE"
        backwards = {"from": period["to"], "to": period["from"]}
        wrong = await c.get("/api/v1/report", params=backwards, headers=bearer(audrey))
        assert wrong.status_code == 400 and "after" in error_of(wrong)["message"]

        schema = (await c.get("/openapi.json")).json()["paths"]
        for route in (
            "/api/v1/audit",
            "/api/v1/report",
            "/api/v1/overdue",
            "/api/v1/holds",
            "/api/v1/holds/release",
            "/api/v1/review",
            "/api/v1/retention",
            "/api/v1/messages/{message_id}/redress",
            "/api/v1/messages/{message_id}/evidence",
        ):
            assert route in schema
