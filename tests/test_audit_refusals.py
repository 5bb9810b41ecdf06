"""Every local API refusal leaves an audit entry on the node that refused: refused by a check
(once, with the check's own fields), by bad input or a missing message (naming the call), or
for want of a valid token."""

from __future__ import annotations

import grpc
import pytest

from accord.v1 import local_pb2, local_pb2_grpc
from node.app import Node
from node.audit.verify import AuditEntry, parse_entry
from node.client import connect
from node.store.audit import Filters
from tests.harness import Federation, add_user, liaison

NL, DE = "NL-POL", "DE-BKA"


async def entries_after(node: Node, seq: int) -> list[AuditEntry]:
    return [parse_entry(e.data) for e in await node.audit.query(Filters(first=seq + 1))]


async def test_each_local_api_refusal_is_audited_once(fed2: Federation) -> None:
    nl, _ = await fed2.start_all()
    await add_user(nl, "officer", "liaison_officer")
    refusals = [
        # (call, request, status, (actor, action, detail starts with))
        ("Send", local_pb2.SendRequest(), grpc.StatusCode.INVALID_ARGUMENT,
         ("officer", "Send", "InvalidRequest: content is required")),
        ("Get", local_pb2.GetRequest(message_id="0190a0a0-0000-7000-8000-000000000001",
                                     justification="case 1"),
         grpc.StatusCode.NOT_FOUND, ("officer", "Get", "NotFound: no message")),
        ("AccessLog", local_pb2.AccessLogRequest(), grpc.StatusCode.PERMISSION_DENIED,
         ("officer", "read-access-log", "ROLE: ")),
        ("Send", local_pb2.SendRequest(content=liaison(to=[DE], purpose="curiosity")),
         grpc.StatusCode.FAILED_PRECONDITION, ("officer", "send", "UNKNOWN_PURPOSE: ")),
    ]  # fmt: skip
    async with connect(nl.config.home, user="officer") as c:
        for call, request, status, (actor, action, detail) in refusals:
            before = nl.audit.journal.size
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await getattr(c.api, call)(request)
            assert caught.value.code() == status, call
            (entry,) = await entries_after(nl, before)
            assert (entry.actor, entry.action, entry.outcome) == (actor, action, "refused")
            assert entry.detail.startswith(detail), entry.detail

    before = nl.audit.journal.size
    async with grpc.aio.insecure_channel(f"unix:{nl.config.socket}") as channel:
        stub = local_pb2_grpc.LocalApiStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Inbox(local_pb2.InboxRequest(), metadata=(("authorization", "Bearer x"),))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    (entry,) = await entries_after(nl, before)
    assert (entry.actor, entry.action, entry.outcome) == ("", "Inbox", "refused")
    assert entry.detail.startswith("UNAUTHENTICATED")
