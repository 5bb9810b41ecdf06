"""How much each thread runs, and waits for a CPU, under item 2's load: `python -m bench.sched`.

Runs the open-loop load of item 2 (`--rate` messages per second, sender node in this process,
receiver node in its own) and reads every thread's /proc/PID/task/TID/schedstat before and
after: time on a CPU, and time runnable but waiting for one (the run queue), as shares of the
wall time, and the mean wait per time slice.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.cluster import Cluster, thread_files
from bench.load import running
from bench.stats import percentile

Sched = dict[str, tuple[str, int, int, int]]  # tid -> (name, ns running, ns waiting, slices)


def schedstat(pid: int) -> Sched:
    out: Sched = {}
    for tid, (name, files) in thread_files(pid, "schedstat").items():
        running, waiting, slices = map(int, files["schedstat"].split())
        out[tid] = (name, running, waiting, slices)
    return out


def report(side: str, before: Sched, after: Sched, seconds: float) -> None:
    print(side)
    rows: list[tuple[float, float, float, str]] = []
    for tid, (name, ran, waited, slices) in after.items():
        _, ran0, waited0, slices0 = before.get(tid, (name, 0, 0, 0))
        if ran - ran0 > 1_000_000:  # more than 1 ms on a CPU
            rows.append(
                (
                    (ran - ran0) / 1e9 / seconds,
                    (waited - waited0) / 1e9 / seconds,
                    (waited - waited0) / max(1, slices - slices0) / 1e3,
                    name,
                )
            )
    for on_cpu, queued, per_slice, label in sorted(rows, reverse=True):
        print(
            f"  {label:22} on a CPU {on_cpu:6.1%}   waiting for one {queued:6.1%}"
            f"   {per_slice:5.0f} us per wait"
        )


async def main_async(rate: float, seconds: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="bsched", dir="/tmp"))
    cluster = Cluster(root, ["NL-POL", "DE-BKA"])
    try:
        async with running(cluster, root, peers=["DE-BKA"]) as (sender, (receiver,)):
            await sender.saturate(count=1000, seconds=3.0)  # warm up
            mine, theirs = schedstat(os.getpid()), schedstat(receiver.pid)
            start = time.perf_counter()
            ids = await sender.open_loop(rate=rate, seconds=seconds)
            took = time.perf_counter() - start
            mine_after, theirs_after = schedstat(os.getpid()), schedstat(receiver.pid)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    latency = [sender.latency(i) * 1e3 for i in ids]
    print(
        f"{len(ids)} messages at {rate:,.0f} msg/s: latency p50 {percentile(latency, 50):.1f} ms,"
        f" p99 {percentile(latency, 99):.1f} ms"
    )
    report("sender process", mine, mine_after, took)
    report("receiver process", theirs, theirs_after, took)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sched")
    parser.add_argument("--rate", type=float, default=1200.0)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    asyncio.run(main_async(args.rate, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
