"""Item 2: delivery latency at half of item 1's rate, send accepted -> receipt stored at sender.

Open loop: messages are sent on a fixed schedule (not one after another), so a slow answer does
not slow the offered load down and hide itself.
"""

from __future__ import annotations

from bench.cluster import Cluster
from bench.load import running
from bench.runner import Benchmark, Context, Row
from bench.stats import percentile

TARGET_P99_MS = 10.0
IDLE_RATE = 20.0


async def run(ctx: Context) -> list[Row]:
    rate = ctx.values["throughput.rate"] / 2
    root = ctx.scratch("latency")
    cluster = Cluster(root, ["NL-POL", "DE-BKA"])
    async with running(cluster, root, peers=["DE-BKA"]) as (sender, _):
        await sender.saturate(count=ctx.count(300, 1000), seconds=5.0, concurrency=16)
        ids = await sender.open_loop(rate=rate, seconds=ctx.seconds(4.0, 15.0))
        lat = [sender.latency(i) * 1e3 for i in ids]
        # The floor: the same path nearly idle, so queueing is not in the figure.
        idle_ids = await sender.open_loop(rate=IDLE_RATE, seconds=ctx.seconds(2.0, 5.0))
        idle = [sender.latency(i) * 1e3 for i in idle_ids]
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    ctx.values.update({"latency.p50_ms": p50, "latency.p99_ms": p99})
    note = f"{len(lat)} messages at {rate:,.0f} msg/s (50% of item 1)"
    return [
        Row("latency p50 @50% load", p50, "ms", baseline=ctx.values["baseline.p50_ms"], note=note),
        Row(
            "latency p99 @50% load",
            p99,
            "ms",
            baseline=ctx.values["baseline.p99_ms"],
            target=f"<= {TARGET_P99_MS:g} ms",
            met=p99 <= TARGET_P99_MS,
        ),
        Row(
            f"latency p50 @{IDLE_RATE:g} msg/s",
            percentile(idle, 50),
            "ms",
            note="near idle: the path without queueing",
        ),
        Row(f"latency p99 @{IDLE_RATE:g} msg/s", percentile(idle, 99), "ms"),
    ]


BENCHMARK = Benchmark(
    name="latency",
    title="delivery latency p50/p99 at 50% of max load",
    run=run,
    needs=("baseline", "throughput"),
)
