"""The local API's live feed (Watch), as the gateway's inbox will use it."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from accord.v1 import local_pb2
from node.client import connect
from tests.harness import Federation, add_user, incident, liaison, wait_for

NL, DE = "NL-POL", "DE-BKA"


async def test_watch_streams_new_messages_the_user_is_cleared_for(fed3: Federation) -> None:
    nl, de, _ = await fed3.start_all()
    await add_user(nl, "anna", "liaison_officer")
    await add_user(de, "bert", "liaison_officer", purposes=["missing-persons"])
    async with connect(de.config.home, user="bert") as c:
        feed = c.api.Watch(local_pb2.WatchRequest())

        async def watching() -> bool:
            return len(de.watchers) == 1

        await wait_for(watching)  # the watch is registered before anything arrives
        async with connect(nl.config.home, user="anna") as sender:
            await sender.api.Send(local_pb2.SendRequest(content=incident(to=[DE])))
            wanted = await sender.api.Send(
                local_pb2.SendRequest(content=liaison(to=[DE], purpose="missing-persons"))
            )
        first = await asyncio.wait_for(feed.read(), 10)
        feed.cancel()
    # The incident (serious-crime-investigation) is not shown to bert; the request is.
    assert first.message_id == wanted.message_id
    assert first.sender == NL and first.purpose == "missing-persons"
    assert first.direction == "in"


async def test_watch_is_not_for_administrators(fed3: Federation) -> None:
    _nl, de, _ = await fed3.start_all()
    async with connect(de.config.home, user="admin") as c:
        feed = c.api.Watch(local_pb2.WatchRequest())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(feed.read(), 10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_calls_without_a_valid_token_are_refused(fed3: Federation) -> None:
    _nl, de, _ = await fed3.start_all()
    sock = de.config.socket
    async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
        from accord.v1 import local_pb2_grpc

        stub = local_pb2_grpc.LocalApiStub(channel)
        for metadata in ((), (("authorization", "Bearer not-a-token"),)):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Inbox(local_pb2.InboxRequest(), metadata=metadata)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # health checking needs no token (orchestrators probe it)
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_disabled_users_open_watch_ends(fed3: Federation) -> None:
    """Item 9: disabling a user (or changing their clearances) ends their open Watch streams;
    and every item is checked against the user as they are now, however they changed."""
    nl, de, _ = await fed3.start_all()
    await add_user(nl, "anna", "liaison_officer")
    for name in ("bert", "carl"):
        await add_user(de, name, "liaison_officer", purposes=["missing-persons"])

    async def watching(n: int) -> bool:
        return len(de.watchers) == n

    async with (
        connect(de.config.home, user="bert") as bert,
        connect(de.config.home, user="carl") as carl,
        connect(nl.config.home, user="anna") as sender,
        connect(de.config.home, user="admin") as admin,
    ):
        bert_feed = bert.api.Watch(local_pb2.WatchRequest())
        carl_feed = carl.api.Watch(local_pb2.WatchRequest())
        await wait_for(lambda: watching(2))
        first = await sender.api.Send(
            local_pb2.SendRequest(content=liaison(to=[DE], purpose="missing-persons"))
        )
        for feed in (bert_feed, carl_feed):
            assert (await asyncio.wait_for(feed.read(), 10)).message_id == first.message_id

        await admin.api.DisableUser(local_pb2.DisableUserRequest(name="bert"))
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(bert_feed.read(), 10)
        assert ended.value.code() == grpc.StatusCode.PERMISSION_DENIED

        # Disabled behind the API's back: the next item finds out.
        await de.access_store.disable_user(name="carl", now=de.clock.now())
        await sender.api.Send(
            local_pb2.SendRequest(content=liaison(to=[DE], purpose="missing-persons"))
        )
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(carl_feed.read(), 10)
        assert ended.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("method", ["Login", "Watch", "ListUsers"])
async def test_undecodable_requests_are_named_not_crashes(
    fed3: Federation, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes that are not the method's request: INVALID_ARGUMENT saying so, no traceback, for
    calls without a token, streamed answers and plain calls alike. A caller without a token
    hears about the token first."""
    _nl, de, _ = await fed3.start_all()
    async with connect(de.config.home, user="admin") as c:
        path, junk = f"/accord.v1.LocalApi/{method}", b"\xff\xff\xff\xff"
        channel: Any = c.channel  # raw bytes: no request serializer
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            if method == "Watch":
                async for _ in channel.unary_stream(path)(junk, timeout=10):
                    pass
            else:
                await channel.unary_unary(path)(junk, timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not this method's message" in (refused.value.details() or "")
    assert "Traceback" not in caplog.text
    async with connect(de.config.home, anonymous=True) as anon:
        channel = anon.channel
        with pytest.raises(grpc.aio.AioRpcError) as no_token:
            await channel.unary_unary("/accord.v1.LocalApi/ListUsers")(junk, timeout=10)
    assert no_token.value.code() == grpc.StatusCode.UNAUTHENTICATED
