"""What the node must not give away: a purpose to a user not cleared for it, control
characters into its access log from the call without a token, SQL parameters into its log."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import grpc
import pytest

from accord.v1 import local_pb2
from node import logs
from node.client import connect
from node.store import Store
from node.store.keys import KeyRing
from tests.harness import Federation, add_user, held, incident

NL, DE = "NL-POL", "DE-BKA"
PURPOSE = "serious-crime-investigation"
WHY = "case 2026/0042: check the suspect"


async def test_a_refusal_does_not_name_a_purpose_the_user_may_not_see(fed2: Federation) -> None:
    nl, de = await fed2.start_all()
    await add_user(de, "carl", "liaison_officer", ["missing-persons"])
    await add_user(nl, "nick", "liaison_officer", ["missing-persons"])
    await add_user(nl, "anna", "liaison_officer", [PURPOSE])
    async with connect(nl.config.home, user="anna") as c:
        sent = await c.api.Send(local_pb2.SendRequest(content=incident(to=[DE])))
    await held(de, sent.message_id, sender=NL)
    calls = [
        (de, "carl", "Get", local_pb2.GetRequest(message_id=sent.message_id, justification=WHY)),
        (nl, "nick", "Receipts", local_pb2.ReceiptsRequest(message_id=sent.message_id)),
    ]
    for node, user, method, request in calls:
        async with connect(node.config.home, user=user) as c:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await getattr(c.api, method)(request)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "this message's purpose" in (refused.value.details() or "")
        assert PURPOSE not in (refused.value.details() or "")
        logged = [e for e in await node.access_store.entries() if e.user == user]
        assert logged and logged[0].outcome == "refused" and logged[0].purpose == PURPOSE


async def test_an_enrolment_under_a_name_with_control_characters_is_refused_unlogged(
    fed2: Federation,
) -> None:
    _, de = await fed2.start_all()
    forged = "x\n2026-01-01 admin granted read-access-log"
    async with connect(de.config.home, anonymous=True) as anon:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await anon.api.Enrol(local_pb2.EnrolRequest(name=forged, code="AAAA"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "user name" in (refused.value.details() or "")
    assert not [e for e in await de.access_store.entries() if "\n" in e.user]


async def test_debug_logging_never_writes_sql_parameters(
    tmp_short: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    logs.configure(level="debug")
    try:
        store = await Store.open(tmp_short / "accord.db", keys=KeyRing(os.urandom(32)))
        try:
            await store.reader.execute_fetchall("SELECT ?", ("Jansen, Piet, 1987",))
            logging.getLogger("node.store").debug("debug lines are written")
        finally:
            await store.close()
        err = capsys.readouterr().err
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)
        logging.getLogger("aiosqlite").setLevel(logging.NOTSET)
    assert "debug lines are written" in err
    assert "Jansen" not in err
