"""SQL for users, clearances, four-eyes approvals, grants and the access log."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from node.policy.access import Role, User
from node.store.db import Store, StoredMessage, succeeded, time_text


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class UserChange:
    """A change to a user that waits for a second administrator; None: that part stays."""

    role: Role | None = None
    clearances: frozenset[str] | None = None
    enabled: bool | None = None

    def describe(self) -> str:
        parts = []
        if self.role is not None:
            parts.append(f"as {self.role}")
        if self.clearances is not None:
            parts.append(f"cleared for {','.join(sorted(self.clearances)) or 'nothing'}")
        if self.enabled is not None:
            parts.append("enabled" if self.enabled else "disabled")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as administrators see them: enrolled or not, and any change awaiting approval."""

    user: User
    enrolled: bool
    requested: UserChange | None
    requested_by: str | None

    @property
    def requested_role(self) -> str | None:
        return (
            None if self.requested is None or self.requested.role is None else self.requested.role
        )

    @property
    def state(self) -> str:
        if self.user.disabled:
            return "disabled"
        if self.user.pending:
            return "awaiting approval"
        return "active" if self.enrolled else "not enrolled"


@dataclass(frozen=True, slots=True)
class Approval:
    message_id: str
    author: str
    recipients: tuple[str, ...]
    state: str
    requested_at: str
    decided_by: str | None
    decided_at: str | None
    note: str


@dataclass(frozen=True, slots=True)
class AccessEntry:
    at: str
    user: str
    action: str
    message_id: str
    purpose: str
    justification: str
    recipient: str
    outcome: str
    detail: str


