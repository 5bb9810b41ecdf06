"""Erasure is crypto-shredding that also defeats older copies: after `Store.erase_message`, the
database, its WAL, a copy taken before, today's master key and today's keystore together
neither show the message nor unwrap its data key; every path that would use it says ERASED."""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from accord.v1 import local_pb2
from node.app import Node
from node.client import connect
from node.errors import ConfigError, NotFound
from node.store import Store, StoredMessage
from node.store.db import keystore_path
from node.store.erasure import rewrap_legacy
from node.store.keys import KeyDestroyed, KeyRing, Sealed, aad_for
from tests.harness import Federation, add_user, held, incident, node_send

NL, DE = "NL-POL", "DE-BKA"
WHY = "Case 2026/0042: identify the suspect"


def copy_database(db: Path, into: Path) -> Path:
    """What a backup of the database files holds now: accord.db with its WAL."""
    into.mkdir()
    for suffix in ("", "-wal"):
        src = db.with_name(db.name + suffix)
        if src.exists():
            shutil.copy(src, into / (db.name + suffix))
    return into / db.name


def stored_key(copy: Path, message_id: str) -> tuple[Sealed, bytes]:
    with closing(sqlite3.connect(copy)) as conn:
        row = conn.execute(
            "SELECT ciphertext, wrapped_key, key_id, sender, purpose, tlp, handling_codes "
            "FROM messages WHERE message_id = ?",
            (message_id,),
        ).fetchone()
    ciphertext, wrapped, key_id, sender, purpose, tlp, handling = row
    aad = aad_for(
        sender,
        message_id,
        purpose=purpose,
        tlp=tlp,
        handling_codes=handling.split(",") if handling else (),
    )
    return Sealed(ciphertext, wrapped, key_id), aad


async def read(node: Node, token: str, message_id: str) -> grpc.aio.AioRpcError | str:
    async with connect(node.config.home, token=token) as c:
        try:
            got = await c.api.Get(local_pb2.GetRequest(message_id=message_id, justification=WHY))
        except grpc.aio.AioRpcError as exc:
            return exc
    return str(got.content.incident.narrative)


def files_holding(home: Path, needle: bytes, *also: Path) -> list[Path]:
    return [p for p in (*home.rglob("*"), *also) if p.is_file() and needle in p.read_bytes()]


async def test_an_erased_message_is_gone_from_every_copy_and_every_path(
    fed2: Federation, tmp_short: Path
) -> None:
    nl, de = await fed2.start_all()
    token = await add_user(de, "dirk", "supervisor")
    secret = "Erase-me-4c1d: the informant's address is Hoofdstraat 12"
    kept = "Keep-me-9e2b: the van was grey"
    gone = await node_send(nl, incident(to=[DE], narrative=secret))
    stays = await node_send(nl, incident(to=[DE], narrative=kept))
    await held(de, gone.message_id, sender=NL)
    await held(de, stays.message_id, sender=NL)
    assert await read(de, token, gone.message_id) == secret

    before = copy_database(de.config.database, tmp_short / "backup")
    sealed, aad = stored_key(before, gone.message_id)
    # The copy opens with the keys of the day: what erasure has to defeat.
    assert secret.encode() in de.store.keys.open(sealed, aad)
    assert sealed.key_id is not None
    with closing(sqlite3.connect(keystore_path(de.config.database))) as ks:
        (old_entry,) = ks.execute(
            "SELECT wrapped FROM keys WHERE id = ?", (sealed.key_id,)
        ).fetchone()

    await de.store.erase_message(
        gone.message_id, direction="in", reason="erasure request", actor="dirk"
    )

    # Every path refuses it, with the reason.
    refused = await read(de, token, gone.message_id)
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() == grpc.StatusCode.NOT_FOUND
    assert dict(refused.trailing_metadata() or ())["accord-reason"] == "ERASED"
    async with connect(de.config.home, token=token) as c:
        with pytest.raises(grpc.aio.AioRpcError) as forward:
            await c.api.Forward(
                local_pb2.ForwardRequest(message_id=gone.message_id, to=NL, justification=WHY)
            )
        assert dict(forward.value.trailing_metadata() or ())["accord-reason"] == "ERASED"
    reply = incident(to=[NL], narrative="an answer")
    reply.in_reply_to = gone.message_id
    with pytest.raises(Exception, match="ERASED"):
        await node_send(de, reply)

    # The tombstone keeps who, what digest, when, why and by whom; the access log says so.
    row = await de.store.get_message(gone.message_id, sender=NL)
    assert row is not None and row.sealed is None and row.erased_at is not None
    assert (row.erase_reason, row.erased_by) == ("erasure request", "dirk")
    sent = await nl.store.get_message(gone.message_id, direction="out")
    assert sent is not None and row.content_sha256 == sent.content_sha256
    assert (row.sender, row.received_at) == (NL, row.received_at) and row.retain_until
    entries = await de.access_store.entries(message_id=gone.message_id)
    assert any(e.action == "erase" and e.outcome == "erased" for e in entries)

    # The other message of the same bucket was moved under a new key and still reads.
    assert await read(de, token, stays.message_id) == kept

    # Today's master key and today's keystore, read from their files, do not unwrap the key
    # in the earlier copy; the destroyed key's bytes are in no file under the home.
    ring = KeyRing.load(de.config.master_key)
    keystore = ring.open_keystore(keystore_path(de.config.database))
    try:
        assert keystore.key(sealed.key_id) is None
        with pytest.raises(KeyDestroyed):
            ring.open(sealed, aad)
    finally:
        keystore.close()
    assert files_holding(de.config.home, old_entry) == []
    # Nor does any file, the copy included, hold its plaintext.
    assert (
        files_holding(de.config.home, secret.encode(), before, before.with_name("accord.db-wal"))
        == []
    )


