"""The audit log on a real node: entries as leaves of a tree kept across restarts, checkpoints
signed every N entries and at shutdown, rows no SQL can change, the old access log moved in,
and evidence (entries, inclusion proofs, a checkpoint) for one message."""

from __future__ import annotations

import itertools
import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from certs.ca import load_cert
from node import config as config_mod
from node import merkle
from node.app import Node
from node.audit.checkpoint import NoteKey, open_checkpoint, origin_for
from node.audit.verify import (
    FIELDS,
    AuditEntry,
    LogEntry,
    Report,
    canonical,
    format_time,
    parse_entry,
    verify_log,
)
from node.errors import AuditLogDamaged
from node.policy.access import Role, User
from node.signing import public_key_of
from node.store import Store
from node.store.audit import Filters, entry_txn
from node.store.db import _scripts
from node.store.keys import KeyRing
from tests.harness import (
    FEDERATION,
    Federation,
    add_user,
    liaison,
    node_send,
    until_delivered,
)

NL, DE = "NL-POL", "DE-BKA"


def note_key(fed: Federation, agency: str) -> NoteKey:
    """The node's checkpoint key, from its certificate (as an auditor would take it)."""
    cert = load_cert(fed.homes[agency] / "node.pem")
    return NoteKey(origin_for(FEDERATION, agency), public_key_of(cert))


def read_log(home: Path) -> tuple[list[LogEntry], list[bytes]]:
    """The entries and checkpoints as the database file holds them."""
    with closing(sqlite3.connect(home / "accord.db")) as db:
        entries = [
            LogEntry(seq, bytes(data), bytes(leaf))
            for seq, data, leaf in db.execute(
                "SELECT seq, CAST(data AS BLOB), leaf_hash FROM audit_log ORDER BY seq"
            )
        ]
        notes = [
            bytes(n) for (n,) in db.execute("SELECT note FROM audit_checkpoints ORDER BY size")
        ]
    return entries, notes


def verified(fed: Federation, agency: str) -> Report:
    entries, notes = read_log(fed.homes[agency])
    return verify_log(entries, notes, note_key(fed, agency))


