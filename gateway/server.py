"""Serving the gateway with uvicorn: `accord gateway run`, and the tests (port 0)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import uvicorn

from gateway.app import create_app
from gateway.state import Settings

GRACE_SECONDS = 3  # open live feeds are cut after this on shutdown


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


def server(settings: Settings, *, tls: Tls | None) -> Server:
    config = uvicorn.Config(
        create_app(settings),
        log_config=None,  # the process's logging; the gateway logs requests itself
        access_log=False,  # uvicorn's would carry paths with query strings
        http="h11",
        ws="none",
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
