"""Run several nodes in one process until SIGTERM: `python -m bench.nodes HOME [HOME ...]`.

Used where a benchmark needs more receivers than the machine has cores (fan-out to 8 peers).
Each node prints the same `ready on port` line as `accord node run`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from node import config as config_mod
from node.app import Node


async def run(homes: list[Path]) -> None:
    nodes = [Node(config_mod.load(home)) for home in homes]
    for node in nodes:
        await node.start()
        print(f"{node.agency} ready on port {node.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for node in nodes:
        await node.stop(grace=2.0)


def main() -> int:
    asyncio.run(run([Path(a) for a in sys.argv[1:]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
