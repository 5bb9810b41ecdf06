"""Item 3: one INCIDENT_PUBLISH to 8 peers, publish -> every receipt stored at the sender.

Each of the 8 receivers is its own `accord node run` process, as each agency runs its own node
(they share the machine's two cores, which is the point of the measurement). Compared with the
same message to one of those peers, and with 8 sequential bare round trips from the baseline.
"""

from __future__ import annotations

import os
import time

from bench.cluster import Cluster
from bench.load import Sender, running
from bench.runner import Benchmark, Context, Row
from bench.stats import median

PEERS = [f"P{i}-POL" for i in "ABCDEFGH"]
TARGET = 1.5


async def timed(sender: Sender, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        base = sender.done
        start = time.perf_counter()
        await sender.send()
        await sender.wait_done(base + 1, within=10.0)
        times.append(time.perf_counter() - start)
    return times


async def run(ctx: Context) -> list[Row]:
    root = ctx.scratch("fanout")
    cluster = Cluster(root, ["NL-POL", *PEERS])
    rounds = ctx.count(50, 200)
    async with running(cluster, root, peers=PEERS, to=PEERS[:1]) as (sender, receivers):
        await timed(sender, 5)
        cpu = receivers[0].cpu_seconds()
        one_ms = median(await timed(sender, rounds)) * 1e3
        lone_us = (receivers[0].cpu_seconds() - cpu) / rounds * 1e6
        sender.retarget(PEERS)
        await timed(sender, 5)  # opens the other 7 streams
        cpu = sum(r.cpu_seconds() for r in receivers)
        fan_ms = median(await timed(sender, rounds)) * 1e3
        fan_cpu_ms = (sum(r.cpu_seconds() for r in receivers) - cpu) / rounds * 1e3
    ctx.values.update({"fanout.one_ms": one_ms, "fanout.eight_ms": fan_ms})
    seq8 = ctx.values["baseline.seq8_ms"]
    cores = os.cpu_count() or 1
    return [
        Row(
            "receiver CPU per lone message",
            lone_us,
            "us",
            baseline=ctx.values["baseline.lone_server_us"],
            note="one publish at a time, all threads of the receiver process",
        ),
        Row(
            "8 receivers' CPU per publish",
            fan_cpu_ms,
            "ms",
            note=f"on {cores} cores: at least {fan_cpu_ms / cores:.1f} ms of wall time",
        ),
        Row(
            "one peer: publish -> receipt stored (median)",
            one_ms,
            "ms",
            baseline=ctx.values["baseline.one_ms"],
            note=f"{rounds} rounds",
        ),
        Row(
            "8 peers: publish -> all receipts (median)",
            fan_ms,
            "ms",
            baseline=seq8,
            note="baseline: 8 sequential bare round trips",
        ),
        Row(
            "8 peers / one peer",
            fan_ms / one_ms,
            "x",
            target=f"<= {TARGET:g}x one peer",
            met=fan_ms / one_ms <= TARGET,
        ),
    ]


BENCHMARK = Benchmark(
    name="fanout",
    title="fan-out: one INCIDENT_PUBLISH to 8 peers, time to all receipts",
    run=run,
    needs=("baseline",),
)
