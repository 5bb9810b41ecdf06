"""Item 4: messages queued while the peer is down, time until all are receipted once it starts.

The sender queues N messages with its peer down (its link retries with backoff meanwhile); the
peer then starts and the clock runs from the moment it is ready until the last receipt is
stored at the sender. Compared with N / item 1's steady rate.
"""

from __future__ import annotations

import time

from bench.cluster import Child, Cluster
from bench.load import Sender, stopped
from bench.runner import Benchmark, Context, Row

TARGET = 1.2


async def run(ctx: Context) -> list[Row]:
    count = ctx.count(3000, 10_000)
    root = ctx.scratch("drain")
    cluster = Cluster(root, ["NL-POL", "DE-BKA"])
    node = await cluster.start_in_process("NL-POL")
    receiver: Child | None = None
    try:
        sender = Sender(node, to=["DE-BKA"])
        queued_at = time.perf_counter()
        sent = await sender.queue(count=count, seconds=120.0)
        queue_s = time.perf_counter() - queued_at
        receiver = Child.node(cluster.homes["DE-BKA"], log=root / "receiver.log")
        await receiver.ready()
        start = time.perf_counter()
        await sender.wait_done(sent, within=120.0)
        drain_s = time.perf_counter() - start
        first = min(min(t) for t in sender.receipts.values()) - start
    finally:
        await stopped(node)
        if receiver is not None:
            receiver.stop()
    steady = sent / ctx.values["throughput.rate"]
    if ctx.quick and sent < 10_000:
        ctx.notes.append(f"drain: quick mode queues {sent} messages, not 10 000")
    ctx.values.update({"drain.seconds": drain_s, "drain.messages": sent})
    return [
        Row(
            f"drain {sent} queued: peer ready -> all receipted",
            drain_s,
            "s",
            baseline=steady,
            target=f"<= {TARGET:g}x N / item 1 rate",
            met=drain_s <= TARGET * steady,
            note=f"first receipt after {first:.2f} s (reconnect backoff); "
            f"queueing took {queue_s:.1f} s",
        ),
    ]


BENCHMARK = Benchmark(
    name="drain",
    title="drain: messages queued while the peer is down",
    run=run,
    needs=("baseline", "throughput"),
)
