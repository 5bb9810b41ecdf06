"""The gateway against hostile clients over real HTTP: who counts as the client for the login
limits, and what one name or one address may try. (tests/attack/test_gateway.py has the
attacks as found; these cover the rest of each fix.)"""

from __future__ import annotations

import contextlib

import httpx

from gateway.auth import client_key
from tests.gateway_harness import client, gateway, login, person
from tests.harness import Federation, wait_for

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
            assert "this session already has 5 live feeds open" in sixth.text
            opened = await feeds.enter_async_context(bert.stream("GET", "/events"))
            assert opened.status_code == 200
            full = await bert.get("/api/v1/events")
            assert full.status_code == 429 and "the gateway has 6 live feeds open" in full.text

            await first.aclose()  # anna closes a tab: once the gateway notices, bert may

            async def bert_opens() -> bool:
                response = await feeds.enter_async_context(bert.stream("GET", "/events"))
                return response.status_code == 200

            await wait_for(bert_opens)
