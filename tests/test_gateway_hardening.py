"""The gateway against hostile clients over real HTTP: who counts as the client for the login
limits, and what one name or one address may try. (tests/attack/test_gateway.py has the
attacks as found; these cover the rest of each fix.)"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from gateway.auth import client_key, host_name, known_host
from tests.gateway_harness import client, gateway, login, person
from tests.harness import Federation, add_user, wait_for

NAMES = frozenset({"gateway.example"})

WRONG = "not the password at all"


async def attempt(c: httpx.AsyncClient, name: str, *, forwarded_for: str = "") -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    answer = await c.post("/api/v1/login", json={"name": name, "password": WRONG}, headers=headers)
    return answer.status_code


async def test_x_forwarded_for_names_the_client_only_from_a_trusted_proxy(
    fed2: Federation,
) -> None:
    _, de = await fed2.start_all()
    async with (
        gateway(de, login_rate=2, trusted_proxies=("127.0.0.1/32",)) as url,
        client(url) as c,
    ):
        first = [await attempt(c, f"u{i}", forwarded_for="198.51.100.1") for i in range(3)]
        assert first == [401, 401, 429]
        # Another person behind the same proxy has an allowance of their own.
        assert await attempt(c, "u9", forwarded_for="198.51.100.2") == 401


async def test_one_name_hammered_leaves_the_address_to_the_others_behind_it(
    fed2: Federation,
) -> None:
    _, de = await fed2.start_all()
    async with gateway(de, login_rate=4, login_rate_per_name=2) as url, client(url) as c:
        assert [await attempt(c, "bert") for _ in range(4)] == [401, 401, 429, 429]
        answer = await c.post("/api/v1/login", json={"name": "bert", "password": WRONG})
        assert "for this user name from this address" in answer.json()["error"]["message"]
        # bert's refused attempts did not count for the address: two are left for the others.
        assert [await attempt(c, "carl"), await attempt(c, "dora")] == [401, 401]
        answer = await c.post("/api/v1/login", json={"name": "erik", "password": WRONG})
        assert answer.status_code == 429
        assert "from this address; try again in" in answer.json()["error"]["message"]


def test_the_login_limit_counts_an_ipv6_client_by_its_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:198.51.100.7") == client_key("198.51.100.7") == "198.51.100.7"
    assert client_key("unknown") == "unknown"


def feed_client(url: str, session: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        timeout=10,
        limits=httpx.Limits(max_connections=None),
        cookies={"accord_session": session},
    )


async def test_live_feeds_are_bounded_per_session_and_in_all_and_a_closed_one_frees_its_place(
    fed2: Federation,
) -> None:
    _, de = await fed2.start_all()
    await person(de, "anna", "liaison_officer")
    await person(de, "bert", "liaison_officer")
    async with gateway(de, max_feeds=6) as url, client(url) as a, client(url) as b:
        await login(a, "anna")
        await login(b, "bert")
        async with (
            feed_client(url, a.cookies["accord_session"]) as anna,
            feed_client(url, b.cookies["accord_session"]) as bert,
            feed_client(url, "forged") as forger,
            contextlib.AsyncExitStack() as feeds,
        ):
            # Feeds the node refuses hold no place.
            for _ in range(7):
                async with forger.stream("GET", "/api/v1/events") as refused:
                    assert refused.status_code == 401
            first = await feeds.enter_async_context(anna.stream("GET", "/events"))
            for _ in range(4):
                opened = await feeds.enter_async_context(anna.stream("GET", "/events"))
                assert opened.status_code == 200
            sixth = await anna.get("/api/v1/events")
            assert (
                sixth.status_code == 429 and sixth.json()["error"]["code"] == "RESOURCE_EXHAUSTED"
            )
            assert "this session (or API token) already has 5 live feeds open" in sixth.text
            opened = await feeds.enter_async_context(bert.stream("GET", "/events"))
            assert opened.status_code == 200
            full = await bert.get("/api/v1/events")
            assert full.status_code == 429 and "the gateway has 6 live feeds open" in full.text

            await first.aclose()  # anna closes a tab: once the gateway notices, bert may

            async def bert_opens() -> bool:
                response = await feeds.enter_async_context(bert.stream("GET", "/events"))
                return response.status_code == 200

            await wait_for(bert_opens)


@pytest.mark.parametrize(
    ("host", "local", "known"),
    [
        ("gateway.example", "10.0.0.5", True),
        ("Gateway.Example.:8443", "10.0.0.5", True),
        ("10.0.0.5:8443", "10.0.0.5", True),
        ("localhost:8443", "127.0.0.1", True),
        ("[::1]:8443", "::1", True),
        ("127.0.0.1", "::ffff:127.0.0.1", True),
        ("localhost", "10.0.0.5", False),  # not on a loopback address
        ("10.0.0.6", "10.0.0.5", False),
        ("attacker.example:8443", "127.0.0.1", False),
        ("gateway.example.attacker.example", "10.0.0.5", False),
        ("gateway.example:x", "10.0.0.5", False),
        ("gateway.example@attacker.example", "10.0.0.5", False),
        ("[::1", "::1", False),
        ("", "127.0.0.1", False),
    ],
)
def test_which_host_names_the_gateway_answers(host: str, local: str, known: bool) -> None:
    assert known_host(host, local, NAMES) is known


def test_host_names_are_compared_without_port_case_or_final_dot() -> None:
    assert host_name("GW.example.:443") == host_name("gw.example") == "gw.example"
    assert host_name("[2001:DB8::1]:8443") == "2001:db8::1"
    assert host_name("gw.example:") is None and host_name("gw example") is None


async def test_a_request_for_an_unknown_host_is_refused_before_anything_else(
    fed2: Federation,
) -> None:
    _, de = await fed2.start_all()
    async with (
        gateway(de, server_names=("gateway.example",)) as url,
        client(url) as c,
    ):
        port = url.rsplit(":", 1)[1]
        for good in (f"gateway.example:{port}", f"localhost:{port}", f"127.0.0.1:{port}"):
            assert (await c.get("/healthz", headers={"Host": good})).status_code == 200, good
        refused = await c.get("/inbox", headers={"Host": f"rebound.example:{port}"})
        assert refused.status_code == 400
        assert "does not serve the host name" in refused.json()["error"]["message"]
        assert refused.headers["Content-Security-Policy"].startswith("default-src 'none'")
        # HTTP/1.0 may leave Host out: that names no gateway. Two Hosts (h11 refuses them) could
        # be read differently by two checks.
        for hosts, why in (
            (b"", b"does not serve the host"),
            (b"Host: 127.0.0.1\r\nHost: rebound.example\r\n", b"Invalid HTTP request"),
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", int(port))
            writer.write(b"GET /healthz HTTP/1.0\r\n" + hosts + b"\r\n")
            answer = await asyncio.wait_for(reader.read(), 10)  # HTTP/1.0: until it closes
            writer.close()
            await writer.wait_closed()
            assert answer.startswith(b"HTTP/1.1 400 ") and why in answer, answer


HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


async def slow_client(
    port: int, start: bytes, drip: bytes, *, every: float = 0.5, answered: bool = False
) -> float:
    """Connect, send `start`, then `drip` `every` so often until the gateway hangs up; how
    long after connecting (or after the answer to a first request, `answered`) it did."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(start)
    since = loop.time()
    if answered:  # `start` is a whole request: the slow one is the next on the connection
        await asyncio.wait_for(reader.readuntil(b'{"node":"serving"}'), 10)
        since = loop.time()

    async def dripping() -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                await asyncio.sleep(every)
                writer.write(drip)
                await writer.drain()

    dripper = asyncio.create_task(dripping())
    try:
        while await asyncio.wait_for(reader.read(4096), 20):
            pass  # until the gateway closes
        return loop.time() - since
    finally:
        dripper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dripper
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_a_client_slow_to_send_its_request_is_cut_off(fed2: Federation) -> None:
    """Slowloris: connections that never finish a request head (silent, or a header line now
    and then, also as the second request of a kept-alive connection) are closed after 5 s, one
    that never finishes its body at the request deadline; others are served meanwhile."""
    _, de = await fed2.start_all()
    token = await add_user(de, "casesys", "liaison_officer")
    async with gateway(de, request_seconds=8.0) as url, client(url) as c:
        port = int(url.rsplit(":", 1)[1])
        # A request that is in may take its time: a live feed outlives every deadline.
        feed, feed_writer = await asyncio.open_connection("127.0.0.1", port)
        feed_writer.write(
            b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n\r\n"
        )
        await asyncio.wait_for(feed.readuntil(b"retry: 3000\n\n\r\n"), 10)  # chunk end
        post = (
            b"POST /api/v1/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        slow = asyncio.gather(
            slow_client(port, b"", b""),
            slow_client(port, HEAD, b"X-A: b\r\n"),
            # The deadline runs from the answer, not from the next byte after it.
            slow_client(port, HEAD + b"\r\n" + HEAD, b"X-A: b\r\n", every=2, answered=True),
            slow_client(port, post, b" "),
        )
        assert (await c.get("/healthz")).status_code == 200
        silent, dribbled, kept_alive, body = await slow
        with pytest.raises(TimeoutError):  # nothing to say, and not closed either
            await asyncio.wait_for(feed.read(1), 0.5)
        feed_writer.close()
        await feed_writer.wait_closed()
    for head in (silent, dribbled, kept_alive):
        assert 4.5 <= head <= 6.5, (silent, dribbled, kept_alive)
    assert 7.5 <= body <= 9.5, body


async def test_past_its_connections_the_gateway_answers_503(fed2: Federation) -> None:
    """--max-feeds plus 300 connections at once (feeds or not); beyond, 503 until some go."""
    _, de = await fed2.start_all()
    async with gateway(de, max_feeds=1) as url, client(url) as c:
        port = int(url.rsplit(":", 1)[1])
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(300)]
        try:

            async def answered(status: int) -> bool:
                return (await c.get("/healthz")).status_code == status

            # Polled: the gateway counts a connection once its event loop has accepted it.
            await wait_for(lambda: answered(503), timeout=4)  # before the head deadline (5 s)
        finally:
            for _, writer in held:
                writer.close()
        await wait_for(lambda: answered(200))
