"""The client side of the federation protocol: a channel to a peer's node, over mutual TLS.

Hello, GetPolicy and the envelope stream, in domain types (node/wire.py converts); a failed
call is a `CallFailed` naming gRPC's status, so nothing past this module sees gRPC.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc

from accord.v1 import federation_pb2, federation_pb2_grpc
from certs.identity import agency_dns_name
from node import wire
from node.messages import PublishedPolicy, SignedEnvelope, SignedReceipt


@dataclass(frozen=True, slots=True)
class Credentials:
    """This node's key and certificate, and the federation CA, for mutual TLS."""

    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes

    def channel(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem, private_key=self.key_pem, certificate_chain=self.cert_pem
        )


CALL_SECONDS = 10.0  # how long Hello and GetPolicy may take


class CallFailed(Exception):
    """A call to a peer failed: `code` is gRPC's status name; `unreachable`, the peer did not
    answer at all (UNAVAILABLE)."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details
        self.unreachable = code == "UNAVAILABLE"


def _failed(exc: grpc.aio.AioRpcError) -> CallFailed:
    return CallFailed(exc.code().name, exc.details() or "")


class Connector:
    """How this node reaches its peers: its credentials, and where each peer's node is (its
    directory endpoint, unless a drill routes it through a proxy)."""

    def __init__(
        self, *, credentials: Credentials, federation: str, endpoints: dict[str, str]
    ) -> None:
        self.credentials = credentials
        self._federation = federation
        self._endpoints = endpoints

    def endpoint(self, agency: str, listed: str) -> str:
        return self._endpoints.get(agency, listed)

    def channel(
        self, agency: str, listed: str, *, max_message_bytes: int = 4 << 20, keepalive: bool = False
    ) -> PeerChannel:
        return PeerChannel(
            endpoint=self.endpoint(agency, listed),
            credentials=self.credentials,
            federation=self._federation,
            peer=agency,
            max_message_bytes=max_message_bytes,
            keepalive=keepalive,
        )


class PeerChannel:
    """A channel to `peer`'s node at `endpoint`; TLS checks the peer's agency DNS name, whatever
    address it is reached at (a drill's proxy)."""

    def __init__(
        self,
        *,
        endpoint: str,
        credentials: Credentials,
        federation: str,
        peer: str,
        max_message_bytes: int = 4 << 20,
        keepalive: bool = False,
    ) -> None:
        options: list[tuple[str, Any]] = [
            ("grpc.ssl_target_name_override", agency_dns_name(federation, peer)),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        if keepalive:
            options += [
                ("grpc.keepalive_time_ms", 20_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.enable_retries", 0),
            ]
        self._channel = grpc.aio.secure_channel(endpoint, credentials.channel(), options=options)
        self._stub = federation_pb2_grpc.FederationStub(self._channel)

    async def __aenter__(self) -> PeerChannel:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self._channel.close()

    async def hello(self, nonce: bytes) -> tuple[bytes, frozenset[str]]:
        """The server's signature over the nonce (signing.HELLO), and the features it names."""
        try:
            answer = await self._stub.Hello(
                federation_pb2.HelloRequest(nonce=nonce), timeout=CALL_SECONDS
            )
        except grpc.aio.AioRpcError as exc:
            raise _failed(exc) from exc
        return answer.signature, frozenset(answer.features)

    async def policy(self) -> PublishedPolicy:
        try:
            signed = await self._stub.GetPolicy(
                federation_pb2.GetPolicyRequest(), timeout=CALL_SECONDS
            )
        except grpc.aio.AioRpcError as exc:
            raise _failed(exc) from exc
        return wire.published_policy(signed)

    def exchange(self) -> EnvelopeStream:
        """Open the envelope stream (ExchangeBatches), naming the features this node checks."""
        call = self._stub.ExchangeBatches(metadata=((wire.FEATURES_KEY, ",".join(wire.FEATURES)),))
        return EnvelopeStream(call)


class EnvelopeStream:
    """Frames of envelopes out, frames of receipts back, in order."""

    def __init__(self, call: Any) -> None:
        self._call = call

    async def write(self, envelopes: Sequence[SignedEnvelope]) -> None:
        """Send one frame."""
        try:
            await self._call.write(wire.envelope_batch(envelopes))
        except grpc.aio.AioRpcError as exc:
            raise _failed(exc) from exc
        except asyncio.InvalidStateError as exc:
            # A write on a call that already failed (e.g. connection refused) raises this, not
            # AioRpcError; the call's own status says why.
            code, details = await self._call.code(), await self._call.details()
            raise CallFailed(code.name, details or "") from exc

    async def read(self) -> list[SignedReceipt] | None:
        """The next frame's receipts; None once the peer has closed the stream."""
        try:
            frame = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            raise _failed(exc) from exc
        except asyncio.InvalidStateError as exc:
            code, details = await self._call.code(), await self._call.details()
            raise CallFailed(code.name, details or "") from exc
        if frame is grpc.aio.EOF:
            return None
        return wire.receipts_of_batch(frame)

    def cancel(self) -> None:
        self._call.cancel()
