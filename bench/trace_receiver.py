"""A receiver node that records when each envelope passes each stage (for `bench.trace`).

Runs `accord node run` with the receiver's stages wrapped; on exit it writes, per stage, the
`time.perf_counter()` of each message id to the JSON file named by ACCORD_TRACE_OUT. The clock is
CLOCK_MONOTONIC, shared with the sender process on the same machine.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from accord.v1 import federation_pb2
from node.delivery.receiver import Answer, Arrival, Receiver
from node.trust import Peer
from node.wire import message_id_hint, parse_receipt

MARKS: dict[str, dict[str, float]] = {}


def mark(stage: str, ids: Sequence[str]) -> None:
    now = time.perf_counter()
    stamps = MARKS.setdefault(stage, {})
    for mid in ids:
        stamps[mid] = now


def install() -> None:
    admit = Receiver.admit

    async def traced_admit(
        self: Receiver, peer: Peer, envelopes: Sequence[Arrival]
    ) -> asyncio.Task[list[Answer]]:
        ids = [message_id_hint(c) for c, _, _ in envelopes]
        mark("admit_start", ids)
        task = await admit(self, peer, envelopes)
        mark("admit_end", ids)
        task.add_done_callback(lambda _: mark("committed", ids))
        return task

    parse = federation_pb2.EnvelopeBatch.FromString

    def traced_parse(raw: bytes) -> Any:
        batch = parse(raw)
        mark("frame_in", [message_id_hint(e.content) for e in batch.envelopes])
        return batch

    serialise = federation_pb2.ReceiptBatch.SerializeToString

    def traced_serialise(self: Any, **kwargs: Any) -> bytes:
        mark("receipts_out", [parse_receipt(r.content).message_id for r in self.receipts])
        data: bytes = serialise(self, **kwargs)
        return data

    setattr(Receiver, "admit", traced_admit)  # noqa: B010 (a tracing wrapper, on purpose)
    setattr(federation_pb2.EnvelopeBatch, "FromString", staticmethod(traced_parse))  # noqa: B010
    setattr(federation_pb2.ReceiptBatch, "SerializeToString", traced_serialise)  # noqa: B010


def dump() -> None:
    with open(os.environ["ACCORD_TRACE_OUT"], "w") as f:
        json.dump(MARKS, f)


if __name__ == "__main__":
    install()
    atexit.register(dump)
    from node.cli import main

    sys.exit(main(sys.argv[1:]))
