"""Delivery across duplicates, outages and crashes, with real nodes, mTLS and SQLite files.

What a user of the federation relies on: a sent message arrives exactly once, in order, however
often either side goes down, and a receipt means the message is on the receiver's disk.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from accord.v1 import local_pb2, local_pb2_grpc
from accord.v1 import message_pb2 as pb
from node.app import Node
from node.delivery.receiver import Arrival
from node.errors import Refused
from node.signing import ENVELOPE, RECEIPT, digest, sign, verify
from node.trust import Peer
from node.wire import parse_receipt
from tests.harness import (
    Federation,
    RawExchange,
    complete,
    envelope_frame,
    free_port,
    incident,
    liaison,
    member_key,
    node_send,
    open_agreement,
    until_delivered,
    wait_for,
)

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"
REPO = Path(__file__).resolve().parent.parent


def db_rows(node_home: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Read a node's database file with a connection of our own: only what is committed."""
    uri = f"file:{node_home / 'accord.db'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        return list(conn.execute(sql, params))


def received_from(node_home: Path, sender: str) -> list[str]:
    """Message ids a node holds from `sender`, in the order it stored them."""
    sql = "SELECT message_id FROM messages WHERE sender = ? ORDER BY id"
    return [str(r[0]) for r in db_rows(node_home, sql, sender)]


async def test_duplicate_resend_gets_the_same_receipt_and_stores_one_row(fed3: Federation) -> None:
    _nl, de, _fr = await fed3.start_all()
    content = complete(incident(to=[DE]), sender=NL)
    frame = envelope_frame(content.SerializeToString(), member_key(fed3, NL))
    async with RawExchange(fed3, as_agency=NL, to=de) as stream:
        first = await stream.send(frame)
        same_stream = await stream.send(frame)
    async with RawExchange(fed3, as_agency=NL, to=de) as stream:
        new_stream = await stream.send(frame)
    assert parse_receipt(first.content).accepted
    assert same_stream.SerializeToString() == first.SerializeToString()
    assert new_stream.SerializeToString() == first.SerializeToString()
    assert await de.store.count("messages") == 1
    assert db_rows(fed3.homes[DE], "SELECT count(*) FROM messages WHERE message_id = ?",
                   content.message_id) == [(1,)]  # fmt: skip


async def pipelined(fed: Federation, node: Node, frames: list[bytes]) -> list[pb.Receipt]:
    """Write every frame on one stream as fast as it takes them, reading receipts meanwhile."""
    async with RawExchange(fed, as_agency=NL, to=node) as stream:

        async def write_all() -> None:
            for frame in frames:
                await stream.write(frame)

        writer = asyncio.create_task(write_all())
        receipts = [await stream.read(timeout=10) for _ in frames]
        await writer
        return receipts


async def test_duplicates_racing_on_four_streams_get_one_answer(fed3: Federation) -> None:
    """A resend can overlap the first copy (a reconnect while receipts were in flight)."""
    _nl, de, _fr = await fed3.start_all()
    key = member_key(fed3, NL)
    contents = [complete(liaison(to=[DE]), sender=NL).SerializeToString() for _ in range(300)]
    frames = [envelope_frame(c, key) for c in contents]
    runs = await asyncio.gather(*(pipelined(fed3, de, frames) for _ in range(4)))
    for i, content in enumerate(contents):
        answers = {run[i].SerializeToString() for run in runs}
        assert len(answers) == 1, f"message {i} got {len(answers)} different receipts"
        info = parse_receipt(runs[0][i].content)
        assert info.accepted and info.content_sha256 == digest(content)
    assert await de.store.count("messages") == len(contents)