async def test_erasing_what_is_not_there_says_so(fed2: Federation) -> None:
    _, de = await fed2.start_all()
    with pytest.raises(NotFound):
        await de.store.erase_message(
            "0190a0a0-0000-7000-8000-0000000000ff", direction="in", reason="x", actor="y"
        )


async def test_rows_sealed_under_the_master_key_move_under_the_keystore(tmp_short: Path) -> None:
    """Migration 050 and the re-wrap at open: a row whose data key the master key wrapped
    (before the keystore) is re-wrapped under its expiry day's key, and opens as before."""
    db = tmp_short / "accord.db"
    keys = KeyRing(os.urandom(32))
    mid = "0190a0a0-0000-7000-8000-000000000011"
    aad = aad_for(NL, mid, purpose="missing-persons", tlp="GREEN", handling_codes=())
    legacy = keys.seal(b"sealed before the keystore", aad)  # no keystore yet: master-wrapped
    assert legacy.key_id is None
    store = await Store.open(db, keys=keys)
    try:
        until = datetime(2031, 5, 17, 12, 0, tzinfo=UTC)
        now = datetime.now(UTC)
        row = StoredMessage(
            message_id=mid,
            sender=NL,
            direction="in",
            type="REQUEST_INFO",
            purpose="missing-persons",
            agreement_id="AGR-TEST",
            correlation_id=mid,
            in_reply_to="",
            tlp="GREEN",
            created_at=now,
            received_at=now,
            retain_until=until,
            content_sha256=b"\0" * 32,
            signature=b"not checked by the store",
            sealed=legacy,
        )
        await store.writer.submit([store.message_txn(row)])
        assert await rewrap_legacy(store) == 1
        moved = await store.get_message(mid)
        assert moved is not None and moved.sealed is not None
        assert moved.sealed.key_id is not None and moved.sealed.key_id.startswith("2031-05-17/")
        assert moved.sealed.wrapped_key != legacy.wrapped_key
        assert store.open_content(moved) == b"sealed before the keystore"
        assert await rewrap_legacy(store) == 0
    finally:
        await store.close()


async def test_a_rotation_cut_short_is_finished_by_the_next_sweep(fed2: Federation) -> None:
    """A node that died after giving a bucket its new key, before re-wrapping the bucket's
    rows and destroying the old key: the next sweep moves the rows and destroys the key."""
    nl, de = await fed2.start_all()
    sent = [await node_send(nl, incident(to=[DE], narrative=f"row {i}")) for i in range(3)]
    for s in sent:
        await held(de, s.message_id, sender=NL)
    first = await de.store.get_message(sent[0].message_id, sender=NL)
    assert first is not None and first.sealed is not None and first.sealed.key_id is not None
    old = first.sealed.key_id
    keystore = de.store.keys.keystore
    assert keystore is not None
    keystore.rotate(old.rsplit("/", 1)[0])
    assert (await de.sweeper.sweep()).keys_destroyed == 1
    assert keystore.key(old) is None
    for s in sent:
        row = await de.store.get_message(s.message_id, sender=NL)
        assert row is not None and row.sealed is not None and row.sealed.key_id != old
        content = de.store.open_content(row)
        assert content is not None and b"row " in content


async def test_a_node_whose_keystore_is_gone_refuses_to_start(fed2: Federation) -> None:
    nl, de = await fed2.start_all()
    sent = await node_send(nl, incident(to=[DE]))
    await held(de, sent.message_id, sender=NL)
    await fed2.stop(DE)
    keystore_path(de.config.database).unlink()
    with pytest.raises(ConfigError, match=r"accord-keys\.db is missing"):
        await fed2.start(DE)
