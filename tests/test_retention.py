"""Retention as a node enforces it, on real nodes with a fast clock: a message is readable until
its retain_until and refused (EXPIRED) from then on, erased by the sweep with its key, kept by a
legal hold until released, erased or kept after its agreement's sunset as the agreement says,
and kept no longer than the shortest of the sender's, the agreement's and the node's limits."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from accord.v1 import local_pb2
from accord.v1 import message_pb2 as pb
from node.app import Node
from node.client import connect
from node.clock import OffsetClock
from node.config import parse
from node.errors import ConfigError, Refused
from node.store import StoredMessage
from node.store.db import keystore_path
from node.store.keys import KeyDestroyed, KeyRing
from tests.harness import (
    Federation,
    add_user,
    configure,
    held,
    incident,
    liaison,
    node_send,
    open_agreement,
)
from tests.test_erasure import stored_key

NL, DE = "NL-POL", "DE-BKA"
WHY = "Case 2026/0042: identify the suspect"
SECOND = timedelta(seconds=1)


def clock_of(fed: Federation) -> OffsetClock:
    assert isinstance(fed.clock, OffsetClock)
    return fed.clock


async def received(node: Node, message_id: str) -> StoredMessage:
    m = await node.store.get_message(message_id, sender=NL, direction="in")
    assert m is not None
    return m


async def get(node: Node, token: str, message_id: str) -> grpc.aio.AioRpcError | str:
    async with connect(node.config.home, token=token) as c:
        try:
            got = await c.api.Get(local_pb2.GetRequest(message_id=message_id, justification=WHY))
        except grpc.aio.AioRpcError as exc:
            return exc
    return str(got.content.incident.narrative)


def reason(refused: grpc.aio.AioRpcError | str) -> str:
    assert isinstance(refused, grpc.aio.AioRpcError), f"still readable: {refused[:40]}"
    assert refused.code() == grpc.StatusCode.NOT_FOUND, refused
    return str(dict(refused.trailing_metadata() or ())["accord-reason"])


def advance_to(fed: Federation, when: datetime) -> None:
    clock = clock_of(fed)
    clock.advance(when - clock.now())


async def test_a_message_expires_at_its_instant_and_the_sweep_erases_it_and_its_key(
    fed2: Federation, tmp_short: Path
) -> None:
    nl, de = await fed2.start_all()
    token = await add_user(de, "dirk", "supervisor")
    secret = "Expire-me-51ab: the safe house is on Kanaalweg"
    sent = await node_send(nl, incident(to=[DE], narrative=secret, retention_days=1))
    await held(de, sent.message_id, sender=NL)
    m = await received(de, sent.message_id)
    assert m.retain_until is not None

    advance_to(fed2, m.retain_until - SECOND)
    assert await get(de, token, sent.message_id) == secret
    assert (await de.sweeper.sweep()).expired == 0

    backup = tmp_short / "backup"
    backup.mkdir()
    for suffix in ("", "-wal"):
        src = Path(str(de.config.database) + suffix)
        if src.exists():
            shutil.copy(src, backup / f"accord.db{suffix}")
    sealed, aad = stored_key(backup / "accord.db", sent.message_id)

    advance_to(fed2, m.retain_until + SECOND)
    assert reason(await get(de, token, sent.message_id)) == "EXPIRED"  # before any sweep
    swept = await de.sweeper.sweep()
    assert swept.expired == 1
    gone = await received(de, sent.message_id)
    assert gone.sealed is None and gone.erased_at is not None
    assert m.retain_until < gone.erased_at < m.retain_until + timedelta(minutes=1)
    assert (gone.erase_reason, gone.erased_by) == ("expired", "sweeper")
    assert gone.content_sha256 == m.content_sha256 and gone.received_at == m.received_at
    assert reason(await get(de, token, sent.message_id)) == "ERASED"
    # Its sender's copy expires on the sender's own clock and is swept there too.
    assert (await nl.sweeper.sweep()).expired == 1

    # The day's key is destroyed once the day is over: then the copy taken before the sweep,
    # with today's master key and keystore, opens nothing.
    day_end = datetime.combine(m.retain_until.date() + timedelta(days=1), datetime.min.time(), UTC)
    advance_to(fed2, day_end + SECOND)
    assert (await de.sweeper.sweep()).keys_destroyed >= 1
    ring = KeyRing.load(de.config.master_key)
    keystore = ring.open_keystore(keystore_path(de.config.database))
    try:
        with pytest.raises(KeyDestroyed):
            ring.open(sealed, aad)
    finally:
        keystore.close()
    for path in [*de.config.home.rglob("*"), *backup.iterdir()]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


async def test_a_hold_keeps_a_message_past_expiry_and_release_resumes_it(
    fed2: Federation,
) -> None:
    nl, de = await fed2.start_all()
    token = await add_user(de, "sarah", "supervisor")
    secret = "Hold-me-77c0: the ledger is in locker 14"
    sent = await node_send(nl, incident(to=[DE], narrative=secret, retention_days=1))
    await held(de, sent.message_id, sender=NL)
    m = await received(de, sent.message_id)
    assert m.retain_until is not None
    async with connect(de.config.home, token=token) as c:
        hold = await c.api.Hold(
            local_pb2.HoldRequest(
                correlation_id=m.correlation_id, justification="Court order 2026/77: preserve"
            )
        )
        assert hold.held_by == "sarah" and hold.correlation_id == m.correlation_id

    # Two days on: past its retain_until and past its day, and still there.
    advance_to(fed2, m.retain_until + timedelta(days=2))
    swept = await de.sweeper.sweep()
    assert swept.expired == 0
    assert await get(de, token, sent.message_id) == secret
    kept = await received(de, sent.message_id)
    assert kept.sealed is not None and kept.sealed.key_id is not None
    assert kept.sealed.key_id.startswith("hold/"), "its day's key is gone: it moved to the hold"

    async with connect(de.config.home, token=token) as c:
        released = await c.api.Release(
            local_pb2.ReleaseRequest(
                correlation_id=m.correlation_id, note="Court order 2026/77 lifted"
            )
        )
        assert [h.id for h in released.released] == [hold.id]
        (done,) = released.released
        assert done.released_by == "sarah" and done.HasField("released_at")
        assert done.release_note == "Court order 2026/77 lifted"
        with pytest.raises(grpc.aio.AioRpcError) as again:
            await c.api.Release(
                local_pb2.ReleaseRequest(correlation_id=m.correlation_id, note="once more, why")
            )
        assert again.value.code() == grpc.StatusCode.NOT_FOUND
    assert reason(await get(de, token, sent.message_id)) == "EXPIRED"
    assert (await de.sweeper.sweep()).expired == 1
    assert reason(await get(de, token, sent.message_id)) == "ERASED"
    # The hold bucket's key that wrapped it while held is gone too.
    assert de.store.keys.keystore is not None
    assert de.store.keys.keystore.key(kept.sealed.key_id) is None


async def test_a_hold_needs_a_supervisor_and_a_justification(fed2: Federation) -> None:
    nl, de = await fed2.start_all()
    officer = await add_user(de, "olaf", "liaison_officer")
    boss = await add_user(de, "sarah", "supervisor")
    sent = await node_send(nl, incident(to=[DE]))
    await held(de, sent.message_id, sender=NL)
    async with connect(de.config.home, token=officer) as c:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await c.api.Hold(
                local_pb2.HoldRequest(message_id=sent.message_id, justification="Court order 1")
            )
        assert dict(denied.value.trailing_metadata() or ())["accord-denied"] == "ROLE"
    async with connect(de.config.home, token=boss) as c:
        with pytest.raises(grpc.aio.AioRpcError) as short:
            await c.api.Hold(local_pb2.HoldRequest(message_id=sent.message_id, justification="x"))
        assert dict(short.value.trailing_metadata() or ())["accord-denied"] == "JUSTIFICATION"
        with pytest.raises(grpc.aio.AioRpcError) as both:
            await c.api.Hold(
                local_pb2.HoldRequest(
                    message_id=sent.message_id, correlation_id="x", justification="Court order 1"
                )
            )
        assert both.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await c.api.Hold(
                local_pb2.HoldRequest(
                    message_id="0190a0a0-0000-7000-8000-0000000000aa",
                    justification="Court order 1",
                )
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert await de.store.held(sent.message_id, sent.message_id) is False


async def test_after_sunset_an_erase_agreement_erases_and_a_keep_agreement_keeps(
    fed2: Federation,
) -> None:
    now = fed2.now
    ends = now + timedelta(days=3)
    fed2.authority.set_agreements(
        (
            open_agreement(
                [NL, DE],
                now,
                id="AGR-ERASE",
                purposes=("serious-crime-investigation",),
                valid_until=ends,
                after_sunset="erase",
            ),
            open_agreement(
                [NL, DE],
                now,
                id="AGR-KEEP",
                purposes=("missing-persons",),
                valid_until=ends,
                after_sunset="keep",
            ),
        ),
        now=now,
    )
    nl, de = await fed2.start_all()
    token = await add_user(de, "sarah", "supervisor")
    erased = await node_send(nl, incident(to=[DE], narrative="under erase", retention_days=30))
    kept = await node_send(
        nl,
        incident(to=[DE], purpose="missing-persons", narrative="under keep", retention_days=30),
    )
    await held(de, erased.message_id, sender=NL)
    await held(de, kept.message_id, sender=NL)
    key_of_erased = (await received(de, erased.message_id)).sealed
    assert key_of_erased is not None and key_of_erased.key_id is not None

    advance_to(fed2, ends - SECOND)
    assert (await de.sweeper.sweep()).sunset == 0
    advance_to(fed2, ends + SECOND)
    swept = await de.sweeper.sweep()
    assert swept.sunset == 1
    assert reason(await get(de, token, erased.message_id)) == "ERASED"
    assert (await received(de, erased.message_id)).erase_reason == "sunset"
    assert await get(de, token, kept.message_id) == "under keep"
    # Erased before its day: its key is destroyed at once, not when its day ends.
    assert de.store.keys.keystore is not None
    assert de.store.keys.keystore.key(key_of_erased.key_id) is None


def test_the_sunset_rule_is_validated() -> None:
    from certs.directory import agreement_from_dict, agreement_to_dict
    from certs.errors import PkiError

    doc = agreement_to_dict(open_agreement([NL, DE], datetime.now(UTC)))
    assert doc["after_sunset"] == "keep"
    assert agreement_from_dict({**doc, "after_sunset": "erase"}, "a").after_sunset == "erase"
    with pytest.raises(PkiError, match="after_sunset must be one of keep, erase"):
        agreement_from_dict({**doc, "after_sunset": "shred"}, "a")


async def test_retention_is_the_shortest_of_sender_agreement_and_local_limits(
    fed2: Federation,
) -> None:
    fed2.authority.set_agreements(
        (open_agreement([NL, DE], fed2.now, max_retention_days=60),), now=fed2.now
    )
    configure(fed2.homes[DE], "retention", max_days=40)
    configure(fed2.homes[DE], "retention.purpose", **{"missing-persons": 20})
    configure(fed2.homes[DE], "retention.type", INCIDENT_PUBLISH=30)
    nl, de = await fed2.start_all()

    async def days_kept(content: pb.MessageContent) -> float:
        sent = await node_send(nl, content)
        await held(de, sent.message_id, sender=NL)
        m = await received(de, sent.message_id)
        assert m.retain_until is not None
        return round((m.retain_until - m.received_at).total_seconds() / 86400, 3)

    request = liaison(to=[DE], purpose="organised-crime")
    request.retention.days = 55
    assert await days_kept(incident(to=[DE], retention_days=10)) == 10  # the sender's
    assert await days_kept(incident(to=[DE], retention_days=50)) == 30  # local, for the type
    missing = incident(to=[DE], retention_days=50, purpose="missing-persons")
    assert await days_kept(missing) == 20  # local, for the purpose
    assert await days_kept(request) == 40  # local, for every message
    fed2.authority.set_agreements(
        (open_agreement([NL, DE], fed2.now, max_retention_days=35),), now=fed2.now
    )
    fed2.reload_all()
    # The agreement's maximum bounds the sender's ask: more is refused outright.
    with pytest.raises(Refused, match="RETENTION_EXCEEDS_AGREEMENT"):
        await days_kept(request)
    request.retention.days = 35
    assert await days_kept(request) == 35


def test_the_retention_section_is_checked(tmp_short: Path) -> None:
    base = {"node": {"agency": NL, "federation": "accord.test"}}
    for bad, fragment in (
        ({"sweep_seconds": 0}, "retention.sweep_seconds: must be > 0"),
        ({"sweep_share": 0}, "retention.sweep_share: must be > 0"),
        ({"sweep_share": 1.5}, "retention.sweep_share: at most 1"),
        ({"max_days": -1}, "retention.max_days: must be >= 0"),
        ({"purpose": {"Bad Code": 3}}, "retention.purpose.Bad Code: not a purpose"),
        ({"type": {"INCIDENT_PUBLISH": 0}}, "expected days > 0"),
        ({"sweep": 1}, "retention.sweep: unknown field"),
    ):
        with pytest.raises(ConfigError, match=fragment):
            parse({**base, "retention": bad}, home=tmp_short)


async def test_review_lists_what_nears_expiry_and_keep_extends_it_within_the_agreement(
    fed2: Federation,
) -> None:
    nl, de = await fed2.start_all()
    boss = await add_user(de, "sarah", "supervisor")
    soon = await node_send(nl, incident(to=[DE], retention_days=3))
    later = await node_send(nl, incident(to=[DE], retention_days=60))
    await held(de, soon.message_id, sender=NL)
    await held(de, later.message_id, sender=NL)
    m = await received(de, soon.message_id)
    assert m.retain_until is not None
    async with connect(de.config.home, token=boss) as c:
        review = await c.api.Review(local_pb2.ReviewRequest(within_days=7))
        assert [i.summary.message_id for i in review.items] == [soon.message_id]
        (item,) = review.items
        assert item.why.startswith("expires in 3.0 days") and not item.held
        most = item.keep_at_most.ToDatetime(tzinfo=UTC)
        assert most == m.received_at + timedelta(days=365)  # the test agreement's maximum

        def keep(until: datetime, why: str = "Trial set for next spring") -> local_pb2.KeepRequest:
            request = local_pb2.KeepRequest(message_id=soon.message_id, justification=why)
            request.until.FromDatetime(until)
            return request

        with pytest.raises(grpc.aio.AioRpcError) as beyond:
            await c.api.Keep(keep(most + SECOND))
        assert beyond.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "past what agreement AGR-TEST allows" in (beyond.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as shorter:
            await c.api.Keep(keep(m.retain_until - timedelta(days=1)))
        assert shorter.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as unjustified:
            await c.api.Keep(keep(most, why="x"))
        assert unjustified.value.code() == grpc.StatusCode.PERMISSION_DENIED
        kept = await c.api.Keep(keep(most))
        assert kept.retain_until.ToDatetime(tzinfo=UTC) == most
    # Its key moved with it: past its old day it still opens.
    advance_to(fed2, m.retain_until + timedelta(days=2))
    await de.sweeper.sweep()
    assert await get(de, boss, soon.message_id) != ""
    entries = await de.access_store.entries(message_id=soon.message_id)
    outcomes = [e.outcome for e in entries if e.action == "keep"]
    assert outcomes == ["granted", "refused", "refused", "refused"]


async def test_the_signed_policy_states_the_retention_the_node_enforces(
    fed2: Federation,
) -> None:
    configure(fed2.homes[DE], "retention", max_days=40, sweep_seconds=30.0)
    configure(fed2.homes[DE], "retention.purpose", **{"missing-persons": 20})
    _, de = await fed2.start_all()
    retention = json.loads(de.published_policy().policy_json)["retention"]
    assert retention["local_maximum_days"] == {
        "all": 40,
        "by_purpose": {"missing-persons": 20},
        "by_type": {},
    }
    assert "every 30 s" in retention["expiry"] and "EXPIRED" in retention["expiry"]
    assert "crypto-shredding" in retention["erasure"]


async def test_the_retention_commands_as_a_user_runs_them(fed2: Federation) -> None:
    from tests.test_cli import accord, assert_usage_error

    nl, de = await fed2.start_all()
    await add_user(de, "sarah", "supervisor")
    sent = await node_send(nl, incident(to=[DE], retention_days=3))
    await held(de, sent.message_id, sender=NL)
    home = fed2.homes[DE]

    async def as_sarah(*args: str) -> tuple[int, str]:
        run = await accord(*args, "--home", str(home), "--as", "sarah")
        assert "Traceback" not in run.err, run.err
        return run.code, run.out + run.err

    why = "--justification=Court order 2026/77: preserve"
    code, out = await as_sarah("hold", sent.message_id, why)
    assert code == 0 and f"on message {sent.message_id} in force" in out, out
    code, out = await as_sarah("review", "--json")
    assert code == 0 and json.loads(out)[0]["held"] is True, out
    code, out = await as_sarah("retention", "status", "--json")
    assert code == 0 and json.loads(out)["holds"] == 1, out
    code, out = await as_sarah("release", sent.message_id, why)
    assert code == 0 and "released: expiry resumes" in out, out
    until = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    code, out = await as_sarah("keep", sent.message_id, "--until", until, why)
    assert code == 0 and f"message {sent.message_id} kept until" in out, out
    code, out = await as_sarah("retention", "sweep")
    assert code == 0 and "last sweep" in out and "0 expired" in out, out

    both = await accord("hold", sent.message_id, "--correlation", sent.message_id, why,
                        "--home", str(home), "--as", "sarah")  # fmt: skip
    assert_usage_error(both, "give a message id or --correlation ID, not both")
