"""Authentication of local API callers: per-user bearer tokens.

Decision: the unix socket is 0600 (only the node's OS account reaches it), and every call names
its user with `authorization: Bearer <token>` metadata. Tokens are random (256 bits), shown
once to the user who redeems their enrolment code (Enrol, the one call without a token) and
stored only as SHA-256. Peer credentials (SO_PEERCRED) are
not exposed by grpcio and would not tell apart people who share the gateway's OS account, so
tokens are the one mechanism for the CLI and the gateway alike. Health checking and reflection
need no token.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from node.access import User
from node.transport.wrap import guarded

CURRENT_USER: contextvars.ContextVar[User] = contextvars.ContextVar("accord_user")
PROTECTED_PREFIX = "/accord.v1.LocalApi/"
# The one call without a token: how a new user gets one, with the code an administrator gave.
UNPROTECTED = frozenset({PROTECTED_PREFIX + "Enrol"})


def current_user() -> User:
    return CURRENT_USER.get()


class LocalAuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, lookup: Callable[[str], Awaitable[User | None]]) -> None:
        self._lookup = lookup

    async def _check(self, context: Any) -> bool:
        token = ""
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                token = value[len("Bearer ") :].strip()
        user = await self._lookup(token) if token else None
        if user is None:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or unknown user token: pass `authorization: Bearer <token>` "
                "(the CLI reads HOME/tokens/<user>; see `accord users add`)",
            )
            return False
        CURRENT_USER.set(user)
        return True

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(PROTECTED_PREFIX) or method in UNPROTECTED:
            return handler
        return guarded(handler, self._check)
