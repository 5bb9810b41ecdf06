"""Where delivery latency goes: `python -m bench.trace [--rate R] [--seconds S]`.

Sends on an open-loop schedule (as item 2 does) from a node in this process to a receiver node in
a child process whose stages are time-stamped (`bench.trace_receiver`), and prints, per stage of
each message's path, p50/p90/p99 in milliseconds: send accepted -> taken by the link -> frame
parsed at the receiver -> admitted (verified, checked, queued for commit) -> committed ->
receipts serialised -> receipt parsed at the sender -> receipt recording queued -> stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import node.wire as wire_module
from bench.cluster import Child, Cluster
from bench.load import Sender, stopped
from bench.stats import percentile
from bench.trace_receiver import MARKS, mark
from node.delivery.link import PeerLink
from node.messages import ReceiptInfo
from node.store import PendingEnvelope, Store

CHAIN = [
    ("accepted", "taken"),
    ("taken", "frame_in"),
    ("frame_in", "admit_start"),
    ("admit_start", "admit_end"),
    ("admit_end", "committed"),
    ("committed", "receipts_out"),
    ("receipts_out", "receipt_in"),
    ("receipt_in", "recording"),
    ("recording", "stored"),
]


def install() -> None:
    next_batch = PeerLink._next_batch

    async def traced_next_batch(self: PeerLink, cursor: int, space: int) -> list[PendingEnvelope]:
        batch = await next_batch(self, cursor, space)
        mark("taken", [e.message_id for e in batch])
        return batch

    parse = wire_module.parse_receipt  # what the link calls, through the module

    def traced_parse(data: bytes) -> ReceiptInfo:
        info: ReceiptInfo = parse(data)
        mark("receipt_in", [info.message_id])
        return info

    record = Store.record_receipts

    def traced_record(self: Store, **kwargs: Any) -> asyncio.Future[None]:
        mark("recording", [r[0] for r in kwargs["receipts"]])
        return record(self, **kwargs)

    setattr(PeerLink, "_next_batch", traced_next_batch)  # noqa: B010 (tracing wrapper)
    setattr(wire_module, "parse_receipt", traced_parse)  # noqa: B010
    setattr(Store, "record_receipts", traced_record)  # noqa: B010


async def main_async(rate: float, seconds: float) -> None:
    install()
    root = Path(tempfile.mkdtemp(prefix="btrace"))
    cluster = Cluster(root, ["NL-POL", "DE-BKA"])
    out = root / "receiver-marks.json"
    argv = [sys.executable, "-m", "bench.trace_receiver", "node", "run", "--home",
            str(cluster.homes["DE-BKA"]), "--log-level", "warning"]  # fmt: skip
    os.environ["ACCORD_TRACE_OUT"] = str(out)
    receiver = Child(argv, expected=1, log=root / "receiver.log")
    try:
        await receiver.ready()
        node = await cluster.start_in_process("NL-POL")
        try:
            sender = Sender(node, to=["DE-BKA"])
            await sender.saturate(count=300, seconds=5.0, concurrency=16)  # warm up
            ids = await sender.open_loop(rate=rate, seconds=seconds)
        finally:
            await stopped(node)
    finally:
        receiver.stop()
    MARKS.update(json.loads(out.read_text()))
    shutil.rmtree(root, ignore_errors=True)
    MARKS["accepted"] = {i: sender.accepted_at[i] for i in ids}
    MARKS["stored"] = {i: max(sender.receipts[i]) for i in ids}
    print(f"{len(ids)} messages at {rate:,.0f} msg/s; milliseconds per stage")
    print(f"{'stage':<28} {'p50':>7} {'p90':>7} {'p99':>7}")
    for a, b in [*CHAIN, ("accepted", "stored")]:
        values = [(MARKS[b][i] - MARKS[a][i]) * 1e3 for i in ids]
        label = "total" if (a, b) == ("accepted", "stored") else f"{a} -> {b}"
        p50, p90, p99 = (percentile(values, p) for p in (50, 90, 99))
        print(f"{label:<28} {p50:7.2f} {p90:7.2f} {p99:7.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trace")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    asyncio.run(main_async(args.rate, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
