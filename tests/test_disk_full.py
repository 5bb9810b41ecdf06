"""A sender whose disk is full: the send is refused as a whole, with a clear `disk full` error,
and nothing of it is stored, logged or delivered (issue 11, item 12)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from node import wire
from node.policy.access import Role, User
from tests.disk import fill, small_disk
from tests.harness import Federation, add_user, liaison, wait_for
from tests.test_cli import accord, assert_usage_error
from tests.test_delivery import db_rows

NL, DE = "NL-POL", "DE-BKA"


def count(home: Path, sql: str) -> int:
    return int(str(db_rows(home, sql)[0][0]))


async def test_a_send_on_a_full_disk_is_refused_whole_and_nothing_leaves(
    tmp_short: Path,
) -> None:
    with small_disk("4m") as disk:
        fed = Federation(tmp_short, [NL, DE])
        home = disk / "nl"
        shutil.move(fed.homes[NL], home)  # the sender's home on the small disk
        fed.homes[NL] = home
        try:
            nl = await fed.start(NL)
            await fed.start(DE)
            await add_user(nl, "officer", "liaison_officer")
            body = tmp_short / "body.json"
            body.write_text('{"subject": "s", "text": "' + "x" * 700_000 + '"}')
            send = ("send", "--home", home, "--as", "officer", "--to", DE, "--type",
                    "request_info", "--purpose", "missing-persons", "--body", body,
                    "--tlp", "green", "--handling", "H0", "--retention-days", "30")  # fmt: skip
            messages = "SELECT count(*) FROM messages"
            logged = "SELECT count(*) FROM audit_log WHERE json_extract(data, '$.action') = 'send'"
            before = (count(home, messages), count(home, logged))

            filler = fill(disk, leave=64 * 1024)
            refused = await accord(*send)
            assert_usage_error(refused, "resource exhausted: disk full:", "Free space")
            assert (count(home, messages), count(home, logged)) == before
            assert count(fed.homes[DE], "SELECT count(*) FROM messages") == 0

            filler.unlink()
            ok = await accord(*send)
            assert ok.code == 0, ok
            message_id = ok.out.strip()
            assert (count(home, messages), count(home, logged)) == (before[0] + 1, before[1] + 1)

            async def delivered() -> bool:
                sql = "SELECT message_id FROM messages WHERE sender = 'NL-POL'"
                return [r[0] for r in db_rows(fed.homes[DE], sql)] == [message_id]

            await wait_for(delivered, timeout=10)
        finally:
            await fed.stop_all()


async def test_a_send_whose_log_entry_cannot_be_written_is_not_sent(tmp_short: Path) -> None:
    """The message and its audit entry are one unit: the entry failing (here, a trigger
    refusing it) takes the message with it, so nothing is delivered unlogged."""
    fed = Federation(tmp_short, [NL, DE])
    try:
        nl = await fed.start(NL)
        await fed.start(DE)
        with sqlite3.connect(fed.homes[NL] / "accord.db") as db:
            db.execute(
                "CREATE TRIGGER no_log BEFORE INSERT ON audit_log "
                "WHEN json_extract(NEW.data, '$.action') = 'send' "
                "BEGIN SELECT RAISE(ABORT, 'the audit log refused the entry'); END"
            )
        officer = User("officer", Role.LIAISON_OFFICER, frozenset({"missing-persons"}))
        with pytest.raises(sqlite3.IntegrityError, match="the audit log refused the entry"):
            await nl.operations.send(officer, wire.draft(liaison(to=[DE])))
        assert count(fed.homes[NL], "SELECT count(*) FROM messages") == 0
        assert count(fed.homes[NL], "SELECT count(*) FROM deliveries") == 0
        assert DE not in nl.links or nl.links[DE].sent == 0
    finally:
        await fed.stop_all()
