"""Retention as the node enforces it: a message past its retain_until is refused on every path
that would disclose or pass it on (read, forward, reply) from that instant, before the sweeper
erases it, unless a legal hold keeps it; an erased message only has its tombstone."""

from __future__ import annotations

from datetime import datetime

from node.errors import Gone, Reason
from node.store import Store, StoredMessage


async def check_live(store: Store, m: StoredMessage, *, now: datetime) -> None:
    """Gone (EXPIRED or ERASED) unless `m` may still be used."""
    if m.erased_at is not None or m.sealed is None:
        why = f" ({m.erase_reason})" if m.erase_reason else ""
        raise Gone(
            Reason.ERASED,
            f"message {m.message_id} was erased{why} at "
            f"{m.erased_at.isoformat() if m.erased_at else '?'}; only its tombstone remains",
        )
    if m.retain_until is not None and now >= m.retain_until:
        if await store.held(m.message_id, m.correlation_id):
            return
        raise Gone(
            Reason.EXPIRED,
            f"message {m.message_id} passed its retain_until ({m.retain_until.isoformat()}); "
            "it is no longer available and will be erased at the next sweep",
        )
