"""Who is calling the gateway, and whether a state-changing request really comes from them.

Decisions:
- People log in with a password; the node checks it and returns a session token, which the
  gateway puts in a cookie (HttpOnly, SameSite=Strict, Secure when served over TLS, Path=/)
  and passes back to the node on every request. The gateway stores nothing about sessions.
- Systems send their own local user token as `Authorization: Bearer ...`; it goes to the node
  as is. A request with that header is judged by it alone (any cookie is ignored).
- Cross-site request forgery: a state-changing request that relies on the cookie needs a token
  derived from its session (HMAC-SHA256 with the gateway key, `HOME/gateway.key`, 0600), in
  the `X-CSRF-Token` header or a `csrf_token` form field, and an `Origin` (if the browser sent
  one) equal to the gateway's own. A token made for one session is worthless with another.
- Login attempts are limited per client address (in memory, a sliding minute), before the node
  counts failures per user and locks the account.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from gateway.errors import forbidden, unauthenticated
from node.errors import ConfigError

SESSION_COOKIE = "accord_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
KEY_FILE = "gateway.key"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CSRF_CONTEXT = b"accord-gateway-csrf/v1\x00"


def load_key(home: Path) -> bytes:
    """The gateway's HMAC key in the node home, made (0600) on first use."""
    path = home / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"{path} is open to others: `chmod 600` it") from None
        key = path.read_bytes()
        if len(key) < 32:
            raise ConfigError(f"{path} is shorter than 32 bytes: remove it") from None
        return key
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def csrf_token(key: bytes, session_token: str) -> str:
    mac = hmac.new(key, _CSRF_CONTEXT + session_token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class Caller:
    token: str
    session: bool  # True: from the session cookie (a person's browser), False: a bearer token


def caller_of(request: Request) -> Caller | None:
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthenticated("Authorization must be `Bearer <token>`")
        return Caller(token.strip(), session=False)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return Caller(cookie, session=True) if cookie else None


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def check_origin(request: Request) -> None:
    """A browser names the page a request comes from; it must be one of ours."""
    origin = request.headers.get("origin")
    if origin is not None and origin != own_origin(request):
        raise forbidden("ORIGIN", "request from another site refused (Origin does not match)")


def check_csrf(request: Request, key: bytes, caller: Caller, submitted: str | None) -> None:
    """For a state-changing request: Origin, and for a cookie caller the session's token."""
    if request.method in SAFE_METHODS:
        return
    check_origin(request)
    if not caller.session:
        return
    expected = csrf_token(key, caller.token)
    given = request.headers.get(CSRF_HEADER) or submitted or ""
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise forbidden(
            "CSRF",
            "missing or wrong CSRF token: reload the page (API: send X-CSRF-Token from /api/v1/me)",
        )


class RateLimiter:
    """At most `limit` events per `window` seconds per key (client address)."""

    def __init__(self, *, limit: int, window: float = 60.0, max_keys: int = 10_000) -> None:
        self._limit = limit
        self._window = window
        self._max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str) -> float:
        """0 if an event for `key` may happen now (and count it), else seconds to wait."""
        now = time.monotonic()
        events = self._events.pop(key, None) or deque()
        while events and events[0] <= now - self._window:
            events.popleft()
        self._events[key] = events  # most recent last, so the oldest key is dropped first
        if len(self._events) > self._max_keys:
            self._events.popitem(last=False)
        if len(events) >= self._limit:
            return events[0] + self._window - now
        events.append(now)
        return 0.0
