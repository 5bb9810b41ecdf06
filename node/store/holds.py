"""Legal holds, the review list, keeping a message longer, and the sweeper's counts.

A hold keeps a message (or every message of a correlation id) from being swept while it is in
force; the sweep moves a held row's data key under the keystore's hold bucket once its day has
passed (erasure.retire_keys). Releasing a hold moves the rows it covered back under their
expiry day's key and replaces the hold bucket's key, so a copy taken while they were held does
not outlive them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from node.store.access import log_txn
from node.store.db import _MESSAGE_COLUMNS, StoredMessage, _message_from_row, text_time, time_text
from node.store.erasure import HELD, NOT_HELD, rewrap, rotate_out
from node.store.keystore import HOLD, day_bucket

if TYPE_CHECKING:
    from node.store.db import Store


@dataclass(frozen=True, slots=True)
class Hold:
    id: int
    message_id: str
    correlation_id: str
    justification: str
    held_by: str
    held_at: datetime
    released_by: str = ""
    released_at: datetime | None = None
    release_note: str = ""


@dataclass(frozen=True, slots=True)
class Counts:
    live: int  # messages not erased
    expired: int  # past retain_until, not held, not yet erased (the next sweep's work)
    erased: int  # tombstones
    held: int  # live messages under a hold in force
    holds: int  # holds in force


_HOLD_COLUMNS = (
    "id, message_id, correlation_id, justification, held_by, held_at, released_by, "
    "released_at, release_note"
)


def _hold(row: tuple[object, ...]) -> Hold:
    held_at = text_time(str(row[5]))
    assert held_at is not None
    return Hold(
        id=int(str(row[0])),
        message_id=str(row[1]),
        correlation_id=str(row[2]),
        justification=str(row[3]),
        held_by=str(row[4]),
        held_at=held_at,
        released_by=str(row[6]),
        released_at=text_time(None if row[7] is None else str(row[7])),
        release_note=str(row[8]),
    )


class HoldStore:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._r = store.reader

    async def hold(
        self, *, message_id: str, correlation_id: str, justification: str, by: str, now: datetime
    ) -> Hold:
        """Put a hold (on one message, or on a correlation id) and log it, in one commit."""
        purpose_row = await self._r.execute_fetchall(
            "SELECT purpose FROM messages WHERE message_id = ? OR correlation_id = ? LIMIT 1",
            (message_id or "\x00", correlation_id or "\x00"),
        )
        purpose = str(next(iter(purpose_row))[0]) if purpose_row else ""

        def run(conn: sqlite3.Connection) -> int:
            """The hold and its access log entry, in one transaction."""
            hold_id = conn.execute(
                "INSERT INTO holds (message_id, correlation_id, justification, held_by, "
                "held_at) VALUES (?,?,?,?,?)",
                (message_id, correlation_id, justification, by, time_text(now)),
            ).lastrowid
            entry = log_txn(
                at=now,
                user=by,
                action="hold",
                outcome="granted",
                message_id=message_id,
                purpose=purpose,
                justification=justification,
                detail=f"hold {hold_id}"
                + (f" on correlation {correlation_id}" if correlation_id else ""),
            )
            self._store.audit.journal.append(conn, [entry[1]])
            return int(hold_id or 0)

        new_id = await self._store.writer.enqueue_call(run)
        found = await self.get(int(new_id))
        assert found is not None
        return found

    async def get(self, hold_id: int) -> Hold | None:
        rows = list(
            await self._r.execute_fetchall(
                f"SELECT {_HOLD_COLUMNS} FROM holds WHERE id = ?",  # noqa: S608 (constant columns)
                (hold_id,),
            )
        )
        return _hold(tuple(rows[0])) if rows else None

    async def in_force(self, *, message_id: str = "", correlation_id: str = "") -> list[Hold]:
        """Holds in force on exactly this message id or this correlation id (both empty: all)."""
        sql = f"SELECT {_HOLD_COLUMNS} FROM holds WHERE released_at IS NULL"  # noqa: S608
        params: list[str] = []
        if message_id or correlation_id:
            sql += " AND ((message_id != '' AND message_id = ?) OR "
            sql += "(correlation_id != '' AND correlation_id = ?))"
            params += [message_id, correlation_id]
        rows = await self._r.execute_fetchall(sql + " ORDER BY id", params)
        return [_hold(tuple(r)) for r in rows]

    async def release(self, holds: list[Hold], *, by: str, note: str, now: datetime) -> None:
        """Release `holds` (logged), then move the rows that are no longer held out of the hold
        bucket, whose key is then replaced: expiry resumes, and a copy taken during the hold
        is defeated when they go."""
        when = time_text(now)
        await self._store.writer.submit(
            [
                (
                    "UPDATE holds SET released_by = ?, released_at = ?, release_note = ? "
                    "WHERE id = ? AND released_at IS NULL",
                    (by, when, note, h.id),
                )
                for h in holds
            ]
            + [
                log_txn(
                    at=now,
                    user=by,
                    action="release",
                    outcome="granted",
                    message_id=h.message_id,
                    justification=note,
                    detail=f"hold {h.id}"
                    + (f" on correlation {h.correlation_id}" if h.correlation_id else ""),
                )
                for h in holds
            ]
        )
        await self.rebucket_released(now=now)

    async def rebucket_released(self, *, now: datetime) -> None:
        """Rows in the hold bucket that no hold covers any more go back under their expiry
        day's key; the hold bucket's key is then replaced (rotate_out)."""
        keystore = self._store.keys.keystore
        assert keystore is not None
        days = await self._r.execute_fetchall(
            "SELECT DISTINCT m.retain_until FROM messages m WHERE m.erased_at IS NULL "  # noqa: S608 (constant clause)
            f"AND m.key_id LIKE 'hold/%' AND {NOT_HELD}"
        )
        for (until,) in days:
            await rewrap(
                self._store,
                where=f"m.key_id LIKE 'hold/%' AND m.retain_until IS ? AND {NOT_HELD}",
                params=(until,),
                bucket=day_bucket(text_time(until)),
            )
        await rotate_out(self._store, keystore.buckets().get(HOLD, []), now=now)

    async def review(self, *, now: datetime, near: datetime, limit: int) -> list[StoredMessage]:
        """Live messages that expire before `near` (soonest first, held or not), by the index
        on retain_until."""
        rows = await self._r.execute_fetchall(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages "  # noqa: S608 (constant columns)
            "WHERE erased_at IS NULL AND retain_until <= ? ORDER BY retain_until LIMIT ?",
            (time_text(near), limit),
        )
        return [_message_from_row(r) for r in rows]

    async def under_agreements(
        self, agreement_ids: list[str], *, limit: int
    ) -> list[StoredMessage]:
        """Live messages stored under `agreement_ids` (those past their review date)."""
        if not agreement_ids:
            return []
        marks = ",".join("?" * len(agreement_ids))
        rows = await self._r.execute_fetchall(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages "  # noqa: S608 (only ? marks)
            f"WHERE erased_at IS NULL AND agreement_id IN ({marks}) "
            "ORDER BY retain_until LIMIT ?",
            (*agreement_ids, limit),
        )
        return [_message_from_row(r) for r in rows]

    async def keep_until(
        self,
        m: StoredMessage,
        *,
        until: datetime,
        by: str,
        justification: str,
        now: datetime,
    ) -> None:
        """Set a live message's retain_until (checked by the caller against the agreement's
        maximum) and move its data key to the bucket of its new day, logged in one commit."""
        await self._store.writer.submit(
            [
                (
                    "UPDATE messages SET retain_until = ? "
                    "WHERE sender = ? AND message_id = ? AND erased_at IS NULL",
                    (time_text(until), m.sender, m.message_id),
                ),
                log_txn(
                    at=now,
                    user=by,
                    action="keep",
                    outcome="granted",
                    message_id=m.message_id,
                    purpose=m.purpose,
                    justification=justification,
                    detail=f"retain_until {time_text(m.retain_until)} -> {time_text(until)}",
                ),
            ]
        )
        await rewrap(
            self._store,
            where=f"m.sender = ? AND m.message_id = ? AND m.key_id NOT LIKE 'hold/%' "
            f"AND {NOT_HELD}",
            params=(m.sender, m.message_id),
            bucket=day_bucket(until),
        )

    async def counts(self, *, now: datetime) -> Counts:
        when = time_text(now)
        rows = await self._r.execute_fetchall(
            "SELECT (SELECT count(*) FROM messages WHERE erased_at IS NULL), "  # noqa: S608 (constant clause)
            "(SELECT count(*) FROM messages m WHERE m.erased_at IS NULL "
            f"AND m.retain_until <= ? AND {NOT_HELD}), "
            "(SELECT count(*) FROM messages WHERE erased_at IS NOT NULL), "
            f"(SELECT count(*) FROM messages m WHERE m.erased_at IS NULL AND {HELD}), "
            "(SELECT count(*) FROM holds WHERE released_at IS NULL)",
            (when,),
        )
        live, expired, erased, held, holds = (int(v) for v in next(iter(rows)))
        return Counts(live, expired, erased, held, holds)
