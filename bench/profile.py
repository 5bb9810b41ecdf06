"""Profile item 1's hot path: `python -m bench.profile [--seconds S]` (needs py-spy installed).

Runs the throughput load (sender node in this process, receiver node in a child) while py-spy
samples both processes, then prints, per side, the functions where the samples fall (own time
and inclusive), so the table in docs/benchmarks.md can be regenerated.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.cluster import Cluster
from bench.load import running


def summarise(path: Path, *, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " " + f.split("(")[-1].split(":")[0].rsplit("/", 1)[-1]
                  for f in stack.split(";") if f]  # fmt: skip
        if not frames:
            continue
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    out = [f"{total} samples", "own time:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    out.append("inclusive:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(top * 2)]
    return "\n".join(out)


async def main_async(seconds: float, top: int, out: Path) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    root = Path(tempfile.mkdtemp(prefix="bprof", dir="/tmp"))
    cluster = Cluster(root, ["NL-POL", "DE-BKA"])
    try:
        async with running(cluster, root, peers=["DE-BKA"]) as (sender, (receiver,)):
            await sender.saturate(count=1000, seconds=5.0)
            spies = [
                await asyncio.create_subprocess_exec(
                    spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "250",
                    "--gil", "-f", "raw", "-o", str(out / f"{side}.txt"), "--nonblocking",
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
                for side, pid in (("sender", os.getpid()), ("receiver", receiver.pid))
            ]  # fmt: skip
            sent, elapsed = await sender.saturate(count=10**6, seconds=seconds + 1)
            print(f"{sent / elapsed:,.0f} msg/s while profiling (sampling slows both sides)")
            for s in spies:
                await s.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for side in ("sender", "receiver"):
        print(f"\n== {side} ==")
        print(summarise(out / f"{side}.txt", top=top))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args.seconds, args.top, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
