"""Wrap a gRPC method handler so a check runs before the servicer does.

Both interceptors (federation mTLS, local tokens) use this, so every call shape is covered the
same way and a method added later cannot skip authentication.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc

Check = Callable[[Any], Awaitable[bool]]  # (context) -> proceed? (it aborts the call itself)
# (stream, context) -> the stream, e.g. checking the caller again before each item
StreamFilter = Callable[[AsyncIterator[Any], Any], AsyncIterator[Any]]


def _passthrough(items: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
    return items


def guarded(
    handler: grpc.RpcMethodHandler[Any, Any],
    check: Check,
    *,
    requests: StreamFilter = _passthrough,
    responses: StreamFilter = _passthrough,
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` behind `check`; streamed requests also pass through `requests`, streamed
    responses through `responses` (e.g. to check the caller again on every item)."""
    kw: dict[str, Any] = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    # The stubs type behaviours as sync; under grpc.aio they are coroutines / async generators.
    if handler.request_streaming and handler.response_streaming:
        ss = cast(Callable[[Any, Any], AsyncIterator[Any]], handler.stream_stream)

        async def stream_stream(request_iterator: Any, context: Any) -> AsyncIterator[Any]:
            if not await check(context):
                return
            # Headers now say "admitted": a client that awaits them before writing never races
            # a refusal, which grpcio's client would report as INTERNAL ("Internal error from
            # Core") in place of the reason, if its write lost that race.
            await context.send_initial_metadata(())
            stream = ss(requests(request_iterator, context), context)
            async for response in responses(stream, context):
                yield response

        return grpc.stream_stream_rpc_method_handler(stream_stream, **kw)
    if handler.response_streaming:
        us = cast(Callable[[Any, Any], AsyncIterator[Any]], handler.unary_stream)

        async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
            if await check(context):
                # Headers now say "admitted", so a caller can wait for that before relying on
                # the stream (the gateway answers a live feed only once its node accepted it).
                await context.send_initial_metadata(())
                async for response in responses(us(request, context), context):
                    yield response

        return grpc.unary_stream_rpc_method_handler(unary_stream, **kw)
    if handler.request_streaming:
        su = cast(Callable[[Any, Any], Awaitable[Any]], handler.stream_unary)

        async def stream_unary(request_iterator: Any, context: Any) -> Any:
            if not await check(context):
                return None
            return await su(requests(request_iterator, context), context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, **kw)
    uu = cast(Callable[[Any, Any], Awaitable[Any]], handler.unary_unary)

    async def unary_unary(request: Any, context: Any) -> Any:
        if await check(context):
            return await uu(request, context)
        return None

    return grpc.unary_unary_rpc_method_handler(unary_unary, **kw)


class _Undecodable:
    """A request whose bytes are not the method's message."""

    def __init__(self, error: str) -> None:
        self.error = error


def decoded(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` answering a request that does not decode as its message INVALID_ARGUMENT,
    saying so, where grpcio would answer UNKNOWN and log a traceback for every such call."""
    if handler.request_streaming or handler.request_deserializer is None:
        return handler
    deserialize = handler.request_deserializer

    def tolerant(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # protobuf's DecodeError, or anything a parser raises
            return _Undecodable(f"{type(exc).__name__}: {exc}")

    async def refuse(request: _Undecodable, context: Any) -> None:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request is not this method's message ({request.error[:200]}): send the "
            "request message the method takes (accord.v1, local.proto)",
        )

    kw: dict[str, Any] = {
        "request_deserializer": tolerant,
        "response_serializer": handler.response_serializer,
    }
    if handler.response_streaming:
        us = cast(Callable[[Any, Any], AsyncIterator[Any]], handler.unary_stream)

        async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
            if isinstance(request, _Undecodable):
                await refuse(request, context)
                return
            async for response in us(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(unary_stream, **kw)
    uu = cast(Callable[[Any, Any], Awaitable[Any]], handler.unary_unary)

    async def unary_unary(request: Any, context: Any) -> Any:
        if isinstance(request, _Undecodable):
            await refuse(request, context)
            return None
        return await uu(request, context)

    return grpc.unary_unary_rpc_method_handler(unary_unary, **kw)
