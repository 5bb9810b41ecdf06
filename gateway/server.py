"""Serving the gateway with uvicorn: `accord gateway run`, and the tests (port 0)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway.app import create_app
from gateway.state import Settings

GRACE_SECONDS = 3  # open live feeds are cut after this on shutdown
# Connections and requests at once beyond the live feeds (uvicorn answers 503 past the sum).
OTHER_CONNECTIONS = 300


@dataclass(frozen=True, slots=True)
class Tls:
    certificate: Path
    key: Path


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Inherited by accepted connections: without it every answer after the first on a kept-alive
    # connection waited ~40 ms (uvicorn writes headers and body apart; Nagle met delayed ACK).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class Server(uvicorn.Server):
    """uvicorn's server, leaving signals to whoever runs it (`accord gateway run` stops it on
    SIGTERM and exits 0; tests stop it themselves)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._listening.set()

    async def serving(self, sock: socket.socket) -> asyncio.Task[None]:
        """Start serving on `sock`; returns the serving task once listening (or if it ended:
        awaiting it then raises why)."""
        task = asyncio.create_task(self.serve(sockets=[sock]), name="gateway")
        listening = asyncio.create_task(self._listening.wait())
        await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        return task


class _Deadlines(H11Protocol):
    """uvicorn's HTTP/1.1 connection, closed when its client is slow to send a request: the
    head must arrive within `head_seconds` of the connection (or of the previous answer), the
    whole request, body included, within `request_seconds`. uvicorn itself waits for ever on
    a partial request (and its keep-alive timer stops at the first byte), so a few hundred
    connections that each send a byte now and then would hold every place the gateway has."""

    head_seconds: float
    request_seconds: float

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._phase: str | None = None
        self._since = 0.0
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Set the deadline for what the client owes now: a head, a body, or nothing."""
        state = self.conn.their_state
        phase = "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        if phase == self._phase:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if phase is None or self.transport.is_closing():
            # The request is in: its answer may take as long as it takes (a live feed: hours).
            self._phase = None
            return
        if phase == "head" or self._phase is None:
            self._since = self.loop.time()
        self._phase = phase
        limit = self.head_seconds if phase == "head" else self.request_seconds
        self._deadline = self.loop.call_at(self._since + limit, self._expire)

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def server(settings: Settings, *, tls: Tls | None) -> Server:
    protocol = type(
        "Deadlines",
        (_Deadlines,),
        {
            "head_seconds": settings.request_head_seconds,
            "request_seconds": settings.request_seconds,
        },
    )
    config = uvicorn.Config(
        create_app(settings),
        log_config=None,  # the process's logging; the gateway logs requests itself
        access_log=False,  # uvicorn's would carry paths with query strings
        http=protocol,
        ws="none",
        limit_concurrency=settings.max_feeds + OTHER_CONNECTIONS,
        lifespan="off",
        timeout_graceful_shutdown=GRACE_SECONDS,
        # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: every client of a gateway
        # on loopback could name its own address, and the login limit counts by it.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
        ssl_certfile=str(tls.certificate) if tls else None,
        ssl_keyfile=str(tls.key) if tls else None,
    )
    return Server(config)


@contextlib.asynccontextmanager
async def running(
    settings: Settings, *, host: str = "127.0.0.1", port: int = 0, tls: Tls | None = None
) -> AsyncIterator[str]:
    """Serve in this event loop until the block ends; yields the base URL."""
    sock = bind(host, port)
    srv = server(replace(settings, tls=tls is not None), tls=tls)
    task = await srv.serving(sock)
    try:
        if not srv.started:
            await task  # raises why it could not start
            raise RuntimeError("the gateway did not start")
        bound = sock.getsockname()[1]
        yield f"{'https' if tls else 'http'}://{host}:{bound}"
    finally:
        srv.should_exit = True
        await task
        sock.close()
