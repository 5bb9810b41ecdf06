"""Group commit: many callers' writes share one transaction and one fsync.

Callers submit a unit of work (statements that must commit together) and await its commit.
The writer drains whatever has queued while the previous transaction was committing, groups
statements by SQL text into executemany calls (order of first appearance), and commits once.
A unit's future resolves only after COMMIT returns, so nothing is acknowledged before it is on
disk (PRAGMA synchronous=FULL in WAL mode). If a group's transaction fails because of one
unit's statements (a constraint, a bad parameter), its units are committed again one by one, so
that unit alone fails.

Where a transaction runs: on the event loop's own thread. Its statements hold the GIL whichever
thread runs them, so handing them to the connection's thread only added a thread hand-off each
way and a fight for the GIL with the busy loop (docs/benchmarks.md, fourth session: 10-20 % less
CPU per message, a third off the median latency at half load). What waits is the COMMIT's
fsync, about 0.3 ms on the disks measured; the loop waits with it. If a transaction ever takes
longer than `slow_commit` (a slow disk, a lock held by another process), the next `thread_spell`
transactions run on the connection's thread instead, so a slow disk costs the loop one slow
commit per spell, not every commit. WAL checkpoints, which write and fsync the database file,
always run on the connection's thread, between transactions (SQLite's automatic checkpoint,
which would run inside a COMMIT, is turned off in `Store.open`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import aiosqlite

log = logging.getLogger(__name__)

Statement = tuple[str, Sequence[Any]]


# Work that must read and write in the same transaction (the receiver's dedupe): run on the
# writer's thread, in queue order after the group's plain statements; its result is the unit's.
InTransaction = Callable[[sqlite3.Connection], Any]


@dataclass(slots=True)
class _Unit:
    statements: Sequence[Statement]
    run: InTransaction | None = None
    done: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def _transaction(
    conn: sqlite3.Connection, grouped: dict[str, list[Sequence[Any]]], runs: list[InTransaction]
) -> list[Any]:
    """All statements, then each unit's function in order, then COMMIT (or ROLLBACK); the
    functions' results. Runs on whichever thread `GroupCommitWriter._transaction` chose."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows in grouped.items():
            if len(rows) == 1:
                conn.execute(sql, rows[0])
            else:
                conn.executemany(sql, rows)
        results = [run(conn) for run in runs]
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return results


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


# An inline transaction longer than this sends the next THREAD_SPELL ones to the connection's
# thread; a commit here takes 0.3-2 ms (its fsync about 0.3 ms).
SLOW_COMMIT_SECONDS = 0.005
THREAD_SPELL = 100
# A PASSIVE checkpoint after this many committed units or commits, whichever comes first: a
# lone commit adds a few WAL pages, a unit in a large group about two (SQLite's own default is
# a checkpoint per 1 000 pages).
CHECKPOINT_UNITS = 1000
CHECKPOINT_COMMITS = 250


class GroupCommitWriter:
    def __init__(self, conn: aiosqlite.Connection, *, batch_max: int = 512) -> None:
        """`conn` must have been opened with check_same_thread=False: transactions run on the
        loop's thread and, after a slow one, on the connection's (never two at once)."""
        self._conn = conn
        self._batch_max = batch_max
        self._queue: asyncio.Queue[_Unit | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.units = 0
        self.slow_commit = SLOW_COMMIT_SECONDS
        self.thread_spell = THREAD_SPELL
        self.checkpoint_units = CHECKPOINT_UNITS
        self.checkpoint_commits = CHECKPOINT_COMMITS
        self.thread_commits = 0  # transactions run on the connection's thread
        self.slow_commits = 0  # inline transactions that took longer than slow_commit
        self.checkpoints = 0
        self._on_thread = 0  # transactions still to run on the connection's thread
        self._units_since_checkpoint = 0
        self._commits_since_checkpoint = 0
        self._closing = False

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

    def enqueue_call(self, run: InTransaction) -> asyncio.Future[Any]:
        """Queue a function to run inside a group's transaction; the future gets its result
        once the transaction is committed."""
        return self._put(_Unit((), run))

    def _put(self, unit: _Unit) -> asyncio.Future[Any]:
        if self._task is None or self._task.done() or self._closing:
            raise RuntimeError("store writer is not running")
        self._queue.put_nowait(unit)
        return unit.done

    async def close(self) -> None:
        if self._task is not None:
            self._closing = True  # nothing queued after the stop marker would ever commit
            self._queue.put_nowait(None)
            await self._task
            self._task = None

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
            if (
                self._units_since_checkpoint >= self.checkpoint_units
                or self._commits_since_checkpoint >= self.checkpoint_commits
            ):
                await self._checkpoint()
        if self._units_since_checkpoint:
            await self._checkpoint()

    async def _checkpoint(self) -> None:
        """Copy the WAL into the database file, on the connection's thread (it writes and
        fsyncs the database file, which must not hold up the loop). PASSIVE: a reader in the
        middle of a read is not waited for; what it still needs is copied next time."""
        self._units_since_checkpoint = self._commits_since_checkpoint = 0
        conn = cast(Any, self._conn)
        try:
            await conn._execute(_checkpoint, conn._conn)
        except Exception as exc:  # the WAL only grows until the next one; nothing is lost
            log.warning("WAL checkpoint failed: %s", exc)
            return
        self.checkpoints += 1

    async def _commit(self, batch: list[_Unit]) -> None:
        grouped: dict[str, list[Sequence[Any]]] = {}
        calls: list[tuple[_Unit, InTransaction]] = []
        for unit in batch:
            for sql, params in unit.statements:
                grouped.setdefault(sql, []).append(params)
            if unit.run is not None:
                calls.append((unit, unit.run))
        runs = [run for _, run in calls]
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
        self._units_since_checkpoint += len(batch)
        result_of = {id(unit): result for (unit, _), result in zip(calls, results, strict=True)}
        for unit in batch:
            if not unit.done.done():
                unit.done.set_result(result_of.get(id(unit)))

    async def _transaction(
        self, grouped: dict[str, list[Sequence[Any]]], runs: list[InTransaction]
    ) -> list[Any]:
        """The whole transaction in one go, on the loop's thread or, for a spell after a slow
        one, on the connection's (one call there: awaiting BEGIN, each statement and COMMIT
        separately cost a thread round trip each)."""
        conn = cast(Any, self._conn)  # aiosqlite runs _execute on the connection's thread
        if self._on_thread:
            self._on_thread -= 1
            self.thread_commits += 1
            return cast(list[Any], await conn._execute(_transaction, conn._conn, grouped, runs))
        start = time.perf_counter()
        try:
            return _transaction(conn._conn, grouped, runs)
        finally:
            took = time.perf_counter() - start
            if took > self.slow_commit:
                self.slow_commits += 1
                self._on_thread = self.thread_spell
                log.info(
                    "a commit took %.1f ms; the next %d run on the store's thread",
                    took * 1e3,
                    self.thread_spell,
                )

    @staticmethod
    def _fail(batch: list[_Unit], exc: Exception) -> None:
        """Callers see the error; nothing of these units is acknowledged (rolled back)."""
        log.error("commit of %d unit(s) failed: %s", len(batch), exc)
        for unit in batch:
            if not unit.done.done():
                unit.done.set_exception(exc)
