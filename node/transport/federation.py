"""The federation servicer: thin. Streams envelopes into the Receiver and receipts back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from accord.v1 import federation_pb2, message_pb2
from node import signing, wire
from node.delivery.budget import CooledDown, RefusalBudget
from node.delivery.receiver import Answer, Arrival, Receiver
from node.messages import PublishedPolicy
from node.signing import Signer
from node.transport.auth import current_peer
from node.trust import Peer
from node.wire import FEATURES, FEATURES_KEY, MalformedFrameError, missing_features

log = logging.getLogger(__name__)

SERVICE = "accord.v1.Federation"


def features_of(context: Any) -> frozenset[str]:
    """The features a caller named for this call."""
    for key, value in context.invocation_metadata() or ():
        if key == FEATURES_KEY and isinstance(value, str):
            return frozenset(f for f in value.split(",") if f)
    return frozenset()


class FrameTooLargeError(Exception):
    """A batched frame with more envelopes than this node takes in one frame."""


def count_envelopes(raw: bytes, limit: int) -> int:
    """The number of top-level fields of a serialised EnvelopeBatch, counted up to `limit + 1`
    without parsing it (a frame of 100 000 empty envelopes is 200 kB; parsing it first would
    cost what the limit is there to prevent). Where the framing is malformed, counting stops
    and the parser, run next, says what is wrong."""
    count, at, end = 0, 0, len(raw)
    while at < end and count <= limit:
        tag, at = _varint(raw, at)
        wire = tag & 7
        if wire == 2:
            length, at = _varint(raw, at)
            at += length
        elif wire == 0:
            _, at = _varint(raw, at)
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            break
        if at > end:
            break
        count += 1
    return count


def _varint(raw: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while at < len(raw) and shift < 64:
        byte = raw[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
    return 0, len(raw) + 1  # truncated or too long: past the end


class FederationServicer:
    def __init__(
        self,
        *,
        receiver: Receiver,
        policy_document: Callable[[], PublishedPolicy],
        signer: Signer,
        max_envelopes_per_frame: int = 1024,
        max_streams_per_peer: int = 8,
        receive_batch: int = 128,
        batches_in_flight: int = 8,
        budget: RefusalBudget | None = None,
        on_refused: Callable[[str, str], None] = lambda peer, why: None,
    ) -> None:
        """`receive_batch`: envelopes admitted as one batch; `batches_in_flight`: admitted
        batches per stream whose answers are not yet sent (node/config.py, [delivery]);
        `on_refused(peer, why)`: told each stream refused or cut (the audit log)."""
        self._on_refused = on_refused
        self._receiver = receiver
        self._policy_document = policy_document
        self._signer = signer
        self._max_envelopes = max_envelopes_per_frame
        self._batch = receive_batch
        self._in_flight = batches_in_flight
        self._max_streams = max_streams_per_peer
        self._budget = budget
        self._streams: dict[str, int] = {}  # open Exchange streams per peer agency
        self._pumps: set[asyncio.Task[None]] = set()
        self._closing = False

    async def _refuse(
        self, context: grpc.aio.ServicerContext[Any, Any], peer: Peer, code: grpc.StatusCode,
        why: str,
    ) -> None:  # fmt: skip
        """End a stream refused (or cut) for what the peer did, told to the audit log first."""
        self._on_refused(peer.agency, f"{code.name}: {why}")
        await context.abort(code, why)

    async def drain(self) -> None:
        """Stop reading new envelopes on every stream; each stream answers what it has already
        read, then ends cleanly, so a shutdown loses nothing and waits for no timeout."""
        self._closing = True
        pumps = list(self._pumps)
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)

    def handler(self) -> grpc.GenericRpcHandler:
        # Exchange takes raw bytes so that a frame that is not an Envelope is answered with a
        # MALFORMED receipt instead of ending the stream.
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Exchange": grpc.stream_stream_rpc_method_handler(
                    self.exchange,
                    request_deserializer=None,
                    response_serializer=message_pb2.Receipt.SerializeToString,
                ),
                "ExchangeBatches": grpc.stream_stream_rpc_method_handler(
                    self.exchange_batches,
                    request_deserializer=None,
                    response_serializer=federation_pb2.ReceiptBatch.SerializeToString,
                ),
                "Hello": grpc.unary_unary_rpc_method_handler(
                    self.hello,
                    request_deserializer=federation_pb2.HelloRequest.FromString,
                    response_serializer=federation_pb2.HelloResponse.SerializeToString,
                ),
                "GetPolicy": grpc.unary_unary_rpc_method_handler(
                    self.get_policy,
                    request_deserializer=federation_pb2.GetPolicyRequest.FromString,
                    response_serializer=federation_pb2.SignedPolicy.SerializeToString,
                ),
            },
        )

    async def hello(
        self, request: federation_pb2.HelloRequest, context: Any
    ) -> federation_pb2.HelloResponse:
        if len(request.nonce) < 16:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "nonce must be 16+ bytes")
        data = signing.hello_data(request.nonce, current_peer().agency)
        return federation_pb2.HelloResponse(
            agency=self._receiver.agency,
            signature=self._signer.sign(data, signing.HELLO),
            features=FEATURES,
        )

    async def get_policy(
        self, request: federation_pb2.GetPolicyRequest, context: Any
    ) -> federation_pb2.SignedPolicy:
        return wire.signed_policy_message(self._policy_document())

    async def exchange(
        self, request_iterator: AsyncIterator[bytes], context: Any
    ) -> AsyncIterator[message_pb2.Receipt]:
        async for answers in self._exchange(request_iterator, context, batched=False):
            for answer in answers:
                yield wire.receipt_message(answer.signed_receipt())

    async def exchange_batches(
        self, request_iterator: AsyncIterator[bytes], context: Any
    ) -> AsyncIterator[federation_pb2.ReceiptBatch]:
        async for answers in self._exchange(request_iterator, context, batched=True):
            yield wire.receipt_batch([answer.signed_receipt() for answer in answers])

    async def _exchange(
        self, request_iterator: AsyncIterator[bytes], context: Any, *, batched: bool
    ) -> AsyncIterator[list[Answer]]:
        """Envelopes in (one or many per frame), answers out in order, one list per batch
        the receiver handled."""
        peer = current_peer()
        if self._closing:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "node is shutting down")
        missing = missing_features(features_of(context))
        if missing:
            await self._refuse(
                context,
                peer,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the stream's {FEATURES_KEY} metadata does not name {missing}: this node "
                "speaks protocol v1 only (batch-signed envelopes and receipts)",
            )
        if self._budget is not None:
            try:
                self._budget.check(peer.agency)
            except CooledDown as exc:
                await self._refuse(context, peer, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        if self._streams.get(peer.agency, 0) >= self._max_streams:
            await self._refuse(
                context,
                peer,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{peer.agency} has {self._max_streams} streams open to this node already, "
                "its limit (limits.max_streams_per_peer in its published policy)",
            )
        self._streams[peer.agency] = self._streams.get(peer.agency, 0) + 1
        try:
            async for answers in self._stream(request_iterator, context, peer, batched=batched):
                yield answers
        finally:
            self._streams[peer.agency] -= 1
            if not self._streams[peer.agency]:
                del self._streams[peer.agency]

    async def _stream(
        self, request_iterator: AsyncIterator[bytes], context: Any, peer: Peer, *, batched: bool
    ) -> AsyncIterator[list[Answer]]:
        frames: asyncio.Queue[Arrival | None] = asyncio.Queue(self._batch * 2)
        answers: asyncio.Queue[asyncio.Task[Any] | None] = asyncio.Queue(self._in_flight)

        async def pump() -> None:
            try:
                async for raw in request_iterator:
                    if batched:
                        count = count_envelopes(raw, self._max_envelopes)
                        if count > self._max_envelopes:
                            raise FrameTooLargeError(
                                f"a frame holds more than {self._max_envelopes} envelopes, this "
                                "node's limit (limits.max_envelopes_per_frame in its published "
                                "policy); nothing in it was read"
                            )
                        for arrival in wire.arrivals_of_batch(raw):
                            await frames.put(arrival)
                        continue
                    await frames.put(wire.arrival_of_envelope(raw))
            finally:
                await frames.put(None)

        async def batcher() -> None:
            try:
                ended = False
                while not ended:
                    item = await frames.get()
                    if item is None:
                        break
                    batch = [item]
                    while len(batch) < self._batch and not frames.empty():
                        nxt = frames.get_nowait()
                        if nxt is None:
                            ended = True
                            break
                        batch.append(nxt)
                    # One batch admitted at a time: what arrives meanwhile is the next batch.
                    await answers.put(await self._receiver.admit(peer, batch))
            finally:
                await answers.put(None)

        pump_task = asyncio.create_task(pump())
        self._pumps.add(pump_task)
        pump_task.add_done_callback(self._pumps.discard)
        tasks = [pump_task, asyncio.create_task(batcher())]
        try:
            while (task := await answers.get()) is not None:
                yield await task
            for t in tasks:
                if t.done() and not t.cancelled() and t.exception() is not None:
                    exc = t.exception()
                    if isinstance(exc, MalformedFrameError):
                        await self._refuse(
                            context, peer, grpc.StatusCode.INVALID_ARGUMENT, str(exc)
                        )
                    if isinstance(exc, FrameTooLargeError | CooledDown):
                        await self._refuse(
                            context, peer, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
                        )
                    assert exc is not None
                    raise exc  # e.g. the store failed while admitting a batch: the stream fails
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
