"""The one way tools (CLI, cluster and drills, the gateway) open a node's local API.

Everything that talks to a running node goes through `connect()`, so whatever the local API
comes to require of its callers (per-user tokens in call metadata, for one) is added here once.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from accord.v1 import local_pb2_grpc
from node import config as config_mod
from node.errors import AccordError, ConfigError

HOME_ENV = "ACCORD_HOME"
USER_ENV = "ACCORD_USER"
TOKEN_ENV = "ACCORD_TOKEN"  # noqa: S105 (the variable's name, not a secret)
DEFAULT_USER = "admin"
DEFAULT_SOCKET = "node.sock"
REASON_KEY = "accord-reason"
DENIED_KEY = "accord-denied"


class NodeNotRunningError(AccordError):
    """No node answers on the home's local socket."""

    status = grpc.StatusCode.UNAVAILABLE


class LocalApiError(AccordError):
    """A local API call failed; `reason` is the refusal's reason code, if it was a refusal."""

    def __init__(
        self, *, code: grpc.StatusCode, detail: str, reason: str = "", denied: str = ""
    ) -> None:
        self.code = code
        self.detail = detail
        self.reason = reason
        self.denied = denied
        if reason:
            # The servicer's detail already starts with "REASON: " for refusals.
            text = detail.removeprefix(f"{reason}: ")
            super().__init__(f"refused ({reason}): {text}")
        elif denied:
            super().__init__(f"permission denied ({denied}): {detail}")
        else:
            super().__init__(f"{code.name.lower().replace('_', ' ')}: {detail}")


@dataclass(frozen=True, slots=True)
class Connection:
    home: Path
    socket: Path
    channel: grpc.aio.Channel
    api: Any  # accord.v1.local_pb2_grpc.LocalApiStub (generated code is untyped)
    health: Any  # grpc_health.v1.health_pb2_grpc.HealthStub


def resolve_home(value: str | None) -> Path:
    """`--home`, falling back to $ACCORD_HOME."""
    chosen = value or os.environ.get(HOME_ENV, "")
    if not chosen:
        raise ConfigError(f"no node home given: pass --home DIR or set {HOME_ENV}")
    return Path(chosen)


def socket_path(home: Path) -> Path:
    """Where the node at `home` serves its local API (from its config when there is one)."""
    if (home / config_mod.CONFIG_FILE).exists():
        return config_mod.load(home).socket
    return home / DEFAULT_SOCKET


def _probe(home: Path, sock: Path) -> None:
    """Fail fast and clearly, instead of letting gRPC retry a socket nobody serves."""
    if not home.is_dir():
        raise ConfigError(
            f"{home} does not exist: no node home there (create one with "
            f"`accord node init --home {home}`, or pass the right --home)"
        )
    hint = f"start it with `accord node run --home {home}`"
    if not sock.exists():
        raise NodeNotRunningError(f"no node running at {home} (socket {sock} missing); {hint}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(str(sock))
        except PermissionError as exc:
            raise NodeNotRunningError(
                f"cannot open {sock}: permission denied; run as the user the node runs as"
            ) from exc
        except OSError as exc:
            raise NodeNotRunningError(
                f"no node running at {home} (socket {sock} is stale: {exc.strerror}); {hint}"
            ) from exc


def token_for(home: Path, user: str | None) -> str:
    """The caller's token: $ACCORD_TOKEN, else HOME/tokens/<user> (user: --as, $ACCORD_USER,
    else admin). `accord users enrol --save` leaves users' tokens there."""
    env = os.environ.get(TOKEN_ENV, "")
    if env:
        return env.strip()
    name = user or os.environ.get(USER_ENV, "") or DEFAULT_USER
    path = home / "tokens" / name
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"no token for user {name!r}: {path} not readable; set {TOKEN_ENV}, or enrol the "
            "user with `accord users enrol NAME --code CODE --save`"
        ) from exc


def _with_token(details: Any, token: str) -> Any:
    metadata = (*tuple(details.metadata or ()), ("authorization", f"Bearer {token}"))
    return details._replace(metadata=metadata)


class _BearerUnary(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds `authorization: Bearer <token>` to every unary call."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, self._token), request)


class _BearerStream(grpc.aio.UnaryStreamClientInterceptor):
    """The same for server-streaming calls (Watch). grpc.aio files an interceptor under the
    first call shape it implements, so one object cannot serve both."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, self._token), request)


@contextlib.asynccontextmanager
async def connect(
    home: Path,
    *,
    user: str | None = None,
    token: str | None = None,
    anonymous: bool = False,
) -> AsyncIterator[Connection]:
    """Open the local API of the node at `home`; NodeNotRunningError when none answers.

    Per-user authentication belongs here (a client interceptor adding the caller's token to
    every call's metadata), so that no caller can forget it. `token` is the caller's token
    given directly (the gateway passes each person's session token); `anonymous` sends none,
    for the calls that need none (Enrol, by which a new user gets a token; Login).
    """
    sock = socket_path(home)
    _probe(home, sock)
    if anonymous:
        token = ""
    elif token is None:
        token = token_for(home, user)
    interceptors: list[grpc.aio.ClientInterceptor] = (
        [_BearerUnary(token), _BearerStream(token)] if token else []
    )
    channel = grpc.aio.insecure_channel(f"unix:{sock}", interceptors=interceptors)
    try:
        yield Connection(
            home=home,
            socket=sock,
            channel=channel,
            api=local_pb2_grpc.LocalApiStub(channel),
            health=health_pb2_grpc.HealthStub(channel),
        )
    finally:
        await channel.close()


async def health(home: Path, *, deadline: float = 2.0) -> str:
    """The node's answer to a gRPC health check on its local socket (`SERVING`, `NOT_SERVING`,
    ...): no token, as health checking needs none. NodeNotRunningError when nothing answers."""
    sock = socket_path(home)
    _probe(home, sock)
    async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=deadline
            )
        except grpc.aio.AioRpcError as exc:
            raise NodeNotRunningError(
                f"the node at {home} did not answer its health check: {exc.code().name}"
            ) from exc
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def _trailer(exc: grpc.aio.AioRpcError, name: str) -> str:
    for key, value in exc.trailing_metadata() or ():
        if key == name:
            return value if isinstance(value, str) else value.decode()
    return ""


def reason_of(exc: grpc.aio.AioRpcError) -> str:
    """The refusal reason code a local API error carries in its trailers, or ""."""
    return _trailer(exc, REASON_KEY)


def local_error(exc: grpc.aio.AioRpcError) -> LocalApiError:
    code = exc.code()
    detail = exc.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        detail = f"the node stopped answering ({detail})"
    return LocalApiError(
        code=code, detail=detail, reason=reason_of(exc), denied=_trailer(exc, DENIED_KEY)
    )