async def test_conflicting_copies_racing_on_four_streams(fed3: Federation) -> None:
    """Four different contents under each id at once: one is accepted and stored, the others
    are ID_CONFLICT; never an ACCEPTED receipt for bytes the receiver did not keep."""
    _nl, de, _fr = await fed3.start_all()
    key = member_key(fed3, NL)
    drafts = [complete(liaison(to=[DE]), sender=NL) for _ in range(300)]
    variants: list[list[bytes]] = []
    for v in range(4):
        for draft in drafts:
            draft.liaison.text = f"variant {v}"
        variants.append([d.SerializeToString() for d in drafts])
    runs = await asyncio.gather(
        *(pipelined(fed3, de, [envelope_frame(c, key) for c in contents]) for contents in variants)
    )
    for i, draft in enumerate(drafts):
        infos = [parse_receipt(run[i].content) for run in runs]
        accepted = [info for info in infos if info.accepted]
        assert len(accepted) == 1, [info.reason_code for info in infos]
        assert all(info.reason_code == "ID_CONFLICT" for info in infos if not info.accepted)
        for v, info in enumerate(infos):
            assert info.content_sha256 == digest(variants[v][i])  # each names what it answers
        stored = await de.store.get_message(draft.message_id, sender=NL)
        assert stored is not None
        assert stored.content_sha256 == accepted[0].content_sha256
        assert stored.receipt == next(
            r[i].content for r in runs if parse_receipt(r[i].content).accepted
        )
    assert await de.store.count("messages") == len(drafts)


async def test_receiver_down_message_waits_then_arrives(fed3: Federation) -> None:
    nl, de, _fr = await fed3.start_all()
    port = de.port
    await fed3.stop(DE)
    sent = await node_send(nl, incident(to=[DE]))

    async def failed_attempt_recorded() -> bool:
        (d,) = await nl.store.deliveries(sent.message_id)
        return d.state == "queued" and d.attempts >= 1 and d.last_error != ""

    await wait_for(failed_attempt_recorded, timeout=5)
    (queued,) = await nl.store.deliveries(sent.message_id)
    assert "UNAVAILABLE" in queued.last_error, queued.last_error

    de = await fed3.start(DE, port=port)
    await until_delivered(nl, sent.message_id, state="settled", timeout=8)
    (d,) = await nl.store.deliveries(sent.message_id)
    assert d.state == "accepted"
    stored = await de.store.get_message(sent.message_id, sender=NL)
    assert stored is not None and de.store.open_content(stored) == sent.content


async def test_fan_out_with_one_recipient_down(fed3: Federation) -> None:
    nl, _de, fr = await fed3.start_all()
    fr_port = fr.port
    await fed3.stop(FR)
    sent = await node_send(nl, incident(to=[DE, FR]))

    async def de_done_fr_waiting() -> bool:
        ds = await nl.store.deliveries(sent.message_id)
        states = {d.recipient: (d.state, d.attempts) for d in ds}
        return states[DE][0] == "accepted" and states[FR][0] == "queued" and states[FR][1] >= 1

    await wait_for(de_done_fr_waiting, timeout=5)
    await fed3.start(FR, port=fr_port)
    await until_delivered(nl, sent.message_id, state="settled", timeout=8)
    assert {d.state for d in await nl.store.deliveries(sent.message_id)} == {"accepted"}


async def test_order_per_pair_is_kept(fed3: Federation) -> None:
    nl, _de, _fr = await fed3.start_all()
    sent = [
        (await node_send(nl, liaison(to=[DE], text=f"message {i}"))).message_id for i in range(200)
    ]
    await until_delivered(nl, sent[-1], state="settled", timeout=8)
    for message_id in sent:
        await until_delivered(nl, message_id, state="settled", timeout=0)  # already
    assert received_from(fed3.homes[DE], NL) == sent


async def test_order_is_kept_across_an_outage(fed3: Federation) -> None:
    nl, de, _fr = await fed3.start_all()
    port = de.port
    before = [
        (await node_send(nl, liaison(to=[DE], text=f"before {i}"))).message_id for i in range(30)
    ]
    await fed3.stop(DE)
    during = [
        (await node_send(nl, liaison(to=[DE], text=f"during {i}"))).message_id for i in range(30)
    ]
    await fed3.start(DE, port=port)
    await until_delivered(nl, during[-1], state="settled", timeout=8)
    assert received_from(fed3.homes[DE], NL) == before + during


