"""Attacker (c): against the gateway's login, sessions and live feeds over real HTTP."""

from __future__ import annotations

import contextlib

import httpx

from tests.gateway_harness import client, gateway, login, person
from tests.harness import Federation

WRONG = "not the password at all"


async def test_the_login_rate_limit_is_not_dodged_with_x_forwarded_for(fed2: Federation) -> None:
    """The gateway allows `--login-rate` attempts per minute per client address, and takes the
    address from X-Forwarded-For whenever the connection comes from 127.0.0.1 -- which is every
    connection to a gateway on loopback (its default listen address). A caller that puts a new
    address in that header on each attempt is never limited: argon2 work on the node and
    password guesses across users without bound. Secure: the 4th attempt of a limit of 3 is
    refused (429) whatever the header says, unless the operator named a trusted proxy."""
    _, de = await fed2.start_all()
    async with gateway(de, login_rate=3) as url, client(url) as c:
        codes = [
            (
                await c.post(
                    "/api/v1/login",
                    json={"name": f"guess{i}", "password": WRONG},
                    headers={"X-Forwarded-For": f"198.51.100.{i}"},
                )
            ).status_code
            for i in range(6)
        ]
    assert 429 in codes, f"6 attempts against a limit of 3, none refused: {codes}"


async def test_a_request_for_another_host_name_is_refused(fed2: Federation) -> None:
    """The gateway never checks the Host header, and its Origin check compares Origin with
    `scheme://Host`. A page on a DNS-rebinding name (attacker.example resolving to 127.0.0.1)
    is therefore same-origin with the gateway: its requests pass the Origin check and reach the
    node (here a login attempt, answered 401 by the node). Secure: a Host that is not the
    gateway's own is refused before anything else (400/421)."""
    _, de = await fed2.start_all()
    async with gateway(de) as url, client(url) as c:
        answer = await c.post(
            "/api/v1/login",
            json={"name": "sam", "password": WRONG},
            headers={"Host": "attacker.example:8443", "Origin": "http://attacker.example:8443"},
        )
    assert answer.status_code in (400, 403, 421), (
        f"a request naming another host reached the node: {answer.status_code} {answer.text}"
    )


async def test_one_session_cannot_hold_any_number_of_live_feeds(fed2: Federation) -> None:
    """Any logged-in person, of any role, opens live feeds (GET /events) without limit: each is
    a Watch on the node and two file descriptors in the gateway, so one officer can use up the
    gateway's descriptors for everyone. Secure: one session gets a handful of feeds; the 60th
    is refused (429)."""
    _, de = await fed2.start_all()
    await person(de, "anna", "liaison_officer")
    async with gateway(de) as url, client(url) as c:
        await login(c, "anna")
        cookie = c.cookies.get("accord_session")
        statuses: list[int] = []
        async with (
            contextlib.AsyncExitStack() as stack,
            httpx.AsyncClient(
                base_url=url,
                timeout=10,
                limits=httpx.Limits(max_connections=None),
                cookies={"accord_session": cookie or ""},
            ) as feeds,
        ):
            for _ in range(60):
                response = await stack.enter_async_context(feeds.stream("GET", "/events"))
                statuses.append(response.status_code)
                if response.status_code != 200:
                    break
    assert statuses[-1] in (429, 503), f"one session held {statuses.count(200)} live feeds at once"
