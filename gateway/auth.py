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
- Login attempts are limited per client address and per (address, user name) (in memory, a
  sliding minute), before the node counts failures per user and locks the account. The address
  is the TCP peer's; a proxy's X-Forwarded-For counts only from an operator-named proxy.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import math
import os
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from gateway.errors import ApiError, forbidden, unauthenticated
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


def host_name(header: str) -> str | None:
    """The name in a Host header (or a --server-name): lower case, without port or final dot;
    None if it is not one."""
    value = header.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket:
            return None
    else:
        name, colon, port = value.partition(":")
        rest = colon + port
    if rest and not (rest.startswith(":") and rest[1:].isdigit()):
        return None
    name = name.rstrip(".")
    return name if _NAME.fullmatch(name) or ip_literal(name) else None


_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


def ip_literal(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def known_host(header: str, local_address: str | None, names: frozenset[str]) -> bool:
    """Whether a request's Host names this gateway: a configured name, the address the
    connection came in on, or `localhost` on a loopback one. A page served from any other
    name (DNS rebinding: attacker.example resolving to this gateway) is not ours, even
    though its Origin matches its Host."""
    name = host_name(header)
    if name is None:
        return False
    if name in names:
        return True
    local = ip_literal(local_address or "")
    if local is None:
        return False
    return ip_literal(name) == local or (name == "localhost" and local.is_loopback)


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
    """At most `limit` events per `window` seconds per key."""

    def __init__(self, *, limit: int, window: float = 60.0, max_keys: int = 10_000) -> None:
        self._limit = limit
        self._window = window
        self._max_keys = max_keys
        self._events: OrderedDict[Hashable, deque[float]] = OrderedDict()

    def wait(self, key: Hashable, now: float) -> float:
        """0 if an event for `key` may happen at `now`, else seconds to wait."""
        events = self._events.get(key)
        while events and events[0] <= now - self._window:
            events.popleft()
        if not events or len(events) < self._limit:
            return 0.0
        return events[0] + self._window - now

    def count(self, key: Hashable, now: float) -> None:
        events = self._events.pop(key, None) or deque()
        events.append(now)
        self._events[key] = events  # most recent last, so the oldest key is dropped first
        if len(self._events) > self._max_keys:
            self._events.popitem(last=False)


def client_key(address: str) -> str:
    """What the login limit counts by: the address, or for IPv6 its /64 (one subscriber's
    prefix holds 2**64 addresses, one for every guess)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginLimiter:
    """Login attempts per client address, and per user name from that address.

    The per-name limit is the lower: someone hammering one account from an address that others
    share (an office, or everyone behind a reverse proxy not named with --trusted-proxy) is
    refused on that name, and those refusals do not use up what the address's other people may
    try. Someone trying many names from one address uses the address's allowance up: nothing at
    the gateway tells such an attacker apart from many people logging in from there.
    """

    def __init__(self, *, per_address: int, per_name: int) -> None:
        self._addresses = RateLimiter(limit=per_address)
        self._names = RateLimiter(limit=per_name)

    def check(self, address: str, name: str) -> None:
        """Count an attempt by `name` from `address`, or raise 429 (and count nothing)."""
        now = time.monotonic()
        where = client_key(address)
        # A digest: people type passwords into the name field, and names can be long.
        pair = (where, hashlib.sha256(name.encode()).digest()[:16])
        for limiter, key, what in (
            (self._names, pair, "for this user name from this address"),
            (self._addresses, where, "from this address"),
        ):
            wait = limiter.wait(key, now)
            if wait:
                raise ApiError(
                    429,
                    "RESOURCE_EXHAUSTED",
                    f"too many login attempts {what}; try again in {math.ceil(wait)} s",
                )
        self._names.count(pair, now)
        self._addresses.count(where, now)
