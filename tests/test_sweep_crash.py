"""A node killed (SIGKILL) in the middle of a sweep: every message is either whole (it still
opens with the node's keys) or fully erased (no ciphertext, no wrapped key, a tombstone and its
access log entry), never in between; the next sweep finishes the work."""

from __future__ import annotations

import signal
import sqlite3
from contextlib import closing
from pathlib import Path

from node.store import Store
from node.store.keys import KeyRing
from tests.harness import Federation, configure, incident, node_send, wait_for
from tests.test_delivery import db_rows, node_process, wait_ready

NL, DE = "NL-POL", "DE-BKA"
COUNT = 120


def erased_count(home: Path) -> int:
    rows = db_rows(home, "SELECT count(*) FROM messages WHERE erased_at IS NOT NULL")
    return int(str(rows[0][0]))


async def test_a_sweep_killed_midway_leaves_each_message_whole_or_erased(
    tmp_short: Path,
) -> None:
    fed = Federation(tmp_short, [NL, DE])
    home = fed.homes[DE]
    try:
        nl, de = await fed.start_all()
        for i in range(COUNT):
            await node_send(nl, incident(to=[DE], narrative=f"Crash-sweep narrative {i:03d}"))

        async def all_there() -> bool:
            return await de.store.count("messages") == COUNT

        await wait_for(all_there, timeout=30)
    finally:
        await fed.stop_all()
    # As a fast clock would have it: every received message is past its retain_until.
    with closing(sqlite3.connect(home / "accord.db")) as conn:
        conn.execute("UPDATE messages SET retain_until = '2000-01-01T00:00:00+00:00'")
        conn.commit()
    # One row per transaction and a sweep at once: the kill lands between commits.
    configure(home, "retention", sweep_seconds=0.05, sweep_batch=1)

    with node_process(home) as proc:
        await wait_ready(proc, home, starts=1)

        async def sweeping() -> bool:
            return erased_count(home) >= 5

        await wait_for(sweeping, timeout=20, interval=0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    rows = db_rows(
        home,
        "SELECT message_id, sender, erased_at, ciphertext IS NULL, wrapped_key IS NULL, "
        "erase_reason, erased_by FROM messages",
    )
    erased = [r for r in rows if r[2] is not None]
    whole = [r for r in rows if r[2] is None]
    assert 0 < len(erased) < COUNT, "the kill should land mid-sweep"
    for mid, _, _, no_ciphertext, no_key, why, by in erased:
        assert no_ciphertext and no_key and (why, by) == ("expired", "sweeper"), mid
    logged = db_rows(
        home,
        "SELECT json_extract(data, '$.message_id') FROM audit_log "
        "WHERE json_extract(data, '$.action') = 'erase'",
    )
    assert sorted(str(r[0]) for r in logged) == sorted(str(r[0]) for r in erased)

    store = await Store.open(
        home / "accord.db", keys=KeyRing.load(home / "master.key"), create=False
    )
    try:
        for mid, sender, *_ in whole:
            m = await store.get_message(str(mid), sender=str(sender))
            assert m is not None and m.sealed is not None
            content = store.open_content(m)
            assert content is not None and b"Crash-sweep narrative" in content
    finally:
        await store.close()

    # Started again, the node's next sweep erases the rest.
    configure(home, "retention", sweep_seconds=60.0, sweep_batch=200)
    de = await fed.start(DE)
    try:
        assert (await de.sweeper.sweep()).expired == len(whole)
        assert erased_count(home) == COUNT
    finally:
        await fed.stop_all()
