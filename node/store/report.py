"""The counts a transparency report is made of (node/report.py): aggregates only, each a
named query over one window of this node's own records. Times are compared as the store
writes them (ISO 8601 in UTC, node/store/db.time_text), which sort as the instants do."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import aiosqlite

from node.audit.verify import format_time
from node.store.db import Store, time_text

Counts = dict[str, int]


class ReportStore:
    """Shares the node store's read connection."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def _r(self) -> aiosqlite.Connection:
        return self._store.reader

    async def _counts(self, sql: str, *params: object) -> Counts:
        rows = await self._r.execute_fetchall(sql, params)
        return {str(key): int(n) for key, n in rows}

    async def messages(self, direction: str, since: datetime, until: datetime) -> dict[str, Counts]:
        """Messages stored in the window (sent: when this node accepted the send; received:
        when it stored them), by purpose and by type; and by peer: a received message's
        sender, each recipient of a sent one."""
        window = (direction, time_text(since), time_text(until))
        where = "FROM messages WHERE direction = ? AND received_at >= ? AND received_at < ?"
        total = await self._counts(f"SELECT 'total', count(*) {where}", *window)
        out = {
            "total": total,
            "by_purpose": await self._counts(
                f"SELECT purpose, count(*) {where} GROUP BY purpose",
                *window,
            ),
            "by_type": await self._counts(
                f"SELECT type, count(*) {where} GROUP BY type",
                *window,
            ),
        }
        if direction == "in":
            out["by_peer"] = await self._counts(
                f"SELECT sender, count(*) {where} GROUP BY sender",
                *window,
            )
        else:
            out["by_peer"] = await self._counts(
                "SELECT d.recipient, count(*) FROM deliveries d JOIN messages m "
                "ON m.message_id = d.message_id AND m.direction = 'out' "
                "WHERE m.received_at >= ? AND m.received_at < ? GROUP BY d.recipient",
                *window[1:],
            )
        return out

    async def refused_by_us(self, since: datetime, until: datetime) -> Counts:
        """Envelopes this node refused (final refusals, kept until swept), by reason."""
        return await self._counts(
            "SELECT reason_code, count(*) FROM rejections WHERE received_at >= ? "
            "AND received_at < ? GROUP BY reason_code",
            time_text(since),
            time_text(until),
        )

    async def refused_by_peers(self, since: datetime, until: datetime) -> Counts:
        """Deliveries a peer refused (its receipt REJECTED), by reason."""
        return await self._counts(
            "SELECT reason_code, count(*) FROM deliveries WHERE state = 'rejected' "
            "AND receipted_at >= ? AND receipted_at < ? GROUP BY reason_code",
            time_text(since),
            time_text(until),
        )

    async def actions(self, since: datetime, until: datetime) -> Counter[tuple[str, str]]:
        """Local users' actions in the audit log (not the node's own), by (action, outcome)."""
        rows = await self._r.execute_fetchall(
            "SELECT json_extract(data, '$.action'), json_extract(data, '$.outcome'), count(*) "
            "FROM audit_log WHERE json_extract(data, '$.actor') != 'node' "
            "AND json_extract(data, '$.at') >= ? "
            "AND json_extract(data, '$.at') < ? GROUP BY 1, 2",
            (format_time(since), format_time(until)),
        )
        return Counter({(str(a), str(o)): int(n) for a, o, n in rows})

    async def approvals(self, since: datetime, until: datetime) -> Counts:
        """Four-eyes decisions made in the window (approved, rejected), and requests for one
        made in it that still wait (pending)."""
        bounds = (time_text(since), time_text(until))
        decided = await self._counts(
            "SELECT state, count(*) FROM approvals WHERE state != 'pending' "
            "AND decided_at >= ? AND decided_at < ? GROUP BY state",
            *bounds,
        )
        pending = await self._counts(
            "SELECT state, count(*) FROM approvals WHERE state = 'pending' "
            "AND requested_at >= ? AND requested_at < ? GROUP BY state",
            *bounds,
        )
        return {**decided, **pending}

    async def erasures(self, since: datetime, until: datetime) -> Counts:
        """Messages erased in the window (their content destroyed, a tombstone kept), by
        direction."""
        return await self._counts(
            "SELECT direction, count(*) FROM messages WHERE erased_at >= ? AND erased_at < ? "
            "GROUP BY direction",
            time_text(since),
            time_text(until),
        )
