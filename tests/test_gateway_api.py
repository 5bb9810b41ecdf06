"""The gateway's HTTP/JSON API over real HTTP (uvicorn on port 0), in front of real nodes with
real mutual TLS between them, as people (session cookie + CSRF) and systems (bearer tokens)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format

from gateway.server import Tls, bind
from node import samples
from node.app import Node
from tests.gateway_harness import PASSWORD, client, federation, gateway, login, person
from tests.harness import Federation, wait_for

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"
JUSTIFICATION = "case 2026/0042: check the suspect named by NL"


def incident_json(**changes: Any) -> dict[str, Any]:
    body = json_format.MessageToDict(
        samples.incident(to=[DE]).incident, preserving_proto_field_name=True
    )
    message = {
        "recipients": [DE],
        "type": "INCIDENT_PUBLISH",
        "purpose": "serious-crime-investigation",
        "body": body,
        "tlp": "AMBER",
        "handling_codes": ["H0"],
        "onward_transfer": "WITH_ORIGINATOR_CONSENT",
        "retention_days": 30,
        "legal_basis": "Council Framework Decision 2006/960/JHA",
    }
    return {**message, **changes}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(answer: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()["error"]
    assert body["status"] == answer.status_code
    return body


async def receipts_state(c: httpx.AsyncClient, message_id: str, token: str) -> list[str]:
    answer = await c.get(f"/api/v1/messages/{message_id}/receipts", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    return [d["state"] for d in answer.json()["deliveries"]]


async def test_people_log_in_read_with_justification_and_systems_send(
    fed3: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    nl, de, _ = await fed3.start_all()
    anna = await person(nl, "anna", "liaison_officer")
    await person(de, "bert", "liaison_officer")
    async with (
        gateway(nl) as nl_url,
        gateway(de) as de_url,
        client(nl_url) as system,
        client(de_url) as browser,
    ):
        # A case-management system sends with its token; no session, no CSRF token.
        sent = await system.post("/api/v1/messages", json=incident_json(), headers=bearer(anna))
        assert sent.status_code == 201, sent.text
        message_id = sent.json()["message_id"]
        assert sent.json() == {
            "message_id": message_id,
            "recipients": [DE],
            "pending_approval": False,
        }

        # A person logs in: the session cookie is HttpOnly, SameSite=Strict, Path=/.
        answer = await browser.post("/api/v1/login", json={"name": "bert", "password": PASSWORD})
        assert answer.status_code == 200
        cookie = answer.headers["set-cookie"].lower()
        for flag in ("httponly", "samesite=strict", "path=/"):
            assert flag in cookie
        assert "secure" not in cookie  # plain HTTP here; see the TLS test
        csrf = answer.json()["csrf_token"]
        assert answer.json()["user"]["name"] == "bert"
        me = (await browser.get("/api/v1/me")).json()
        assert me["user"]["role"] == "liaison_officer" and me["csrf_token"] == csrf

        async def arrived() -> list[dict[str, Any]]:
            listed = await browser.get("/api/v1/messages", params={"peer": NL})
            return list(listed.json()["messages"])

        (summary,) = await wait_for(arrived)
        assert summary["message_id"] == message_id
        assert summary["type"] == "INCIDENT_PUBLISH" and summary["tlp"] == "AMBER"
        assert "content" not in summary and summary["retain_until"]
        filtered = await browser.get("/api/v1/messages", params={"type": "REQUEST_INFO"})
        assert filtered.json()["messages"] == []
        bad = await browser.get("/api/v1/messages", params={"type": "TELEPATHY"})
        assert bad.status_code == 400 and error_of(bad)["code"] == "INVALID_ARGUMENT"

        read = f"/api/v1/messages/{message_id}/read"
        refused = await browser.post(read, json={"justification": ""}, headers=csrf_h(csrf))
        assert refused.status_code == 403
        assert error_of(refused)["denied"] == "JUSTIFICATION"
        shown = await browser.post(
            read, json={"justification": JUSTIFICATION}, headers=csrf_h(csrf)
        )
        assert shown.status_code == 200, shown.text
        message = shown.json()
        assert message["content"]["incident"]["narrative"] == samples.ROBBERY
        assert message["markings"]["tlp"] == "AMBER"
        assert message["markings"]["handling_codes"] == ["H0"]
        assert len(message["content_sha256"]) == 64

        async def accepted() -> bool:
            return await receipts_state(system, message_id, anna) == ["ACCEPTED"]

        await wait_for(accepted)
        deliveries = (
            await system.get(f"/api/v1/messages/{message_id}/receipts", headers=bearer(anna))
        ).json()["deliveries"]
        assert deliveries[0]["content_sha256"] == message["content_sha256"]

        session = browser.cookies["accord_session"]
        logout = await browser.post("/api/v1/logout", headers=csrf_h(csrf))
        assert logout.status_code == 204
        assert "accord_session" not in browser.cookies
        async with client(de_url, cookies={"accord_session": session}) as replay:
            after = await replay.get("/api/v1/me")
        assert after.status_code == 401 and error_of(after)["code"] == "UNAUTHENTICATED"

    # Nothing personal in the gateway's log: no content, justification, password or token.
    logged = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("accord.gateway")
    )
    assert "POST /api/v1/messages/{message_id}/read 403" in logged
    for secret in (samples.ROBBERY, "Jansen", JUSTIFICATION, PASSWORD, anna, "bert"):
        assert secret not in logged
    served = "\n".join(
        r.getMessage()
        for r in caplog.records
        if r.name.split(".")[0] in ("accord", "uvicorn", "fastapi", "starlette")
    )
    for secret in (samples.ROBBERY, JUSTIFICATION, PASSWORD):
        assert secret not in served


async def watchers(node: Node, count: int) -> None:
    """Wait until the node has `count` live feeds registered (a feed's response headers can
    arrive just before its watch is)."""

    async def counted() -> bool:
        return len(node.watchers) == count

    await wait_for(counted)


def csrf_h(token: str) -> dict[str, str]:
    return {"X-CSRF-Token": token}


async def test_errors_carry_the_node_reason_codes(fed3: Federation) -> None:
    nl, _, _ = await fed3.start_all()
    anna = await person(nl, "anna", "liaison_officer")
    async with gateway(nl) as url, client(url) as c:
        too_long = await c.post(
            "/api/v1/messages", json=incident_json(retention_days=400), headers=bearer(anna)
        )
        assert too_long.status_code == 422
        assert error_of(too_long)["reason"] == "RETENTION_EXCEEDS_AGREEMENT"
        not_cleared = await c.post(
            "/api/v1/messages", json=incident_json(purpose="cybercrime"), headers=bearer(anna)
        )
        assert not_cleared.status_code == 403 and error_of(not_cleared)["denied"] == "CLEARANCE"
        bad_body = await c.post(
            "/api/v1/messages", json=incident_json(body={"nonsense": 1}), headers=bearer(anna)
        )
        assert bad_body.status_code == 400 and "IncidentBody" in error_of(bad_body)["message"]
        bad_type = await c.post(
            "/api/v1/messages", json=incident_json(type="TELEPATHY"), headers=bearer(anna)
        )
        assert bad_type.status_code == 400 and "type" in error_of(bad_type)["message"]
        naive = await c.post(
            "/api/v1/messages",
            json=incident_json(retention_days=None, retention_until="2026-12-01T00:00:00"),
            headers=bearer(anna),
        )
        assert naive.status_code == 400 and "UTC offset" in error_of(naive)["message"]
        sideways = await c.get("/api/v1/messages?direction=sideways", headers=bearer(anna))
        assert sideways.status_code == 400 and "direction" in error_of(sideways)["message"]
        unknown = await c.post(
            "/api/v1/messages/0190f3a0-0000-7000-8000-000000000000/read",
            json={"justification": JUSTIFICATION},
            headers=bearer(anna),
        )
        assert unknown.status_code == 404 and error_of(unknown)["code"] == "NOT_FOUND"
        nobody = await c.get("/api/v1/messages")
        assert nobody.status_code == 401 and nobody.headers["www-authenticate"] == "Bearer"
        forged = await c.get("/api/v1/messages", headers=bearer("not-a-token"))
        assert forged.status_code == 401
        odd = await c.get("/api/v1/messages", headers={"Authorization": "Basic abc"})
        assert odd.status_code == 401
        missing = await c.get("/api/v1/nothing-here")
        assert missing.status_code == 404 and error_of(missing)["code"] == "NOT_FOUND"
        huge = await c.post("/api/v1/messages", content=b"x" * (9 << 20), headers=bearer(anna))
        assert huge.status_code == 413 and error_of(huge)["code"] == "RESOURCE_EXHAUSTED"

        async def chunks() -> Any:
            for _ in range(10):
                yield b" " * (1 << 20)

        streamed = await c.post("/api/v1/messages", content=chunks(), headers=bearer(anna))
        assert streamed.status_code in (400, 413)  # refused either way, never read whole


async def test_csrf_origin_and_another_users_session_are_refused(fed3: Federation) -> None:
    nl, de, _ = await fed3.start_all()
    await person(nl, "anna", "liaison_officer")
    await person(de, "bert", "liaison_officer")
    await person(de, "dora", "liaison_officer")
    async with (
        gateway(nl) as nl_url,
        gateway(de) as de_url,
        client(de_url) as bert,
        client(de_url) as dora,
        client(nl_url) as anna,
    ):
        bert_csrf = await login(bert, "bert")
        dora_csrf = await login(dora, "dora")
        await login(anna, "anna")
        send = incident_json(recipients=[NL])

        no_token = await bert.post("/api/v1/messages", json=send)
        assert no_token.status_code == 403 and error_of(no_token)["denied"] == "CSRF"
        # Dora's token is made for her session: worthless with Bert's.
        swapped = await bert.post("/api/v1/messages", json=send, headers=csrf_h(dora_csrf))
        assert swapped.status_code == 403 and error_of(swapped)["denied"] == "CSRF"
        cross_site = await bert.post(
            "/api/v1/messages",
            json=send,
            headers={**csrf_h(bert_csrf), "Origin": "https://evil.example"},
        )
        assert cross_site.status_code == 403 and error_of(cross_site)["denied"] == "ORIGIN"
        # A form posted from another site, with the cookie the browser adds.
        form = await bert.post(
            "/compose",
            data={"to": NL, "type": "INCIDENT_PUBLISH"},
            headers={"Origin": "https://evil.example"},
        )
        assert form.status_code == 403
        form = await bert.post("/compose", data={"to": NL, "type": "INCIDENT_PUBLISH"})
        assert form.status_code == 403 and "CSRF" in form.text
        ok = await bert.post("/api/v1/messages", json=send, headers=csrf_h(bert_csrf))
        assert ok.status_code == 201, ok.text

        # Another node's session is nobody here.
        nl_session = anna.cookies["accord_session"]
        async with client(de_url, cookies={"accord_session": nl_session}) as foreign:
            assert (await foreign.get("/api/v1/me")).status_code == 401
        # Someone else's session cookie with one's own CSRF token: the token does not match.
        dora_session = dora.cookies["accord_session"]
        async with client(de_url, cookies={"accord_session": dora_session}) as mixed:
            answer = await mixed.post("/api/v1/logout", headers=csrf_h(bert_csrf))
        assert answer.status_code == 403 and error_of(answer)["denied"] == "CSRF"
        assert (await dora.get("/api/v1/me")).status_code == 200


async def test_login_is_rate_limited_per_address_and_the_node_locks_out(
    tmp_short: Path,
) -> None:
    fed = Federation(tmp_short, [NL, DE])
    home = fed.homes[DE]
    config = home / "config.toml"
    config.write_text(re.sub(r"(?m)^max_failures = .*$", "max_failures = 3", config.read_text()))
    try:
        de = await fed.start(DE)
        await person(de, "bert", "liaison_officer")
        async with gateway(de, login_rate=4) as url, client(url) as c:
            answers = [
                await c.post("/api/v1/login", json={"name": "bert", "password": "wrong guess!!"})
                for _ in range(3)
            ]
            # Locked after the third: answered as a wrong password is, the right one too.
            assert [a.status_code for a in answers] == [401, 401, 401]
            locked = await c.post("/api/v1/login", json={"name": "bert", "password": PASSWORD})
            assert locked.status_code == 401 and error_of(locked) == error_of(answers[0])
            limited = await c.post("/api/v1/login", json={"name": "bert", "password": PASSWORD})
            assert limited.status_code == 429
            assert error_of(limited)["code"] == "RESOURCE_EXHAUSTED"
    finally:
        await fed.stop_all()


async def test_approvals_forwarding_policy_and_the_auditor_view(tmp_short: Path) -> None:
    fed = federation(tmp_short, [NL, DE, FR], approval_required=("HIT_NOTIFICATION",))
    try:
        nl, de, _ = await fed.start_all()
        anna = await person(nl, "anna", "liaison_officer")
        carla = await person(nl, "carla", "supervisor")
        audrey = await person(nl, "audrey", "auditor")
        bert = await person(de, "bert", "liaison_officer")
        async with (
            gateway(nl) as nl_url,
            gateway(de) as de_url,
            client(nl_url) as c,
            client(de_url) as d,
        ):
            hit = {
                "recipients": [DE],
                "type": "HIT_NOTIFICATION",
                "purpose": "missing-persons",
                "body": {"subject": "Hit", "hit": {"reference": "PRUM-1", "hit": True}},
                "tlp": "GREEN",
                "handling_codes": ["H0"],
                "retention_days": 30,
            }
            held = await c.post("/api/v1/messages", json=hit, headers=bearer(anna))
            assert held.status_code == 201 and held.json()["pending_approval"] is True
            message_id = held.json()["message_id"]
            assert await receipts_state(c, message_id, anna) == ["APPROVAL-PENDING"]
            pending = (await c.get("/api/v1/approvals", headers=bearer(carla))).json()
            assert [a["message_id"] for a in pending["approvals"]] == [message_id]
            assert pending["approvals"][0]["type"] == "HIT_NOTIFICATION"
            approve = f"/api/v1/approvals/{message_id}/approve"
            own = await c.post(approve, json={}, headers=bearer(anna))
            assert own.status_code == 403 and error_of(own)["denied"] == "ROLE"
            reject = await c.post(
                f"/api/v1/approvals/{message_id}/reject", json={}, headers=bearer(carla)
            )
            assert reject.status_code == 400 and "note" in error_of(reject)["message"]
            done = await c.post(approve, json={"note": "hit confirmed"}, headers=bearer(carla))
            assert done.status_code == 200 and done.json()["state"] == "approved"

            async def accepted() -> bool:
                return await receipts_state(c, message_id, anna) == ["ACCEPTED"]

            await wait_for(accepted)

            # DE may not pass NL's message on without NL's consent: the node's reason code.
            forward = await d.post(
                f"/api/v1/messages/{message_id}/forward",
                json={"to": FR, "justification": "FR asked about the same person"},
                headers=bearer(bert),
            )
            assert forward.status_code == 422
            assert error_of(forward)["reason"] == "ONWARD_TRANSFER_NOT_AUTHORISED"

            policy = (await c.get("/api/v1/policy", headers=bearer(anna))).json()
            assert policy["agency"] == NL and policy["signature"]
            assert policy["policy"]["agreements"][0]["approval_required"] == ["HIT_NOTIFICATION"]
            peer = (await c.get("/api/v1/policy?peer=DE-BKA", headers=bearer(anna))).json()
            assert peer["agency"] == DE
            members = (await c.get("/api/v1/members", headers=bearer(anna))).json()
            assert sorted(m["agency"] for m in members["members"]) == [DE, FR, NL]

            options = (
                await c.get("/api/v1/compose-options?to=DE-BKA", headers=bearer(anna))
            ).json()
            by_type = {o["value"]: o for o in options["types"]}
            assert by_type["INCIDENT_PUBLISH"]["offered"]
            assert by_type["HIT_NOTIFICATION"]["offered"]
            assert "supervisor approves" in by_type["HIT_NOTIFICATION"]["why"]
            assert not by_type["ERASURE_REQUEST"]["offered"]
            by_purpose = {o["value"]: o for o in options["purposes"]}
            assert not by_purpose["cybercrime"]["offered"]
            assert "AGR-TEST" in by_purpose["cybercrime"]["why"]
            assert options["max_retention_days"] == 365

            denied = await c.get("/api/v1/access-log", headers=bearer(anna))
            assert denied.status_code == 403 and error_of(denied)["denied"] == "ROLE"
            log = (await c.get("/api/v1/access-log", headers=bearer(audrey))).json()
            actions = {(e["user"], e["action"], e["outcome"]) for e in log["entries"]}
            assert ("carla", "approve", "granted") in actions
            assert ("anna", "read-access-log", "refused") in actions
    finally:
        await fed.stop_all()


async def test_live_events_over_http(fed3: Federation) -> None:
    nl, de, _ = await fed3.start_all()
    anna = await person(nl, "anna", "liaison_officer")
    await person(de, "bert", "liaison_officer")
    async with (
        gateway(nl) as nl_url,
        gateway(de) as de_url,
        client(nl_url) as system,
        client(de_url) as browser,
    ):
        nobody = await browser.get("/api/v1/events")
        assert nobody.status_code == 401
        await login(browser, "bert")
        async with browser.stream("GET", "/api/v1/events") as feed:
            assert feed.status_code == 200
            assert feed.headers["content-type"].startswith("text/event-stream")
            lines = feed.aiter_lines()
            assert await anext(lines) == "retry: 3000"

            await watchers(de, 1)
            sent = await system.post("/api/v1/messages", json=incident_json(), headers=bearer(anna))
            message_id = sent.json()["message_id"]
            event: dict[str, str] = {}
            async with asyncio.timeout(15):
                async for line in lines:
                    if not line:
                        if event.get("event") == "message":
                            break
                        event = {}
                        continue
                    key, _, value = line.partition(": ")
                    event[key] = value
        data = json.loads(event["data"])
        assert event["id"] == message_id and data["message_id"] == message_id
        assert data["sender"] == NL and data["purpose"] == "serious-crime-investigation"
        assert "content" not in data

        # A feed whose session ends says so (once something arrives), then closes.
        await watchers(de, 0)  # the first feed's is gone: the next one is the feed's own
        async with browser.stream("GET", "/api/v1/events") as feed:
            await watchers(de, 1)
            csrf = (await browser.get("/api/v1/me")).json()["csrf_token"]
            session = browser.cookies["accord_session"]
            assert (await browser.post("/api/v1/logout", headers=csrf_h(csrf))).status_code == 204
            await system.post("/api/v1/messages", json=incident_json(), headers=bearer(anna))
            async with asyncio.timeout(15):
                rest = [line async for line in feed.aiter_lines()]
        assert "event: end" in rest and "event: message" not in rest
        async with client(de_url, cookies={"accord_session": session}) as ended:
            assert (await ended.get("/api/v1/events")).status_code == 401

        # A feed whose node goes away closes without `end`: the browser reconnects.
        await login(browser, "bert")
        await watchers(de, 0)
        async with browser.stream("GET", "/api/v1/events") as feed:
            await watchers(de, 1)
            await fed3.stop(DE)
            async with asyncio.timeout(15):
                rest = [line async for line in feed.aiter_lines()]
        assert "event: end" not in rest


async def test_security_headers_openapi_and_docs(fed3: Federation) -> None:
    nl, _, _ = await fed3.start_all()
    async with gateway(nl) as url, client(url) as c:
        for path in ("/login", "/docs", "/openapi.json", "/api/v1/me", "/healthz"):
            answer = await c.get(path)
            csp = answer.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
            assert "unsafe-inline" not in csp
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["referrer-policy"] == "same-origin"
            assert answer.headers["cache-control"] == "no-store", path
        assert (nl.config.home / "gateway.key").stat().st_mode & 0o777 == 0o600
        static = await c.get("/static/console.js")
        assert static.status_code == 200 and "cache-control" not in static.headers
        spec = (await c.get("/openapi.json")).json()
        for path in ("/api/v1/messages", "/api/v1/messages/{message_id}/read", "/api/v1/events"):
            assert path in spec["paths"]
        assert "422" in spec["paths"]["/api/v1/messages"]["post"]["responses"]
        for page in ("/login", "/docs"):
            html = (await c.get(page)).text
            # Every script is a file: no inline script or style, no other origin.
            assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/console.js" defer>']
            assert "style=" not in html and "<style" not in html and "http" not in html
        health = await c.get("/healthz")
        assert health.status_code == 200 and health.json() == {"node": "serving"}
        await fed3.stop(NL)
        down = await c.get("/healthz")
        assert down.status_code == 503
        nobody = await c.post("/api/v1/login", json={"name": "anna", "password": PASSWORD})
        assert nobody.status_code == 503 and error_of(nobody)["code"] == "UNAVAILABLE"


async def test_tls_with_the_node_certificate(fed3: Federation) -> None:
    nl, _, _ = await fed3.start_all()
    await person(nl, "anna", "liaison_officer")
    home = nl.config.home
    tls = Tls(home / "node.pem", home / "node.key")
    trust = ssl.create_default_context(cafile=str(home / "ca.pem"))
    async with gateway(nl, tls=tls) as url, client(url, verify=trust) as c:
        assert url.startswith("https://127.0.0.1:")
        answer = await c.post("/api/v1/login", json={"name": "anna", "password": PASSWORD})
        assert answer.status_code == 200
        assert "secure" in answer.headers["set-cookie"].lower()
        assert answer.headers["strict-transport-security"].startswith("max-age=")


def test_answers_are_not_held_back_by_nagle() -> None:
    # uvicorn writes headers and body apart: with Nagle on, each answer after the first on a
    # kept-alive connection waited for the client's delayed ACK (~40 ms).
    with contextlib.closing(bind("127.0.0.1", 0)) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


async def test_tlp_is_taken_in_any_cli_spelling_and_shown_in_the_tlp_2_0_one(
    fed3: Federation,
) -> None:
    nl, _, _ = await fed3.start_all()
    anna = await person(nl, "anna", "liaison_officer")
    async with gateway(nl) as url, client(url) as c:
        for spelling in ("AMBER+STRICT", "TLP:AMBER+STRICT", "amber_strict"):
            sent = await c.post(
                "/api/v1/messages", json=incident_json(tlp=spelling), headers=bearer(anna)
            )
            assert sent.status_code == 201, (spelling, sent.text)
        listed = await c.get("/api/v1/messages", params={"direction": "out"}, headers=bearer(anna))
        assert [m["tlp"] for m in listed.json()["messages"]] == ["AMBER+STRICT"] * 3
        wrong = await c.post(
            "/api/v1/messages", json=incident_json(tlp="MAUVE"), headers=bearer(anna)
        )
        assert wrong.status_code == 400
        assert (
            "tlp must be one of CLEAR, GREEN, AMBER, AMBER+STRICT, RED"
            in error_of(wrong)["message"]
        )
        schema = (await c.get("/openapi.json")).json()["components"]["schemas"]["SendIn"]
        assert "AMBER+STRICT" in str(schema["properties"]["tlp"])
