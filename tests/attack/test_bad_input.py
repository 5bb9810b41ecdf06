"""Malformed input on the local API and the gateway: a clear error, and the node serves on."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from accord.v1 import local_pb2
from node.client import connect
from tests.gateway_harness import client, gateway, login, person
from tests.harness import Federation


@pytest.mark.parametrize("method", ["Enrol", "Send"])
async def test_an_undecodable_request_is_invalid_argument(fed2: Federation, method: str) -> None:
    """Bytes that are not the request message (the local socket takes any gRPC frame): the
    node answers UNKNOWN "Unexpected <class 'DecodeError'>" and logs a traceback per call --
    for Enrol and Login without any token. Secure: INVALID_ARGUMENT naming the problem, no
    traceback, and the node answers the next call."""
    _, de = await fed2.start_all()
    async with connect(de.config.home, user="admin") as c:
        call: Any = c.channel.unary_unary(
            f"/accord.v1.LocalApi/{method}", request_serializer=None, response_deserializer=None
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(b"\xff\xff\xff\xff", timeout=10)
        assert (await c.api.WhoAmI(local_pb2.WhoAmIRequest())).name == "admin"
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()


async def test_a_policy_for_a_non_member_is_not_an_authentication_failure(
    fed2: Federation,
) -> None:
    """GET /api/v1/policy?peer=ZZ-NOPE answers 401 UNAUTHENTICATED ("ZZ-NOPE is not a member"),
    which tells an API client that its own credentials are bad (and would send a console user
    to the login page, dropping the session cookie). Secure: 404 or 400, the caller's session
    untouched."""
    _, de = await fed2.start_all()
    await person(de, "anna", "liaison_officer")
    async with gateway(de) as url, client(url) as c:
        await login(c, "anna")
        answer = await c.get("/api/v1/policy", params={"peer": "ZZ-NOPE"})
    assert answer.status_code in (400, 404), f"{answer.status_code} {answer.text}"
