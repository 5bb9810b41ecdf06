"""Group commit: many callers' writes share one transaction and one fsync.

Callers submit a unit of work (statements that must commit together) and await its commit.
The writer drains whatever has queued while the previous transaction was committing, groups
statements by SQL text into executemany calls (order of first appearance), and commits once.
A unit's future resolves only after COMMIT returns, so nothing is acknowledged before it is on
disk (PRAGMA synchronous=FULL in WAL mode). If a group's transaction fails because of one
unit's statements (a constraint, a bad parameter), its units are committed again one by one, so
that unit alone fails.

Where a transaction runs: on the event loop's own thread. On the connection's thread every
commit cost a hand-off each way, and binding each statement's parameters there fought the busy
loop for the GIL (SQLite releases it only inside its own calls): here, 10-20 % less CPU per
message and a third off the median latency at 800 msg/s, measured. The loop now waits for the
COMMIT's fsync, about 0.3 ms on the disks measured, and yields once after each commit. Two
things must not hold the loop:

- a slow disk: a COMMIT over `slow_commit` sends the next `thread_spell` transactions to the
  connection's thread, so it costs the loop one slow commit per spell, not every commit;
- a lock held by another process: inline, SQLite does not wait for a lock (busy timeout 0);
  a transaction that finds the database locked is run again at once on the connection's
  thread, which waits up to `busy_timeout_ms`, and starts a spell there.

WAL checkpoints, which write and fsync the database file, run on the connection's thread
between transactions (SQLite's automatic checkpoint, which would run inside a COMMIT, is turned
off in `Store.open`): as SQLite's would, once a commit leaves `checkpoint_frames` pages or
more in the WAL. The writer reads that count after each commit from the WAL index (the -shm
file's header, https://www.sqlite.org/walformat.html), one 4-byte read; without it, it
checkpoints every `checkpoint_commits` commits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import aiosqlite

from node.errors import StorageFull

log = logging.getLogger(__name__)

Statement = tuple[str, Sequence[Any]]


# Work that must read and write in the same transaction (the receiver's dedupe): run wherever
# the transaction runs, in queue order after the group's plain statements; its result is the
# unit's. It may run more than once (a group is committed again unit by unit after one unit's
# fault, each earlier attempt rolled back), so it must not act outside the connection.
InTransaction = Callable[[sqlite3.Connection], Any]


@dataclass(slots=True)
class _Unit:
    statements: Sequence[Statement]
    run: InTransaction | None = None
    done: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Journal(Protocol):
    """What the writer keeps in step with its transactions (the audit log, store/audit.py):
    rows of statements whose SQL is `sql` are handed to `append` instead of being executed,
    after the plain statements and before the units' functions; `seal` runs before COMMIT;
    `begin`, `commit` and `rollback` follow the transaction."""

    sql: str

    def begin(self) -> None: ...
    def append(self, conn: sqlite3.Connection, rows: list[Sequence[Any]]) -> None: ...
    def seal(self, conn: sqlite3.Connection) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


@dataclass(slots=True)
class Faults:
    """Test hooks the writer consults, so tests play a busy or slow writer without patching
    it; a node never sets them. `before_commit(units)` is awaited before each attempt at a
    group commit (`units`: how many units it holds); `clock` times each COMMIT (a fake one
    plays a slow disk)."""

    before_commit: Callable[[int], Awaitable[None]] | None = None
    clock: Callable[[], float] = time.perf_counter


def _transaction(
    conn: sqlite3.Connection,
    grouped: dict[str, list[Sequence[Any]]],
    runs: list[InTransaction],
    clock: Callable[[], float],
    journal: Journal | None = None,
) -> tuple[list[Any], float]:
    """All statements (the journal's rows to the journal), then each unit's function in order,
    then COMMIT (or ROLLBACK); the functions' results and the seconds the COMMIT took. Runs on
    whichever thread `GroupCommitWriter._transaction` chose."""
    _begin(conn)
    if journal is not None:
        journal.begin()
    try:
        for sql, rows in grouped.items():
            if journal is not None and sql == journal.sql:
                continue
            if len(rows) == 1:
                conn.execute(sql, rows[0])
            else:
                conn.executemany(sql, rows)
        if journal is not None and journal.sql in grouped:
            journal.append(conn, grouped[journal.sql])
        results = [run(conn) for run in runs]
        if journal is not None:
            journal.seal(conn)
        start = clock()
        conn.execute("COMMIT")
        took = clock() - start
    except BaseException:
        if journal is not None:
            journal.rollback()
        # SQLite has already rolled back after some errors (a full disk): a second ROLLBACK
        # would raise "no transaction is active" and hide the error that matters.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if journal is not None:
        journal.commit()
    return results, took


class _Locked(Exception):
    """BEGIN IMMEDIATE found the database locked by another connection: nothing has run."""

    def __init__(self, error: sqlite3.OperationalError) -> None:
        super().__init__(str(error))
        self.error = error


def _begin(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        # Extended codes (SQLITE_BUSY_SNAPSHOT, _RECOVERY, ...) carry the primary in the low byte.
        if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (
            sqlite3.SQLITE_BUSY,
            sqlite3.SQLITE_LOCKED,
        ):
            raise _Locked(exc) from exc
        raise


def _waiting_transaction(
    conn: sqlite3.Connection,
    grouped: dict[str, list[Sequence[Any]]],
    runs: list[InTransaction],
    busy_timeout_ms: int,
    clock: Callable[[], float],
    journal: Journal | None,
) -> tuple[list[Any], float]:
    """`_transaction` on the connection's thread, where waiting for a lock holds up no one;
    a lock still held after the wait is the callers' error."""
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    try:
        return _transaction(conn, grouped, runs, clock, journal)
    except _Locked as locked:
        raise locked.error from None
    finally:
        conn.execute("PRAGMA busy_timeout = 0")


def _checkpoint(conn: sqlite3.Connection) -> list[Any]:
    # Fetched to the end here, on the connection's thread: a cursor left with a row to read
    # keeps its statement open, and COMMIT then fails with "SQL statements in progress".
    return conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


# Errors that come from one unit's own statements (a constraint, a bad parameter), not from the
# database: after such an error the group is retried one unit at a time.
_ONE_UNITS_FAULT = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
)


