"""Attacker (c): against the gateway's login, sessions and live feeds over real HTTP."""

from __future__ import annotations

from tests.gateway_harness import client, gateway
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
