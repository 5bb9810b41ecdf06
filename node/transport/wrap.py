"""Wrap a gRPC method handler so a check runs before the servicer does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

Check = Callable[[Any], Awaitable[bool]]  # (context) -> proceed? (it aborts the call itself)


def guarded(
    handler: grpc.RpcMethodHandler[Any, Any], check: Check
) -> grpc.RpcMethodHandler[Any, Any]:
    if handler.request_streaming and handler.response_streaming:
        ss: Any = handler.stream_stream
        assert ss is not None

        async def stream_stream(request_iterator: Any, context: Any) -> AsyncIterator[Any]:
            if await check(context):
                async for response in ss(request_iterator, context):
                    yield response

        return grpc.stream_stream_rpc_method_handler(
            stream_stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.response_streaming:
        us: Any = handler.unary_stream
        assert us is not None

        async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
            if await check(context):
                async for response in us(request, context):
                    yield response

        return grpc.unary_stream_rpc_method_handler(
            unary_stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.request_streaming:
        raise RuntimeError("client-streaming calls are not used by Accord")
    uu = handler.unary_unary
    assert uu is not None

    async def unary_unary(request: Any, context: Any) -> Any:
        if await check(context):
            return await uu(request, context)
        return None

    return grpc.unary_unary_rpc_method_handler(
        unary_unary,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
