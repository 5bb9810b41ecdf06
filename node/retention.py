"""Retention as the node enforces it: a message past its retain_until is refused on every path
that would disclose or pass it on (read, forward, reply) from that instant, before the sweeper
erases it, unless a legal hold keeps it; an erased message only has its tombstone."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from certs.directory import Directory
from node.clock import Clock
from node.config import RetentionSection
from node.errors import Gone, Reason
from node.store import Store, StoredMessage, erasure
from node.store.holds import HoldStore

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class SweepResult:
    at: datetime
    expired: int  # rows erased because their retain_until passed
    sunset: int  # rows erased because their agreement's sunset rule says erase
    keys_destroyed: int  # keystore keys destroyed (ended days, rotated-out keys)
    seconds: float


class Sweeper:
    """Erases what the node may no longer keep: expired messages (not held), what was received
    under an agreement past its sunset whose rule is `erase`, and the keys that would still
    open them (node/store/erasure.py). Runs every `interval` seconds and on demand; one sweep
    at a time. Its cost follows what it erases: expired rows are found through the index on
    retain_until, and each transaction erases at most `batch` rows."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        agency: str,
        directory: Callable[[], Directory | None],
        batch: int,
        share: float = 1.0,
    ) -> None:
        """`share`: of the node's time, what a paced sweep may take (it rests between
        batches for as long as that leaves to everything else)."""
        self._store = store
        self._clock = clock
        self._agency = agency
        self._directory = directory
        self._batch = batch
        self._share = share
        self._lock = asyncio.Lock()
        self.last: SweepResult | None = None

    def sunset_erase(self, now: datetime) -> list[str]:
        """The agreements of this node past their sunset whose rule erases what they carried."""
        directory = self._directory()
        if directory is None:
            return []
        return [
            a.id
            for a in directory.agreements
            if self._agency in a.parties and a.after_sunset == "erase" and now >= a.valid_until
        ]

    async def sweep(self, *, paced: bool = False) -> SweepResult:
        """Sweep now; `paced` (the background sweeper): rest between batches so the sweep
        takes at most its share of the node's time."""
        async with self._lock:
            started = time.perf_counter()
            now = self._clock.now()
            expired = 0
            while True:
                batch_started = time.perf_counter()
                n = await erasure.erase_expired(self._store, now=now, limit=self._batch)
                expired += n
                if n < self._batch:
                    break
                if paced and self._share < 1.0:
                    took = time.perf_counter() - batch_started
                    await asyncio.sleep(took * (1.0 / self._share - 1.0))
            sunset, touched = 0, set[str]()
            agreements = self.sunset_erase(now)
            while agreements:
                n, keys = await erasure.erase_sunset(
                    self._store, agreements, now=now, limit=self._batch
                )
                sunset += n
                touched |= keys
                if n < self._batch:
                    break
            # Sunset erases before the messages' own expiry: their keys go now, not at the end
            # of their day.
            destroyed = len(await erasure.rotate_out(self._store, sorted(touched), now=now))
            destroyed += await erasure.retire_keys(self._store, now=now)
            self.last = SweepResult(
                at=now,
                expired=expired,
                sunset=sunset,
                keys_destroyed=destroyed,
                seconds=time.perf_counter() - started,
            )
            if expired or sunset or destroyed:
                log.info(
                    "retention sweep: %d expired and %d sunset messages erased, %d keys destroyed",
                    expired,
                    sunset,
                    destroyed,
                )
            return self.last

    async def run(self, interval: float) -> None:
        """Sweep every `interval` seconds until cancelled (a failed sweep is retried next time:
        nothing is half-erased, each row's erasure is one transaction)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep(paced=True)
            except Exception as exc:
                log.warning("retention sweep failed: %s", exc)


@dataclass(frozen=True, slots=True)
class RetentionService:
    """What Operations needs for retention: the sweeper, the holds and the node's settings."""

    sweeper: Sweeper
    holds: HoldStore
    settings: RetentionSection


@dataclass(frozen=True, slots=True)
class ReviewItem:
    message: StoredMessage
    why: str
    held: bool
    keep_at_most: datetime | None  # the agreement's maximum from receipt (None: unknown)
