"""SQL for users, clearances, four-eyes approvals, grants and the access log."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from node.audit.verify import parse_entry
from node.policy.access import Role, User
from node.store.audit import Filters, entry_txn
from node.store.db import Store, StoredMessage, succeeded, time_text
from node.store.writer import Statement

# Whether the refusal the current call is about to raise has its audit entry already: the
# local API writes one for any refusal that does not (node/transport/local.py). Each call
# runs in a task of its own, so the mark never outlives the call.
REFUSAL_AUDITED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "accord_refusal_audited", default=False
)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as administrators see them: enrolled or not, and any role awaiting approval."""

    user: User
    enrolled: bool
    requested_role: str | None
    requested_by: str | None

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
        "e.user_name IS NULL, r.role, r.requested_by "
        "FROM users u LEFT JOIN clearances c ON c.user_name = u.name "
        "LEFT JOIN enrolments e ON e.user_name = u.name "
        "LEFT JOIN role_requests r ON r.user_name = u.name "
    )

    async def records(self, name: str | None = None) -> list[UserRecord]:
        where, params = ("WHERE u.name = ? ", (name,)) if name is not None else ("", ())
        cursor = await self._r.execute(
            self._USERS + where + "GROUP BY u.name ORDER BY u.name", params
        )
        return [
            UserRecord(
                User(
                    name,
                    Role(role),
                    frozenset(p.split("\x1f")) if p else frozenset(),
                    bool(disabled),
                    bool(pending),
                ),
                enrolled=bool(enrolled),
                requested_role=requested,
                requested_by=by,
            )
            for name, role, disabled, pending, p, enrolled, requested, by in await cursor.fetchall()
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
        also: Sequence[Statement] = (),
    ) -> None:
        """A user who has yet to redeem `code` for a token; `requested_by`: the role waits for
        a second administrator (the user has no access until then, and the code needs a
        second part from the approver). `also`: its audit entry, in the same commit."""
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
            statements.append(self._request_txn(name, role, requested_by or "", now))
        await self._store.writer.submit([*statements, *also])

    @staticmethod
    def _request_txn(name: str, role: Role, by: str, now: datetime) -> tuple[str, Sequence[object]]:
        return (
            "INSERT OR REPLACE INTO role_requests (user_name, role, requested_by, requested_at) "
            "VALUES (?, ?, ?, ?)",
            (name, role.value, by, time_text(now)),
        )

    async def redeem(
        self, *, name: str, parts: Sequence[str], token: str, now: datetime
    ) -> str | None:
        """Give `name` the token `token` if `parts` are their enrolment code, unexpired and
        unused; the code is then spent. Checked and spent in one transaction, so a code
        works once, with its audit entry (granted, or refused with the reason). Returns why
        not, or None."""
        given = [token_digest(p) for p in parts]
        when = time_text(now)

        def run(conn: sqlite3.Connection) -> str | None:
            why_not = check_and_spend(conn)
            entry = log_txn(
                at=now,
                user=name,
                action="enrol",
                outcome="refused" if why_not else "granted",
                detail=why_not or "",
            )
            self._store.audit.journal.append(conn, [entry[1]])  # fmt: skip
            return why_not

        def check_and_spend(conn: sqlite3.Connection) -> str | None:
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
                return "the user's role still awaits a second administrator's approval"
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

    async def request_role(
        self, *, name: str, role: Role, by: str, now: datetime, also: Sequence[Statement] = ()
    ) -> None:
        await self._store.writer.submit([self._request_txn(name, role, by, now), *also])

    async def decide_role(
        self,
        *,
        name: str,
        approve: bool,
        second: str | None,
        expires_at: datetime,
        also: Sequence[Statement] = (),
    ) -> None:
        """Apply (or drop) the role `name` waits for; a new user rejected is removed. `second`:
        the second part of a new user's enrolment code; `also`: audit entries, committed with
        it."""
        statements: list[tuple[str, Sequence[object]]] = []
        if approve:
            statements.append(
                (
                    "UPDATE users SET role = (SELECT role FROM role_requests WHERE user_name = ?), "
                    "pending = 0 WHERE name = ?",
                    (name, name),
                )
            )
            if second is not None:
                statements.append(
                    (
                        "UPDATE enrolments SET second_sha256 = ?, expires_at = ? "
                        "WHERE user_name = ?",
                        (token_digest(second), time_text(expires_at), name),
                    )
                )
        else:
            for sql in (
                "DELETE FROM enrolments WHERE user_name = ? AND EXISTS "
                "(SELECT 1 FROM users WHERE name = ? AND pending = 1)",
                "DELETE FROM clearances WHERE user_name = ? AND EXISTS "
                "(SELECT 1 FROM users WHERE name = ? AND pending = 1)",
            ):
                statements.append((sql, (name, name)))
        statements.append(("DELETE FROM role_requests WHERE user_name = ?", (name,)))
        if not approve:
            statements.append(("DELETE FROM users WHERE name = ? AND pending = 1", (name,)))

        def run(conn: sqlite3.Connection) -> None:
            # In this order (the role is read from the request before it is deleted): a
            # group commit orders plain statements by their text, not by unit.
            for sql, params in statements:
                conn.execute(sql, params)
            self._store.audit.journal.append(conn, [params for _, params in also])

        await asyncio.shield(self._store.writer.enqueue_call(run))

    # Each change below commits with `also`: its audit entry (`log_txn`).

    async def set_role(self, *, name: str, role: Role, also: Sequence[Statement] = ()) -> None:
        await self._store.writer.submit(
            [
                ("UPDATE users SET role = ? WHERE name = ?", (role.value, name)),
                ("DELETE FROM role_requests WHERE user_name = ?", (name,)),
                *also,
            ]
        )

    async def set_clearances(
        self, *, name: str, purposes: Sequence[str], also: Sequence[Statement] = ()
    ) -> None:
        statements: list[tuple[str, Sequence[object]]] = [
            ("DELETE FROM clearances WHERE user_name = ?", (name,))
        ]
        statements += [
            ("INSERT INTO clearances (user_name, purpose) VALUES (?, ?)", (name, p))
            for p in purposes
        ]
        await self._store.writer.submit([*statements, *also])

    async def disable_user(
        self, *, name: str, now: datetime, also: Sequence[Statement] = ()
    ) -> None:
        await self._store.writer.submit(
            [("UPDATE users SET disabled_at = ? WHERE name = ?", (time_text(now), name)), *also]
        )

    async def enable_user(self, *, name: str, also: Sequence[Statement] = ()) -> None:
        await self._store.writer.submit(
            [("UPDATE users SET disabled_at = NULL WHERE name = ?", (name,)), *also]
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
        entry: Callable[[str | None], Statement],
        on_commit: Callable[[], None] | None = None,
    ) -> str | None:
        """Record the decision and, on approval, put the message in the outbox, atomically,
        with its audit entry: `entry(None)` if this decision took, `entry(why)` if another
        was made first (which stands). Returns why not, or None.

        `on_commit` runs the moment the unit commits, in commit order with every other unit's
        continuation (so before anything committed later is handed to a link)."""
        decided_at = time_text(now)
        outbox = (
            self._store.deliveries_txn(message_id, recipients)[0] if approve else []
        )  # seqs given now: units commit in the order they are queued

        def run(conn: sqlite3.Connection) -> str | None:
            # Only if this decision is the one that takes: two supervisors deciding at once
            # both found the message pending, and a rejection that commits first must stand.
            took = conn.execute(
                "UPDATE approvals SET state = ?, decided_by = ?, decided_at = ?, note = ? "
                "WHERE message_id = ? AND state = 'pending'",
                ("approved" if approve else "rejected", approver, decided_at, note, message_id),
            ).rowcount
            why = None
            if took:
                for sql, params in outbox:
                    conn.execute(sql, params)
            else:
                state, by = conn.execute(
                    "SELECT state, decided_by FROM approvals WHERE message_id = ?", (message_id,)
                ).fetchone()
                why = f"already {state} by {by}"
            self._store.audit.journal.append(conn, [entry(why)[1]])
            return why

        committed = self._store.writer.enqueue_call(run)
        if on_commit is not None:
            notify = on_commit
            committed.add_done_callback(
                lambda unit: notify() if succeeded(unit) and unit.result() is None else None
            )
        why_not: str | None = await asyncio.shield(committed)  # a caller that stops waiting
        return why_not  # leaves the unit alone

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
        """Write one audit log entry now (`fields`: as `log_txn` takes them). A refusal
        marks the current task's context as audited (`REFUSAL_AUDITED`)."""
        await self._store.writer.submit(
            [log_txn(at=at, user=user, action=action, outcome=outcome, **fields)]
        )
        if outcome == "refused":
            REFUSAL_AUDITED.set(True)

    async def entries(self, *, limit: int = 200, message_id: str = "") -> list[AccessEntry]:
        """The latest audit entries (of one message), newest first."""
        found = await self._store.audit.query(Filters(message_id=message_id), limit=limit)
        out = []
        for stored in reversed(found):
            e = parse_entry(stored.data)
            out.append(
                AccessEntry(
                    at=time_text(e.at) or "",
                    user=e.actor,
                    action=e.action,
                    message_id=e.message_id,
                    purpose=e.purpose,
                    justification=e.justification,
                    recipient=e.peer,
                    outcome=e.outcome,
                    detail=e.detail,
                )
            )
        return out


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
    peer: str = "",
    detail: str = "",
) -> tuple[str, Sequence[object]]:
    """The audit log entry of one action, to commit in the same unit as the action itself
    (`recipient` or `peer`: the agencies concerned, comma-separated)."""
    return entry_txn(
        at=at,
        actor=user,
        action=action,
        outcome=outcome,
        message_id=message_id,
        peer=peer or recipient,
        purpose=purpose,
        justification=justification,
        detail=detail,
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
