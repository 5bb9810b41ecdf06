"""The one place federation callers are authenticated.

grpcio verifies the certificate chain against the federation CA during the TLS handshake and
requires a client certificate, but it has no CRL or minimum-TLS-version setting. This
interceptor closes that gap on every call: TLS 1.3 only, certificate not revoked (with a CRL
that is not stale), within its validity period, carrying one SPIFFE agency identity, and the
certificate the signed directory lists for that agency. Anything else ends the call with
UNAUTHENTICATED and a message that says what was wrong.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from node.clock import Clock
from node.errors import Unauthenticated
from node.trust import Peer, Trust

log = logging.getLogger(__name__)

CURRENT_PEER: contextvars.ContextVar[Peer] = contextvars.ContextVar("accord_peer")

_TLS13 = {b"TLS1_3", b"TLSv1.3"}


def current_peer() -> Peer:
    return CURRENT_PEER.get()


class FederationAuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self, *, trust: Trust, clock: Clock, on_refused: Callable[[str], None] = lambda m: None
    ) -> None:
        self._trust = trust
        self._clock = clock
        self._on_refused = on_refused

    def authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> Peer:
        auth = context.auth_context()
        versions = auth.get("ssl_tls_version") or auth.get("tls_version") or []
        if not versions:
            raise Unauthenticated("no TLS session: federation calls need mutual TLS 1.3")
        if not _TLS13.intersection(versions):
            raise Unauthenticated(
                f"TLS version {versions[0].decode(errors='replace')} refused: federation calls "
                "need TLS 1.3"
            )
        pems = auth.get("x509_pem_cert") or []
        if not pems:
            raise Unauthenticated("no client certificate presented")
        return self._trust.peer_from_pem(pems[0], self._clock.now())

    async def _refuse(self, context: grpc.aio.ServicerContext[Any, Any], exc: Unauthenticated) -> None:
        log.warning("refused federation call from %s: %s", context.peer(), exc)
        self._on_refused(str(exc))
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        if handler.request_streaming and handler.response_streaming:
            inner_ss = handler.stream_stream
            assert inner_ss is not None

            async def stream_stream(request_iterator: Any, context: Any) -> AsyncIterator[Any]:
                try:
                    CURRENT_PEER.set(self.authenticate(context))
                except Unauthenticated as exc:
                    await self._refuse(context, exc)
                    return
                async for response in inner_ss(request_iterator, context):
                    yield response

            return grpc.stream_stream_rpc_method_handler(
                stream_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if not handler.request_streaming and not handler.response_streaming:
            inner_uu = handler.unary_unary
            assert inner_uu is not None

            async def unary_unary(request: Any, context: Any) -> Any:
                try:
                    CURRENT_PEER.set(self.authenticate(context))
                except Unauthenticated as exc:
                    await self._refuse(context, exc)
                    return None
                return await inner_uu(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        raise RuntimeError(
            f"{handler_call_details.method}: the federation service has no such call shape"
        )
