"""SQL for people's passwords, failed-login counts and login sessions."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import node.store.rowmac as rowmac  # noqa: PLR0402 (the submodule alone: no cycle through node.store)
from node.store.db import Store, text_time, time_text


@dataclass(frozen=True, slots=True)
class PasswordRow:
    hash: str
    failures: int
    locked_until: datetime | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    user_name: str
    last_used_at: datetime
    expires_at: datetime


class LoginStore:
    """Shares the node store's connections and group-commit writer."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def password(self, name: str) -> PasswordRow | None:
        cursor = await self._store.reader.execute(
            "SELECT p.hash, p.failures, p.locked_until, p.mac FROM passwords p "
            "JOIN users u ON u.name = p.user_name WHERE p.user_name = ? AND u.disabled_at IS NULL",
            (name,),
        )
        row = await cursor.fetchone()
        if row is None:
            return None
        covered = {"user_name": name, "hash": row[0], "mac": row[3]}
        if not rowmac.verified(self._store.keys, "passwords", covered, what=name):
            return None
        return PasswordRow(hash=row[0], failures=int(row[1]), locked_until=text_time(row[2]))

    async def set_password(
        self, *, name: str, hash: str, now: datetime, keep_session: bytes | None
    ) -> None:
        """Store a new hash, clear failures, and revoke the user's sessions but `keep_session`
        (the one that made the change, if any): a stolen session ends with a password change."""
        keys = self._store.keys
        when = time_text(now)
        mac = rowmac.mac(keys, "passwords", {"user_name": name, "hash": hash})

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO passwords (user_name, hash, set_at, mac) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (user_name) DO UPDATE SET hash = excluded.hash, "
                "set_at = excluded.set_at, failures = 0, locked_until = NULL, mac = excluded.mac",
                (name, hash, when, mac),
            )
            others = conn.execute(
                "SELECT token_sha256 FROM sessions WHERE user_name = ? AND revoked_at IS NULL "
                "AND token_sha256 IS NOT ?",
                (name, keep_session),
            ).fetchall()
            for (digest,) in others:
                _revoke(conn, self._store, digest, when)

        await asyncio.shield(self._store.writer.enqueue_call(run))

    async def rehash(self, *, name: str, hash: str) -> None:
        mac = rowmac.mac(self._store.keys, "passwords", {"user_name": name, "hash": hash})
        await self._store.writer.submit(
            [("UPDATE passwords SET hash = ?, mac = ? WHERE user_name = ?", (hash, mac, name))]
        )

    async def record_failure(
        self, *, name: str, max_failures: int, lock_until: datetime
    ) -> PasswordRow | None:
        """Count a failed login; the one that reaches `max_failures` locks the account until
        `lock_until` and starts the count again. One statement, so concurrent failures each
        count (the writer runs units one at a time)."""
        await self._store.writer.submit(
            [
                (
                    "UPDATE passwords SET "
                    "locked_until = CASE WHEN failures + 1 >= ? THEN ? ELSE locked_until END, "
                    "failures = CASE WHEN failures + 1 >= ? THEN 0 ELSE failures + 1 END "
                    "WHERE user_name = ?",
                    (max_failures, time_text(lock_until), max_failures, name),
                )
            ]
        )
        return await self.password(name)

    async def record_success(self, *, name: str) -> None:
        await self._store.writer.submit(
            [
                (
                    "UPDATE passwords SET failures = 0, locked_until = NULL WHERE user_name = ?",
                    (name,),
                )
            ]
        )

    # ---- sessions ---------------------------------------------------------------------------

    async def create_session(
        self, *, digest: bytes, name: str, now: datetime, expires_at: datetime
    ) -> None:
        statements: list[tuple[str, Sequence[object]]] = [
            # Expired and revoked sessions are of no further use; dropped as new ones start.
            (
                "DELETE FROM sessions WHERE expires_at < ? OR revoked_at IS NOT NULL",
                (time_text(now),),
            ),
            rowmac.insert(
                "sessions",
                self._store.keys,
                {
                    "token_sha256": digest,
                    "user_name": name,
                    "created_at": time_text(now),
                    "expires_at": time_text(expires_at),
                    "revoked_at": None,
                    "last_used_at": time_text(now),
                },
            ),
        ]
        await self._store.writer.submit(statements)

    async def session(self, digest: bytes) -> SessionRow | None:
        """A session not revoked, of a user not disabled; expiry is the caller's to judge."""
        cursor = await self._store.reader.execute(
            "SELECT s.user_name, s.last_used_at, s.expires_at, s.created_at, s.mac FROM sessions s "
            "JOIN users u ON u.name = s.user_name "
            "WHERE s.token_sha256 = ? AND s.revoked_at IS NULL AND u.disabled_at IS NULL",
            (digest,),
        )
        row = await cursor.fetchone()
        if row is None:
            return None
        covered = {
            "token_sha256": digest,
            "user_name": row[0],
            "created_at": row[3],
            "expires_at": row[2],
            "revoked_at": None,
            "mac": row[4],
        }
        if not rowmac.verified(self._store.keys, "sessions", covered, what=f"of {row[0]}"):
            return None
        last, expires = text_time(row[1]), text_time(row[2])
        assert last is not None and expires is not None
        return SessionRow(user_name=row[0], last_used_at=last, expires_at=expires)

    async def touch_session(self, *, digest: bytes, now: datetime) -> None:
        await self._store.writer.submit(
            [
                (
                    "UPDATE sessions SET last_used_at = ? WHERE token_sha256 = ?",
                    (time_text(now), digest),
                )
            ]
        )

    async def revoke_session(self, *, digest: bytes, now: datetime) -> None:
        when = time_text(now)
        await asyncio.shield(
            self._store.writer.enqueue_call(lambda conn: _revoke(conn, self._store, digest, when))
        )

    async def live_sessions(self, name: str) -> int:
        cursor = await self._store.reader.execute(
            "SELECT count(*) FROM sessions WHERE user_name = ? AND revoked_at IS NULL", (name,)
        )
        row = await cursor.fetchone()
        return int(row[0]) if row else 0


def _revoke(conn: sqlite3.Connection, store: Store, digest: bytes, when: str | None) -> None:
    found = conn.execute(
        "SELECT revoked_at FROM sessions WHERE token_sha256 = ?", (digest,)
    ).fetchone()
    if found is not None and found[0] is None:
        rowmac.update(conn, store.keys, "sessions", ("token_sha256", digest), {"revoked_at": when})
