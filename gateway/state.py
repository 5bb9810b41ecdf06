"""The gateway's settings and the state its routes share (no message content, no sessions)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request

from accord.v1 import local_pb2
from gateway import convert
from gateway.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    Caller,
    LoginLimiter,
    caller_of,
    check_csrf,
    check_origin,
    csrf_token,
    load_key,
)
from gateway.errors import unauthenticated
from gateway.events import Feeds
from gateway.node import NodeApi


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    tls: bool = False  # served over TLS: cookies are Secure, HSTS is sent
    login_attempts_per_minute: int = 10  # per client address
    login_attempts_per_name: int = 5  # per (client address, user name), within the above
    # Proxies whose X-Forwarded-For / -Proto are believed (addresses or networks); none: the
    # client is the TCP peer, whatever a request's headers say.
    trusted_proxies: tuple[str, ...] = ()
    # Host names the gateway answers besides the address a request came in on (and localhost
    # on loopback): its public name, a reverse proxy's.
    server_names: tuple[str, ...] = ()
    max_feeds: int = 200  # live feeds (server-sent events) open at once, all callers together
    # A client has this long to send a request's head (from connecting, or from the previous
    # answer), and the whole request: slow clients do not hold connections for ever.
    request_head_seconds: float = 5.0
    request_seconds: float = 60.0


class Gateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.node = NodeApi(settings.home)
        self.key = load_key(settings.home)
        self.logins = LoginLimiter(
            per_address=settings.login_attempts_per_minute,
            per_name=settings.login_attempts_per_name,
        )
        self.feeds = Feeds(total=settings.max_feeds)
        self.agency = ""  # the node's, learnt from its policy on first use

    def csrf(self, caller: Caller) -> str | None:
        return csrf_token(self.key, caller.token) if caller.session else None

    async def login(self, request: Request, *, name: str, password: str) -> Any:
        """Check the rate limits for the client's address and the name, then ask the node; the
        answer has the session token to put in the cookie."""
        check_origin(request)
        self.logins.check(request.client.host if request.client else "unknown", name)
        return await self.node.call(
            "", "Login", local_pb2.LoginRequest(name=name, password=password)
        )

    def set_session(self, response: Any, token: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=self.settings.tls,
            path="/",
        )

    def clear_session(self, response: Any) -> None:
        response.delete_cookie(
            SESSION_COOKIE, httponly=True, samesite="strict", secure=self.settings.tls, path="/"
        )

    async def me(self, caller: Caller) -> dict[str, Any]:
        return convert.user(await self.node.call(caller.token, "WhoAmI", local_pb2.WhoAmIRequest()))


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


async def caller(request: Request) -> Caller:
    """The authenticated caller's credential (the node judges it on the call)."""
    found = caller_of(request)
    if found is None:
        raise unauthenticated()
    return found


async def acting_caller(request: Request) -> Caller:
    """The caller of a state-changing request, with its origin and CSRF token checked."""
    found = await caller(request)
    submitted = None
    if request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        field = (await request.form()).get(CSRF_FIELD)
        submitted = field if isinstance(field, str) else None
    check_csrf(request, gateway(request).key, found, submitted)
    return found
