"""Gateways for tests: real uvicorn on port 0 in the test's event loop, in front of real nodes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from accord.v1 import local_pb2
from gateway.server import Tls, running
from gateway.state import Settings
from node.app import Node
from node.client import connect
from tests.harness import ALL_PURPOSES, Federation, add_user, open_agreement

PASSWORD = "correct horse battery staple"


async def person(node: Node, name: str, role: str, purposes: Sequence[str] = ALL_PURPOSES) -> str:
    """A local user who has set a password (with their own token, as `accord password set`);
    returns their user token, for calls as a system."""
    token = await add_user(node, name, role, purposes)
    async with connect(node.config.home, token=token) as c:
        await c.api.SetPassword(local_pb2.SetPasswordRequest(new_password=PASSWORD))
    return token


def federation(
    root: Path, agencies: Sequence[str], *, parties: Sequence[str] = (), **terms: object
) -> Federation:
    """A federation with one agreement between `parties` (default: all), `terms` changed."""
    fed = Federation(root, agencies)
    agreement = open_agreement(parties or agencies, fed.now, **terms)
    fed.authority.set_agreements((agreement,), now=fed.now)
    return fed


@contextlib.asynccontextmanager
async def gateway(
    node: Node,
    *,
    tls: Tls | None = None,
    login_rate: int = 100,
    login_rate_per_name: int = 100,
    trusted_proxies: tuple[str, ...] = (),
    max_feeds: int = 200,
    server_names: tuple[str, ...] = (),
    request_seconds: float = 60.0,
) -> AsyncIterator[str]:
    settings = Settings(
        home=node.config.home,
        login_attempts_per_minute=login_rate,
        login_attempts_per_name=login_rate_per_name,
        trusted_proxies=trusted_proxies,
        max_feeds=max_feeds,
        server_names=server_names,
        request_seconds=request_seconds,
    )
    async with running(settings, tls=tls) as url:
        yield url


@contextlib.asynccontextmanager
async def client(url: str, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=30, **kwargs) as c:
        yield c


async def login(c: httpx.AsyncClient, name: str, password: str = PASSWORD) -> str:
    """Log in through the API; returns the CSRF token for the session."""
    answer = await c.post("/api/v1/login", json={"name": name, "password": password})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["csrf_token"]
    return token
