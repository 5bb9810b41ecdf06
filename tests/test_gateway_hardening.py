"""The gateway against hostile clients over real HTTP: who counts as the client for the login
limits, and what one name or one address may try. (tests/attack/test_gateway.py has the
attacks as found; these cover the rest of each fix.)"""

from __future__ import annotations

import httpx

from gateway.auth import client_key
from tests.gateway_harness import client, gateway
from tests.harness import Federation

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
