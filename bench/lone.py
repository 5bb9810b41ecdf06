"""Where a lone message's CPU goes, thread by thread: `python -m bench.lone [--peers N]`.

Runs item 3's loop (one publish, wait for every receipt, repeat) against N receivers, each in
its own process, and reads every thread's CPU time and voluntary context switches from /proc
before and after, for the first receiver and for this (the sender's) process. With --profile,
the first receiver runs under cProfile and its time per function is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import shutil
import sys
import tempfile
from pathlib import Path

from bench.benchmarks.fanout import PEERS, timed
from bench.cluster import Cluster, thread_files
from bench.load import running
from bench.stats import median

_TICK = os.sysconf("SC_CLK_TCK")

Threads = dict[str, tuple[str, float, float, int]]  # tid -> (name, user s, system s, switches)


def threads(pid: int) -> Threads:
    out: Threads = {}
    for tid, (name, files) in thread_files(pid, "stat", "status").items():
        fields = files["stat"].rsplit(")", 1)[1].split()
        switches = next(
            int(line.split()[1])
            for line in files["status"].splitlines()
            if line.startswith("voluntary_ctxt_switches")
        )
        out[tid] = (name, int(fields[11]) / _TICK, int(fields[12]) / _TICK, switches)
    return out


def report(side: str, before: Threads, after: Threads, rounds: int) -> None:
    rows: list[tuple[float, float, float, str]] = []
    for tid, (name, user, system, switches) in after.items():
        _, user0, system0, switches0 = before.get(tid, (name, 0.0, 0.0, 0))  # new: from zero
        cpu = (user + system - user0 - system0) / rounds * 1e6
        if cpu > 0 or switches > switches0:
            rows.append((cpu, (user - user0) / rounds * 1e6, (switches - switches0) / rounds, name))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"{side}: {total:,.0f} us CPU and {sum(r[2] for r in rows):.1f} switches per publish")
    for us, user_us, per_publish, label in rows:
        print(f"  {us:8,.0f} us  (user {user_us:6,.0f})  {per_publish:5.1f} switches  {label}")


WARM_UP = 20


def report_profile(path: Path, publishes: int, top: int = 25) -> None:
    """The first receiver's own time per function (cProfile's tottime), per publish, on its
    event loop's thread (cProfile sees no other). Wall time: a C call's includes what it waits
    for (the COMMIT's fsync is in sqlite3 `execute`). The whole run is profiled, start-up and
    stop included, divided by the publishes; waiting in epoll is left out."""
    stats = pstats.Stats(str(path))
    rows = [
        (tottime, calls, func)
        for func, (_, calls, tottime, _, _) in stats.stats.items()  # type: ignore[attr-defined]
        if func[2] != "<method 'poll' of 'select.epoll' objects>"
    ]
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(
        f"first receiver under cProfile: {total / publishes * 1e6:,.0f} us per publish, top {top}"
    )
    for tottime, calls, (filename, line, name) in rows[:top]:
        where = f"{Path(filename).name}:{line} {name}" if line else name
        print(f"  {tottime / publishes * 1e6:8,.0f} us  {calls / publishes:5.1f} calls  {where}")


async def main_async(peers: int, rounds: int, profile: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix="blone", dir="/tmp"))
    names = PEERS[:peers]
    cluster = Cluster(root, ["NL-POL", *names])
    prof = root / "receiver.prof" if profile else None
    try:
        async with running(cluster, root, peers=names, profile_first=prof) as (
            sender,
            receivers,
        ):
            await timed(sender, WARM_UP)
            first, mine = threads(receivers[0].pid), threads(os.getpid())
            cpu = sum(r.cpu_seconds() for r in receivers)
            times = await timed(sender, rounds)
            all_cpu = (sum(r.cpu_seconds() for r in receivers) - cpu) / rounds * 1e6
            report("first receiver", first, threads(receivers[0].pid), rounds)
            report("sender", mine, threads(os.getpid()), rounds)
            print(f"all {peers} receivers: {all_cpu:,.0f} us CPU per publish")
            print(f"publish -> every receipt stored: median {median(times) * 1e3:.2f} ms")
        if prof is not None:  # written when the receiver stopped, on the way out of running()
            report_profile(prof, WARM_UP + rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lone")
    parser.add_argument("--peers", type=int, default=1, choices=range(1, len(PEERS) + 1))
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the first receiver under cProfile and print its time per function, on its "
        "event loop's thread only (cProfile slows it: the CPU figures above are then not "
        "comparable)",
    )
    args = parser.parse_args()
    asyncio.run(main_async(args.peers, args.rounds, args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