# An inline COMMIT longer than this sends the next THREAD_SPELL transactions to the
# connection's thread; a COMMIT here takes about 0.3 ms (its fsync), 1-2 ms under load.
SLOW_COMMIT_SECONDS = 0.005
THREAD_SPELL = 100
# How long a transaction on the connection's thread waits for a lock another process holds
# (sqlite3's own default).
BUSY_TIMEOUT_MS = 5000
# A PASSIVE checkpoint once the WAL holds this many pages (SQLite's own default), or, where the
# WAL index cannot be read, every this many commits.
CHECKPOINT_FRAMES = 1000
CHECKPOINT_COMMITS = 250
_MX_FRAME = 16  # offset of mxFrame, the WAL's length in pages, in the wal-index header


class _WalIndex:
    """How many pages the WAL holds, read from the wal-index header in the -shm file. Only
    the writer writes, and it reads right after its own commit, so the header is settled."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._fd: int | None = None

    def frames(self) -> int | None:
        if self._path is None:
            return None
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDONLY)
            raw = os.pread(self._fd, 4, _MX_FRAME)
        except OSError:
            return None
        return int.from_bytes(raw, sys.byteorder) if len(raw) == 4 else None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class GroupCommitWriter:
    def __init__(
        self, conn: aiosqlite.Connection, *, batch_max: int = 512, wal_index: Path | None = None
    ) -> None:
        """`conn` must have been opened with check_same_thread=False: transactions run on the
        loop's thread and, after a slow one, on the connection's (never two at once).
        `wal_index`: the database's -shm file, to checkpoint by the WAL's length."""
        self._conn = conn
        self._wal = _WalIndex(wal_index)
        self._batch_max = batch_max
        self._queue: asyncio.Queue[_Unit | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.units = 0
        self.slow_commit = SLOW_COMMIT_SECONDS
        self.thread_spell = THREAD_SPELL
        self.busy_timeout_ms = BUSY_TIMEOUT_MS
        self.checkpoint_frames = CHECKPOINT_FRAMES
        self.checkpoint_commits = CHECKPOINT_COMMITS
        # Told each committed group's size and seconds (the node's metrics); None: nobody.
        self.observe: Callable[[int, float], None] | None = None
        self.thread_commits = 0  # transactions run on the connection's thread
        self.slow_commits = 0  # inline COMMITs that took longer than slow_commit
        self.locked = 0  # inline transactions that found the database locked
        self.checkpoints = 0
        self._on_thread = 0  # transactions still to run on the connection's thread
        self._commits_since_checkpoint = 0
        self._slow_logged_at = -1e9
        self._closing = False
        self.faults = Faults()
        self.journal: Journal | None = None  # the audit log (store/audit.py), once opened

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit")

    async def submit(self, statements: Sequence[Statement]) -> None:
        # Shielded: a caller cancelled while waiting must not cancel the unit, which commits
        # anyway; whoever acts on the commit (a done-callback) must still see it succeed.
        await asyncio.shield(self.enqueue(statements))

    def enqueue(self, statements: Sequence[Statement]) -> asyncio.Future[None]:
        """Queue a unit now; await the result for its commit. No unit commits before one queued
        earlier; units queued together share one transaction, in which the plain statements run
        grouped by SQL text (order of first appearance), then the `enqueue_call` functions in
        queue order, so a function sees every plain statement of its group."""
        return self._put(_Unit(statements))

    def enqueue_call(
        self, run: InTransaction, statements: Sequence[Statement] = ()
    ) -> asyncio.Future[Any]:
        """Queue a function to run inside a group's transaction, with `statements` of the same
        unit (run with the group's plain statements: its audit entries, say); the future gets
        the function's result once the transaction is committed."""
        return self._put(_Unit(tuple(statements), run))

    def _put(self, unit: _Unit) -> asyncio.Future[Any]:
        if self._task is None or self._task.done() or self._closing:
            raise RuntimeError("store writer is not running")
        self._queue.put_nowait(unit)
        return unit.done

    async def close(self) -> None:
        try:
            if self._task is not None:
                self._closing = True  # nothing queued after the stop marker would ever commit
                self._queue.put_nowait(None)
                await self._task
        finally:
            self._task = None
            self._wal.close()

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._batch_max and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            await self._commit(batch)
            if self._checkpoint_due():
                await self._checkpoint()
            # An inline commit never gave the loop a turn, and Queue.get does not when the
            # queue is not empty: a backlog must not hold up everything else.
            await asyncio.sleep(0)

    def _checkpoint_due(self) -> bool:
        frames = self._wal.frames()
        if frames is None:
            return self._commits_since_checkpoint >= self.checkpoint_commits
        return frames >= self.checkpoint_frames

    async def _checkpoint(self) -> None:
        """Copy the WAL into the database file, on the connection's thread (it writes and
        fsyncs the database file, which must not hold up the loop). PASSIVE: a reader in the
        middle of a read is not waited for; what it still needs is copied next time. (What a
        stop leaves in the WAL is copied when the last connection closes.)"""
        self._commits_since_checkpoint = 0
        conn = cast(Any, self._conn)
        try:
            await conn._execute(_checkpoint, conn._conn)
        except Exception as exc:  # the WAL only grows until the next one; nothing is lost
            log.warning("WAL checkpoint failed: %s", exc)
            return
        self.checkpoints += 1

    async def _commit(self, batch: list[_Unit]) -> None:
        if self.faults.before_commit is not None:
            await self.faults.before_commit(len(batch))
        grouped: dict[str, list[Sequence[Any]]] = {}
        calls: list[tuple[_Unit, InTransaction]] = []
        for unit in batch:
            for sql, params in unit.statements:
                grouped.setdefault(sql, []).append(params)
            if unit.run is not None:
                calls.append((unit, unit.run))
        runs = [run for _, run in calls]
        started = time.perf_counter()
        try:
            results = await self._transaction(grouped, runs)
        except _ONE_UNITS_FAULT as exc:
            if len(batch) > 1:
                # One unit's bad statement must not fail the others that shared its
                # transaction: each is committed again on its own, in the same order.
                log.warning(
                    "group commit of %d units failed (%s); committing them one by one",
                    len(batch),
                    exc,
                )
                for unit in batch:
                    await self._commit([unit])
                    await asyncio.sleep(0)  # each an fsync: let the loop run in between
                return
            self._fail(batch, exc)
            return
        except Exception as exc:
            # The database itself (locked, full, I/O): retrying unit by unit would only repeat
            # the wait for each of them. Every caller sees the error; nothing was committed.
            self._fail(batch, exc)
            return
        self.commits += 1
        self.units += len(batch)
        self._commits_since_checkpoint += 1
        if self.observe is not None:
            self.observe(len(batch), time.perf_counter() - started)
        result_of = {id(unit): result for (unit, _), result in zip(calls, results, strict=True)}
        for unit in batch:
            if not unit.done.done():
                unit.done.set_result(result_of.get(id(unit)))

    async def _transaction(
        self, grouped: dict[str, list[Sequence[Any]]], runs: list[InTransaction]
    ) -> list[Any]:
        """The whole transaction in one go, on the loop's thread or, for a spell after a slow
        COMMIT or a lock, on the connection's (one call there: awaiting BEGIN, each statement
        and COMMIT separately cost a thread round trip each)."""
        conn = cast(Any, self._conn)  # aiosqlite runs _execute on the connection's thread
        if not self._on_thread:
            try:
                results, took = _transaction(
                    conn._conn, grouped, runs, self.faults.clock, self.journal
                )
            except _Locked:
                self.locked += 1  # nothing ran: BEGIN IMMEDIATE is what found the lock
                self._spell("the database is locked by another connection")
            else:
                if took > self.slow_commit:
                    self.slow_commits += 1
                    self._spell(f"a COMMIT took {took * 1e3:.1f} ms")
                return results
        self._on_thread -= 1
        self.thread_commits += 1
        results, _ = await conn._execute(
            _waiting_transaction,
            conn._conn,
            grouped,
            runs,
            self.busy_timeout_ms,
            self.faults.clock,
            self.journal,
        )
        return cast(list[Any], results)

    def _spell(self, why: str) -> None:
        self._on_thread = self.thread_spell
        now = time.monotonic()
        if now - self._slow_logged_at >= 60:  # a slow disk says so once a minute, not per spell
            self._slow_logged_at = now
            log.info("%s; the next %d commits run on the store's thread", why, self.thread_spell)

    @staticmethod
    def _fail(batch: list[_Unit], exc: Exception) -> None:
        """Callers see the error; nothing of these units is acknowledged (rolled back)."""
        log.error("commit of %d unit(s) failed: %s", len(batch), exc)
        error: Exception = exc
        if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_FULL:
            error = StorageFull(
                f"disk full: the node could not store this ({exc}); nothing of it was kept. "
                "Free space on the disk that holds the node's home and try again"
            )
        for unit in batch:
            if not unit.done.done():
                unit.done.set_exception(error)