async def test_entries_are_leaves_of_one_tree_signed_every_n_and_at_shutdown(
    fed2: Federation,
) -> None:
    nl, de = await fed2.start_all()
    de.audit.journal.every = 2
    sent = [await node_send(nl, liaison(to=[DE])) for _ in range(3)]
    await until_delivered(nl, *sent)
    await fed2.stop(DE)
    entries, notes = read_log(fed2.homes[DE])
    actions = [(e.actor, e.action, e.outcome, e.message_id) for e in map(parse_entry, (
        d for _, d, _ in entries))]  # fmt: skip
    assert actions[-3:] == [("node", "collect", "accepted", s.message_id) for s in sent]
    sizes = [open_checkpoint(n, note_key(fed2, DE)).size for n in notes]
    # One each time the count passed a multiple of 2, and one at shutdown over all of them.
    assert sizes[-1] == len(entries)
    assert all(b // 2 > a // 2 for a, b in itertools.pairwise(sizes[:-1]))
    report = verified(fed2, DE)
    assert report.ok, report.findings
    assert report.sealed == report.entries == len(entries)

    # Restarted, the node goes on from the right edge it left: one tree, still verified.
    de = await fed2.start(DE)
    more = await node_send(nl, liaison(to=[DE]))
    await until_delivered(nl, more)
    await fed2.stop(DE)
    after, _ = read_log(fed2.homes[DE])
    assert after[: len(entries)] == entries and len(after) > len(entries)
    report = verified(fed2, DE)
    assert report.ok, report.findings
    assert report.sealed == len(after)
    # The sender logged each disclosure, with its recipient.
    sends = [parse_entry(e.data) for e in await nl.audit.query(Filters(action="send"))]
    assert [(e.message_id, e.peer) for e in sends] == [(s.message_id, DE) for s in [*sent, more]]


async def test_no_sql_changes_or_deletes_an_entry_a_node_or_a_checkpoint(fed2: Federation) -> None:
    nl, _ = await fed2.start_all()
    await add_user(nl, "officer", "liaison_officer")
    for n in range(16):  # subtrees of 16 entries are stored
        await nl.access_store.log(at=fed2.clock.now(), user="officer", action="list",
                                  outcome="granted", detail=str(n))  # fmt: skip
    await nl.audit.sign_now()
    await fed2.stop(NL)
    with closing(sqlite3.connect(fed2.homes[NL] / "accord.db")) as db:
        for table, change in (
            ("audit_log", "UPDATE audit_log SET data = 'x'"),
            ("audit_log", "DELETE FROM audit_log"),
            ("audit_nodes", "UPDATE audit_nodes SET hash = x'00'"),
            ("audit_nodes", "DELETE FROM audit_nodes"),
            ("audit_checkpoints", "UPDATE audit_checkpoints SET note = x'00'"),
            ("audit_checkpoints", "DELETE FROM audit_checkpoints"),
        ):
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, table
            with pytest.raises(sqlite3.IntegrityError, match="never"):
                db.execute(change)


async def test_the_access_log_moves_into_the_audit_log_in_its_order(tmp_short: Path) -> None:
    """A database from before the audit log: its access log entries become the first leaves."""
    path = tmp_short / "old.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at TEXT NOT NULL)"
        )
        for version, name, sql in _scripts():
            if version >= 60:
                continue
            db.executescript(f"BEGIN;\n{sql}\nINSERT INTO schema_migrations VALUES "
                             f"({version}, '{name}', 'then');\nCOMMIT;")  # fmt: skip
        old = [
            ("2026-11-01T10:00:00+00:00", "alice", "consult", "m1", "missing-persons", "case 1",
             "", "granted", ""),
            ("2026-11-01T10:05:00+00:00", "bob", "send", "m2", "counter-terrorism", "", "DE-BKA",
             "queued", ""),
            ("2026-11-01T10:06:00+00:00", "bob", "list", "", "", "", "", "refused", "ROLE: no"),
        ]  # fmt: skip
        db.executemany(
            "INSERT INTO access_log (at, user_name, action, message_id, purpose, justification, "
            "recipient, outcome, detail) VALUES (?,?,?,?,?,?,?,?,?)",
            old,
        )
    store = await Store.open(path, keys=KeyRing.generate())
    try:
        stored = await store.audit.query(Filters())
    finally:
        await store.close()
    moved = [parse_entry(e.data) for e in stored]
    assert [
        (e.seq, e.at, e.actor, e.action, e.message_id, e.purpose, e.justification, e.peer,
         e.outcome, e.detail)
        for e in moved
    ] == [(n, datetime.fromisoformat(row[0]).astimezone(UTC), *row[1:])
          for n, row in enumerate(old, 1)]  # fmt: skip
    with closing(sqlite3.connect(path)) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "access_log" not in tables and "audit_import" not in tables
    # The tree over them is the one their bytes make (no checkpoint yet: no key signed one).
    key = NoteKey(origin_for(FEDERATION, NL), ec.generate_private_key(ec.SECP256R1()).public_key())
    assert verify_log([LogEntry(e.seq, e.data, e.leaf_hash) for e in stored], [], key).ok


async def test_evidence_for_a_message_is_proven_against_a_signed_checkpoint(
    fed2: Federation,
) -> None:
    nl, de = await fed2.start_all()
    sent = await node_send(nl, liaison(to=[DE]))
    await until_delivered(nl, sent)
    evidence = await de.audit.evidence_for(sent.message_id)
    checkpoint = open_checkpoint(evidence.checkpoint, note_key(fed2, DE))
    assert [parse_entry(e.data).action for e in evidence.entries] == ["collect"]
    for e in evidence.entries:
        assert merkle.verify_inclusion(
            merkle.leaf_hash(e.data), e.seq - 1, checkpoint.size, e.proof, checkpoint.root
        )
    # Nothing new since: the same checkpoint serves again, no new one is signed.
    again = await de.audit.evidence_for(sent.message_id)
    assert again.checkpoint == evidence.checkpoint


