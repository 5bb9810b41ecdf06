"""A fault-injecting TCP proxy on loopback, one per ordered pair of nodes (A's link to B).

It forwards bytes untouched, so TLS, the client certificate and the Hello key proof run end to
end through it. Modes:

- `pass`: forward.
- `delay`: forward each chunk `delay` seconds after it arrived (a slow link, order kept).
- `drop`: close every open connection (FIN) and every new one at once: the peer is gone.
- `reset`: the same with RST (SO_LINGER 0): connections die mid-stream.
- `blackhole`: hold every connection open and forward nothing, new ones included: the peer
  hangs. Nothing is discarded: TCP would retransmit through a real black hole, so what was
  held flows on once the mode changes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import struct

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


class Mode(enum.StrEnum):
    PASS = "pass"  # noqa: S105 (a mode, not a password)
    DELAY = "delay"
    DROP = "drop"
    RESET = "reset"
    BLACKHOLE = "blackhole"


class _Connection:
    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def end(self, *, reset: bool) -> None:
        for writer in (self.client, self.upstream):
            if writer is None:
                continue
            if reset:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                writer.transport.abort()
            else:
                writer.close()
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    """Listens on 127.0.0.1:`port` (0: any free port) and forwards to `upstream`."""

    def __init__(self, name: str, upstream: tuple[str, int], *, port: int = 0) -> None:
        self.name = name
        self.upstream = upstream
        self._port = port
        self.mode = Mode.PASS
        self.delay = 0.0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._open: set[_Connection] = set()
        self.connections = 0  # accepted since start
        self.bytes = 0  # forwarded since start

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._open):
            conn.end(reset=False)
        self._open.clear()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    def set(self, mode: Mode, *, delay: float = 0.0) -> None:
        """Switch mode; `delay` (seconds) applies to `delay` mode."""
        self.mode = mode
        self.delay = delay if mode == Mode.DELAY else 0.0
        if mode in (Mode.DROP, Mode.RESET):
            for conn in list(self._open):
                conn.end(reset=mode == Mode.RESET)
            self._open.clear()
        if mode == Mode.BLACKHOLE:
            self._flowing.clear()
        else:
            self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = _Connection(writer)
        if self.mode in (Mode.DROP, Mode.RESET):
            conn.end(reset=self._resetting())
            return
        self._open.add(conn)
        try:
            await self._flowing.wait()  # a black hole holds the connection before it reaches B
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                conn.end(reset=True)  # B is down: the caller sees a failed connection at once
                return
            conn.upstream = up_writer
            if conn not in self._open:  # dropped while connecting
                conn.end(reset=self._resetting())
                return
            conn.tasks = [
                asyncio.create_task(self._pump(reader, up_writer, conn)),
                asyncio.create_task(self._pump(up_reader, writer, conn)),
            ]
            await asyncio.gather(*conn.tasks, return_exceptions=True)
        finally:
            self._open.discard(conn)
            conn.end(reset=False)

    def _resetting(self) -> bool:
        return self.mode == Mode.RESET

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, conn: _Connection
    ) -> None:
        """Copy one direction; chunks keep their order and each is held back by the delay
        in force when it arrived. An end (FIN) is passed on as an end of this direction only;
        a failure of either side (a reset: a node killed with SIGKILL) resets the whole
        connection, as a real network would, so the other side learns at once instead of
        waiting for its keepalive."""
        loop = asyncio.get_running_loop()
        pending: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def writer() -> None:
            try:
                while True:
                    due, data = await pending.get()
                    if not data:
                        break
                    if (wait := due - loop.time()) > 0:
                        await asyncio.sleep(wait)
                    await self._flowing.wait()
                    dst.write(data)
                    await dst.drain()
                    self.bytes += len(data)
                if dst.can_write_eof():
                    dst.write_eof()
            except OSError:
                conn.end(reset=True)

        out = asyncio.create_task(writer())
        try:
            while True:
                await self._flowing.wait()
                data = await src.read(CHUNK)
                pending.put_nowait((loop.time() + self.delay, data))
                if not data:
                    break
            await out
        except (OSError, asyncio.IncompleteReadError):
            conn.end(reset=True)
        finally:
            out.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await out
