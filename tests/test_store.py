"""What is at rest under a node's home: encrypted bodies, per-message keys, tight permissions,
and migrations applied once."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import aiosqlite
import grpc
import pytest

from accord.v1 import local_pb2
from accord.v1 import message_pb2 as pb
from node.audit.verify import parse_entry
from node.client import connect
from node.errors import ConfigError
from node.signing import digest
from node.store import Store, StoredMessage
from node.store import writer as writer_module
from node.store.access import AccessStore, log_txn
from node.store.audit import Filters
from node.store.keys import KeyRing, Sealed, SealError, aad_for
from node.store.writer import GroupCommitWriter, Statement
from tests.harness import Federation, add_user, held, incident, node_send, until_delivered, wait_for

NL, DE = "NL-POL", "DE-BKA"


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def files_under(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file()]


async def send_and_wait(fed: Federation, narrative: str) -> str:
    nl = fed.nodes[NL]
    sent = await node_send(nl, incident(to=[DE], narrative=narrative))
    await until_delivered(nl, sent)
    return sent.message_id


async def test_bodies_are_encrypted_in_every_file_of_both_nodes(fed2: Federation) -> None:
    await fed2.start_all()
    marker = "Unmistakable-narrative-7f3a9c: the courier hid it in the spare tyre."
    message_id = await send_and_wait(fed2, marker)
    de = fed2.nodes[DE]
    stored = await de.store.get_message(message_id, sender=NL)
    assert stored is not None
    content = de.store.open_content(stored)
    assert content is not None and marker.encode() in content  # the node itself can read it

    needles = (marker.encode(), marker.encode("utf-16-le"), b"spare tyre")
    for phase in ("running", "stopped"):  # before and after the WAL is checkpointed
        for agency in (NL, DE):
            home = fed2.homes[agency]
            db_files = [p for p in files_under(home) if p.name.startswith("accord.db")]
            assert home / "accord.db" in db_files
            if phase == "running":
                assert home / "accord.db-wal" in db_files
            for path in files_under(home):
                data = path.read_bytes()
                for needle in needles:
                    assert needle not in data, f"{phase}: plaintext body in {path}"
        if phase == "running":
            await fed2.stop_all()


async def test_each_message_has_its_own_data_key(fed2: Federation) -> None:
    await fed2.start_all()
    same = "Identical narrative in both messages."
    ids = [await send_and_wait(fed2, same) for _ in range(2)]
    de = fed2.nodes[DE]
    rows = await de.store.list_messages(direction="in")
    sealed = {m.message_id: m.sealed for m in rows}
    a, b = (sealed[i] for i in ids)
    assert a is not None and b is not None
    second = next(m for m in rows if m.message_id == ids[1])

    def aad(message_id: str) -> bytes:
        return aad_for(
            NL,
            message_id,
            purpose=second.purpose,
            tlp=second.tlp,
            handling_codes=second.handling_codes,
        )

    assert a.wrapped_key != b.wrapped_key
    assert a.ciphertext != b.ciphertext
    # The data key is 32 bytes, wrapped with AES-GCM: nonce (12) + key (32) + tag (16).
    assert len(a.wrapped_key) == 12 + 32 + 16
    # One message's key does not open another's body, and shredding one key loses only that body.
    with pytest.raises(SealError):
        de.store.keys.open(Sealed(b.ciphertext, a.wrapped_key), aad(ids[1]))
    with pytest.raises(SealError):  # a body cannot be moved to another message's row
        de.store.keys.open(a, aad(ids[1]))
    assert de.store.keys.open(b, aad(ids[1]))


async def test_home_and_secrets_are_private_even_with_a_permissive_umask(
    fed2: Federation,
) -> None:
    with umask(0):
        await fed2.start_all()
        await send_and_wait(fed2, "Permissions check.")
    for agency in (NL, DE):
        home = fed2.homes[agency]
        assert stat.S_IMODE(home.stat().st_mode) == 0o700, home
        for name in ("master.key", "node.key", "accord.db", "accord.db-wal", "accord.db-shm",
                     "config.toml"):  # fmt: skip
            path = home / name
            assert path.exists(), path
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} is {path.stat().st_mode:o}"
        sock = home / "node.sock"
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        for path in files_under(home):
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o077 == 0, f"{path} is readable by others ({mode:o})"
        for path in (p for p in home.rglob("*") if p.is_dir()):
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is open to others"


def inbound(store: Store, message_id: str, content: bytes) -> StoredMessage:
    now = datetime.now(UTC)
    return StoredMessage(
        message_id=message_id,
        sender=NL,
        direction="in",
        type="REQUEST_INFO",
        purpose="missing-persons",
        agreement_id="AGR-TEST",
        correlation_id=message_id,
        in_reply_to="",
        tlp="GREEN",
        created_at=now,
        received_at=now,
        retain_until=None,
        content_sha256=digest(content),
        signature=b"not checked by the store",
        sealed=store.keys.seal(
            content,
            aad_for(NL, message_id, purpose="missing-persons", tlp="GREEN", handling_codes=()),
        ),
    )


def migration_files() -> list[tuple[int, str]]:
    folder = resources.files("node.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append((int(number), rest.removesuffix(".sql")))
    return sorted(found)


def applied(db: Path) -> list[tuple[int, str, str]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY 1")
        return [(int(v), str(n), str(t)) for v, n, t in rows]


async def test_migrations_are_recorded_and_applied_once(tmp_short: Path) -> None:
    db = tmp_short / "accord.db"
    keys = KeyRing(os.urandom(32))
    store = await Store.open(db, keys=keys)
    try:
        first = applied(db)
        assert [(v, n) for v, n, _ in first] == migration_files()
        # Numbers rise and start at 1; ranges are handed out per branch, so gaps are allowed.
        versions = [v for v, _, _ in first]
        assert versions[0] == 1 and versions == sorted(set(versions)), "numbering is not ordered"
        content = b"kept across re-opening"
        message = inbound(store, "0190a0a0-0000-7000-8000-000000000001", content)
        await store.writer.submit([store.message_txn(message)])
    finally:
        await store.close()

    for _ in range(2):
        store = await Store.open(db, keys=keys)
        try:
            assert applied(db) == first  # nothing re-applied, nothing re-stamped
            assert await store.count("messages") == 1
            got = await store.get_message(message.message_id)
            assert got is not None and store.open_content(got) == content
        finally:
            await store.close()


async def test_a_different_master_key_opens_nothing(tmp_short: Path) -> None:
    db = tmp_short / "accord.db"
    store = await Store.open(db, keys=KeyRing(os.urandom(32)))
    mid = "0190a0a0-0000-7000-8000-000000000002"
    await store.writer.submit([store.message_txn(inbound(store, mid, b"secret"))])
    await store.close()
    store = await Store.open(db, keys=KeyRing(os.urandom(32)))
    try:
        got = await store.get_message(mid)
        assert got is not None
        with pytest.raises(SealError):
            store.open_content(got)
        # The keystore's keys are wrapped by the master key: the start is refused.
        with pytest.raises(ConfigError, match=r"accord-keys\.db does not open with master\.key"):
            await store.check_keystore()
    finally:
        await store.close()


async def test_an_older_database_gets_only_the_missing_migrations(tmp_short: Path) -> None:
    """A database from an older release (only the first migration) is brought up to date."""
    db = tmp_short / "accord.db"
    folder = resources.files("node.store") / "migrations"
    first_sql = next(e for e in folder.iterdir() if e.name.startswith("001_")).read_text()
    with closing(sqlite3.connect(db)) as conn:
        conn.executescript(
            "CREATE TABLE schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);"
            f"{first_sql};"
            "INSERT INTO schema_migrations VALUES (1, 'initial', '2020-01-01 00:00:00');"
        )
    store = await Store.open(db, keys=KeyRing(os.urandom(32)))
    await store.close()
    rows = applied(db)
    assert [(v, n) for v, n, _ in rows] == migration_files()
    assert rows[0] == (1, "initial", "2020-01-01 00:00:00")  # left as it was


async def test_a_bad_unit_in_a_group_commit_fails_alone(tmp_short: Path) -> None:
    """Units queued together share one transaction; a statement that fails in one of them fails
    that unit only, and the units around it are committed, in order."""
    store = await Store.open(tmp_short / "accord.db", keys=KeyRing(os.urandom(32)))
    try:
        first = inbound(store, "0190a0a0-0000-7000-8000-000000000011", b"first")
        last = inbound(store, "0190a0a0-0000-7000-8000-000000000012", b"last")
        bad = ("INSERT INTO deliveries (seq, message_id, recipient, state) VALUES (?,?,?,?)",
               (999, "x", DE, "not-a-state"))  # fmt: skip
        # Queued in one step, so the writer takes them as one group.
        futures = [
            store.writer.enqueue([store.message_txn(first)]),
            store.writer.enqueue([bad]),
            store.writer.enqueue([store.message_txn(last)]),
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], sqlite3.IntegrityError)
        assert await store.count("messages") == 2
        assert await store.count("deliveries") == 0
        assert store.writer.units == 2
    finally:
        await store.close()


async def test_of_two_decisions_at_once_only_the_one_that_took_queues_the_message(
    tmp_short: Path,
) -> None:
    """A rejection and an approval of the same held message commit together (both found it
    pending): the rejection, first in the queue, stands, and nothing reaches the outbox."""
    store = await Store.open(tmp_short / "accord.db", keys=KeyRing(os.urandom(32)))
    try:
        approvals = AccessStore(store)
        held = replace(
            inbound(store, "0190a0a0-0000-7000-8000-000000000078", b"held"), direction="out"
        )
        now = datetime.now(UTC)
        await approvals.hold_for_approval(held, recipients=[DE], author="alice", now=now)
        common = {
            "message_id": held.message_id,
            "author": "alice",
            "note": "",
            "now": now,
            "recipients": [DE],
        }

        def entry(user: str) -> Callable[[str | None], Statement]:
            return lambda why: log_txn(
                at=now, user=user, action="decide", outcome=why or "took", detail=why or ""
            )

        answers = await asyncio.gather(
            approvals.decide(approver="bob", approve=False, entry=entry("bob"), **common),  # type: ignore[arg-type]
            approvals.decide(approver="carol", approve=True, entry=entry("carol"), **common),  # type: ignore[arg-type]
        )
        assert list(answers) == [None, "already rejected by bob"]
        decided = await approvals.approval(held.message_id)
        assert decided is not None and (decided.state, decided.decided_by) == ("rejected", "bob")
        assert await store.count("deliveries") == 0
        # Each decision's audit entry says whether it took, committed with it.
        logged = [parse_entry(e.data) for e in await store.audit.query(Filters(action="decide"))]
        assert [(e.actor, e.outcome) for e in logged] == [
            ("bob", "took"),
            ("carol", "already rejected by bob"),
        ]
    finally:
        await store.close()


async def test_a_locked_database_fails_a_group_once_not_unit_by_unit(tmp_short: Path) -> None:
    """When the database itself refuses (here: another process holds its write lock), every
    unit of the group gets the error after one attempt; retrying unit by unit would only repeat
    the busy wait for each."""
    db = tmp_short / "accord.db"
    store = await Store.open(db, keys=KeyRing(os.urandom(32)))
    attempts: list[int] = []

    async def counted(units: int) -> None:
        attempts.append(units)

    store.writer.faults.before_commit = counted
    store.writer.busy_timeout_ms = 100
    with closing(sqlite3.connect(db, isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")
        try:
            messages = [
                inbound(store, f"0190a0a0-0000-7000-8000-00000000009{i}", b"x") for i in range(3)
            ]
            units = [store.writer.enqueue([store.message_txn(m)]) for m in messages]
            results = await asyncio.gather(*units, return_exceptions=True)
        finally:
            other.execute("ROLLBACK")
    try:
        assert all(isinstance(r, sqlite3.OperationalError) for r in results), results
        assert attempts == [3]
        # Found locked inline (no wait there), then waited for on the store's thread.
        assert (store.writer.locked, store.writer.thread_commits) == (1, 1)
        assert await store.count("messages") == 0
    finally:
        await store.close()


async def test_commits_run_on_the_loop_thread_and_move_to_the_store_thread_after_a_slow_one(
    tmp_short: Path,
) -> None:
    """A transaction runs on the event loop's thread; a COMMIT that takes longer than
    `slow_commit` (a slow disk, played here by the clock that times it) sends the next
    `thread_spell` transactions to the connection's thread, after which they come back. Each
    unit records the thread it ran on."""

    class Disk:
        slow = False
        now = 0.0

        def __call__(self) -> float:
            self.now += 1.0 if self.slow else 0.0
            return self.now

    disk = Disk()
    store = await Store.open(tmp_short / "accord.db", keys=KeyRing(os.urandom(32)))
    store.writer.faults.clock = disk
    store.writer.thread_spell = 2
    loop_thread = threading.get_ident()

    def where(conn: sqlite3.Connection) -> int:
        return threading.get_ident()

    try:
        ran = [await store.writer.enqueue_call(where)]
        assert store.writer.slow_commits == 0
        disk.slow = True
        ran.append(await store.writer.enqueue_call(where))
        disk.slow = False
        assert store.writer.slow_commits == 1
        for i in range(3):
            m = inbound(store, f"0190a0a0-0000-7000-8000-00000000010{i}", b"after")
            await store.writer.submit([store.message_txn(m)])
            ran.append(await store.writer.enqueue_call(where))
        # Committed wherever they ran.
        assert await store.count("messages") == 3
    finally:
        await store.close()
    on_loop = [t == loop_thread for t in ran]
    # where, the slow one, then (insert, where) x 3: the spell covers the two commits after
    # the slow one.
    assert on_loop == [True, True, False, True, True], on_loop
    assert store.writer.thread_commits == 2


async def test_a_lock_held_elsewhere_is_waited_for_off_the_loop(tmp_short: Path) -> None:
    """Another process holds the write lock: the inline transaction does not wait for it (the
    loop goes on: this test runs while the unit is pending), the transaction is run on the
    store's thread, which waits, and it commits once the lock is let go."""
    db = tmp_short / "accord.db"
    store = await Store.open(db, keys=KeyRing(os.urandom(32)))
    store.writer.busy_timeout_ms = 5000
    loop = asyncio.get_running_loop()
    try:
        with closing(sqlite3.connect(db, isolation_level=None)) as other:
            other.execute("BEGIN EXCLUSIVE")
            m = inbound(store, "0190a0a0-0000-7000-8000-000000000501", b"waited")
            start = loop.time()
            unit = store.writer.enqueue([store.message_txn(m)])

            async def found_locked() -> bool:
                return store.writer.locked > 0

            await wait_for(found_locked, timeout=2)
            # Seen at once, not after a busy wait on the loop (that would be the 5 s above).
            assert store.writer.locked == 1 and loop.time() - start < 2
            assert not unit.done()
            other.execute("ROLLBACK")
        await unit
        assert store.writer.thread_commits == 1
        assert await store.count("messages") == 1
    finally:
        await store.close()


