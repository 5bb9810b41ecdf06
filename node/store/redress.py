"""SQL for redress: what was applied to held messages, forwards sent, relays and holders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from node.messages import SignedReceipt
from node.store.db import Store, time_text
from node.store.writer import Statement


@dataclass(frozen=True, slots=True)
class Applied:
    """The newest redress applied to a held message (the row `sender`, `message_id`)."""

    sender: str
    message_id: str
    redress_sender: str
    redress_id: str
    origin_redress_id: str
    origin_sender: str
    origin_id: str
    result: str
    tlp: str
    handling_codes: tuple[str, ...]
    handling_conditions: str
    applied_at: str


@dataclass(frozen=True, slots=True)
class Relay:
    """A relay this node sent: the redress `upstream_id` from `upstream`, passed to
    `recipient`."""

    relay_id: str
    upstream: str
    upstream_id: str
    origin_redress_id: str
    recipient: str


@dataclass(frozen=True, slots=True)
class Holder:
    """An onward holder of a redress, as reported back along the chain."""

    holder: str
    via: str
    state: str
    result: str
    detail: str
    answered_at: str | None


_APPLIED = (
    "SELECT sender, message_id, redress_sender, redress_id, origin_redress_id, origin_sender, "
    "origin_id, result, tlp, handling_codes, handling_conditions, applied_at FROM redress_applied"
)


def _applied(row: Sequence[str]) -> Applied:
    return Applied(
        sender=row[0],
        message_id=row[1],
        redress_sender=row[2],
        redress_id=row[3],
        origin_redress_id=row[4],
        origin_sender=row[5],
        origin_id=row[6],
        result=row[7],
        tlp=row[8],
        handling_codes=tuple(row[9].split(",")) if row[9] else (),
        handling_conditions=row[10],
        applied_at=row[11],
    )


class RedressStore:
    """Shares the node store's connections and group-commit writer."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def _r(self) -> aiosqlite.Connection:
        return self._store.reader

    # ---- applied redress --------------------------------------------------------------------

    @staticmethod
    def applied_txn(a: Applied) -> Statement:
        """Record a redress applied to a held message (with the redress's own row)."""
        return (
            "INSERT OR IGNORE INTO redress_applied (sender, message_id, redress_sender, "
            "redress_id, origin_redress_id, origin_sender, origin_id, result, tlp, handling_codes, "
            "handling_conditions, applied_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                a.sender,
                a.message_id,
                a.redress_sender,
                a.redress_id,
                a.origin_redress_id,
                a.origin_sender,
                a.origin_id,
                a.result,
                a.tlp,
                ",".join(a.handling_codes),
                a.handling_conditions,
                a.applied_at,
            ),
        )

    async def latest(self, *, sender: str, message_id: str) -> Applied | None:
        """The newest redress applied to a held message, or None."""
        cursor = await self._r.execute(
            f"{_APPLIED} WHERE sender = ? AND message_id = ? ORDER BY rowid DESC LIMIT 1",
            (sender, message_id),
        )
        row = await cursor.fetchone()
        return _applied(row) if row else None

    async def by_redress(self, *, redress_sender: str, redress_id: str) -> Applied | None:
        """What the redress row (`redress_sender`, `redress_id`) did here, or None."""
        cursor = await self._r.execute(
            f"{_APPLIED} WHERE redress_sender = ? AND redress_id = ?", (redress_sender, redress_id)
        )
        row = await cursor.fetchone()
        return _applied(row) if row else None

    async def sent_redresses(self, target: str) -> list[tuple[str, str, str]]:
        """The redresses this node sent of its message `target` (or `target` itself, if it is
        one): (id, type, created_at), oldest first."""
        types = ("ERASURE_REQUEST", "RECTIFICATION", "INCIDENT_RETRACT", "HANDLING_UPDATE")
        rows = await self._r.execute_fetchall(
            "SELECT message_id, type, created_at FROM messages WHERE direction = 'out' "
            "AND type IN (?,?,?,?) AND (control_target = ? OR message_id = ?) "
            "ORDER BY message_id",
            (*types, target, target),
        )
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    async def versions(self, *, sender: str, message_id: str) -> list[tuple[str, str]]:
        """The rectifications that replaced a held message, oldest first: (sender, id) of each
        RECTIFICATION row (each holds a version of the message)."""
        rows = await self._r.execute_fetchall(
            "SELECT redress_sender, redress_id FROM redress_applied WHERE sender = ? "
            "AND message_id = ? AND result = 'REPLACED' ORDER BY rowid",
            (sender, message_id),
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    async def hold_reference(self, message_id: str, correlation_id: str) -> str:
        """The legal hold in force on a message or its thread ("hold N"), or ""."""
        cursor = await self._r.execute(
            "SELECT id FROM holds WHERE released_at IS NULL AND ((message_id != '' AND "
            "message_id = ?) OR (correlation_id != '' AND correlation_id = ?)) "
            "ORDER BY id LIMIT 1",
            (message_id, correlation_id),
        )
        row = await cursor.fetchone()
        return f"hold {row[0]}" if row else ""

    async def unrelayed(self) -> list[Applied]:
        """Redress applied here and not yet passed on (a node stopped in between)."""
        rows = await self._r.execute_fetchall(f"{_APPLIED} WHERE relayed = 0 ORDER BY rowid")
        return [_applied(r) for r in rows]

    @staticmethod
    def relayed_txn(a: Applied) -> Statement:
        return (
            "UPDATE redress_applied SET relayed = 1 "
            "WHERE sender = ? AND message_id = ? AND redress_id = ?",
            (a.sender, a.message_id, a.redress_id),
        )

    # ---- forwards and relays ----------------------------------------------------------------

    @staticmethod
    def forward_txn(
        *, forward_id: str, origin_sender: str, origin_id: str, recipient: str
    ) -> Statement:
        return (
            "INSERT OR IGNORE INTO forwards (forward_id, origin_sender, origin_id, recipient) "
            "VALUES (?,?,?,?)",
            (forward_id, origin_sender, origin_id, recipient),
        )

    async def forwards_of(self, *, origin_sender: str, origin_id: str) -> list[tuple[str, str]]:
        """The forwards this node sent of the originator's message: (forward id, recipient)."""
        rows = await self._r.execute_fetchall(
            "SELECT forward_id, recipient FROM forwards WHERE origin_sender = ? AND origin_id = ? "
            "ORDER BY forward_id",
            (origin_sender, origin_id),
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    async def is_forward(self, message_id: str) -> bool:
        cursor = await self._r.execute("SELECT 1 FROM forwards WHERE forward_id = ?", (message_id,))
        return await cursor.fetchone() is not None

    @staticmethod
    def relay_txn(r: Relay) -> Statement:
        return (
            "INSERT OR IGNORE INTO redress_relays (relay_id, upstream, upstream_id, "
            "origin_redress_id, recipient) VALUES (?,?,?,?,?)",
            (r.relay_id, r.upstream, r.upstream_id, r.origin_redress_id, r.recipient),
        )

    async def open_relays(self) -> list[str]:
        """The relays still queued for their recipient (not answered yet)."""
        rows = await self._r.execute_fetchall(
            "SELECT r.relay_id FROM redress_relays r JOIN deliveries d "
            "ON d.message_id = r.relay_id AND d.recipient = r.recipient WHERE d.state = 'queued'"
        )
        return [str(r[0]) for r in rows]

    async def relay(self, relay_id: str) -> Relay | None:
        cursor = await self._r.execute(
            "SELECT relay_id, upstream, upstream_id, origin_redress_id, recipient "
            "FROM redress_relays WHERE relay_id = ?",
            (relay_id,),
        )
        row = await cursor.fetchone()
        return Relay(*row) if row else None

    # ---- holders ----------------------------------------------------------------------------

    def holder_txn(
        self,
        *,
        origin_redress_id: str,
        holder: str,
        via: str,
        state: str,
        result: str = "",
        detail: str = "",
        receipt: SignedReceipt | None = None,
        at: datetime | None = None,
    ) -> Statement:
        """Record a holder's state; a holder that answered is never set back to pending."""
        return (
            "INSERT INTO redress_holders (origin_redress_id, holder, via, state, result, detail, "
            "receipt, receipt_signature, receipt_proof, answered_at) VALUES (?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (origin_redress_id, holder, via) DO UPDATE SET state = excluded.state, "
            "result = excluded.result, detail = excluded.detail, receipt = excluded.receipt, "
            "receipt_signature = excluded.receipt_signature, "
            "receipt_proof = excluded.receipt_proof, answered_at = excluded.answered_at "
            "WHERE excluded.state != 'pending'",
            (
                origin_redress_id,
                holder,
                via,
                state,
                result,
                detail,
                receipt.content if receipt else None,
                receipt.signature if receipt else None,
                receipt.proof if receipt else None,
                time_text(at),
            ),
        )

    async def record_holders(self, statements: Sequence[Statement]) -> None:
        await self._store.writer.submit(list(statements))

    async def holders(self, origin_redress_id: str) -> list[Holder]:
        rows = await self._r.execute_fetchall(
            "SELECT holder, via, state, result, detail, answered_at FROM redress_holders "
            "WHERE origin_redress_id = ? ORDER BY holder, via",
            (origin_redress_id,),
        )
        return [Holder(*r) for r in rows]

    async def receipts_for(self, origin_redress_id: str) -> list[SignedReceipt]:
        """The holders' signed receipts reported for a redress (to pass upstream)."""
        rows = await self._r.execute_fetchall(
            "SELECT receipt, receipt_signature, receipt_proof FROM redress_holders "
            "WHERE origin_redress_id = ? AND receipt IS NOT NULL ORDER BY holder, via",
            (origin_redress_id,),
        )
        return [SignedReceipt(r[0], r[1], r[2] or b"") for r in rows]

    async def pending_for(self, origin_redress_id: str) -> list[str]:
        rows = await self._r.execute_fetchall(
            "SELECT holder FROM redress_holders WHERE origin_redress_id = ? "
            "AND state = 'pending' ORDER BY holder",
            (origin_redress_id,),
        )
        return [str(r[0]) for r in rows]
