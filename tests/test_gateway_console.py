"""The web console's pages and forms over real HTTP, as a browser without script sends them
(the browser tests drive the same pages in Chromium, script and all)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx

from node import samples
from tests.gateway_harness import PASSWORD, client, federation, gateway, person
from tests.harness import wait_for

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, "no CSRF token in the page"
    return found.group(1)


def text_of(page: httpx.Response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text)))


async def log_in(c: httpx.AsyncClient, name: str) -> None:
    answer = await c.post("/login", data={"name": name, "password": PASSWORD})
    assert answer.status_code == 303 and answer.headers["location"] == "/inbox"


async def test_console_pages_and_forms(tmp_short: Path) -> None:
    fed = federation(
        tmp_short,
        [NL, DE, FR],
        parties=[NL, DE],
        purposes=("serious-crime-investigation", "missing-persons"),
        max_tlp="AMBER",
        approval_required=("HIT_NOTIFICATION",),
    )
    try:
        nl, de, _ = await fed.start_all()
        await person(nl, "anna", "liaison_officer")
        await person(nl, "carla", "supervisor")
        await person(de, "bert", "liaison_officer")
        await person(de, "audrey", "auditor")
        async with (
            gateway(nl) as nl_url,
            gateway(de) as de_url,
            client(nl_url) as anna,
            client(nl_url) as carla,
            client(de_url) as bert,
            client(de_url) as audrey,
        ):
            assert (await anna.get("/inbox")).headers["location"] == "/login"
            wrong = await anna.post("/login", data={"name": "anna", "password": "not it at all"})
            assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
            for c, name in ((anna, "anna"), (carla, "carla"), (bert, "bert"), (audrey, "audrey")):
                await log_in(c, name)

            # Compose offers what the agreement and the clearances allow, and says why not.
            page = await anna.get("/compose", params={"to": DE})
            assert page.status_code == 200
            shown = text_of(page)
            assert f"{FR} : no cooperation agreement between {NL} and {FR}" in shown
            assert "cybercrime — not offered: not a purpose of agreement AGR-TEST" in shown
            assert "TLP:RED not offered: above the highest TLP agreement AGR-TEST allows" in shown
            assert "hit notification — held until a supervisor approves it" in shown
            assert re.search(r'<input type="radio" name="tlp" value="RED" disabled>', page.text)
            form = {
                "csrf_token": csrf_of(page),
                "to": DE,
                "type": "INCIDENT_PUBLISH",
                "purpose": "serious-crime-investigation",
                "tlp": "AMBER",
                "handling": ["H0"],
                "onward": "FORBIDDEN",
                "retention_days": "400",
                "incident_id": "INC-7",
                "country": "NL",
                "place": "Venlo",
                "narrative": samples.ROBBERY,
            }
            nonsense = await anna.post("/compose", data={**form, "type": "TELEPATHY"})
            assert nonsense.status_code == 400 and "type must be one of" in nonsense.text
            refused = await anna.post("/compose", data=form)
            assert refused.status_code == 422
            assert "RETENTION_EXCEEDS_AGREEMENT" in refused.text
            assert samples.ROBBERY in refused.text  # what was typed is kept
            sent = await anna.post("/compose", data={**form, "retention_days": "30"})
            assert sent.status_code == 303
            message_id = sent.headers["location"].removeprefix("/messages/")

            async def receipted() -> bool:
                page = await anna.get(f"/messages/{message_id}")
                return 'data-state="ACCEPTED"' in page.text

            await wait_for(receipted)

            # The recipient: metadata without a justification, content only with one.
            async def arrived() -> bool:
                return message_id in (await bert.get("/inbox")).text

            await wait_for(arrived)
            page = await bert.get(f"/messages/{message_id}", params={"sender": NL})
            assert page.status_code == 200 and samples.ROBBERY not in page.text
            read = {"csrf_token": csrf_of(page), "sender": NL, "justification": "too short"}
            refused = await bert.post(f"/messages/{message_id}/read", data=read)
            assert refused.status_code == 403 and "JUSTIFICATION" in refused.text
            assert samples.ROBBERY not in refused.text
            read["justification"] = "case 2026/0042: robbery on the A2"
            content = await bert.post(f"/messages/{message_id}/read", data=read)
            assert content.status_code == 200 and samples.ROBBERY in content.text
            assert "TLP:AMBER" in content.text and "onward transfer" in text_of(content).lower()
            assert "this message" in content.text  # its thread

            # Four eyes: the officer's hit notification waits for the supervisor.
            page = await anna.get("/compose", params={"to": DE})
            hit = {
                "csrf_token": csrf_of(page),
                "to": DE,
                "type": "HIT_NOTIFICATION",
                "purpose": "missing-persons",
                "tlp": "GREEN",
                "handling": ["H0"],
                "retention_days": "30",
                "subject": "Hit",
                "text": "Prüm hit on the DNA profile",
            }
            held = await anna.post("/compose", data=hit)
            assert held.status_code == 303
            held_id = held.headers["location"].removeprefix("/messages/")
            page = await anna.get(held.headers["location"])
            assert 'data-state="APPROVAL-PENDING"' in page.text
            queue = await carla.get("/approvals")
            assert held_id in queue.text and "Approve" in queue.text
            decided = await carla.post(
                f"/approvals/{held_id}",
                data={"csrf_token": csrf_of(queue), "decision": "approve", "note": "ok"},
            )
            assert decided.status_code == 303
            assert 'class="state">approved' in (await carla.get("/approvals")).text

            # The auditor-only view.
            forbidden = await bert.get("/access-log")
            assert forbidden.status_code == 403 and "ROLE" in forbidden.text
            log = await audrey.get("/access-log")
            assert log.status_code == 200 and "case 2026/0042: robbery on the A2" in log.text

            for path in ("/policy", "/sent", "/docs", "/account", "/inbox?type=INCIDENT_PUBLISH"):
                assert (await bert.get(path)).status_code == 200, path
            assert (await bert.get("/inbox?type=NONSENSE")).status_code == 400

            # Passwords from the account page: the old one is needed, the two new must agree.
            page = await bert.get("/account")
            change = {
                "csrf_token": csrf_of(page),
                "old_password": "not the old one",
                "new_password": "a new long passphrase",
                "repeat_password": "a new long passphrase",
            }
            assert (await bert.post("/account/password", data=change)).status_code == 403
            mismatch = {**change, "old_password": PASSWORD, "repeat_password": "different!!!!"}
            assert (await bert.post("/account/password", data=mismatch)).status_code == 400
            done = await bert.post("/account/password", data={**change, "old_password": PASSWORD})
            assert done.status_code == 200 and "Password changed" in done.text

            out = await bert.post("/logout", data={"csrf_token": csrf_of(page)})
            assert out.status_code == 303 and out.headers["location"] == "/login"
            assert (await bert.get("/inbox")).headers["location"] == "/login"
    finally:
        await fed.stop_all()
