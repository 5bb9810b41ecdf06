"""The local API servicer (unix socket): thin wrappers over Node methods."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from accord.v1 import local_pb2, local_pb2_grpc, message_pb2
from node.envelope import parse_content
from node.errors import AccordError, InvalidRequest, NotFound, Refused
from node.store import StoredMessage

if TYPE_CHECKING:
    from node.app import Node

Req = TypeVar("Req")
Resp = TypeVar("Resp")


def maps_errors(
    fn: Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]],
) -> Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
    """The one mapping of domain errors to gRPC status for the local API.

    A refusal carries its reason code in the `accord-reason` trailer too, so tools need not
    parse the message.
    """

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> Resp:
        try:
            return await fn(self, request, context)
        except AccordError as exc:
            if isinstance(exc, Refused):
                context.set_trailing_metadata((("accord-reason", exc.reason.value),))
            await context.abort(exc.status, str(exc))
            raise  # unreachable: abort raises

    return wrapper


def _ts(when: datetime | None) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    if when is not None:
        ts.FromDatetime(when.astimezone(UTC))
    return ts


def summary(m: StoredMessage) -> local_pb2.MessageSummary:
    s = local_pb2.MessageSummary(
        message_id=m.message_id,
        sender=m.sender,
        type=message_pb2.MessageType.Value(f"MESSAGE_TYPE_{m.type}"),
        purpose=m.purpose,
        correlation_id=m.correlation_id,
        tlp=message_pb2.Tlp.Value(f"TLP_{m.tlp}"),
        direction=m.direction,
    )
    s.created_at.CopyFrom(_ts(m.created_at))
    s.received_at.CopyFrom(_ts(m.received_at))
    if m.retain_until is not None:
        s.retain_until.CopyFrom(_ts(m.retain_until))
    return s


class LocalApiServicer(local_pb2_grpc.LocalApiServicer):
    def __init__(self, node: Node) -> None:
        self._node = node

    @property
    def _store(self) -> Any:
        assert self._node.store is not None
        return self._node.store

    @maps_errors
    async def Send(
        self, request: local_pb2.SendRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> local_pb2.SendResponse:
        if not request.HasField("content"):
            raise InvalidRequest("content is required")
        sent = await self._node.send(request.content)
        return local_pb2.SendResponse(message_id=sent.message_id, recipients=sent.recipients)

    @maps_errors
    async def Inbox(
        self, request: local_pb2.InboxRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> local_pb2.InboxResponse:
        limit = min(request.limit or 100, 1000)
        messages = await self._store.list_messages(
            direction="in", limit=limit, before=request.before_message_id
        )
        return local_pb2.InboxResponse(messages=[summary(m) for m in messages])

    @maps_errors
    async def Get(
        self, request: local_pb2.GetRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> local_pb2.GetResponse:
        if not request.message_id:
            raise InvalidRequest("message_id is required")
        m = await self._store.get_message(request.message_id, sender=request.sender or None)
        if m is None:
            raise NotFound(f"no message {request.message_id}")
        content = self._store.open_content(m)
        response = local_pb2.GetResponse(summary=summary(m))
        if content is not None:
            response.envelope.CopyFrom(message_pb2.Envelope(content=content, signature=m.signature))
            response.content.CopyFrom(parse_content(content))
        return response

    @maps_errors
    async def Receipts(
        self, request: local_pb2.ReceiptsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> local_pb2.ReceiptsResponse:
        deliveries = await self._store.deliveries(request.message_id)
        if not deliveries:
            raise NotFound(f"no message {request.message_id} sent from this node")
        response = local_pb2.ReceiptsResponse(message_id=request.message_id)
        for d in deliveries:
            status = response.deliveries.add(
                recipient=d.recipient, state=d.state, attempts=d.attempts, last_error=d.last_error
            )
            if d.receipt is not None:
                status.receipt.CopyFrom(
                    message_pb2.Receipt(content=d.receipt, signature=d.receipt_signature or b"")
                )
                status.receipt_content.ParseFromString(d.receipt)
        return response

    async def Watch(
        self, request: local_pb2.WatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[local_pb2.MessageSummary]:
        queue = self._node.watch()
        try:
            while True:
                yield summary(await queue.get())
        finally:
            self._node.unwatch(queue)
