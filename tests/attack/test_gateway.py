"""Attacker (c): against the gateway's login, sessions and live feeds over real HTTP."""

from __future__ import annotations

import contextlib

import httpx

from accord.v1 import local_pb2
from node.client import connect
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


async def test_a_locked_account_answers_like_an_unknown_name(fed2: Federation) -> None:
    """docs/gateway.md: "A wrong password, an unknown user and a user without a password get
    the same answer." After five wrong passwords an existing account answers 403 LOCKED_OUT,
    while a name that is no user (or a user without a password) answers 401 forever: anyone can
    learn which console accounts exist, and lock any of them out. Secure: the same answer."""
    _, de = await fed2.start_all()
    await person(de, "sam", "supervisor")
    async with gateway(de) as url, client(url) as c:
        answers = {}
        for name in ("sam", "nobody"):
            last = None
            for _ in range(6):
                last = await c.post("/api/v1/login", json={"name": name, "password": WRONG})
            assert last is not None
            answers[name] = (last.status_code, last.json()["error"].get("denied"))
    assert answers["sam"] == answers["nobody"], f"existence shows in the answer: {answers}"


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


async def test_a_session_from_before_a_disable_stays_dead_after_enable(fed2: Federation) -> None:
    """An administrator disables anna (say her laptop, with a console open, was stolen): her
    sessions stop working. Re-enabling her account brings every old session back to life, the
    stolen one included, until it idles out or reaches its 12 h limit. Secure: disabling a user
    ends their sessions for good; they log in again."""
    _, de = await fed2.start_all()
    await person(de, "anna", "liaison_officer")
    async with gateway(de) as url, client(url) as c:
        await login(c, "anna")
        assert (await c.get("/api/v1/me")).status_code == 200
        async with connect(de.config.home, user="admin") as admin:
            await admin.api.DisableUser(local_pb2.DisableUserRequest(name="anna"))
            assert (await c.get("/api/v1/me")).status_code == 401
            await admin.api.EnableUser(local_pb2.EnableUserRequest(name="anna"))
        # Enabling waits for a second administrator (docs/policy.md): approved here.
        async with connect(de.config.home, user="admin2") as admin2:
            enabled = await admin2.api.DecideUser(
                local_pb2.DecideUserRequest(name="anna", approve=True)
            )
        assert enabled.user.state == "active"
        answer = await c.get("/api/v1/me")
    assert answer.status_code == 401, "the session from before the disable works again"
