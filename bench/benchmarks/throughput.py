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

from bench.benchmarks.baseline import bare_echo, saturate
from bench.cluster import Cluster, cpu_seconds
from bench.load import running
from bench.runner import Benchmark, Context, Row
from bench.stats import median
from bench.unaudited import unaudited
from node.config import DeliverySection

TARGET = 0.60
AUDIT_COST = 0.10  # the audit log may cost item 1 at most this much
ROUNDS_QUICK, ROUNDS_FULL = 3, 5


async def run(ctx: Context) -> list[Row]:
    root = ctx.scratch("throughput")
    # FR-PN is DE-BKA without its audit log (bench/unaudited.py), for the log's cost: rounds to
    # it also run the sender without its log.
    cluster = Cluster(root, ["NL-POL", "DE-BKA", "FR-PN"])
    samples: list[int] = []
    # Stopping the receiver on the way out checkpoints its WAL into the database file.
    async with running(
        cluster, root, peers=["DE-BKA", "FR-PN"], to=["DE-BKA"], unaudited=["FR-PN"]
    ) as (sender, (receiver, bare_receiver)):
        await asyncio.sleep(0.5)
        idle_kib = receiver.rss_kib()[0]

        async def sample() -> None:
            while True:
                samples.append(receiver.rss_kib()[0])
                await asyncio.sleep(0.1)

        async with bare_echo(cluster, root, streams=1) as (_, (bare,), frame):
            window = DeliverySection().window
            await sender.saturate(count=ctx.count(500, 2000), seconds=5.0)  # warm up
            await saturate(bare, frame, count=2000, seconds=2.0, window=window)
            sampler = asyncio.create_task(sample())
            sent = 0
            elapsed = sender_cpu = receiver_cpu = 0.0
            rates: list[float] = []
            bare_rates: list[float] = []
            unaudited_rates: list[float] = []
            unaudited_sent, unaudited_cpu = 0, 0.0
            try:
                # An odd number of rounds, whatever --scale, so the median is one round's;
                # which side goes first alternates (ABAB, BABA, ...) so neither always
                # runs on a machine the other has just warmed or loaded.
                for round_ in range(ROUNDS_QUICK if ctx.quick else ROUNDS_FULL):

                    async def bare_burst() -> None:
                        bare_rates.append(
                            await saturate(
                                bare,
                                frame,
                                count=ctx.count(20_000, 100_000),
                                seconds=ctx.seconds(2.0, 4.0),
                                window=window,
                            )
                        )

                    async def accord_burst() -> None:
                        nonlocal sent, elapsed, sender_cpu, receiver_cpu
                        cpu = (cpu_seconds(os.getpid()), receiver.cpu_seconds())
                        n, seconds = await sender.saturate(
                            count=ctx.count(8_000, 30_000), seconds=ctx.seconds(2.0, 4.0)
                        )
                        sender_cpu += cpu_seconds(os.getpid()) - cpu[0]
                        receiver_cpu += receiver.cpu_seconds() - cpu[1]
                        sent, elapsed = sent + n, elapsed + seconds
                        rates.append(n / seconds)

                    async def unaudited_burst() -> None:
                        nonlocal unaudited_sent, unaudited_cpu
                        sender.retarget(["FR-PN"])
                        cpu = cpu_seconds(os.getpid()) + bare_receiver.cpu_seconds()
                        with unaudited(sender.node.store.audit.journal):
                            n, seconds = await sender.saturate(
                                count=ctx.count(8_000, 30_000), seconds=ctx.seconds(2.0, 4.0)
                            )
                        unaudited_cpu += (
                            cpu_seconds(os.getpid()) + bare_receiver.cpu_seconds() - cpu
                        )
                        unaudited_sent += n
                        sender.retarget(["DE-BKA"])
                        unaudited_rates.append(n / seconds)

                    order = [bare_burst, accord_burst, unaudited_burst]
                    for burst in order[round_ % 3 :] + order[: round_ % 3]:
                        await burst()
            finally:
                sampler.cancel()
        sender_us = sender_cpu / sent * 1e6
        receiver_us = receiver_cpu / sent * 1e6
        peak_kib = receiver.rss_kib()[1]
        refused = sender.refused
    db = cluster.database("DE-BKA")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        stored = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    db_bytes = sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))
    rate = sent / elapsed  # all Accord rounds together: what items 2 and 4 are paced by
    ratios = [a / b for a, b in zip(rates, bare_rates, strict=True)]
    ratio = median(ratios)
    # What the audit log costs: the audited rounds' rate against the unaudited ones'.
    costs = [1 - a / u for a, u in zip(rates, unaudited_rates, strict=True)]
    cost = median(costs)
    audited_us = (sender_cpu + receiver_cpu) / sent * 1e6
    unaudited_us = unaudited_cpu / max(1, unaudited_sent) * 1e6
    ctx.values.update(
        {
            "throughput.rate": rate,
            "throughput.bare_rate": median(bare_rates),
            "throughput.ratio_min": min(ratios),
            "throughput.ratio_max": max(ratios),
            "throughput.ratio": ratio,
            "throughput.unaudited_rate": median(unaudited_rates),
            "throughput.audit_cost": cost,
            "throughput.audit_cpu_cost": 1 - unaudited_us / audited_us,
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
            median(rates),
            "msg/s",
            baseline=median(bare_rates),
            ratio=ratio,
            target=f">= {TARGET:.0%} of baseline",
            met=ratio >= TARGET,
            note=(
                f"medians of {len(ratios)} rounds alternating with the bare stream; ratio: the "
                f"median of the rounds' ratios (not of the medians), rounds "
                + ", ".join(f"{r:.2f}" for r in ratios)
                + f" (spread {min(ratios):.2f}-{max(ratios):.2f}); {sent} messages in "
                f"{elapsed:.1f} s, {refused} refused"
            ),
        ),
        Row(
            "what the audit log costs it",
            cost * 100,
            "%",
            target=f"<= {AUDIT_COST:.0%}",
            met=cost <= AUDIT_COST,
            note=(
                "1 - audited/unaudited rate, median of rounds "
                + ", ".join(f"{c:.1%}" for c in costs)
                + f"; unaudited: {median(unaudited_rates):.0f} msg/s (both nodes without their "
                f"log, bench/unaudited.py); CPU per message, both nodes: {audited_us:.0f} us "
                f"audited, {unaudited_us:.0f} us not ({1 - unaudited_us / audited_us:.1%} less)"
            ),
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
