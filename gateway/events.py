"""Server-sent events from the node's Watch stream, opened with the caller's own token.

The stream is answered only once the node has accepted the Watch call (so a bad session is a
401, not an empty stream). The node checks the token again before each message, so a stream
whose session expired or was revoked (or whose account changed) ends with `event: end`
instead of delivering; a stream whose node went away just closes, and the browser reconnects.
Keep-alive comments are not calls to the node: an open inbox does not keep a session from
going idle.

Each feed holds a Watch on the node and descriptors in the gateway for as long as it is open,
so their number is bounded per credential (a browser opens at most six connections to one
host, so a person needs no more than a few) and in all; beyond that a feed is refused (429).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import grpc
from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from accord.v1 import local_pb2
from gateway import convert
from gateway.auth import Caller
from gateway.errors import ApiError, from_rpc

if TYPE_CHECKING:
    from gateway.state import Gateway

KEEPALIVE_SECONDS = 15.0
FEEDS_PER_CREDENTIAL = 5
_END = "event: end\ndata: {}\n\n"
# The node ends a feed with these when its session is over or the account changed.
_OVER = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})


def _json(value: Any) -> str:
    return json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


class Feeds:
    """How many live feeds are open, per credential (a session's or an API token) and in all."""

    def __init__(self, *, per_credential: int = FEEDS_PER_CREDENTIAL, total: int) -> None:
        self._per_credential = per_credential
        self._total = total
        self._open: dict[bytes, int] = {}

    def open(self, token: str) -> Callable[[], None]:
        """Count one more feed for `token`, or raise 429; returns what ends it."""
        key = hashlib.sha256(token.encode()).digest()  # not the token itself, kept for hours
        if self._open.get(key, 0) >= self._per_credential:
            raise ApiError(
                429,
                "RESOURCE_EXHAUSTED",
                f"this session (or API token) already has {self._per_credential} live feeds "
                "open, the most it may: close another console tab or window",
            )
        if sum(self._open.values()) >= self._total:
            raise ApiError(
                429,
                "RESOURCE_EXHAUSTED",
                f"the gateway has {self._total} live feeds open, its most; try again later",
            )
        self._open[key] = self._open.get(key, 0) + 1

        def close() -> None:
            left = self._open.pop(key) - 1
            if left:
                self._open[key] = left

        return close


class _Feed(StreamingResponse):
    """A response that closes its feed whatever becomes of it: a stream that ends before its
    first item (the client went away) never runs the generator's own `finally`."""

    def __init__(self, content: AsyncIterator[str], stack: contextlib.AsyncExitStack) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self._stack = stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stack.aclose()


async def stream(gw: Gateway, who: Caller, request: Request) -> StreamingResponse:
    stack = contextlib.AsyncExitStack()
    stack.callback(gw.feeds.open(who.token))
    try:
        connection = await stack.enter_async_context(gw.node.open(who.token))
        call = connection.api.Watch(local_pb2.WatchRequest())
        try:
            await call.wait_for_connection()
        except grpc.aio.AioRpcError as exc:
            raise from_rpc(exc) from exc
    except BaseException:
        await stack.aclose()
        raise
    return _Feed(_events(call, stack), stack)


async def _events(call: Any, stack: contextlib.AsyncExitStack) -> AsyncIterator[str]:
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1000)

    async def pump() -> None:
        try:
            async for item in call:
                await queue.put(item)
        except grpc.aio.AioRpcError as exc:
            await queue.put(exc)
            return
        await queue.put(None)

    # Reading in a task of its own: a read cancelled by a keep-alive timeout would cancel the
    # whole call.
    reader = asyncio.create_task(pump(), name="gateway-watch")
    try:
        yield "retry: 3000\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if isinstance(item, grpc.aio.AioRpcError):
                if item.code() in _OVER:
                    yield _END  # the session is over: the page says so and stops listening
                return  # the node went away: the browser reconnects (and gets 503 meanwhile)
            if item is None:
                return
            summary = convert.summary(item)
            yield f"event: message\nid: {item.message_id}\ndata: {_json(summary)}\n\n"
    finally:
        reader.cancel()
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await stack.aclose()
