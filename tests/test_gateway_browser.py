"""The console in a real browser: Debian's Chromium, driven by Playwright, against real
gateways in front of real nodes (NL-POL, DE-BKA) with real mutual TLS between them.

Screenshots of the inbox, the message view, the compose form, the transparency report and the
audit log go to artifacts/gateway/
(git-ignored). Run alone with `.venv/bin/python -m pytest tests/test_gateway_browser.py`; it
needs `/usr/bin/chromium` (`apt-get install chromium`; `.ci/run` installs it). Outside CI a
machine without it skips these tests; in CI (CI=true) a missing browser fails them.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from node import samples
from tests.gateway_harness import PASSWORD, federation, gateway, person
from tests.harness import wait_for

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "gateway"
LAPTOP = ViewportSize(width=1366, height=768)
NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"
WAIT_MS = 20_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium); "
        ".ci/run installs it, and in CI its absence fails this test",
    ),
]


# Assertions wait as long as actions do: the machine may be busy with other tests.
expect.set_options(timeout=WAIT_MS)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


class Person:
    """One person's browser context, recording anything the page's console reports as an
    error (a script the Content-Security-Policy blocked, a failed request, ...)."""

    def __init__(self, context: BrowserContext, page: Page, base: str) -> None:
        self.context, self.page, self.base = context, page, base
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    @classmethod
    async def open(cls, browser: Browser, base: str) -> Person:
        context = await browser.new_context(viewport=LAPTOP, base_url=base)
        context.set_default_timeout(WAIT_MS)
        return cls(context, await context.new_page(), base)

    async def log_in(self, name: str) -> None:
        """With the keyboard only: the form must work without a mouse."""
        await self.page.goto("/login")
        await expect(self.page.get_by_label("User name")).to_be_focused()  # on arrival
        await self.page.keyboard.type(name)
        await self.page.keyboard.press("Tab")
        await self.page.keyboard.type(PASSWORD)
        await self.page.keyboard.press("Enter")
        await self.page.wait_for_url("**/inbox")

    def expected_errors(self, *patterns: str) -> list[str]:
        """Console errors not matching `patterns` (the browser reports a 403 page as one)."""
        return [e for e in self.errors if not any(re.search(p, e) for p in patterns)]


async def unlabelled(page: Page) -> list[str]:
    """Form controls a screen reader could not name (no <label> for them)."""
    names: list[str] = await page.eval_on_selector_all(
        "input:not([type=hidden]), select, textarea",
        "controls => controls.filter(c => c.labels.length === 0).map(c => c.name)",
    )
    return names


async def compose(page: Page, **fields: Any) -> None:
    """Fill the compose form: the recipient first (the form then offers what fits it)."""
    await page.goto("/compose")
    await page.get_by_label("Recipient").select_option(fields.pop("to"))
    await page.wait_for_selector("form#compose")
    await page.get_by_label("Type").select_option(fields.pop("type"))
    await page.get_by_label("Purpose").select_option(fields.pop("purpose"))
    await page.locator(f'input[name="tlp"][value="{fields.pop("tlp")}"]').check()
    for name, value in fields.items():
        await page.locator(f'[name="{name}"]').fill(value)


async def test_officers_supervisor_and_auditor_view_in_chromium(
    tmp_short: Path, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    fed = federation(tmp_short, [NL, DE, FR], approval_required=("HIT_NOTIFICATION",))
    try:
        nl, de, _ = await fed.start_all()
        await person(nl, "anna", "liaison_officer")
        await person(nl, "carla", "supervisor")
        await person(nl, "audrey", "auditor")
        await person(de, "bert", "liaison_officer")
        async with gateway(nl) as nl_url, gateway(de) as de_url:
            anna = await Person.open(browser, nl_url)
            bert = await Person.open(browser, de_url)
            carla = await Person.open(browser, nl_url)
            await anna.log_in("anna")
            await bert.log_in("bert")

            # DE's officer watches the inbox; the page is marked to prove it never reloads.
            inbox = bert.page
            await expect(inbox.locator("#live-status")).to_have_attribute("data-connected", "yes")

            async def watching() -> bool:
                return bool(de.watchers)

            await wait_for(watching)
            await inbox.evaluate("window.stayedOpen = true")

            # NL's officer sends an incident from the compose form.
            page = anna.page
            await compose(
                page,
                to=DE,
                type="INCIDENT_PUBLISH",
                purpose="serious-crime-investigation",
                tlp="AMBER",
                retention_days="30",
                incident_id="INC-2026-0042",
                country="NL",
                place="Venlo",
                narrative=samples.ROBBERY,
            )
            await expect(page.locator(".body-liaison")).to_be_hidden()
            assert await unlabelled(page) == []
            await page.screenshot(path=ARTIFACTS / "compose.png", full_page=True)
            await page.get_by_role("button", name="Send").click()
            await page.wait_for_url(re.compile(r"/messages/[0-9a-f-]{36}$"))
            message_id = page.url.rsplit("/", 1)[1]

            # It appears in DE's inbox without a reload.
            row = inbox.locator(f'#messages tr[data-message-id="{message_id}"]')
            await expect(row).to_be_visible()
            await expect(row).to_contain_text("serious-crime-investigation")
            await expect(row.locator(".tlp")).to_have_text("TLP:AMBER")
            await expect(inbox.locator("#live-status")).to_contain_text("New incident publish")
            assert await inbox.evaluate("window.stayedOpen") is True
            await inbox.screenshot(path=ARTIFACTS / "inbox.png", full_page=True)

            # Reading: refused without a justification, shown with one.
            await row.get_by_role("link").click()
            assert await unlabelled(inbox) == []
            await inbox.get_by_role("button", name="Show content").click()
            refusal = inbox.get_by_test_id("refusal")
            await expect(refusal).to_contain_text("justification")
            await expect(inbox.get_by_test_id("content")).to_have_count(0)
            await inbox.get_by_label("Justification").fill("case 2026/0042: robbery on the A2")
            await inbox.get_by_role("button", name="Show content").click()
            await expect(inbox.get_by_test_id("content")).to_contain_text(samples.ROBBERY)
            await expect(inbox.get_by_test_id("markings")).to_contain_text("TLP:AMBER")
            await inbox.screenshot(path=ARTIFACTS / "message.png", full_page=True)

            # NL's officer sees DE's receipt turn ACCEPTED on the page already open.
            state = page.locator(f'#receipts tr[data-recipient="{DE}"] .state')
            await expect(state).to_have_attribute("data-state", "ACCEPTED")

            # A hit notification waits for a supervisor; the supervisor approves it.
            await compose(
                page,
                to=DE,
                type="HIT_NOTIFICATION",
                purpose="missing-persons",
                tlp="GREEN",
                retention_days="30",
                subject="Prüm hit",
                text="DNA profile hit; details follow after your confirmation.",
            )
            await page.get_by_role("button", name="Send").click()
            await page.wait_for_url(re.compile(r"/messages/[0-9a-f-]{36}$"))
            held_id = page.url.rsplit("/", 1)[1]
            state = page.locator(f'#receipts tr[data-recipient="{DE}"] .state')
            await expect(state).to_have_attribute("data-state", "APPROVAL-PENDING")
            await carla.log_in("carla")
            await carla.page.goto("/approvals")
            held = carla.page.locator(f'#pending tr[data-message-id="{held_id}"]')
            await held.get_by_label("Note").fill("hit confirmed by the DNA unit")
            await held.get_by_role("button", name="Approve").click()
            decided = carla.page.locator(f'#decided tr[data-message-id="{held_id}"] .state')
            await expect(decided).to_have_text("approved")
            await expect(state).to_have_attribute("data-state", "ACCEPTED")

            # The API's documentation page renders the OpenAPI document (under the same CSP).
            await page.goto("/docs")
            await expect(page.locator("#api-docs .api-op").first).to_contain_text("/api/v1")
            assert await page.locator("#api-docs .api-op").count() > 10

            # The auditors' view is refused to an officer.
            answer = await page.goto("/access-log")
            assert answer is not None and answer.status == 403
            await expect(page.get_by_test_id("error")).to_contain_text("auditors")

            # The supervisor holds the incident from the review queue, by its labels.
            await carla.page.goto("/review?within=60")
            queued = carla.page.locator(f'#review tr[data-message-id="{message_id}"]')
            assert await unlabelled(carla.page) == []
            await queued.get_by_label("Justification").fill("evidence in case 2026/0042")
            await queued.get_by_label("Justification").press("Enter")
            await expect(queued.locator(".hold")).to_have_attribute("data-held", "yes")

            # The audit log and the report are the auditors': an officer gets 403.
            answer = await page.goto("/audit")
            assert answer is not None and answer.status == 403
            await expect(page.get_by_test_id("error")).to_contain_text("auditors")
            audrey = await Person.open(browser, nl_url)
            await audrey.log_in("audrey")
            await audrey.page.get_by_role("link", name="Report").click()
            report = audrey.page.locator("#report")
            await expect(report).to_contain_text("messages.sent.total")
            total = report.locator("tr", has_text="messages.sent.total").locator("td")
            await expect(total).to_have_text("2")
            assert await unlabelled(audrey.page) == []
            await audrey.page.screenshot(path=ARTIFACTS / "report.png", full_page=True)
            await audrey.page.get_by_role("link", name="Audit log").click()
            await audrey.page.get_by_label("User").fill("carla")
            await audrey.page.get_by_label("User").press("Enter")
            approved = audrey.page.locator("#audit-log tr", has_text="approve")
            await expect(approved.first).to_contain_text("hit confirmed by the DNA unit")
            await audrey.page.screenshot(path=ARTIFACTS / "audit.png", full_page=True)

            for who in (anna, bert, carla, audrey):
                assert who.expected_errors("status of 403") == [], who.errors
                await who.context.close()
    finally:
        await fed.stop_all()
