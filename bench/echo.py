"""The baseline: a bare grpc.aio bidirectional stream with mutual TLS that does no work.

The server (`python -m bench.echo`, run in its own process) answers every request frame with a
fixed reply of the size of a real receipt; the client pipelines request frames of the size of a
real envelope. Same certificates (ECDSA P-256, from the bench federation), same TLS 1.3, same
HTTP/2 stream shape as the node's Exchange call, nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

METHOD = "/bench.Echo/Exchange"


# ---- server (child process) ---------------------------------------------------------------------


async def serve(*, key: bytes, cert: bytes, ca: bytes, ports: list[int], reply_bytes: int) -> None:
    reply = b"r" * reply_bytes

    async def exchange(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for _ in requests:
            yield reply

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Exchange": grpc.stream_stream_rpc_method_handler(exchange)}
    )
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    creds = grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )
    for port in ports:
        if server.add_secure_port(f"127.0.0.1:{port}", creds) == 0:
            raise OSError(f"cannot listen on 127.0.0.1:{port}")
    await server.start()
    for port in ports:
        print(f"echo ready on port {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.echo")
    parser.add_argument(
        "--home", required=True, help="node home whose node.key/node.pem/ca.pem to use"
    )
    parser.add_argument("--ports", required=True, help="comma-separated loopback ports")
    parser.add_argument("--reply-bytes", type=int, default=200)
    args = parser.parse_args()
    home = Path(args.home)
    asyncio.run(
        serve(
            key=(home / "node.key").read_bytes(),
            cert=(home / "node.pem").read_bytes(),
            ca=(home / "ca.pem").read_bytes(),
            ports=[int(p) for p in args.ports.split(",")],
            reply_bytes=args.reply_bytes,
        )
    )
    return 0


# ---- client (bench process) ---------------------------------------------------------------------


class EchoStream:
    """One long-lived pipelined stream to an echo server, like a node's peer link."""

    def __init__(self, *, port: int, home: Path, server_name: str) -> None:
        creds = grpc.ssl_channel_credentials(
            root_certificates=(home / "ca.pem").read_bytes(),
            private_key=(home / "node.key").read_bytes(),
            certificate_chain=(home / "node.pem").read_bytes(),
        )
        self._channel = grpc.aio.secure_channel(
            f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", server_name)]
        )
        self._call: Any = None
        self._written: collections.deque[float] = collections.deque()
        self._reader: asyncio.Task[None] | None = None
        self.latencies: list[float] = []
        self.answered = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    async def open(self) -> None:
        self._call = self._channel.stream_stream(METHOD)()
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self._call is not None:
            await self._call.done_writing()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._channel.close()

    async def write(self, frame: bytes) -> None:
        self._written.append(time.perf_counter())
        await self._call.write(frame)

    async def _read(self) -> None:
        while True:
            answer = await self._call.read()
            if answer is grpc.aio.EOF:
                return
            now = time.perf_counter()
            self.latencies.append(now - self._written.popleft())
            self.answered += 1
            for target, fut in list(self._waiters):
                if self.answered >= target and not fut.done():
                    fut.set_result(None)

    async def wait_answered(self, count: int, *, within: float) -> None:
        if self.answered >= count:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((count, fut))
        try:
            await asyncio.wait_for(fut, within)
        finally:
            self._waiters.remove((count, fut))

    async def roundtrip(self, frame: bytes, *, within: float = 5.0) -> float:
        start = time.perf_counter()
        target = self.answered + 1
        await self.write(frame)
        await self.wait_answered(target, within=within)
        return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