async def test_a_full_disk_is_reported_as_such(tmp_short: Path) -> None:
    """SQLite rolls back by itself on SQLITE_FULL; the writer must not try again and replace
    the error callers see with 'no transaction is active'. (The database is made full with
    max_page_count.)"""
    store = await Store.open(tmp_short / "accord.db", keys=KeyRing(os.urandom(32)))
    try:
        pages = await store.writer.enqueue_call(
            lambda conn: conn.execute("PRAGMA page_count").fetchone()[0]
        )
        await store.writer.enqueue_call(
            lambda conn: conn.execute(f"PRAGMA max_page_count = {pages + 4}").fetchall()
        )
        m = inbound(store, "0190a0a0-0000-7000-8000-000000000502", os.urandom(200_000))
        with pytest.raises(sqlite3.OperationalError, match="full"):
            await store.writer.submit([store.message_txn(m)])
        assert await store.count("messages") == 0
    finally:
        await store.close()


async def test_checkpoints_copy_the_wal_into_the_database_file_between_commits(
    tmp_short: Path,
) -> None:
    """SQLite's own checkpoint (inside a COMMIT, which may run on the loop's thread) is off;
    the writer checkpoints on the connection's thread once the WAL holds `checkpoint_frames`
    pages (read from the WAL index after each commit)."""
    db = tmp_short / "accord.db"
    store = await Store.open(db, keys=KeyRing(os.urandom(32)))
    try:
        # A per-connection setting: read through the writer's own connection.
        setting = await store.writer.enqueue_call(
            lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
        assert setting == 0
        # Pages the migrations freed (the access log's table, moved into the audit log) are
        # reused before the file grows.
        free = await store.writer.enqueue_call(
            lambda conn: conn.execute("PRAGMA freelist_count").fetchone()[0]
        )
        store.writer.checkpoint_frames = 10**9
        # Pages freed by migrations (a dropped table) are reused before the file grows.
        free = await store.writer.enqueue_call(
            lambda conn: conn.execute("PRAGMA freelist_count").fetchone()[0]
        )
        for i in range(5):
            m = inbound(store, f"0190a0a0-0000-7000-8000-00000000020{i}", os.urandom(4096))
            await store.writer.submit([store.message_txn(m)])
        before = db.stat().st_size
        assert store.writer.checkpoints == 0
        store.writer.checkpoint_frames = 1
        m = inbound(store, "0190a0a0-0000-7000-8000-000000000209", os.urandom(4096))
        await store.writer.submit([store.message_txn(m)])

        async def checkpointed() -> bool:
            return store.writer.checkpoints == 1

        await wait_for(checkpointed, timeout=5)
        # The six messages' pages, copied out of the WAL into the database file.
        assert db.stat().st_size >= before + (6 - free) * 4096
    finally:
        await store.close()


async def test_a_few_large_batches_are_checkpointed_by_their_size(tmp_short: Path) -> None:
    """A receiver admits a whole frame (hundreds of envelopes) as one unit: the checkpoint
    follows the WAL's length in pages, not the count of units or commits, so the WAL stays
    bounded (here: 8 commits of ~0.5 MB, about 170 pages each: a checkpoint after the sixth)."""
    store = await Store.open(tmp_short / "accord.db", keys=KeyRing(os.urandom(32)))
    try:
        for commit in range(8):
            if commit == 5:  # about 850 pages so far: not yet
                assert store.writer.checkpoints == 0
            arrivals = []
            for n in range(120):
                mid = f"0190a0a0-0000-7000-8000-00000{commit:03d}{n:04d}"
                m = inbound(store, mid, os.urandom(4000))
                arrivals.append((m.message_id, store.message_txn(m)))
            await store.admit(NL, arrivals, directory_serial=1)

        async def checkpointed() -> bool:
            return store.writer.checkpoints >= 1

        await wait_for(checkpointed, timeout=5)
        assert store.writer.commits == 8
    finally:
        await store.close()


async def test_without_a_readable_wal_index_checkpoints_follow_the_commits(
    tmp_short: Path,
) -> None:
    """Where the WAL's length cannot be read (no -shm file where it was looked for), the writer
    checkpoints every `checkpoint_commits` commits instead."""
    db = tmp_short / "plain.db"
    conn = await aiosqlite.connect(db, isolation_level=None, check_same_thread=False)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA wal_autocheckpoint=0")
    await conn.execute("CREATE TABLE t (x)")
    writer = GroupCommitWriter(conn, wal_index=tmp_short / "not-there-shm")
    writer.checkpoint_commits = 3
    writer.start()
    try:
        for i in range(3):
            await writer.submit([("INSERT INTO t VALUES (?)", (i,))])

        async def checkpointed() -> bool:
            return writer.checkpoints == 1

        await wait_for(checkpointed, timeout=5)
    finally:
        await writer.close()
        await conn.close()


async def test_the_wal_index_of_a_symlinked_database_is_found(tmp_short: Path) -> None:
    """SQLite names the WAL index after the file a symlinked database points to; the writer
    reads the WAL's length there (not the symlink's name, which has no -shm beside it)."""
    real = tmp_short / "real.db"
    (tmp_short / "accord.db").symlink_to(real)
    store = await Store.open(tmp_short / "accord.db", keys=KeyRing(os.urandom(32)))
    try:
        m = inbound(store, "0190a0a0-0000-7000-8000-000000000701", b"linked")
        await store.writer.submit([store.message_txn(m)])
        frames = store.writer._wal.frames()
        assert frames is not None and frames > 0
    finally:
        await store.close()


def test_an_extended_busy_code_counts_as_locked() -> None:
    """SQLITE_BUSY_SNAPSHOT and its kin carry SQLITE_BUSY in the low byte: BEGIN IMMEDIATE
    failing with one of them is a lock to wait for off the loop, like plain SQLITE_BUSY."""

    class Refusing:
        def execute(self, sql: str) -> None:
            exc = sqlite3.OperationalError("database is locked")
            exc.sqlite_errorcode = sqlite3.SQLITE_BUSY | (2 << 8)
            raise exc

    with pytest.raises(writer_module._Locked):
        writer_module._begin(Refusing())  # type: ignore[arg-type]


async def test_altered_markings_make_a_row_unreadable(fed3: Federation) -> None:
    """Item 11: TLP:RED is for supervisors. Changing the stored row's TLP to GREEN does not let
    a liaison officer read it: the row no longer opens (the markings are sealed with it), and
    a row sealed before markings were bound (seal 1) is checked against the TLP inside it."""
    nl, de, _ = await fed3.start_all()
    await add_user(de, "otto", "liaison_officer")
    await add_user(de, "sven", "supervisor")
    red = incident(to=[DE])
    red.tlp = pb.TLP_RED
    sent = [await node_send(nl, red) for _ in range(2)]
    for s in sent:
        await held(de, s.message_id, sender=NL)

    def alter(sql: str, *params: object) -> None:
        with closing(sqlite3.connect(de.config.database, timeout=10)) as db:
            db.execute(sql, params)
            db.commit()

    async def read(user: str, message_id: str) -> grpc.aio.AioRpcError | None:
        async with connect(de.config.home, user=user) as c:
            try:
                await c.api.Get(
                    local_pb2.GetRequest(message_id=message_id, justification="case 2026/0042 ok")
                )
            except grpc.aio.AioRpcError as exc:
                return exc
        return None

    first, second = (s.message_id for s in sent)
    alter("UPDATE messages SET tlp = 'GREEN' WHERE message_id = ?", first)
    for user in ("otto", "sven"):
        refused = await read(user, first)
        assert refused is not None and refused.code() == grpc.StatusCode.DATA_LOSS
        assert "not the ones it was sealed with" in (refused.details() or "")
    alter("UPDATE messages SET tlp = 'RED' WHERE message_id = ?", first)
    assert await read("sven", first) is None

    # A row as stored before migration 008 (seal 1: sender and id only), then altered.
    row = await de.store.get_message(second, sender=NL)
    assert row is not None and row.sealed is not None
    legacy = de.store.keys.seal(
        sent[1].content, aad_for(NL, second, purpose="", tlp="", handling_codes=(), version=1)
    )
    alter(
        "UPDATE messages SET seal = 1, tlp = 'GREEN', ciphertext = ?, wrapped_key = ?, "
        "key_id = ? WHERE message_id = ?",
        legacy.ciphertext,
        legacy.wrapped_key,
        legacy.key_id,
        second,
    )
    denied = await read("otto", second)
    assert denied is not None
    assert dict(denied.trailing_metadata() or ())["accord-denied"] == "TLP"
    assert await read("sven", second) is None
