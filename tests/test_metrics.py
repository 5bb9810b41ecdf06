"""Prometheus metrics and event logs (issue 11, "Metrics and logs")."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from node import config as config_mod
from node.clock import OffsetClock
from node.errors import ConfigError, Refused
from node.logs import EVENTS, JsonFormatter, event
from node.metrics import LINK_STATES
from node.store.holds import HoldStore
from tests.harness import Federation, liaison, node_send, wait_for

NL, DE = "NL-POL", "DE-BKA"
SECRET = "CONTENT-THAT-MUST-NOT-BE-LOGGED"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float | None:  # fmt: skip
    return metrics.get((name, frozenset(labels.items())))


async def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    return samples(await asyncio.to_thread(get))


def with_metrics(home: Path, listen: str = "127.0.0.1:0") -> None:
    path = home / config_mod.CONFIG_FILE
    path.write_text(path.read_text().replace('address = ""', f'address = "{listen}"'))


async def test_the_metrics_endpoint_reports_a_delivered_message(
    tmp_short: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fed = Federation(tmp_short, [NL, DE])
    with_metrics(fed.homes[NL])
    try:
        with caplog.at_level(logging.DEBUG):
            nl = await fed.start(NL)
            assert nl.metrics_port > 0
            draft = liaison(to=[DE], text=SECRET)
            sent = await node_send(nl, draft)
            with pytest.raises(Refused):
                await node_send(nl, liaison(to=[DE], purpose="cybercrime"))  # not in the agreement
            before = await scrape(nl.metrics_port)
            assert value(before, "accord_outbox_depth", peer=DE) == 1
            assert (value(before, "accord_outbox_oldest_seconds", peer=DE) or -1) >= 0
            # DE is down: the link is in exactly one state, which one depends on when its
            # task last woke (idle before it saw the message, then connecting or retrying).
            states = {s: value(before, "accord_link_state", peer=DE, state=s)
                      for s in LINK_STATES}  # fmt: skip
            assert sum(v or 0 for v in states.values()) == 1 and not states["connected"]

            de = await fed.start(DE)

            async def delivered() -> bool:
                now = await scrape(nl.metrics_port)
                return value(now, "accord_receipts_total", peer=DE, status="accepted") == 1

            await wait_for(delivered, timeout=10)
        after = await scrape(nl.metrics_port)
        assert value(after, "accord_messages_sent_total", type="REQUEST_INFO", status="queued") == 1
        assert value(after, "accord_messages_sent_total", type="REQUEST_INFO",
                     status="refused") == 1  # fmt: skip
        assert value(after, "accord_refusals_total", direction="outbound",
                     reason="PURPOSE_NOT_PERMITTED") == 1  # fmt: skip
        assert value(after, "accord_delivery_latency_seconds_count", peer=DE) == 1
        assert (value(after, "accord_group_commit_units_count") or 0) >= 2
        assert (value(after, "accord_group_commit_seconds_count") or 0) >= 2
        assert value(after, "accord_outbox_depth", peer=DE) is None  # nothing queued
        assert value(after, "accord_crl_stale") == 0
        assert value(after, "accord_directory_serial") == fed.authority.directory().serial
        assert value(after, "accord_link_state", peer=DE, state="connected") == 1
        received = samples(generate_latest(de.metrics.registry).decode())
        assert value(received, "accord_messages_received_total", type="REQUEST_INFO",
                     status="accepted") == 1  # fmt: skip

        events = [r for r in caplog.records if r.name == EVENTS.name]
        names = {getattr(r, "event", "") for r in events}
        assert {"message.queued", "message.refused", "link.up", "receipt.stored",
                "message.received"} <= names  # fmt: skip
        stored = next(r for r in events if getattr(r, "event", "") == "receipt.stored")
        doc = json.loads(JsonFormatter().format(stored))
        assert doc["event"] == "receipt.stored" and doc["message_id"] == sent.message_id
        assert doc["peer"] == DE and doc["status"] == "accepted" and doc["latency_ms"] >= 0
        assert all("\n" not in r.getMessage() for r in events)
        assert not [r for r in caplog.records if SECRET in r.getMessage()], "content logged"
    finally:
        await fed.stop_all()
    with pytest.raises(OSError):  # stopped with the node
        await scrape(nl.metrics_port)


def test_events_are_one_line_as_text_and_as_json(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=EVENTS.name):
        event("message.rejected", message_id="0190", peer="DE-BKA", reason="NO_AGREEMENT",
              detail="")  # fmt: skip
    (record,) = caplog.records
    assert record.getMessage() == "message.rejected message_id=0190 peer=DE-BKA reason=NO_AGREEMENT"
    doc = json.loads(JsonFormatter().format(record))
    assert doc["event"] == "message.rejected" and doc["reason"] == "NO_AGREEMENT"
    assert "detail" not in doc and doc["level"] == "INFO" and doc["time"].endswith("+00:00")


def test_metrics_are_off_by_default_and_loopback_only_unless_allowed(tmp_short: Path) -> None:
    fed = Federation(tmp_short, [NL, DE])
    home = fed.homes[NL]
    assert config_mod.load(home).metrics.address == ""
    with_metrics(home, "0.0.0.0:9464")
    with pytest.raises(ConfigError, match=r"metrics.address: 0.0.0.0:9464 is not a loopback"):
        config_mod.load(home)
    path = home / config_mod.CONFIG_FILE
    path.write_text(path.read_text().replace("allow_remote = false", "allow_remote = true"))
    assert config_mod.load(home).metrics.allow_remote is True
    path.write_text(path.read_text().replace("allow_remote = true", 'allow_remote = "yes"'))
    with pytest.raises(ConfigError, match=r"metrics\.allow_remote: expected bool"):
        config_mod.load(home)


async def test_staleness_and_ages_are_judged_by_the_node_clock(tmp_short: Path) -> None:
    """A drill's offset clock moves the node past its CRL: the metrics must say so as the node
    judges it (it refuses every peer then), not by the wall clock."""
    clock = OffsetClock()
    fed = Federation(tmp_short, [NL, DE], clock=clock)
    with_metrics(fed.homes[NL])
    try:
        nl = await fed.start(NL)
        assert value(await scrape(nl.metrics_port), "accord_crl_stale") == 0
        next_update = nl.trust.crl_next_update
        assert next_update is not None
        clock.advance(next_update - nl.clock.now() + timedelta(minutes=1))
        assert value(await scrape(nl.metrics_port), "accord_crl_stale") == 1
    finally:
        await fed.stop_all()


async def test_the_audit_log_erasures_and_holds_are_reported(tmp_short: Path) -> None:
    fed = Federation(tmp_short, [NL, DE])
    with_metrics(fed.homes[NL])
    try:
        nl = await fed.start(NL)
        kept = await node_send(nl, liaison(to=[DE]))
        erased = await node_send(nl, liaison(to=[DE]))
        before = await scrape(nl.metrics_port)
        entries = value(before, "accord_audit_entries")
        assert entries is not None and entries >= 2  # the two sends, at least
        assert value(before, "accord_messages_erased") == 0
        assert value(before, "accord_holds_in_force") == 0
        await nl.store.erase_message(
            erased.message_id, direction="out", reason="test", actor="node"
        )
        await HoldStore(nl.store).hold(
            message_id=kept.message_id, correlation_id="", justification="case 7",
            by="sue", now=nl.clock.now(),
        )  # fmt: skip
        after = await scrape(nl.metrics_port)
        assert value(after, "accord_messages_erased") == 1
        assert value(after, "accord_holds_in_force") == 1
        assert (value(after, "accord_audit_entries") or 0) == entries + 2  # erase, hold
    finally:
        await fed.stop_all()
