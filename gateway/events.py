"""Server-sent events from the node's Watch stream, opened with the caller's own token.

The stream is answered only once the node has accepted the Watch call (so a bad session is a
401, not an empty stream). The node checks the token again before each message, so a stream
whose session expired or was revoked (or whose account changed) ends with `event: end`
instead of delivering; a stream whose node went away just closes, and the browser reconnects.
Keep-alive comments are not calls to the node: an open inbox does not keep a session from
going idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import grpc
from fastapi import Request
from fastapi.responses import StreamingResponse

from accord.v1 import local_pb2
from gateway import convert
from gateway.auth import Caller
from gateway.errors import from_rpc

if TYPE_CHECKING:
    from gateway.state import Gateway

KEEPALIVE_SECONDS = 15.0
_END = "event: end\ndata: {}\n\n"
# The node ends a feed with these when its session is over or the account changed.
_OVER = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})


def _json(value: Any) -> str:
    return json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


async def stream(gw: Gateway, who: Caller, request: Request) -> StreamingResponse:
    stack = contextlib.AsyncExitStack()
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
    return StreamingResponse(
        _events(call, stack),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


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