async def test_receipt_means_the_message_is_on_disk(fed3: Federation) -> None:
    """Each receipt is checked against the receiver's database file the moment it arrives."""
    _nl, de, _fr = await fed3.start_all()
    key = member_key(fed3, NL)
    contents = [complete(liaison(to=[DE]), sender=NL) for _ in range(100)]
    async with RawExchange(fed3, as_agency=NL, to=de) as stream:
        for c in contents:  # pipelined: every envelope written before any receipt is read
            await stream.write(envelope_frame(c.SerializeToString(), key))
        for c in contents:
            receipt = await stream.read()
            info = parse_receipt(receipt.content)
            assert info.accepted and info.message_id == c.message_id
            on_disk = db_rows(fed3.homes[DE], "SELECT receipt FROM messages WHERE sender = ? AND "
                              "message_id = ?", NL, c.message_id)  # fmt: skip
            assert on_disk == [(receipt.content,)], f"{c.message_id} receipted before it was stored"
    await fed3.stop(DE)
    stored = db_rows(fed3.homes[DE], "SELECT message_id FROM messages WHERE sender = ?", NL)
    assert {r[0] for r in stored} == {c.message_id for c in contents}


# ---- a sender that crashes --------------------------------------------------------------------


@contextmanager
def node_process(home: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`accord node run --home HOME` as a real process; killed (if still running) on exit."""
    log = (home / "run.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "node", "run", "--home", str(home)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        log.close()


async def wait_ready(proc: subprocess.Popen[bytes], home: Path, starts: int) -> None:
    async def ready() -> bool:
        assert proc.poll() is None, (home / "run.log").read_text()
        return (home / "run.log").read_text().count("ready on port") >= starts

    await wait_for(ready, timeout=8)


@asynccontextmanager
async def local_api(home: Path) -> AsyncIterator[local_pb2_grpc.LocalApiStub]:
    async with grpc.aio.insecure_channel(f"unix:{home}/node.sock") as channel:
        yield local_pb2_grpc.LocalApiStub(channel)


def bearer(home: Path, user: str) -> tuple[tuple[str, str]]:
    """Call metadata authenticating a local user by the token left in HOME/tokens."""
    return (("authorization", f"Bearer {(home / 'tokens' / user).read_text().strip()}"),)


def set_listen(home: Path, listen: str) -> None:
    path = home / "config.toml"
    text = re.sub(r'(?m)^listen = ".*"$', f'listen = "{listen}"', path.read_text())
    path.write_text(text)


async def test_sender_killed_after_send_returns_delivers_after_restart(tmp_short: Path) -> None:
    fed = Federation(tmp_short, [NL, DE])
    try:
        nl_home = fed.homes[NL]
        nl_port, de_port = free_port(), free_port()
        set_listen(nl_home, f"127.0.0.1:{nl_port}")
        fed.authority.set_endpoint(agency=NL, endpoint=f"127.0.0.1:{nl_port}", now=fed.now)
        fed.authority.set_endpoint(agency=DE, endpoint=f"127.0.0.1:{de_port}", now=fed.now)

        with node_process(nl_home) as proc:
            await wait_ready(proc, nl_home, starts=1)
            async with local_api(nl_home) as api:
                added = await api.AddUser(
                    local_pb2.AddUserRequest(name="officer", role="liaison_officer",
                                             clearances=["serious-crime-investigation"]),
                    metadata=bearer(nl_home, "admin"),
                )  # fmt: skip
                # Every user needs a second administrator (the bootstrap's, added alone).
                second = await api.AddUser(
                    local_pb2.AddUserRequest(name="admin2", role="administrator"),
                    metadata=bearer(nl_home, "admin"),
                )
                admin2 = await api.Enrol(
                    local_pb2.EnrolRequest(name="admin2", code=second.enrolment_code)
                )
                approved = await api.DecideUser(
                    local_pb2.DecideUserRequest(name="officer", approve=True),
                    metadata=(("authorization", f"Bearer {admin2.token}"),),
                )
                enrolled = await api.Enrol(
                    local_pb2.EnrolRequest(
                        name="officer", code=f"{added.enrolment_code}+{approved.enrolment_code}"
                    )
                )
                officer = (("authorization", f"Bearer {enrolled.token}"),)
                request = local_pb2.SendRequest(content=incident(to=[DE]))
                ids = [(await api.Send(request, metadata=officer)).message_id for _ in range(5)]
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=5)
        assert proc.returncode == -signal.SIGKILL
        queued = db_rows(nl_home, "SELECT message_id FROM deliveries WHERE state = 'queued' "
                         "ORDER BY seq")  # fmt: skip
        assert [r[0] for r in queued] == ids, "send returned before the message was durable"

        await fed.start(DE, port=de_port)
        with node_process(nl_home) as proc:
            await wait_ready(proc, nl_home, starts=2)
            async with local_api(nl_home) as api:

                async def all_accepted() -> bool:
                    for message_id in ids:
                        r = await api.Receipts(
                            local_pb2.ReceiptsRequest(message_id=message_id), metadata=officer
                        )
                        if [d.state for d in r.deliveries] != ["accepted"]:
                            return False
                    return True

                await wait_for(all_accepted, timeout=8)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=8)
        assert proc.returncode == 0
        assert received_from(fed.homes[DE], NL) == ids  # each exactly once, in order
    finally:
        await fed.stop_all()


async def test_receiver_killed_mid_stream_loses_and_repeats_nothing(tmp_short: Path) -> None:
    """SIGKILL the receiver while envelopes and receipts are in flight, then restart it."""
    fed = Federation(tmp_short, [NL, DE])
    try:
        de_home = fed.homes[DE]
        de_port = free_port()
        set_listen(de_home, f"127.0.0.1:{de_port}")
        fed.authority.set_endpoint(agency=DE, endpoint=f"127.0.0.1:{de_port}", now=fed.now)
        nl_home = fed.homes[NL]
        config = (nl_home / "config.toml").read_text()  # retry soon after the restart
        (nl_home / "config.toml").write_text(
            config.replace("backoff_max_seconds = 30.0", "backoff_max_seconds = 0.5")
        )
        nl = await fed.start(NL)
        assert nl.config.delivery.backoff_max_seconds == 0.5

        def accepted() -> int:
            sql = "SELECT count(*) FROM deliveries WHERE state = 'accepted'"
            return int(str(db_rows(nl_home, sql)[0][0]))

        sent: list[str] = []

        async def keep_sending(n: int) -> None:
            for i in range(n):
                sent.append((await node_send(nl, liaison(to=[DE], text=f"message {i}"))).message_id)

        with node_process(de_home) as proc:
            await wait_ready(proc, de_home, starts=1)
            sender = asyncio.create_task(keep_sending(400))

            async def some_accepted() -> bool:
                return accepted() >= 50

            await wait_for(some_accepted, timeout=8)
            proc.kill()
            proc.wait(timeout=5)
        at_kill = accepted()
        await sender
        assert 0 < at_kill < len(sent), "the kill should land mid-stream"

        with node_process(de_home) as proc:
            await wait_ready(proc, de_home, starts=2)

            async def all_accepted() -> bool:
                return accepted() == len(sent)

            await wait_for(all_accepted, timeout=8)
            # Killed again rather than stopped: a graceful stop waits out its whole grace period
            # for the sender's stream, which never ends on its own.
            proc.kill()
            proc.wait(timeout=5)
        assert received_from(de_home, NL) == sent  # every one, once, in order
    finally:
        await fed.stop_all()


async def test_link_resumes_after_a_receiver_crash_with_nothing_new_to_send(
    tmp_short: Path,
) -> None:
    """Everything was queued before the crash: no new send and no directory change wakes the
    link afterwards, so it must go back to the queue by itself."""
    fed = Federation(tmp_short, [NL, DE])
    try:
        de_home, nl_home = fed.homes[DE], fed.homes[NL]
        de_port = free_port()
        set_listen(de_home, f"127.0.0.1:{de_port}")
        fed.authority.set_endpoint(agency=DE, endpoint=f"127.0.0.1:{de_port}", now=fed.now)
        config = (nl_home / "config.toml").read_text()
        # A small window makes delivery take many round trips, so the kill lands mid-stream.
        (nl_home / "config.toml").write_text(
            config.replace("backoff_max_seconds = 30.0", "backoff_max_seconds = 0.5").replace(
                "window = 512", "window = 8"
            )
        )
        nl = await fed.start(NL)
        sent = [
            (await node_send(nl, liaison(to=[DE], text=f"m{i}"))).message_id for i in range(400)
        ]

        def accepted() -> int:
            sql = "SELECT count(*) FROM deliveries WHERE state = 'accepted'"
            return int(str(db_rows(nl_home, sql)[0][0]))

        async def some_accepted() -> bool:
            return accepted() >= 20

        async def all_accepted() -> bool:
            return accepted() == len(sent)

        with node_process(de_home) as proc:
            await wait_ready(proc, de_home, starts=1)
            await wait_for(some_accepted, timeout=8)
            proc.kill()
            proc.wait(timeout=5)
        assert accepted() < len(sent), "the kill should land mid-stream"
        with node_process(de_home) as proc:
            await wait_ready(proc, de_home, starts=2)
            await wait_for(all_accepted, timeout=8)
            proc.kill()
            proc.wait(timeout=5)
        assert received_from(de_home, NL) == sent
    finally:
        await fed.stop_all()


async def test_local_resend_under_a_used_id(fed3: Federation) -> None:
    """A tool retrying a send with its own message id: the same message again is harmless,
    other content under that id is refused rather than silently dropped."""
    nl, de, _fr = await fed3.start_all()
    draft = complete(incident(to=[DE]), sender=NL)
    draft.ClearField("agreement_id")
    first = await node_send(nl, draft)
    again = await node_send(nl, draft)
    assert again.content == first.content
    changed = pb.MessageContent()
    changed.CopyFrom(draft)
    changed.incident.narrative = "A corrected narrative, sent under the old id."
    with pytest.raises(Refused) as refused:
        await node_send(nl, changed)
    assert refused.value.reason == "ID_CONFLICT"
    await until_delivered(nl, first.message_id, state="settled", timeout=5)
    stored = await de.store.get_message(first.message_id, sender=NL)
    assert stored is not None and de.store.open_content(stored) == first.content
    assert await de.store.count("messages") == 1


async def test_a_refusal_is_final_and_recorded_with_its_receipt(tmp_short: Path) -> None:
    """The receiver's policy refuses what the sender's allowed (its directory is older): the
    sender records the signed REJECTED receipt and does not retry."""
    fed = Federation(tmp_short, [NL, DE])
    try:
        de_config = fed.homes[DE] / "config.toml"
        de_config.write_text(
            de_config.read_text().replace("reload_seconds = 2.0", "reload_seconds = 3600.0")
        )
        narrow = open_agreement([NL, DE], fed.now, purposes=("counter-terrorism",))
        fed.authority.set_agreements((narrow,), now=fed.now)
        nl, de = await fed.start_all()
        wide = open_agreement([NL, DE], fed.now)
        fed.authority.set_agreements((wide,), now=fed.now)
        assert nl.reload()  # only the sender sees the wider agreement
        sent = await node_send(nl, incident(to=[DE], purpose="serious-crime-investigation"))
        await until_delivered(nl, sent.message_id, state="settled", timeout=5)
        (d,) = await nl.store.deliveries(sent.message_id)
        assert (d.state, d.reason_code, d.attempts) == ("rejected", "PURPOSE_NOT_PERMITTED", 0)
        assert d.receipt is not None and d.receipt_signature is not None
        _, peer = nl.trust.member_peer(DE, nl.clock.now())
        assert verify(
            peer.public_key, d.receipt, d.receipt_signature, RECEIPT, d.receipt_proof or b""
        )
        info = parse_receipt(d.receipt)
        assert not info.accepted and info.content_sha256 == digest(sent.content)
        # The behaviour under test is an absence: a retry (its backoff starts at 0.1 s) would
        # show as another envelope sent.
        await asyncio.sleep(0.3)
        assert nl.links[DE].sent == 1
        assert await de.store.count("messages") == 0
    finally:
        await fed.stop_all()


# ---- the hand-off from send to link (no outbox read per batch while a stream is up) ------------


async def test_concurrent_sends_arrive_in_seq_order_without_reading_the_outbox(
    fed3: Federation,
) -> None:
    """200 sends from 20 concurrent callers: what DE stores is NL's outbox order (seq order),
    each exactly once, and the link read the outbox only to start its stream."""
    nl, _de, _fr = await fed3.start_all()
    await node_send(nl, liaison(to=[DE], text="open the stream"))
    link = nl.links.link(DE)
    await wait_for(lambda: _connected(link), timeout=5)
    reads_before = link.outbox_reads

    async def caller(n: int) -> None:
        for i in range(10):
            await node_send(nl, liaison(to=[DE], text=f"caller {n} message {i}"))

    await asyncio.gather(*(caller(n) for n in range(20)))
    outbox = outbox_order(fed3.homes[NL], DE)
    await until_delivered(nl, outbox[-1], state="settled", timeout=8)
    assert received_from(fed3.homes[DE], NL) == outbox
    assert link.outbox_reads - reads_before <= 1  # one read may be under way as it connects


def outbox_order(node_home: Path, recipient: str) -> list[str]:
    sql = "SELECT message_id FROM deliveries WHERE recipient = ? ORDER BY seq"
    return [str(r[0]) for r in db_rows(node_home, sql, recipient)]


async def _connected(link: object) -> bool:
    return bool(getattr(link, "connected", False))


async def test_more_sends_than_the_hand_off_holds_still_arrive_in_order(
    fed3: Federation,
) -> None:
    """When the hand-off overflows, the link goes back to reading the outbox: nothing is lost
    or reordered."""
    nl, _de, _fr = await fed3.start_all()
    nl.links.link(DE).handoff_max = 3
    await node_send(nl, liaison(to=[DE], text="open the stream"))
    await wait_for(lambda: _connected(nl.links.link(DE)), timeout=5)
    sent = await asyncio.gather(*(node_send(nl, liaison(to=[DE], text=f"m{i}")) for i in range(60)))
    outbox = outbox_order(fed3.homes[NL], DE)
    await until_delivered(nl, outbox[-1], state="settled", timeout=8)
    for s in sent:
        await until_delivered(nl, s.message_id, state="settled", timeout=0)  # already
    assert received_from(fed3.homes[DE], NL) == outbox
    assert nl.links.link(DE).outbox_reads >= 2  # it did fall back to the outbox


async def test_a_hand_off_out_of_order_falls_back_to_the_outbox(fed3: Federation) -> None:
    """An envelope offered with a seq below the last one offered is not trusted to the
    hand-off: the link reads the outbox instead, and the stored order is the outbox order."""
    nl, _de, _fr = await fed3.start_all()
    await node_send(nl, liaison(to=[DE], text="open the stream"))
    link = nl.links.link(DE)
    await wait_for(lambda: _connected(link), timeout=5)
    offered: list[object] = []
    real_offer = link.offer

    def hold(envelope: object) -> None:
        offered.append(envelope)

    link.offer = hold  # type: ignore[method-assign]
    first = await node_send(nl, liaison(to=[DE], text="first"))
    second = await node_send(nl, liaison(to=[DE], text="second"))
    link.offer = real_offer  # type: ignore[method-assign]
    reads = link.outbox_reads
    for envelope in reversed(offered):  # second, then first: out of order
        link.offer(envelope)  # type: ignore[arg-type]
    await until_delivered(nl, second.message_id, state="settled", timeout=8)
    await until_delivered(nl, first.message_id, state="settled", timeout=0)  # already
    assert received_from(fed3.homes[DE], NL)[-2:] == [first.message_id, second.message_id]
    assert link.outbox_reads > reads


async def test_delivery_seqs_continue_after_a_restart(fed3: Federation) -> None:
    """Seqs are given out by the node, not SQLite: after a restart they go on from the highest
    ever used, so the outbox order stays the send order."""
    nl, _de, _fr = await fed3.start_all()
    before = await node_send(nl, liaison(to=[DE, FR], text="before"))
    await until_delivered(nl, before.message_id, state="settled", timeout=8)
    await fed3.stop(NL)
    nl = await fed3.start(NL)
    after = await node_send(nl, liaison(to=[DE], text="after"))
    await until_delivered(nl, after.message_id, state="settled", timeout=8)
    seqs = db_rows(fed3.homes[NL], "SELECT seq, message_id FROM deliveries ORDER BY seq")
    assert [str(m) for _, m in seqs] == [before.message_id] * 2 + [after.message_id]
    assert [s for s, _ in seqs] == [1, 2, 3]
    assert received_from(fed3.homes[DE], NL) == [before.message_id, after.message_id]


async def test_a_receipt_that_cannot_be_stored_ends_the_stream_and_comes_again(
    fed3: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails to record a frame's receipts on an otherwise idle stream: the link does
    not sit on it until more traffic comes, it reconnects, resends, and records the receipt
    the peer gives the copy."""
    nl, _de, _fr = await fed3.start_all()
    opener = await node_send(nl, liaison(to=[DE]))
    await until_delivered(nl, opener.message_id, state="settled", timeout=5)
    real = nl.store.record_receipts
    failed: list[bool] = []

    def fail_once(**kwargs: Any) -> asyncio.Future[None]:
        if failed:
            return real(**kwargs)
        failed.append(True)
        broken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        broken.set_exception(OSError("disk I/O error"))
        return broken

    monkeypatch.setattr(nl.store, "record_receipts", fail_once)
    lost = await node_send(nl, liaison(to=[DE], text="its first receipt is not stored"))
    await until_delivered(nl, lost.message_id, state="settled", timeout=5)
    (d,) = await nl.store.deliveries(lost.message_id)
    assert failed and d.state == "accepted" and d.attempts >= 1
    assert "could not record receipts" in d.last_error


class HeldWriter:
    """A node's writer made busy (its test hook): each group commit waits until `release`,
    and `reached` says one is waiting."""

    def __init__(self, node: Node) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        node.store.writer.faults.before_commit = self.wait

    async def wait(self, units: int) -> None:
        self.reached.set()
        await self.release.wait()


async def held_receiver(
    fed: Federation,
) -> tuple[Node, Peer, pb.MessageContent, list[Arrival], HeldWriter]:
    """DE with its writer held (a busy writer), NL as DE sees it, and one signed envelope from
    NL, for driving DE's receiver by hand."""
    _nl, de, _fr = await fed.start_all()
    _, peer = de.trust.member_peer(NL, de.clock.now())
    content = complete(liaison(to=[DE]), sender=NL)
    data = content.SerializeToString()
    held = HeldWriter(de)
    return de, peer, content, [(data, sign(member_key(fed, NL), data, ENVELOPE), b"")], held


async def test_a_resend_after_a_cancelled_answer_gets_the_stored_receipt(
    fed3: Federation,
) -> None:
    """The sending link gives up on a stream while the receiver's commit is still queued (gRPC
    cancels the servicer). A resend on a new stream must get the receipt that is stored, and the
    stored message is announced once."""
    de, peer, content, envelope, held = await held_receiver(fed3)
    announced = de.watchers.watch("test")  # what the node announces as it stores it
    first = await de.receiver.admit(peer, envelope)
    await held.reached.wait()
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    held.release.set()
    (second,) = await (await de.receiver.admit(peer, envelope))
    stored = await de.store.get_message(content.message_id, sender=NL)
    assert stored is not None
    assert second.reason == "duplicate"
    assert (second.receipt, second.signature) == (stored.receipt, stored.receipt_signature)
    announced_ids = []
    while not announced.empty():
        message = announced.get_nowait()
        assert message is not None
        announced_ids.append(message.message_id)
    assert announced_ids == [content.message_id]


async def test_a_copy_whose_wait_is_cancelled_does_not_disturb_the_next_copy(
    fed3: Federation,
) -> None:
    """Three streams carry the same envelope while the first copy's commit is slow; the second
    stream goes away while it waits. The third still gets the first copy's receipt."""
    de, peer, _content, envelope, held = await held_receiver(fed3)
    first = await de.receiver.admit(peer, envelope)
    second = await de.receiver.admit(peer, envelope)  # queued behind the first copy's commit
    await held.reached.wait()
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    held.release.set()
    third = await de.receiver.admit(peer, envelope)
    (answer,) = await third
    (original,) = await first
    assert answer.reason == "duplicate"
    assert (answer.receipt, answer.signature) == (original.receipt, original.signature)


async def test_a_send_whose_caller_gives_up_is_still_delivered(fed3: Federation) -> None:
    """The caller of send is cancelled after the message was queued for commit: the message
    commits anyway, so it must also reach the live stream (not wait for the next one)."""
    nl, _de, _fr = await fed3.start_all()
    opener = await node_send(nl, liaison(to=[DE], text="open the stream"))
    await until_delivered(nl, opener.message_id, state="settled", timeout=5)
    held = HeldWriter(nl)
    sending = asyncio.create_task(node_send(nl, liaison(to=[DE], text="its caller gives up")))
    await asyncio.wait_for(held.reached.wait(), 5)  # its unit is queued; the commit is held
    assert not sending.done()
    sending.cancel()
    await asyncio.gather(sending, return_exceptions=True)
    held.release.set()

    async def committed() -> bool:
        return len(outbox_order(fed3.homes[NL], DE)) == 2

    await wait_for(committed, timeout=5)
    given_up = outbox_order(fed3.homes[NL], DE)[-1]
    await until_delivered(nl, given_up, state="settled", timeout=5)
    assert received_from(fed3.homes[DE], NL)[-1] == given_up
