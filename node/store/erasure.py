"""Erasing stored messages (crypto-shredding) and moving data keys between keystore buckets.

A row is erased in one writer transaction: its ciphertext and wrapped data key are cleared,
its metadata stays as a tombstone with why, when and by whom, its undelivered copies are
withdrawn from the outbox, and the access log records it. What defeats older copies of the
database is the destruction of the bucket key that wrapped the data key (keystore.py):

- an expired row's day key is destroyed once its day is over and nothing live is left in it
  (`retire_keys`, run by each sweep);
- an early erasure (`erase_rows(..., rotate=True)`, `Store.erase_message`) erases the rows,
  then gives their bucket a new key, re-wraps the bucket's other live rows under it in bounded
  batches, and destroys the old key at once (`rotate_out`; if a row sealed under it is still
  on its way to the writer, the next sweep destroys it).

Either way a crash leaves each row whole (readable) or erased, never between: the re-wrap and
the erasure are each a committed transaction, and an old key is destroyed only after the
commit that left it wrapping nothing live (a key left behind by a crash is destroyed by the
next sweep).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from node.errors import NotFound
from node.store.access import log_txn
from node.store.audit import AuditJournal
from node.store.db import Store as StoreBase
from node.store.db import text_time, time_text
from node.store.keys import Sealed, aad_for
from node.store.keystore import HOLD, bucket_ended, day_bucket

REWRAP_BATCH = 500  # rows re-wrapped per transaction: the writer is never held for long
ERASE_BATCH = 200  # rows erased per transaction by a sweep

# Live rows, not under a legal hold that is still in force.
NOT_HELD = (
    "NOT EXISTS (SELECT 1 FROM holds h WHERE h.released_at IS NULL AND "
    "((h.message_id != '' AND h.message_id = m.message_id) OR "
    "(h.correlation_id != '' AND h.correlation_id = m.correlation_id)))"
)
HELD = f"NOT {NOT_HELD}"

_ROW = (
    "m.sender, m.message_id, m.purpose, m.tlp, m.handling_codes, m.seal, m.ciphertext, "
    "m.wrapped_key, m.key_id, m.retain_until"
)


@dataclass(frozen=True, slots=True)
class Target:
    """A row to erase, by its unique (sender, message id)."""

    sender: str
    message_id: str
    direction: str
    purpose: str
    key_id: str | None


def _whose(t: Target) -> str:
    return f"received from {t.sender}" if t.direction == "in" else "sent"


def _erase_in(
    conn: sqlite3.Connection,
    journal: AuditJournal,
    targets: Sequence[Target],
    *,
    reason: str,
    actor: str,
    now: datetime,
) -> int:
    """Erase `targets` still live, inside a transaction, each with its audit entry: how many
    were."""
    erased = 0
    when = time_text(now)
    for t in targets:
        cursor = conn.execute(
            "UPDATE messages SET ciphertext = NULL, wrapped_key = NULL, erased_at = ?, "
            "erase_reason = ?, erased_by = ? "
            "WHERE sender = ? AND message_id = ? AND erased_at IS NULL",
            (when, reason, actor, t.sender, t.message_id),
        )
        if not cursor.rowcount:
            continue
        erased += 1
        if t.direction == "out":
            conn.execute(
                "UPDATE deliveries SET state = 'rejected', reason_code = 'ERASED', "
                "last_error = 'erased before delivery' WHERE message_id = ? AND state = 'queued'",
                (t.message_id,),
            )
        entry = log_txn(
            at=now,
            user=actor,
            action="erase",
            outcome="erased",
            message_id=t.message_id,
            purpose=t.purpose,
            detail=f"{reason} ({_whose(t)})",
        )
        journal.append(conn, [entry[1]])
    return erased


def _rewrap_in(
    store: StoreBase,
    conn: sqlite3.Connection,
    *,
    where: str,
    params: Sequence[object],
    bucket: Callable[[str | None], str],
    limit: int,
) -> int:
    """Re-wrap up to `limit` rows with a data key matching `where`, each under the current key
    of `bucket(its retain_until)`."""
    rows = conn.execute(
        f"SELECT {_ROW} FROM messages m WHERE m.erased_at IS NULL "  # noqa: S608 (constant clauses)
        f"AND m.wrapped_key IS NOT NULL AND {where} LIMIT ?",
        (*params, limit),
    ).fetchall()
    for (
        sender,
        message_id,
        purpose,
        tlp,
        handling,
        seal,
        ciphertext,
        wrapped,
        key_id,
        until,
    ) in rows:
        aad = aad_for(
            sender,
            message_id,
            purpose=purpose,
            tlp=tlp,
            handling_codes=handling.split(",") if handling else (),
            version=seal,
        )
        sealed = Sealed(ciphertext, wrapped, key_id)
        moved = store.keys.rewrap(sealed, aad, bucket=bucket(until))
        conn.execute(
            "UPDATE messages SET wrapped_key = ?, key_id = ? WHERE sender = ? AND message_id = ?",
            (moved.wrapped_key, moved.key_id, sender, message_id),
        )
    return len(rows)


async def rewrap(store: StoreBase, *, where: str, params: Sequence[object], bucket: str) -> int:
    """Re-wrap every live row matching `where` under `bucket`'s current key, a bounded batch
    per transaction; how many were."""
    assert store.keys.keystore is not None
    store.keys.keystore.current(bucket)  # made now: never inside the writer's transaction
    total = 0
    while True:
        done = await store.writer.enqueue_call(
            lambda conn: _rewrap_in(
                store,
                conn,
                where=where,
                params=params,
                bucket=lambda _: bucket,
                limit=REWRAP_BATCH,
            )
        )
        total += int(done)
        if done < REWRAP_BATCH:
            return total


async def erase_rows(
    store: StoreBase,
    targets: Sequence[Target],
    *,
    reason: str,
    actor: str,
    now: datetime,
    rotate: bool,
) -> int:
    """Erase `targets` in one transaction; with `rotate`, their bucket keys are then replaced
    and destroyed at once (an early erasure), not left for the end of their day."""
    erased = await store.writer.enqueue_call(
        lambda conn: _erase_in(
            conn, store.audit.journal, targets, reason=reason, actor=actor, now=now
        )
    )
    if rotate:
        await rotate_out(store, [t.key_id for t in targets if t.key_id], now=now)
    return int(erased)


async def rotate_out(store: StoreBase, key_ids: Sequence[str], *, now: datetime) -> list[str]:
    """Destroy `key_ids` now, their buckets' live rows first moved under a new key of the same
    bucket (a bounded batch per transaction); the keys destroyed."""
    keystore = store.keys.keystore
    assert keystore is not None
    old = sorted({k for k in key_ids if keystore.key(k) is not None})
    for key_id in old:
        bucket = key_id.rsplit("/", 1)[0]
        if keystore.current_id(bucket) == key_id:
            keystore.rotate(bucket)
        await rewrap(store, where="m.key_id = ?", params=(key_id,), bucket=bucket)
    return await destroy_unused(store, old, now=now)


async def destroy_unused(store: StoreBase, key_ids: Sequence[str], *, now: datetime) -> list[str]:
    """Destroy those of `key_ids` that wrap no live row, are no bucket's current key and have
    no row on its way to the writer; the ones destroyed."""
    keystore = store.keys.keystore
    assert keystore is not None
    gone: list[str] = []
    for key_id in key_ids:
        bucket = key_id.rsplit("/", 1)[0]
        if keystore.key(key_id) is None or store.keys.unsettled(key_id):
            continue
        if keystore.current_id(bucket) == key_id and not bucket_ended(bucket, now):
            continue
        live = await store.reader.execute_fetchall(
            "SELECT 1 FROM messages WHERE key_id = ? AND erased_at IS NULL LIMIT 1", (key_id,)
        )
        if not list(live):
            gone.append(key_id)
    keystore.destroy(gone)
    return gone


async def retire_keys(store: StoreBase, *, now: datetime) -> int:
    """Destroy the keys that should no longer exist: those of ended days (their held rows
    moved to the hold bucket first) and rotated-out ones a crash or a row on its way left
    behind (what they still wrap moved to their bucket's current key first); how many went."""
    keystore = store.keys.keystore
    assert keystore is not None
    candidates: list[str] = []
    for bucket, ids in keystore.buckets().items():
        if bucket_ended(bucket, now):
            for key_id in ids:
                await rewrap(
                    store,
                    where=f"m.key_id = ? AND {HELD}",
                    params=(key_id,),
                    bucket=HOLD,
                )
            candidates += ids
        else:
            old = [k for k in ids if k != keystore.current_id(bucket)]
            for key_id in old:
                await rewrap(store, where="m.key_id = ?", params=(key_id,), bucket=bucket)
            candidates += old
    return len(await destroy_unused(store, candidates, now=now))


async def erase_expired(store: StoreBase, *, now: datetime, limit: int = ERASE_BATCH) -> int:
    """One bounded batch: erase up to `limit` rows past their retain_until and not held."""

    def run(conn: sqlite3.Connection) -> int:
        rows = conn.execute(
            "SELECT m.sender, m.message_id, m.direction, m.purpose, m.key_id FROM messages m "  # noqa: S608 (constant clause)
            f"WHERE m.erased_at IS NULL AND m.retain_until <= ? AND {NOT_HELD} "
            "ORDER BY m.retain_until LIMIT ?",
            (time_text(now), limit),
        ).fetchall()
        targets = [Target(*row) for row in rows]
        return _erase_in(
            conn, store.audit.journal, targets, reason="expired", actor="sweeper", now=now
        )

    return int(await store.writer.enqueue_call(run))


async def erase_sunset(
    store: StoreBase, agreement_ids: Sequence[str], *, now: datetime, limit: int = ERASE_BATCH
) -> tuple[int, set[str]]:
    """One bounded batch: erase up to `limit` received rows of agreements whose sunset rule
    is `erase` (held ones stay); how many, and the bucket keys that wrapped them (to rotate
    out once the whole sunset is erased)."""
    if not agreement_ids:
        return 0, set()
    marks = ",".join("?" * len(agreement_ids))

    def run(conn: sqlite3.Connection) -> tuple[int, set[str]]:
        rows = conn.execute(
            "SELECT m.sender, m.message_id, m.direction, m.purpose, m.key_id FROM messages m "  # noqa: S608 (only ? marks)
            f"WHERE m.erased_at IS NULL AND m.agreement_id IN ({marks}) "
            f"AND m.direction = 'in' AND {NOT_HELD} LIMIT ?",
            (*agreement_ids, limit),
        ).fetchall()
        targets = [Target(*row) for row in rows]
        erased = _erase_in(
            conn, store.audit.journal, targets, reason="sunset", actor="sweeper", now=now
        )
        return erased, {t.key_id for t in targets if t.key_id}

    erased, keys = await store.writer.enqueue_call(run)
    return int(erased), set(keys)


async def rewrap_legacy(store: StoreBase) -> int:
    """Move rows sealed before the keystore (data key wrapped by the master key) under their
    day's bucket key, a bounded batch per transaction; how many moved."""
    assert store.keys.keystore is not None
    total = 0
    while True:
        # The buckets the next batch needs are made here, outside the transaction.
        rows = await store.reader.execute_fetchall(
            "SELECT DISTINCT retain_until FROM (SELECT retain_until FROM messages "
            "WHERE key_id IS NULL AND wrapped_key IS NOT NULL AND erased_at IS NULL LIMIT ?)",
            (REWRAP_BATCH,),
        )
        for (until,) in rows:
            store.keys.keystore.current(day_bucket(text_time(until)))
        done = await store.writer.enqueue_call(
            lambda conn: _rewrap_in(
                store,
                conn,
                where="m.key_id IS NULL",
                params=(),
                bucket=lambda expiry: day_bucket(text_time(expiry)),
                limit=REWRAP_BATCH,
            )
        )
        total += int(done)
        if done < REWRAP_BATCH:
            return total


class Store(StoreBase):
    """The store with erasure: what `node.store.Store` is."""

    async def erase_message(
        self, message_id: str, *, direction: str, reason: str, actor: str, sender: str = ""
    ) -> None:
        """Erase one stored message now (crypto-shredding): its ciphertext and wrapped key go,
        a tombstone (id, sender, digest, times, `reason`, `actor`) stays, undelivered copies
        leave the outbox and the access log records it, in one transaction; then its bucket
        key is replaced and destroyed, so no earlier copy of the database opens it either.
        `sender` narrows a received id. Already erased: nothing to do. NotFound if there is
        no such message."""
        m = await self.get_message(message_id, sender=sender or None, direction=direction)
        if m is None:
            what = "received" if direction == "in" else "sent"
            raise NotFound(f"no {what} message {message_id}")
        if m.erased_at is not None:
            return
        target = Target(
            m.sender, m.message_id, m.direction, m.purpose, m.sealed.key_id if m.sealed else None
        )
        await erase_rows(
            self, [target], reason=reason, actor=actor, now=self.clock.now(), rotate=True
        )
