"""The gateway's only way to its node: the node's local API, as the person or system calling.

Every call opens the local API with the caller's own token (a login session's, or a system's
user token) through `node.client.connect`, so the node authenticates and authorises each
request itself; the gateway holds no credential of its own and keeps no message content.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from gateway.errors import ApiError, from_rpc, node_down
from node.client import Connection, NodeNotRunningError, connect

CALL_TIMEOUT = 30.0


class NodeApi:
    def __init__(self, home: Path) -> None:
        self.home = home

    @contextlib.asynccontextmanager
    async def open(self, token: str) -> AsyncIterator[Connection]:
        """The local API as the holder of `token` ("" for none: Login)."""
        try:
            async with connect(self.home, token=token) as connection:
                yield connection
        except NodeNotRunningError as exc:
            raise node_down(exc) from exc

    async def call(self, token: str, method: str, request: Any) -> Any:
        """One unary call; the node's refusal comes back as an ApiError."""
        async with self.open(token) as c:
            try:
                return await getattr(c.api, method)(request, timeout=CALL_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                raise from_rpc(exc) from exc

    async def stream(self, token: str, method: str, request: Any) -> list[Any]:
        """A server-streaming call's items, collected; the caller bounds them in the request."""
        async with self.open(token) as c:
            try:
                return [
                    item async for item in getattr(c.api, method)(request, timeout=CALL_TIMEOUT)
                ]
            except grpc.aio.AioRpcError as exc:
                raise from_rpc(exc) from exc

    async def healthy(self) -> bool:
        from grpc_health.v1 import health_pb2

        try:
            async with self.open("") as c:
                answer = await c.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        except (ApiError, grpc.aio.AioRpcError):
            return False
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