@pytest.mark.parametrize(
    "text", ["", 'quote " and \\ back', "line\nbreak\ttab\x00\x1f\x7f", "é 中文 😀", "\u2028"]
)
def test_the_fast_encoding_is_json_dumps_with_sorted_keys(text: str) -> None:
    at = datetime(2026, 11, 29, 10, 0, 0, 5, tzinfo=UTC)
    entry = AuditEntry(7, at, text, text, text, text, text, text, text, text)
    fields = {name: getattr(entry, name) for name in FIELDS} | {"at": format_time(at)}
    expected = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical(entry) == expected.encode()
    assert parse_entry(canonical(entry)) == entry


# RFC 6962 section 2.1, written out as the RFC states it, to check the store's proofs against.
def _mth(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


def _subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [_mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*_subproof(m, leaves[:k], whole), _mth(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), _mth(leaves[:k])]


async def test_proofs_from_the_store_are_rfc_6962s(tmp_short: Path) -> None:
    store = await Store.open(tmp_short / "p.db", keys=KeyRing.generate())
    try:
        at = datetime(2026, 11, 29, tzinfo=UTC)
        for n in range(75):
            await store.writer.submit(
                [entry_txn(at=at, actor="node", action="test", outcome="ok", detail=str(n))]
            )
        leaves = [e.leaf_hash for e in await store.audit.query(Filters())]
        assert len(leaves) == 75
        for size in (1, 2, 15, 16, 17, 33, 64, 75):
            assert await store.audit.root(size) == _mth(leaves[:size])
            for seq in {1, size // 2 + 1, size}:
                assert await store.audit.inclusion(seq, size) == _path(seq - 1, leaves[:size])
            for old in {1, size // 3 + 1, size - 1} - {0}:
                if old < size:
                    proof = await store.audit.consistency(old, size)
                    assert proof == _subproof(old, leaves[:size], True)
    finally:
        await store.close()


async def test_a_user_change_whose_entry_cannot_be_written_is_not_made(fed2: Federation) -> None:
    """The change and its entry are one commit: the entry refused (a trigger here), the user's
    clearances stay as they were."""
    nl, _ = await fed2.start_all()
    await add_user(nl, "officer", "liaison_officer", purposes=["missing-persons"])
    with closing(sqlite3.connect(fed2.homes[NL] / "accord.db")) as db:
        db.execute(
            "CREATE TRIGGER no_entry BEFORE INSERT ON audit_log "
            "WHEN json_extract(NEW.data, '$.action') = 'set-clearances' "
            "BEGIN SELECT RAISE(ABORT, 'the audit log refused the entry'); END"
        )
    admin = User("admin", Role.ADMINISTRATOR, frozenset())
    with pytest.raises(sqlite3.IntegrityError, match="the audit log refused the entry"):
        await nl.operations.set_clearances(admin, name="officer", clearances=["counter-terrorism"])
    officer = await nl.access_store.user("officer")
    assert officer is not None and officer.clearances == frozenset({"missing-persons"})


async def test_a_log_cut_in_the_file_takes_no_more_entries(fed2: Federation) -> None:
    """Entries cut after a checkpoint: the node starts (so that an auditor can verify it), but
    nothing audited is done, and no checkpoint blesses the cut log."""
    nl, _ = await fed2.start_all()
    await add_user(nl, "officer", "liaison_officer")
    await fed2.stop(NL)  # a checkpoint over every entry
    with closing(sqlite3.connect(fed2.homes[NL] / "accord.db")) as db:
        db.execute("DROP TRIGGER audit_log_no_delete")
        db.execute("DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)")
        db.commit()
        notes = db.execute("SELECT count(*) FROM audit_checkpoints").fetchone()[0]
    nl = await Node.open(config_mod.load(fed2.homes[NL]), clock=fed2.clock)
    try:
        admin = User("admin", Role.ADMINISTRATOR, frozenset())
        with pytest.raises(AuditLogDamaged, match=r"checkpoint .* covers more"):
            await nl.operations.disable_user(admin, name="officer")
        officer = await nl.access_store.user("officer")
        assert officer is not None and not officer.disabled
    finally:
        await nl.stop(grace=0.1)
    with closing(sqlite3.connect(fed2.homes[NL] / "accord.db")) as db:
        assert db.execute("SELECT count(*) FROM audit_checkpoints").fetchone()[0] == notes
