"""Item 5: receiver RSS idle and under item 1's load, and database bytes per stored message.

Figures come from item 1's run: VmRSS of the receiver process (sampled every 100 ms, and its
VmHWM), and the size of its database files after a clean stop divided by the messages stored.
"""

from __future__ import annotations

from bench.runner import Benchmark, Context, Row

RSS_MIB = 100.0
BYTES_PER_MSG = 3 * 1024


async def run(ctx: Context) -> list[Row]:
    v = ctx.values
    per_msg = v["receiver.db_bytes_per_msg"]
    return [
        Row(
            "receiver RSS idle",
            v["receiver.rss_idle_mib"],
            "MiB",
            target=f"<= {RSS_MIB:g} MB",
            met=v["receiver.rss_idle_mib"] <= RSS_MIB,
        ),
        Row(
            "receiver RSS under item 1 load (peak)",
            v["receiver.rss_load_mib"],
            "MiB",
            target=f"<= {RSS_MIB:g} MB",
            met=v["receiver.rss_load_mib"] <= RSS_MIB,
        ),
        Row(
            "database bytes per stored message",
            per_msg,
            "B",
            ratio=per_msg / v["envelope_bytes"],
            target="<= 3 KB",
            met=per_msg <= BYTES_PER_MSG,
            note=f"{v['receiver.stored']:.0f} messages; ratio is to the envelope size",
        ),
    ]


BENCHMARK = Benchmark(
    name="memory",
    title="node RSS idle and under load; database bytes per message",
    run=run,
    needs=("throughput",),
)
