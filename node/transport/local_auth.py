"""Authentication of local API callers: per-user bearer tokens and login sessions.

Decision: the unix socket is 0600 (only the node's OS account reaches it), and every call names
its user with `authorization: Bearer <token>` metadata. Tokens are random (256 bits), shown
once to the user who redeems their enrolment code (Enrol, the one call without a token) and
stored only as SHA-256. Peer credentials (SO_PEERCRED) are
not exposed by grpcio and would not tell apart people who share the gateway's OS account, so
tokens are the one mechanism for the CLI and the gateway alike. A login session's token
(node/logins.py) is accepted in the same place, for as long as the session lives. Health
checking and reflection need no token, and neither does Login (it is how a session starts).

A streamed answer (Watch) checks the token again before each item, so a stream opened with a
session ends once the session has expired or been revoked, or the user disabled.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from node.policy.access import User
from node.transport.wrap import decoded, guarded

CURRENT_USER: contextvars.ContextVar[User] = contextvars.ContextVar("accord_user")
CURRENT_TOKEN: contextvars.ContextVar[str] = contextvars.ContextVar("accord_token")
PROTECTED_PREFIX = "/accord.v1.LocalApi/"
# The calls without a token: how a new user gets one, with the code an administrator gave
# (Enrol), and how a person starts a session with their password (Login).
UNPROTECTED = frozenset({PROTECTED_PREFIX + "Enrol", PROTECTED_PREFIX + "Login"})

Lookup = Callable[[str], Awaitable[User | None]]


def current_user() -> User:
    return CURRENT_USER.get()


def current_token() -> str:
    """The bearer token the current call was made with (a user's token or a session's)."""
    return CURRENT_TOKEN.get()


def _bearer(context: Any) -> str:
    token = ""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            token = value[len("Bearer ") :].strip()
    return token


class LocalAuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        lookup: Lookup,
        *,
        still_valid: Lookup | None = None,
        on_refused: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        """`lookup` finds the user a token stands for (and counts it as a use of a session);
        `still_valid` checks it again for a stream's later items (default: `lookup`);
        `on_refused` is told each call refused, by its method (the audit log)."""
        self._lookup = lookup
        self._still_valid = still_valid or lookup
        self._on_refused = on_refused

    async def _check(self, context: Any, method: str) -> bool:
        token = _bearer(context)
        user = await self._lookup(token) if token else None
        if user is None:
            if self._on_refused is not None:
                await self._on_refused(method.removeprefix(PROTECTED_PREFIX))
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or unknown user token, or an expired session: pass "
                "`authorization: Bearer <token>` (the CLI reads HOME/tokens/<user>; see "
                "`accord users add`), or log in again",
            )
            return False
        CURRENT_USER.set(user)
        CURRENT_TOKEN.set(token)
        return True

    async def _each_item(self, items: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        token = _bearer(context)
        try:
            async for item in items:
                if await self._still_valid(token) is None:
                    await context.abort(
                        grpc.StatusCode.UNAUTHENTICATED,
                        "the session expired or was revoked, or the user was disabled",
                    )
                    return
                yield item
        finally:
            # Close the servicer's stream now (Watch stops listening), not whenever the
            # abandoned generator is collected.
            close = getattr(items, "aclose", None)
            if close is not None:
                await close()

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
        return guarded(
            handler, lambda context: self._check(context, method), responses=self._each_item
        )


class RequestDecodingInterceptor(grpc.aio.ServerInterceptor):
    """Local API requests that do not decode are INVALID_ARGUMENT (wrap.decoded), the calls
    without a token included. Listed after LocalAuthInterceptor: a caller without a valid
    token hears that first."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(PROTECTED_PREFIX):
            return handler
        return decoded(handler)
