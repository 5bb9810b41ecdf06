"""Driving a sender node in the bench process: sends, and when each receipt was stored."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from bench.cluster import Child, Cluster, incident
from bench.stats import pace
from node import wire
from node.app import Node, untune_collector
from node.delivery.link import ReceiptEvent


class Sender:
    """Wraps a started node: times `send` (accepted into the outbox) and each stored receipt."""

    def __init__(self, node: Node, *, to: Sequence[str]) -> None:
        self.node = node
        self.draft = wire.draft(incident(to=to))
        self.fanout = len(to)
        self.accepted_at: dict[str, float] = {}
        self.receipts: dict[str, list[float]] = {}  # message id -> when each receipt was stored
        self.refused = 0
        self.done = 0  # messages with every recipient's receipt stored
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        node.activity.on_receipt(self._on_receipt)

    def _on_receipt(self, event: ReceiptEvent) -> None:
        times = self.receipts.setdefault(event.message_id, [])
        times.append(time.perf_counter())
        if not event.accepted:
            self.refused += 1
        if len(times) == self.fanout:
            self.done += 1
            for target, fut in self._waiters:
                if self.done >= target and not fut.done():
                    fut.set_result(None)

    async def wait_done(self, count: int, *, within: float) -> None:
        if self.done >= count:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (count, fut)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(fut, within)
        finally:
            self._waiters.remove(entry)

    async def send(self) -> str:
        sent = await self.node.outbound.send(self.draft)
        self.accepted_at[sent.message_id] = time.perf_counter()
        return sent.message_id

    def retarget(self, to: Sequence[str]) -> None:
        """Send to other recipients from now on (after every earlier message is receipted)."""
        self.draft = wire.draft(incident(to=to))
        self.fanout = len(to)

    async def queue(self, *, count: int, seconds: float, concurrency: int = 128) -> int:
        """Send from `concurrency` callers until `count` or `seconds`; returns how many."""
        deadline = time.perf_counter() + seconds
        issued = 0

        async def caller() -> None:
            nonlocal issued
            while issued < count and time.perf_counter() < deadline:
                issued += 1
                await self.send()

        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return issued

    async def saturate(
        self, *, count: int, seconds: float, concurrency: int = 128
    ) -> tuple[int, float]:
        """`queue`, then wait for every receipt.

        Returns (messages, seconds from the first send to the last receipt stored).
        """
        base = self.done
        start = time.perf_counter()
        issued = await self.queue(count=count, seconds=seconds, concurrency=concurrency)
        await self.wait_done(base + issued, within=60.0 + issued / 500)
        return issued, time.perf_counter() - start

    async def open_loop(self, *, rate: float, seconds: float) -> list[str]:
        """Send on a fixed schedule at `rate` per second; returns the ids, after all receipts."""
        base = self.done
        count = max(1, int(rate * seconds))
        ids: list[str] = []
        tasks: set[asyncio.Task[None]] = set()

        async def one() -> None:
            ids.append(await self.send())

        start = time.perf_counter()
        for i in range(count):
            await pace(start, i, rate)
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))
        await self.wait_done(base + count, within=60.0)
        return ids

    def latency(self, message_id: str) -> float:
        """Send accepted -> last receipt stored, in seconds."""
        return max(self.receipts[message_id]) - self.accepted_at[message_id]


async def stopped(node: Node) -> None:
    await node.stop(grace=1.0)
    untune_collector()  # started by bench.cluster with tune_collector, as a node process is


@contextlib.asynccontextmanager
async def running(
    cluster: Cluster,
    root: Path,
    *,
    peers: Sequence[str],
    to: Sequence[str] | None = None,
    profile_first: Path | None = None,
    unaudited: Sequence[str] = (),
) -> AsyncIterator[tuple[Sender, list[Child]]]:
    """NL-POL's node in this process, driven by a Sender to `to` (default: every peer), and
    each of `peers` a node in its own process (`accord node run`), as agencies run them. All
    stopped on the way out (a clean stop checkpoints each receiver's WAL into its database).
    With `profile_first`, the first peer runs under cProfile, written there when it stops;
    `unaudited` peers append nothing to their audit logs (bench/unaudited.py)."""
    receivers = [
        Child.node(
            cluster.homes[p],
            log=root / f"{p}.log",
            profile=profile_first if i == 0 else None,
            unaudited=p in unaudited,
        )
        for i, p in enumerate(peers)
    ]
    try:
        await asyncio.gather(*(r.ready() for r in receivers))
        node = await cluster.start_in_process("NL-POL")
        try:
            yield Sender(node, to=peers if to is None else to), receivers
        finally:
            await stopped(node)
    finally:
        for r in receivers:
            r.stop()