class AccessStore:
    """Shares the node store's connections and group-commit writer."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def _r(self) -> aiosqlite.Connection:
        return self._store.reader

    # ---- users ------------------------------------------------------------------------------

    _USERS = (
        "SELECT u.name, u.role, u.disabled_at, u.pending, group_concat(c.purpose, char(31)), "
        "e.user_name IS NULL, r.user_name IS NOT NULL, r.role, r.clearances, r.enabled, "
        "r.requested_by "
        "FROM users u LEFT JOIN clearances c ON c.user_name = u.name "
        "LEFT JOIN enrolments e ON e.user_name = u.name "
        "LEFT JOIN user_requests r ON r.user_name = u.name "
    )

    async def records(self, name: str | None = None) -> list[UserRecord]:
        where, params = ("WHERE u.name = ? ", (name,)) if name is not None else ("", ())
        cursor = await self._r.execute(
            self._USERS + where + "GROUP BY u.name ORDER BY u.name", params
        )
        return [
            UserRecord(
                User(name, Role(role), _purposes(p), bool(disabled), bool(pending)),
                enrolled=bool(enrolled),
                requested=UserChange(
                    role=None if r_role is None else Role(r_role),
                    clearances=None if r_clear is None else _purposes(r_clear),
                    enabled=None if r_enabled is None else bool(r_enabled),
                )
                if requested
                else None,
                requested_by=by,
            )
            for (
                name,
                role,
                disabled,
                pending,
                p,
                enrolled,
                requested,
                r_role,
                r_clear,
                r_enabled,
                by,
            ) in await cursor.fetchall()
        ]

    async def users(self) -> list[User]:
        return [r.user for r in await self.records()]

    async def user(self, name: str) -> User | None:
        found = await self.records(name)
        return found[0].user if found else None

    async def user_by_token(self, token: str) -> User | None:
        """The enabled, approved user whose token this is, if any."""
        cursor = await self._r.execute(
            "SELECT name FROM users WHERE token_sha256 = ? AND disabled_at IS NULL AND pending = 0",
            (token_digest(token),),
        )
        row = await cursor.fetchone()
        return None if row is None else await self.user(row[0])

    async def add_user(
        self, *, name: str, role: Role, token: str, purposes: Sequence[str], now: datetime
    ) -> None:
        """A user with a token (the bootstrap administrator)."""
        await self._store.writer.submit(
            add_user_txn(name=name, role=role, token=token, purposes=purposes, now=now)
        )

    async def add_enrolling_user(
        self,
        *,
        name: str,
        role: Role,
        purposes: Sequence[str],
        code: str,
        expires_at: datetime,
        requested_by: str | None,
        now: datetime,
    ) -> None:
        """A user who has yet to redeem `code` for a token; `requested_by`: the user waits for
        a second administrator (no access until then, and the code needs a second part from
        the approver)."""
        placeholder = secrets.token_urlsafe(32)  # its digest opens nothing: nobody holds it
        statements = add_user_txn(
            name=name, role=role, token=placeholder, purposes=purposes, now=now
        )
        pending = requested_by is not None
        statements.append(
            (
                "INSERT INTO enrolments (user_name, code_sha256, needs_second, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (name, token_digest(code), int(pending), time_text(expires_at)),
            )
        )
        if pending:
            statements.append(("UPDATE users SET pending = 1 WHERE name = ?", (name,)))
            statements.append(
                self._request_txn(name, UserChange(role=role), requested_by or "", now)
            )
        await self._store.writer.submit(statements)

    @staticmethod
    def _request_txn(
        name: str, change: UserChange, by: str, now: datetime
    ) -> tuple[str, Sequence[object]]:
        return (
            "INSERT OR REPLACE INTO user_requests (user_name, role, clearances, enabled, "
            "requested_by, requested_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                name,
                None if change.role is None else change.role.value,
                None if change.clearances is None else "\x1f".join(sorted(change.clearances)),
                None if change.enabled is None else int(change.enabled),
                by,
                time_text(now),
            ),
        )

    async def redeem(
        self, *, name: str, parts: Sequence[str], token: str, now: datetime
    ) -> str | None:
        """Give `name` the token `token` if `parts` are their enrolment code, unexpired and
        unused; the code is then spent. Checked and spent in one transaction, so a code
        works once. Returns why not, or None."""
        given = [token_digest(p) for p in parts]
        when = time_text(now)

        def run(conn: sqlite3.Connection) -> str | None:
            user = conn.execute(
                "SELECT disabled_at, pending FROM users WHERE name = ?", (name,)
            ).fetchone()
            code = conn.execute(
                "SELECT code_sha256, second_sha256, needs_second, expires_at FROM enrolments "
                "WHERE user_name = ?",
                (name,),
            ).fetchone()
            if user is None or code is None:
                return "no enrolment code is open for this user (each code works once)"
            if user[0] is not None:
                return "the user is disabled"
            if user[1]:
                return "the user still awaits a second administrator's approval"
            first, second, needs_second, expires = code
            expected = [first, second] if needs_second else [first]
            if len(given) != len(expected) or not all(
                e is not None and hmac.compare_digest(e, g)
                for e, g in zip(expected, given, strict=True)
            ):
                return "the code is not this user's" + (
                    " (it has two parts: first+second)" if needs_second else ""
                )
            if expires <= when:
                return f"the code expired at {expires}; ask an administrator for a new user"
            conn.execute(
                "UPDATE users SET token_sha256 = ? WHERE name = ?", (token_digest(token), name)
            )
            conn.execute("DELETE FROM enrolments WHERE user_name = ?", (name,))
            return None

        result: str | None = await asyncio.shield(self._store.writer.enqueue_call(run))
        return result

    async def request_change(
        self, *, name: str, change: UserChange, by: str, now: datetime
    ) -> None:
        await self._store.writer.submit([self._request_txn(name, change, by, now)])

    async def decide_change(
        self, *, name: str, approve: bool, second: str | None, now: datetime, expires_at: datetime
    ) -> None:
        """Apply (or drop) the change `name` waits for; a new user rejected is removed.
        `second`: the second part of the enrolment code of a user not enrolled yet (their
        code then needs both parts)."""
        when = time_text(now)

        def run(conn: sqlite3.Connection) -> None:
            request = conn.execute(
                "SELECT role, clearances, enabled FROM user_requests WHERE user_name = ?", (name,)
            ).fetchone()
            conn.execute("DELETE FROM user_requests WHERE user_name = ?", (name,))
            if request is None:
                return
            role, purposes, enabled = request
            if not approve:
                if conn.execute(
                    "SELECT 1 FROM users WHERE name = ? AND pending = 1", (name,)
                ).fetchone():
                    for table, column in (
                        ("enrolments", "user_name"),
                        ("clearances", "user_name"),
                        ("users", "name"),
                    ):
                        conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))  # noqa: S608 (constant names)
                return
            conn.execute(
                "UPDATE users SET role = coalesce(?, role), pending = 0, disabled_at = "
                "CASE ? WHEN 0 THEN ? WHEN 1 THEN NULL ELSE disabled_at END WHERE name = ?",
                (role, enabled, when, name),
            )
            if purposes is not None:
                conn.execute("DELETE FROM clearances WHERE user_name = ?", (name,))
                conn.executemany(
                    "INSERT INTO clearances (user_name, purpose) VALUES (?, ?)",
                    [(name, p) for p in _purposes(purposes)],
                )
            if second is not None:
                conn.execute(
                    "UPDATE enrolments SET second_sha256 = ?, needs_second = 1, expires_at = ? "
                    "WHERE user_name = ?",
                    (token_digest(second), time_text(expires_at), name),
                )

        await asyncio.shield(self._store.writer.enqueue_call(run))

    async def had_two_administrators(self) -> bool:
        cursor = await self._r.execute(
            "SELECT 1 FROM node_state WHERE name = 'had_two_administrators'"
        )
        return await cursor.fetchone() is not None

    async def remember_two_administrators(self) -> None:
        """Recorded once and for good: the bootstrap exception never comes back."""
        await self._store.writer.submit(
            [
                (
                    "INSERT OR IGNORE INTO node_state (name, value) "
                    "VALUES ('had_two_administrators', 1)",
                    (),
                )
            ]
        )

    async def set_role(self, *, name: str, role: Role) -> None:
        await self._store.writer.submit(
            [("UPDATE users SET role = ? WHERE name = ?", (role.value, name))]
        )

    async def set_clearances(self, *, name: str, purposes: Sequence[str]) -> None:
        statements: list[tuple[str, Sequence[object]]] = [
            ("DELETE FROM clearances WHERE user_name = ?", (name,))
        ]
        statements += [
            ("INSERT INTO clearances (user_name, purpose) VALUES (?, ?)", (name, p))
            for p in purposes
        ]
        await self._store.writer.submit(statements)

    async def disable_user(self, *, name: str, now: datetime) -> None:
        await self._store.writer.submit(
            [("UPDATE users SET disabled_at = ? WHERE name = ?", (time_text(now), name))]
        )

    # ---- approvals --------------------------------------------------------------------------

    async def hold_for_approval(
        self,
        message: StoredMessage,
        *,
        recipients: Sequence[str],
        author: str,
        now: datetime,
        also: Sequence[tuple[str, Sequence[object]]] = (),
    ) -> None:
        """Store an outbound message without outbox rows, pending a second person's approval
        (with `also`, its access log entry, in the same commit)."""
        await self._store.writer.submit(
            [
                self._store.message_txn(message),
                (
                    "INSERT INTO approvals (message_id, author, recipients, requested_at) "
                    "VALUES (?, ?, ?, ?)",
                    (message.message_id, author, ",".join(recipients), time_text(now)),
                ),
                *also,
            ]
        )

    async def approval(self, message_id: str) -> Approval | None:
        cursor = await self._r.execute(
            "SELECT message_id, author, recipients, state, requested_at, decided_by, decided_at, "
            "note FROM approvals WHERE message_id = ?",
            (message_id,),
        )
        row = await cursor.fetchone()
        return _approval(row) if row else None

    async def approvals(self, *, state: str | None = "pending") -> list[Approval]:
        sql = (
            "SELECT message_id, author, recipients, state, requested_at, decided_by, decided_at, "
            "note FROM approvals"
        )
        params: tuple[str, ...] = ()
        if state:
            sql += " WHERE state = ?"
            params = (state,)
        cursor = await self._r.execute(sql + " ORDER BY requested_at", params)
        return [_approval(r) for r in await cursor.fetchall()]

    async def decide(
        self,
        *,
        message_id: str,
        approver: str,
        approve: bool,
        note: str,
        now: datetime,
        recipients: Sequence[str],
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        """Record the decision and, on approval, put the message in the outbox, atomically.

        `on_commit` runs the moment the unit commits, in commit order with every other unit's
        continuation (so before anything committed later is handed to a link)."""
        decided_at = time_text(now)
        statements: list[tuple[str, Sequence[object]]] = [
            (
                "UPDATE approvals SET state = ?, decided_by = ?, decided_at = ?, note = ? "
                "WHERE message_id = ? AND state = 'pending'",
                ("approved" if approve else "rejected", approver, decided_at, note, message_id),
            )
        ]
        if approve:
            # Only if this decision is the one that took: two supervisors deciding at once
            # both find the message pending, and a rejection that commits first must stand.
            statements += self._store.deliveries_txn(
                message_id,
                recipients,
                only_if=(
                    "EXISTS (SELECT 1 FROM approvals WHERE message_id = ? AND state = 'approved' "
                    "AND decided_by = ? AND decided_at = ?)",
                    (message_id, approver, decided_at),
                ),
            )[0]
        committed = self._store.writer.enqueue(statements)
        if on_commit is not None:
            notify = on_commit
            committed.add_done_callback(lambda unit: notify() if succeeded(unit) else None)
        await asyncio.shield(committed)  # a caller that stops waiting leaves the unit alone

    # ---- grants -----------------------------------------------------------------------------

    async def grants_for(self, message_id: str) -> list[StoredMessage]:
        """Received TRANSFER_AUTHORISATION_GRANT messages that act on `message_id`."""
        cursor = await self._r.execute(
            "SELECT message_id, sender FROM messages WHERE control_target = ? "
            "AND type = 'TRANSFER_AUTHORISATION_GRANT' AND direction = 'in'",
            (message_id,),
        )
        out = []
        for mid, sender in await cursor.fetchall():
            m = await self._store.get_message(mid, sender=sender, direction="in")
            if m is not None:
                out.append(m)
        return out

    # ---- access log -------------------------------------------------------------------------

    async def log(
        self, *, at: datetime, user: str, action: str, outcome: str, **fields: str
    ) -> None:
        """Write one access log entry now (`fields`: as `log_txn` takes them)."""
        await self._store.writer.submit(
            [log_txn(at=at, user=user, action=action, outcome=outcome, **fields)]
        )

    async def entries(self, *, limit: int = 200, message_id: str = "") -> list[AccessEntry]:
        sql = (
            "SELECT at, user_name, action, message_id, purpose, justification, recipient, "
            "outcome, detail FROM access_log"
        )
        params: list[object] = []
        if message_id:
            sql += " WHERE message_id = ?"
            params.append(message_id)
        cursor = await self._r.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [AccessEntry(*row) for row in await cursor.fetchall()]


def log_txn(
    *,
    at: datetime,
    user: str,
    action: str,
    outcome: str,
    message_id: str = "",
    purpose: str = "",
    justification: str = "",
    recipient: str = "",
    detail: str = "",
) -> tuple[str, Sequence[object]]:
    """The access log row of one action, to commit in the same unit as the action itself."""
    return (
        "INSERT INTO access_log (at, user_name, action, message_id, purpose, "
        "justification, recipient, outcome, detail) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            time_text(at),
            user,
            action,
            message_id,
            purpose,
            justification,
            recipient,
            outcome,
            detail[:500],
        ),
    )


def add_user_txn(
    *, name: str, role: Role, token: str, purposes: Sequence[str], now: datetime
) -> list[tuple[str, Sequence[object]]]:
    """The statements that create a user (also run by `accord node init`, without a writer)."""
    statements: list[tuple[str, Sequence[object]]] = [
        (
            "INSERT INTO users (name, role, token_sha256, created_at) VALUES (?, ?, ?, ?)",
            (name, role.value, token_digest(token), time_text(now)),
        )
    ]
    statements += [
        ("INSERT OR IGNORE INTO clearances (user_name, purpose) VALUES (?, ?)", (name, p))
        for p in purposes
    ]
    return statements


def _purposes(joined: str | None) -> frozenset[str]:
    return frozenset(joined.split("\x1f")) if joined else frozenset()


def _approval(row: Sequence[object]) -> Approval:
    return Approval(
        message_id=str(row[0]),
        author=str(row[1]),
        recipients=tuple(str(row[2]).split(",")),
        state=str(row[3]),
        requested_at=str(row[4]),
        decided_by=None if row[5] is None else str(row[5]),
        decided_at=None if row[6] is None else str(row[6]),
        note=str(row[7]),
    )
