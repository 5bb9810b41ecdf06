"""Item 1: sustained accepted msgs/s end to end, and the receiver's memory and disk under it.

Sender node in the bench process, receiver node (`accord node run`) in its own process. Every
message is signed, policy-checked on both sides, sealed and group-committed (synchronous=FULL)
on both sides, and answered with a signed receipt that the sender verifies and stores; a
message counts once its receipt is stored at the sender.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3

from bench.cluster import Child, Cluster, cpu_seconds
from bench.load import Sender, stopped
from bench.runner import Benchmark, Context, Row

TARGET = 0.60


async def run(ctx: Context) -> list[Row]:
    root = ctx.scratch("throughput")
    cluster = Cluster(root, ["NL-POL", "DE-BKA"])
    receiver = Child.node(cluster.homes["DE-BKA"], log=root / "receiver.log")
    samples: list[int] = []
    try:
        await receiver.ready()
        node = await cluster.start_in_process("NL-POL")
        try:
            sender = Sender(node, to=["DE-BKA"])
            await asyncio.sleep(0.5)
            idle_kib = receiver.rss_kib()[0]

            async def sample() -> None:
                while True:
                    samples.append(receiver.rss_kib()[0])
                    await asyncio.sleep(0.1)

            await sender.saturate(count=ctx.count(500, 2000), seconds=5.0)  # warm up
            sampler = asyncio.create_task(sample())
            cpu = (cpu_seconds(os.getpid()), receiver.cpu_seconds())
            try:
                sent, elapsed = await sender.saturate(
                    count=ctx.count(12_000, 60_000), seconds=ctx.seconds(4.0, 20.0)
                )
            finally:
                sampler.cancel()
            sender_us = (cpu_seconds(os.getpid()) - cpu[0]) / sent * 1e6
            receiver_us = (receiver.cpu_seconds() - cpu[1]) / sent * 1e6
            peak_kib = receiver.rss_kib()[1]
            refused = sender.refused
        finally:
            await stopped(node)
    finally:
        receiver.stop()  # a clean stop checkpoints the WAL into the database file
    db = cluster.database("DE-BKA")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        stored = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    db_bytes = sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))
    rate = sent / elapsed
    base = ctx.values["baseline.rate"]
    ctx.values.update(
        {
            "throughput.rate": rate,
            "throughput.sender_cpu_us": sender_us,
            "throughput.receiver_cpu_us": receiver_us,
            "receiver.rss_idle_mib": idle_kib / 1024,
            "receiver.rss_load_mib": max([*samples, peak_kib]) / 1024,
            "receiver.db_bytes_per_msg": db_bytes / max(1, stored),
            "receiver.stored": stored,
        }
    )
    return [
        Row(
            "accepted msgs/s end to end",
            rate,
            "msg/s",
            baseline=base,
            target=f">= {TARGET:.0%} of baseline",
            met=rate >= TARGET * base,
            note=f"{sent} messages in {elapsed:.1f} s; {refused} refused",
        ),
        Row(
            "sender CPU per message",
            sender_us,
            "us",
            baseline=ctx.values["baseline.client_cpu_us"],
            note="bench process, all threads",
        ),
        Row(
            "receiver CPU per message",
            receiver_us,
            "us",
            baseline=ctx.values["baseline.server_cpu_us"],
            note="node process, all threads",
        ),
    ]


BENCHMARK = Benchmark(
    name="throughput",
    title="sustained accepted 1 KB incident msgs/s, end to end",
    run=run,
    needs=("baseline",),
)
