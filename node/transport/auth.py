"""The one place federation callers are authenticated.

grpcio verifies the certificate chain against the federation CA during the TLS handshake and
requires a client certificate, but it has no CRL or minimum-TLS-version setting. This
interceptor closes that gap on every call: TLS 1.3 only, certificate not revoked (with a CRL
that is not stale), within its validity period, carrying one SPIFFE agency identity, and the
certificate the signed directory lists for that agency. Anything else ends the call with
UNAUTHENTICATED and a message that says what was wrong. A stream is checked again on every
frame it carries, so a CRL or directory loaded while it is open applies at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from node.clock import Clock
from node.errors import Unauthenticated
from node.transport.wrap import guarded
from node.trust import Peer, Trust

log = logging.getLogger(__name__)

CURRENT_PEER: contextvars.ContextVar[Peer] = contextvars.ContextVar("accord_peer")

# What grpcio 1.85 (BoringSSL) puts in a TLS server call's auth_context(), checked empirically:
#   transport_security_type [b"ssl"], security_level [b"TSI_PRIVACY_AND_INTEGRITY"],
#   ssl_tls_version [b"TLSv1.3"] (b"TLSv1.2" when a client caps at 1.2: the server does
#   negotiate it, so this check is the only thing refusing it), x509_pem_cert [leaf PEM],
#   x509_subject_alternative_name, peer_uri, peer_spiffe_id (absent with two URI SANs),
#   ssl_session_reused, ssl_requested_server_name, ssl_negotiated_key_exchange_group.
# Identity is taken from x509_pem_cert, never from peer_spiffe_id: we parse and check the SANs
# ourselves. A missing ssl_tls_version (another TLS stack, a future grpcio) fails closed.
_TLS_VERSION_KEY = "ssl_tls_version"
RECHECK_SECONDS = 1.0
_TLS13 = b"TLSv1.3"


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
        return self._trust.peer_from_pem(self._client_pem(context), self._clock.now())

    def _client_pem(self, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        """The verified client certificate of a TLS 1.3 session, or Unauthenticated."""
        auth = {key: list(values) for key, values in context.auth_context().items()}
        if auth.get("transport_security_type") != [b"ssl"]:
            raise Unauthenticated("no TLS session: federation calls need mutual TLS 1.3")
        versions = auth.get(_TLS_VERSION_KEY) or []
        if not versions:
            raise Unauthenticated(
                "the TLS version of this connection is unknown; federation calls need TLS 1.3"
            )
        if versions != [_TLS13]:
            raise Unauthenticated(
                f"TLS version {versions[0].decode(errors='replace')} refused: federation calls "
                "need TLS 1.3"
            )
        pems = auth.get("x509_pem_cert") or []
        if not pems:
            raise Unauthenticated("no client certificate presented")
        return pems[0]

    async def _refuse(
        self, context: grpc.aio.ServicerContext[Any, Any], exc: Unauthenticated
    ) -> None:
        log.warning("refused federation call from %s: %s", context.peer(), exc)
        self._on_refused(str(exc))
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))

    async def _admit(self, context: grpc.aio.ServicerContext[Any, Any]) -> bool:
        try:
            CURRENT_PEER.set(self.authenticate(context))
        except Unauthenticated as exc:
            await self._refuse(context, exc)
            return False
        return True

    def _rechecked(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        """The requests of a stream, each let through only if the caller is still trusted.

        A stream outlives the check made when it opened; a CRL that revokes the caller or goes
        stale, or a directory that no longer lists its certificate, must stop the frames that
        follow before the servicer sees them, not only new calls.
        """
        pem = self._client_pem(context)
        loop = asyncio.get_running_loop()

        async def frames() -> AsyncIterator[Any]:
            # Checked again at once when the CRL or directory changes, and at least every
            # RECHECK_SECONDS for what time alone changes (expiry, a CRL going stale): not per
            # frame, which cost about a tenth of the receiver's time under load.
            generation, due = -1, 0.0
            async for request in requests:
                if generation != self._trust.generation or loop.time() >= due:
                    try:
                        self._trust.peer_from_pem(pem, self._clock.now())
                    except Unauthenticated as exc:
                        await self._refuse(context, exc)  # raises: the call ends here
                        return
                    generation, due = self._trust.generation, loop.time() + RECHECK_SECONDS
                yield request

        return frames()

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return guarded(handler, self._admit, requests=self._rechecked)
