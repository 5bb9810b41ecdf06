"""A peer link under faults of its own node: it never gives up on a queue silently, and a stop
never hangs on it."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from node.store.keys import KeyRing
from tests.harness import Federation, configure, liaison, node_send, wait_for
from tests.test_delivery import db_rows

NL, DE = "NL-POL", "DE-BKA"


def fast_retries(fed: Federation, agency: str) -> None:
    """Retry within a fraction of a second, so that a test waits on events, not on backoff."""
    path = fed.homes[agency] / "config.toml"
    text = path.read_text().replace("backoff_max_seconds = 30.0", "backoff_max_seconds = 0.2")
    path.write_text(text)


async def delivered(fed: Federation, agency: str, message_id: str) -> bool:
    """Read with a connection of the test's own: the node's reader may be held on purpose."""
    rows = db_rows(fed.homes[agency], "SELECT state FROM deliveries WHERE message_id = ?",
                   message_id)  # fmt: skip
    return [r[0] for r in rows] == ["accepted"]


async def test_a_link_whose_outbox_will_not_open_says_so_and_recovers(
    tmp_short: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What a replaced master.key did: the outbox read failed, the link task died without a
    word and the queue stalled until a restart. Now each failure is one log line and the link
    tries again; once the key is right again, the message goes."""
    fed = Federation(tmp_short, [NL, DE])
    fast_retries(fed, NL)
    try:
        nl = await fed.start(NL)
        sent = await node_send(nl, liaison(to=[DE]))  # DE is down: it waits in the outbox
        right = nl.store.keys
        nl.store.keys = KeyRing(os.urandom(32))
        await fed.start(DE)
        link = nl.links[DE]
        with caplog.at_level(logging.ERROR, logger="node.delivery.link"):

            async def failed_twice() -> bool:
                return link.failures >= 2

            await wait_for(failed_twice, timeout=10)
        lines = [r.getMessage() for r in caplog.records if r.name == "node.delivery.link"]
        expected = (
            f"link to {DE} failed (SealError: stored message does not open with this node's "
            "keys (no keystore)); retrying in 0.2 s"
        )
        assert lines[0] == expected
        assert all("\n" not in line for line in lines)
        assert link.running, "the link task is alive"
        nl.store.keys = right
        await wait_for(lambda: delivered(fed, NL, sent.message_id), timeout=10)
    finally:
        await fed.stop_all()


class Crash(BaseException):
    """Something no `except Exception` catches: only the supervision of the task sees it."""


def crash_once(crashes: list[str], peer: str) -> Callable[[], None]:
    """A link's `before_connect` hook that kills its task the first time."""

    def crash() -> None:
        if not crashes:
            crashes.append(peer)
            raise Crash("boom")

    return crash


async def test_a_link_task_that_dies_is_logged_and_restarted(
    tmp_short: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fed = Federation(tmp_short, [NL, DE])
    try:
        nl = await fed.start(NL)
        crashes: list[str] = []
        nl.links.link(DE).faults.before_connect = crash_once(crashes, DE)
        with caplog.at_level(logging.ERROR, logger="node.delivery.link"):
            sent = await node_send(nl, liaison(to=[DE]))
            await fed.start(DE)
            await wait_for(lambda: delivered(fed, NL, sent.message_id), timeout=10)
        assert crashes == [DE] and nl.links[DE].restarts == 1
        assert f"link to {DE} died (Crash: boom); restarting it" in caplog.messages
    finally:
        await fed.stop_all()


async def test_stop_completes_when_a_link_task_died(tmp_short: Path) -> None:
    """A dead link task re-raised its error from `close`, `stop` never closed the store, and
    the store's threads kept the process alive after SIGTERM. (Stopped while the task lies
    dead, before its restart.)"""
    fed = Federation(tmp_short, [NL, DE])
    configure(fed.homes[NL], "delivery", backoff_initial_seconds=30.0)  # no restart meanwhile
    try:
        nl = await fed.start(NL)
        link = nl.links.link(DE)
        crashes: list[str] = []
        link.faults.before_connect = crash_once(crashes, DE)
        await node_send(nl, liaison(to=[DE]))

        async def died() -> bool:
            return bool(crashes) and not link.running

        await wait_for(died)
        store = nl.store
        await asyncio.wait_for(fed.stop(NL), timeout=10)
        with pytest.raises(RuntimeError, match="not running"):
            store.writer.enqueue([])  # the store was closed
        assert not (fed.homes[NL] / "node.sock").exists()
    finally:
        await fed.stop_all()


# ---- the hand-off race (issue 11, item 11) ----------------------------------------------------


async def test_a_stream_start_sees_every_committed_row_while_another_read_holds_a_snapshot(
    tmp_short: Path,
) -> None:
    """The race, forced: a local API read holds an open statement (an older snapshot) on the
    store's shared reader while sends commit and the link connects. The stream's first outbox
    read must still see every committed row; the periodic check is switched off, so it is not
    what delivers them."""
    fed = Federation(tmp_short, [NL, DE])
    try:
        nl = await fed.start(NL)
        first = [await node_send(nl, liaison(to=[DE], text=f"a{i}")) for i in range(3)]
        cursor = await nl.store.reader.execute("SELECT seq FROM deliveries ORDER BY seq")
        assert await cursor.fetchone() is not None  # the statement stays open: snapshot held
        link = nl.links[DE]
        link.check_seconds = 3600.0
        later = [await node_send(nl, liaison(to=[DE], text=f"b{i}")) for i in range(20)]
        await fed.start(DE)  # the link connects and reads the outbox
        after = [await node_send(nl, liaison(to=[DE], text=f"c{i}")) for i in range(3)]
        for sent in (*first, *later, *after):
            await wait_for(lambda s=sent: delivered(fed, NL, s.message_id), timeout=10)
        assert link.skipped == 0
        await cursor.close()
    finally:
        await fed.stop_all()


async def test_what_a_stream_skipped_is_found_and_sent(
    tmp_short: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The safety net, forced: the stream's first outbox read is made to come back short (as
    the old race did), so the stream moves past rows it never sent. The periodic check finds
    them and the link sends them."""
    fed = Federation(tmp_short, [NL, DE])
    try:
        nl = await fed.start(NL)
        store = nl.store
        assert store is not None
        sent = [await node_send(nl, liaison(to=[DE], text=f"m{i}")) for i in range(10)]
        real = store.queued_for
        short: list[int] = []

        async def short_read(recipient: str, *, after_seq: int = 0, limit: int = 512) -> list:  # type: ignore[type-arg]
            rows = await real(recipient, after_seq=after_seq, limit=limit)
            if limit > 1 and not short:  # the stream's first read: only the first two rows
                short.append(len(rows))
                return rows[:2]
            return rows

        store.queued_for = short_read  # type: ignore[method-assign]
        link = nl.links[DE]
        link.check_seconds = 0.2
        with caplog.at_level(logging.WARNING, logger="node.delivery.link"):
            await fed.start(DE)
            more = [await node_send(nl, liaison(to=[DE], text=f"n{i}")) for i in range(3)]
            for s in (*sent, *more):
                await wait_for(lambda s=s: delivered(fed, NL, s.message_id), timeout=10)
        (read,) = short
        assert read >= 10 and link.skipped == read - 2
        assert any(
            f"{read - 2} queued envelope(s) were skipped by the stream" in m
            for m in caplog.messages
        )
    finally:
        await fed.stop_all()
