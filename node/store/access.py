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

import node.store.rowmac as rowmac  # noqa: PLR0402 (the submodule alone: no cycle through node.store)
from node.audit.verify import parse_entry
from node.policy.access import Role, User
from node.store.audit import Filters, entry_txn
from node.store.db import Store, StoredMessage, succeeded, time_text
from node.store.keys import KeyRing
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
        "SELECT u.name, u.role, u.token_sha256, u.disabled_at, u.pending, u.mac, "
        "e.user_name IS NULL, r.user_name, r.role, r.clearances, r.enabled, r.requested_by, "
        "r.requested_at, r.mac "
        "FROM users u LEFT JOIN enrolments e ON e.user_name = u.name "
        "LEFT JOIN user_requests r ON r.user_name = u.name "
    )

    async def records(self, name: str | None = None) -> list[UserRecord]:
        """Users whose rows the node wrote (rowmac.py): a forged row, clearance or request
        is left out, and logged."""
        keys = self._store.keys
        where, params = ("WHERE u.name = ? ", (name,)) if name is not None else ("", ())
        cursor = await self._r.execute(self._USERS + where + "ORDER BY u.name", params)
        users = await cursor.fetchall()
        where = "WHERE user_name = ?" if name is not None else ""
        cursor = await self._r.execute(
            f"SELECT user_name, purpose, mac FROM clearances {where}",  # noqa: S608 (constant)
            params,
        )
        cleared: dict[str, set[str]] = {}
        for user_name, purpose, mac in await cursor.fetchall():
            row = {"user_name": user_name, "purpose": purpose, "mac": mac}
            if rowmac.verified(keys, "clearances", row, what=f"{user_name}: {purpose}"):
                cleared.setdefault(user_name, set()).add(purpose)
        out = []
        for u_name, role, digest, disabled, pending, u_mac, enrolled, *request in users:
            user_row = {
                "name": u_name,
                "role": role,
                "token_sha256": digest,
                "disabled_at": disabled,
                "pending": pending,
                "mac": u_mac,
            }
            if not rowmac.verified(keys, "users", user_row, what=u_name):
                continue
            out.append(
                UserRecord(
                    User(
                        u_name,
                        Role(role),
                        frozenset(cleared.get(u_name, ())),
                        disabled is not None,
                        bool(pending),
                    ),
                    enrolled=bool(enrolled),
                    requested=self._change(keys, request),
                    requested_by=request[4] if request[0] is not None else None,
                )
            )
        return out

    @staticmethod
    def _change(keys: KeyRing, request: Sequence[object]) -> UserChange | None:
        columns = rowmac.COVERED["user_requests"]
        row = dict(zip((*columns, "mac"), request, strict=True))
        if row["user_name"] is None or not rowmac.verified(
            keys, "user_requests", row, what=str(row["user_name"])
        ):
            return None
        role, purposes, enabled = row["role"], row["clearances"], row["enabled"]
        return UserChange(
            role=None if role is None else Role(str(role)),
            clearances=None if purposes is None else _purposes(str(purposes)),
            enabled=None if enabled is None else bool(enabled),
        )

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
        """A user who has yet to redeem `code` for a token; `requested_by`: the user waits for
        a second administrator (no access until then, and the code needs a second part from
        the approver). `also`: its audit entry, in the same commit."""
        keys = self._store.keys
        placeholder = secrets.token_urlsafe(32)  # its digest opens nothing: nobody holds it
        pending = requested_by is not None
        statements = add_user_txn(
            keys,
            name=name,
            role=role,
            token=placeholder,
            purposes=purposes,
            now=now,
            pending=pending,
        )
        enrolment = {
            "user_name": name,
            "code_sha256": token_digest(code),
            "second_sha256": None,
            "needs_second": int(pending),
            "expires_at": time_text(expires_at),
        }
        statements.append(rowmac.insert("enrolments", keys, enrolment))
        if pending:
            statements.append(
                self._request_txn(name, UserChange(role=role), requested_by or "", now)
            )
        await self._store.writer.submit([*statements, *also])

    def _request_txn(
        self, name: str, change: UserChange, by: str, now: datetime
    ) -> tuple[str, Sequence[object]]:
        row = {
            "user_name": name,
            "role": None if change.role is None else change.role.value,
            "clearances": None
            if change.clearances is None
            else "\x1f".join(sorted(change.clearances)),
            "enabled": None if change.enabled is None else int(change.enabled),
            "requested_by": by,
            "requested_at": time_text(now),
        }
        return rowmac.insert("user_requests", self._store.keys, row, replace=True)

    async def redeem(
        self, *, name: str, parts: Sequence[str], token: str, now: datetime
    ) -> str | None:
        """Give `name` the token `token` if `parts` are their enrolment code, unexpired and
        unused; the code is then spent. Checked and spent in one transaction, so a code
        works once, with its audit entry (granted, or refused with the reason). Returns why
        not, or None."""
        given = [token_digest(p) for p in parts]
        when = time_text(now)

        keys = self._store.keys

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
            found = conn.execute(
                "SELECT user_name, code_sha256, second_sha256, needs_second, expires_at, mac "
                "FROM enrolments WHERE user_name = ?",
                (name,),
            ).fetchone()
            code = None
            if found is not None:
                row = dict(zip((*rowmac.COVERED["enrolments"], "mac"), found, strict=True))
                if rowmac.verified(keys, "enrolments", row, what=name):
                    code = found[1:5]
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
            if not rowmac.update(
                conn, keys, "users", ("name", name), {"token_sha256": token_digest(token)}
            ):
                return "the user's record is not the node's own (see the node's log)"
            conn.execute("DELETE FROM enrolments WHERE user_name = ?", (name,))
            return None

        result: str | None = await asyncio.shield(self._store.writer.enqueue_call(run))
        return result

    async def request_change(
        self,
        *,
        name: str,
        change: UserChange,
        by: str,
        now: datetime,
        also: Sequence[Statement] = (),
    ) -> None:
        await self._store.writer.submit([self._request_txn(name, change, by, now), *also])

    async def decide_change(
        self,
        *,
        name: str,
        approve: bool,
        second: str | None,
        now: datetime,
        expires_at: datetime,
        also: Sequence[Statement] = (),
    ) -> None:
        """Apply (or drop) the change `name` waits for; a new user rejected is removed.
        `second`: the second part of the enrolment code of a user not enrolled yet (their
        code then needs both parts); `also`: audit entries, committed with it."""
        when = time_text(now)
        keys = self._store.keys

        def run(conn: sqlite3.Connection) -> None:
            found = conn.execute(
                "SELECT user_name, role, clearances, enabled, requested_by, requested_at, mac "
                "FROM user_requests WHERE user_name = ?",
                (name,),
            ).fetchone()
            conn.execute("DELETE FROM user_requests WHERE user_name = ?", (name,))
            if found is None:
                return
            change = self._change(keys, found)
            if change is None:
                return  # forged: logged, and nothing of it applied
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
            changes: dict[str, object] = {"pending": 0}
            if change.role is not None:
                changes["role"] = change.role.value
            if change.enabled is not None:
                changes["disabled_at"] = None if change.enabled else when
            if not rowmac.update(conn, keys, "users", ("name", name), changes):
                return
            if change.enabled is False:  # as disable_user: sessions end for good
                conn.execute("DELETE FROM sessions WHERE user_name = ?", (name,))
            if change.clearances is not None:
                conn.execute("DELETE FROM clearances WHERE user_name = ?", (name,))
                for purpose in sorted(change.clearances):
                    row = {"user_name": name, "purpose": purpose}
                    conn.execute(*rowmac.insert("clearances", keys, row))
            if second is not None:
                rowmac.update(
                    conn,
                    keys,
                    "enrolments",
                    ("user_name", name),
                    {
                        "second_sha256": token_digest(second),
                        "needs_second": 1,
                        "expires_at": time_text(expires_at),
                    },
                )

        await asyncio.shield(self._store.writer.enqueue_call(run, also))

    async def had_two_administrators(self) -> bool:
        cursor = await self._r.execute(
            "SELECT name, value, mac FROM node_state WHERE name = 'had_two_administrators'"
        )
        found = await cursor.fetchone()
        if found is None:
            return False
        row = dict(zip(("name", "value", "mac"), found, strict=True))
        # A forged row only takes the bootstrap exception away: it counts as set.
        rowmac.verified(self._store.keys, "node_state", row, what="had_two_administrators")
        return True

    async def remember_two_administrators(self) -> None:
        """Recorded once and for good: the bootstrap exception never comes back."""
        keys = self._store.keys
        await asyncio.shield(
            self._store.writer.enqueue_call(
                lambda conn: rowmac.put_state(conn, keys, "had_two_administrators", 1)
            )
        )

    # Each change below commits with `also`: its audit entry (`log_txn`).

    async def set_role(self, *, name: str, role: Role, also: Sequence[Statement] = ()) -> None:
        await self._update_user(name, {"role": role.value}, also)

    async def set_clearances(
        self, *, name: str, purposes: Sequence[str], also: Sequence[Statement] = ()
    ) -> None:
        keys = self._store.keys
        statements: list[tuple[str, Sequence[object]]] = [
            ("DELETE FROM clearances WHERE user_name = ?", (name,))
        ]
        statements += [
            rowmac.insert("clearances", keys, {"user_name": name, "purpose": p})
            for p in sorted(set(purposes))
        ]

        def run(conn: sqlite3.Connection) -> None:
            for sql, params in statements:  # in this order (see decide_change)
                conn.execute(sql, params)

        await asyncio.shield(self._store.writer.enqueue_call(run, also))

    async def disable_user(
        self, *, name: str, now: datetime, also: Sequence[Statement] = ()
    ) -> None:
        """Disabled, and their login sessions ended for good: enabling the user again does
        not bring back a session from before (a stolen one included)."""
        keys = self._store.keys

        def run(conn: sqlite3.Connection) -> None:
            rowmac.update(conn, keys, "users", ("name", name), {"disabled_at": time_text(now)})
            conn.execute("DELETE FROM sessions WHERE user_name = ?", (name,))

        await asyncio.shield(self._store.writer.enqueue_call(run, also))

    async def _update_user(
        self, name: str, changes: dict[str, object], also: Sequence[Statement] = ()
    ) -> None:
        keys = self._store.keys

        def run(conn: sqlite3.Connection) -> None:
            rowmac.update(conn, keys, "users", ("name", name), changes)

        await asyncio.shield(self._store.writer.enqueue_call(run, also))

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
        row = {
            "message_id": message.message_id,
            "author": author,
            "recipients": ",".join(recipients),
            "state": "pending",
            "decided_by": None,
            "requested_at": time_text(now),
        }
        await self._store.writer.submit(
            [
                self._store.message_txn(message),
                rowmac.insert("approvals", self._store.keys, row),
                *also,
            ]
        )

    async def approval(self, message_id: str) -> Approval | None:
        cursor = await self._r.execute(
            "SELECT message_id, author, recipients, state, requested_at, decided_by, decided_at, "
            "note, mac FROM approvals WHERE message_id = ?",
            (message_id,),
        )
        row = await cursor.fetchone()
        return self._approval(row) if row else None

    async def approvals(self, *, state: str | None = "pending") -> list[Approval]:
        sql = (
            "SELECT message_id, author, recipients, state, requested_at, decided_by, decided_at, "
            "note, mac FROM approvals"
        )
        params: tuple[str, ...] = ()
        if state:
            sql += " WHERE state = ?"
            params = (state,)
        cursor = await self._r.execute(sql + " ORDER BY requested_at", params)
        found = [self._approval(r) for r in await cursor.fetchall()]
        return [a for a in found if a is not None]

    def _approval(self, row: Sequence[object]) -> Approval | None:
        """An approval row the node wrote (a forged one, logged, is not one)."""
        found = _approval(row)
        covered = {
            "message_id": found.message_id,
            "author": found.author,
            "recipients": row[2],
            "state": found.state,
            "decided_by": found.decided_by,
            "mac": row[8],
        }
        if not rowmac.verified(self._store.keys, "approvals", covered, what=found.message_id):
            return None
        return found

    async def decide(
        self,
        *,
        message_id: str,
        author: str,
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
        state = "approved" if approve else "rejected"
        decided = {
            "message_id": message_id,
            "author": author,
            "recipients": ",".join(recipients),
            "state": state,
            "decided_by": approver,
        }
        mac = rowmac.mac(self._store.keys, "approvals", decided)
        outbox = (
            self._store.deliveries_txn(message_id, recipients)[0] if approve else []
        )  # seqs given now: units commit in the order they are queued

        def run(conn: sqlite3.Connection) -> str | None:
            # Only if this decision is the one that takes: two supervisors deciding at once
            # both found the message pending, and a rejection that commits first must stand.
            took = conn.execute(
                "UPDATE approvals SET state = ?, decided_by = ?, decided_at = ?, note = ?, "
                "mac = ? WHERE message_id = ? AND state = 'pending'",
                (state, approver, decided_at, note, mac, message_id),
            ).rowcount
            why = None
            if took:
                for sql, params in outbox:
                    conn.execute(sql, params)
            else:
                found, by = conn.execute(
                    "SELECT state, decided_by FROM approvals WHERE message_id = ?", (message_id,)
                ).fetchone()
                why = f"already {found} by {by}"
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
    keys: KeyRing,
    *,
    name: str,
    role: Role,
    token: str,
    purposes: Sequence[str],
    now: datetime,
    pending: bool = False,
) -> list[tuple[str, Sequence[object]]]:
    """The statements that create a user (also run by `accord node init`, without a writer)."""
    user = {
        "name": name,
        "role": role.value,
        "token_sha256": token_digest(token),
        "disabled_at": None,
        "pending": int(pending),
        "created_at": time_text(now),
    }
    statements = [rowmac.insert("users", keys, user)]
    statements += [
        rowmac.insert("clearances", keys, {"user_name": name, "purpose": p})
        for p in sorted(set(purposes))
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
