"""SQL for people's passwords, failed-login counts and login sessions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

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
            "SELECT p.hash, p.failures, p.locked_until FROM passwords p "
            "JOIN users u ON u.name = p.user_name WHERE p.user_name = ? AND u.disabled_at IS NULL",
            (name,),
        )
        row = await cursor.fetchone()
        if row is None:
            return None
        return PasswordRow(hash=row[0], failures=int(row[1]), locked_until=text_time(row[2]))

    async def set_password(
        self, *, name: str, hash: str, now: datetime, keep_session: bytes | None
    ) -> None:
        """Store a new hash, clear failures, and revoke the user's sessions but `keep_session`
        (the one that made the change, if any): a stolen session ends with a password change."""
        await self._store.writer.submit(
            [
                (
                    "INSERT INTO passwords (user_name, hash, set_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (user_name) DO UPDATE SET hash = excluded.hash, "
                    "set_at = excluded.set_at, failures = 0, locked_until = NULL",
                    (name, hash, time_text(now)),
                ),
                (
                    "UPDATE sessions SET revoked_at = ? WHERE user_name = ? "
                    "AND revoked_at IS NULL AND token_sha256 IS NOT ?",
                    (time_text(now), name, keep_session),
                ),
            ]
        )

    async def rehash(self, *, name: str, hash: str) -> None:
        await self._store.writer.submit(
            [("UPDATE passwords SET hash = ? WHERE user_name = ?", (hash, name))]
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
            (
                "INSERT INTO sessions (token_sha256, user_name, created_at, last_used_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?)",
                (digest, name, time_text(now), time_text(now), time_text(expires_at)),
            ),
        ]
        await self._store.writer.submit(statements)

    async def session(self, digest: bytes) -> SessionRow | None:
        """A session not revoked, of a user not disabled; expiry is the caller's to judge."""
        cursor = await self._store.reader.execute(
            "SELECT s.user_name, s.last_used_at, s.expires_at FROM sessions s "
            "JOIN users u ON u.name = s.user_name "
            "WHERE s.token_sha256 = ? AND s.revoked_at IS NULL AND u.disabled_at IS NULL",
            (digest,),
        )
        row = await cursor.fetchone()
        if row is None:
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
        await self._store.writer.submit(
            [
                (
                    "UPDATE sessions SET revoked_at = ? WHERE token_sha256 = ? "
                    "AND revoked_at IS NULL",
                    (time_text(now), digest),
                )
            ]
        )

    async def live_sessions(self, name: str) -> int:
        cursor = await self._store.reader.execute(
            "SELECT count(*) FROM sessions WHERE user_name = ? AND revoked_at IS NULL", (name,)
        )
        row = await cursor.fetchone()
        return int(row[0]) if row else 0
