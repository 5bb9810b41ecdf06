"""`accord status` and the stale-CRL warnings (issue 11, item 17)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from tests.harness import Federation, liaison, node_send, wait_for
from tests.test_cli import accord

NL, DE = "NL-POL", "DE-BKA"


async def status(fed: Federation, agency: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    run = await accord("status", "--json", "--home", fed.homes[agency])
    assert "Traceback" not in run.err and run.code in (0, 1), run
    return run.code, json.loads(run.out)


async def test_status_shows_crl_directory_outbox_and_links(tmp_short: Path) -> None:
    fed = Federation(tmp_short, [NL, DE])
    try:
        nl = await fed.start(NL)
        for i in range(3):
            await node_send(nl, liaison(to=[DE], text=f"m{i}"))
        code, doc = await status(fed, NL)
        assert code == 0 and doc["health"] == "SERVING" and doc["crl_state"] == "fresh"
        assert doc["directory_serial"] == fed.authority.directory().serial
        (peer,) = doc["peers"]
        assert peer["agency"] == DE and peer["queued"] == 3 and peer["oldest_queued_at"]
        assert peer["link"] in ("connecting", "retrying")
        text = await accord("status", "--home", fed.homes[NL])
        assert text.code == 0 and text.out.startswith(f"{NL}: SERVING\nCRL: fresh; next update ")
        header = text.out.splitlines()[3].split()
        assert header[:3] == ["PEER", "LINK", "QUEUED"]

        await fed.start(DE)

        async def drained() -> bool:
            _, doc = await status(fed, NL)
            (peer,) = doc["peers"]
            return bool(peer["queued"] == 0 and peer["receipted"] == 3)

        await wait_for(drained, timeout=10)
    finally:
        await fed.stop_all()


async def test_a_stale_crl_is_logged_at_start_and_while_it_lasts(
    tmp_short: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = Federation(tmp_short, [NL, DE])
    fed.authority.publish_crl(now=fed.now, next_update=timedelta(seconds=-60))
    try:
        with caplog.at_level(logging.WARNING, logger="node.health"):
            nl = await fed.start(NL)
        stale = [
            m for m in caplog.messages if m.startswith("crl stale: the federation CRL expired")
        ]
        assert len(stale) == 1 and "accord certs crl" in stale[0]
        code, doc = await status(fed, NL)
        assert code == 1 and doc["crl_state"] == "stale"
        text = await accord("status", "--home", fed.homes[NL])
        assert text.code == 1 and "CRL: STALE: every peer is refused" in text.out

        nl.health.crl_warn_seconds = 0.0
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="node.health"):
            assert nl.health.check_crl() == "stale"  # the reload loop's check, while it lasts
            fed.authority.publish_crl(now=fed.now)
            nl.reload()
            assert nl.health.check_crl() == "fresh"
        assert [m.split(":")[0] for m in caplog.messages] == ["crl stale", "crl fresh again"]
        code, doc = await status(fed, NL)
        assert code == 0 and doc["crl_state"] == "fresh"
    finally:
        await fed.stop_all()


async def test_a_crl_about_to_expire_is_said_once(
    tmp_short: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fed = Federation(tmp_short, [NL, DE])
    fed.authority.publish_crl(now=fed.now, next_update=timedelta(hours=2))
    try:
        with caplog.at_level(logging.WARNING, logger="node.health"):
            nl = await fed.start(NL)
            nl.health.check_crl()
        assert [m.split(":")[0] for m in caplog.messages] == ["crl expiring"]
        _, doc = await status(fed, NL)
        assert doc["crl_state"] == "expiring"
    finally:
        await fed.stop_all()
