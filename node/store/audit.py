"""SQL for the audit log: a transparency log of everything done to personal data (docs/audit.md).

Each row of `audit_log` is a leaf: an entry's canonical bytes (node.audit.verify.canonical) and
their RFC 6962 leaf hash. `audit_nodes` keeps every complete subtree of 16 entries and more
(smaller ones are folded from their leaves), so a proof is O(log n) lookups;
`audit_checkpoints` keeps every signed checkpoint.

Entries are appended by the group-commit writer inside the transaction of the action they
record (writer.py): an action's unit carries `entry_txn(...)` beside its own statements (or a
function run in the transaction calls `AuditJournal.append`), so the action and its entry
commit together or not at all. The journal keeps the tree's right edge (`Frontier`) in memory:
an append costs O(log n) hashes (one on average) and an insert per 16 for the subtrees. Each
transaction works on a copy of the edge, adopted at COMMIT and dropped at ROLLBACK, so a failed
transaction leaves no gap in the numbering. Nothing here updates or deletes a row; the tables'
triggers refuse it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from node import merkle
from node.audit.source import MessageEvidence, ProvenEntry
from node.audit.verify import encode
from node.errors import AuditLogDamaged
from node.store.writer import GroupCommitWriter, Statement

log = logging.getLogger(__name__)
sha256 = hashlib.sha256

# The writer appends rows of this "statement" to the audit log instead of executing them: a
# unit carries its entries as ordinary statements and commits them with its own.
AUDIT_APPEND = "-- audit entry (appended to the tree by the writer: node/store/audit.py)"
CHECKPOINT_EVERY = 1000
# Subtrees of 2**STORED_LEVEL entries and more are stored; a smaller one is folded from its
# leaves when a proof needs it (at most 8 leaf hashes read): one row per 16 appends, not one.
STORED_LEVEL = 4
STORED_MASK = (1 << STORED_LEVEL) - 1  # seq & STORED_MASK == 0: entry seq completes one

# (size, root hash) -> the checkpoint note signed by the node's key
SignCheckpoint = Callable[[int, bytes], bytes]


def entry_txn(
    *,
    at: datetime,
    actor: str,
    action: str,
    outcome: str,
    message_id: str = "",
    peer: str = "",
    purpose: str = "",
    justification: str = "",
    detail: str = "",
) -> Statement:
    """One audit entry, to commit in the same unit as the action it records."""
    return (
        AUDIT_APPEND,
        (at, actor, action, message_id, peer, purpose, justification, outcome, detail[:500]),
    )


def _leaf_range(level: int, index: int) -> range:
    """The seqs of the entries under subtree (level, index)."""
    return range((index << level) + 1, ((index + 1) << level) + 1)


def _derive(
    ids: Sequence[merkle.NodeId], leaves: dict[int, bytes], stored: dict[merkle.NodeId, bytes]
) -> list[bytes]:
    """Each subtree's hash: a leaf's, a low one folded from its leaves, or a stored one."""
    out = []
    for level, index in ids:
        try:
            if level >= STORED_LEVEL:
                out.append(stored[level, index])
            else:
                out.append(merkle.root(leaves[s] for s in _leaf_range(level, index)))
        except KeyError:
            raise LookupError(f"audit tree node ({level}, {index}) is not stored") from None
    return out


def _read_nodes(conn: sqlite3.Connection, ids: Sequence[merkle.NodeId]) -> list[bytes]:
    """Subtrees by (level, index), read with a connection of the writer's thread."""
    leaves: dict[int, bytes] = {}
    stored: dict[merkle.NodeId, bytes] = {}
    for level, index in ids:
        if level < STORED_LEVEL:
            span = _leaf_range(level, index)
            leaves.update(
                (s, bytes(h))
                for s, h in conn.execute(
                    "SELECT seq, leaf_hash FROM audit_log WHERE seq >= ? AND seq < ?",
                    (span.start, span.stop),
                )
            )
        else:
            row = conn.execute(
                "SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?", (level, index)
            ).fetchone()
            if row is not None:
                stored[level, index] = bytes(row[0])
    return _derive(ids, leaves, stored)


class AuditJournal:
    """The tree's right edge and the appends; used only by the writer's transactions (and, with
    no writer, by the migration that moves the old access log in)."""

    sql = AUDIT_APPEND

    def __init__(self, frontier: merkle.Frontier, checkpointed: int) -> None:
        self._committed = frontier
        self._checkpointed = checkpointed
        self._working: merkle.Frontier | None = None
        self._working_checkpointed = checkpointed
        self.every = CHECKPOINT_EVERY
        self.sign: SignCheckpoint | None = None  # set by the node: it holds the key
        self.damaged: str | None = None  # why nothing may be appended (`restore`)

    def _check_intact(self) -> None:
        if self.damaged is not None:
            raise AuditLogDamaged(
                f"{self.damaged}: nothing audited can be done until the database is restored "
                "from backup (`accord audit verify` names what changed)"
            )

    @classmethod
    def restore(cls, conn: sqlite3.Connection) -> AuditJournal:
        """The journal of the log stored in `conn`'s database. A log cut or renumbered in the
        file is marked damaged: appending to it would write over what a checkpoint signed."""
        size = conn.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()[0]
        checkpointed = conn.execute(
            "SELECT coalesce(max(size), 0) FROM audit_checkpoints"
        ).fetchone()[0]
        damaged = None
        try:
            frontier = merkle.Frontier.restore(lambda ids: _read_nodes(conn, ids), size)
        except LookupError:
            damaged = f"its stored tree does not fit its {size} entries (rows were changed)"
            frontier = merkle.Frontier()
        if checkpointed > size:
            damaged = f"it ends at entry {size} but checkpoint {checkpointed} covers more"
        journal = cls(frontier, checkpointed)
        if damaged is not None:
            journal.damaged = f"the audit log was changed in the database file: {damaged}"
            log.error("%s; nothing audited is done until it is restored", journal.damaged)
        return journal

    @property
    def size(self) -> int:
        return self._committed.size

    @property
    def checkpointed(self) -> int:
        return self._checkpointed

    # ---- transaction life (writer.py) -------------------------------------------------------

    def begin(self) -> None:
        self._working = self._committed.copy()
        self._working_checkpointed = self._checkpointed

    def commit(self) -> None:
        if self._working is not None:
            self._committed = self._working
            self._checkpointed = self._working_checkpointed
            self._working = None

    def rollback(self) -> None:
        self._working = None

    def _tree(self) -> merkle.Frontier:
        if self._working is None:
            raise RuntimeError("audit entries are appended inside a writer transaction")
        return self._working

    # ---- inside a transaction ---------------------------------------------------------------

    def append(self, conn: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
        """Append entries, each (at, actor, action, message_id, peer, purpose, justification,
        outcome, detail) as `entry_txn` makes them."""
        tree = self._tree()
        rows = list(rows)
        if rows:
            self._check_intact()
        leaves = []
        nodes: list[tuple[int, int, bytes]] = []
        for at, actor, action, message_id, peer, purpose, justification, outcome, detail in rows:
            seq = tree.size + 1
            data = encode(
                seq, at, actor, action, message_id, peer, purpose, justification, outcome, detail
            )
            leaf = sha256(b"\x00" + data).digest()
            if seq & STORED_MASK:
                tree.append(leaf)
            else:  # the leaf completes a subtree of 2**STORED_LEVEL entries or more
                nodes += [n for n in tree.append_nodes(leaf) if n[0] >= STORED_LEVEL]
            leaves.append((seq, data.decode(), leaf))
        conn.executemany("INSERT INTO audit_log (seq, data, leaf_hash) VALUES (?, ?, ?)", leaves)
        if nodes:
            conn.executemany("INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)

    def seal(self, conn: sqlite3.Connection) -> None:
        """Before COMMIT: sign a checkpoint if the transaction's entries crossed a multiple of
        `every` (the checkpoint covers the whole transaction)."""
        tree = self._tree()
        if tree.size // self.every > self._working_checkpointed // self.every:
            self.checkpoint(conn)

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """Sign a checkpoint of the tree as it stands in this transaction, unless one of this
        size exists (or the node has no key to sign with)."""
        tree = self._tree()
        if self.sign is None or tree.size in (0, self._working_checkpointed):
            return
        self._check_intact()  # a damaged log is never signed as it stands
        note = self.sign(tree.size, tree.root())
        conn.execute("INSERT INTO audit_checkpoints (size, note) VALUES (?, ?)", (tree.size, note))
        self._working_checkpointed = tree.size


def import_access_log(conn: sqlite3.Connection) -> None:
    """Move the entries of the access log the audit log replaced (migration 060 renamed it
    audit_import) into the tree, in their order; then drop it. Runs in its own transaction."""
    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_import'"
    ).fetchone():
        return
    journal = AuditJournal.restore(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        journal.begin()
        rows = conn.execute(
            "SELECT at, user_name, action, message_id, recipient, purpose, justification, "
            "outcome, detail FROM audit_import ORDER BY id"
        ).fetchall()
        journal.append(conn, [(datetime.fromisoformat(r[0]), *r[1:]) for r in rows])
        conn.execute("DROP TABLE audit_import")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    journal.commit()


@dataclass(frozen=True, slots=True)
class StoredEntry:
    seq: int
    data: bytes
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class Filters:
    """What `AuditStore.query` selects; empty fields select everything."""

    message_id: str = ""
    actor: str = ""
    peer: str = ""
    action: str = ""
    since: str = ""  # RFC 3339 UTC as the entries write it: entries at or after
    until: str = ""  # entries before
    first: int = 1  # seq range, inclusive
    last: int = 0  # 0: to the end


_FILTERS = (
    ("message_id", "json_extract(data, '$.message_id') = ?"),
    ("actor", "json_extract(data, '$.actor') = ?"),
    ("peer", "json_extract(data, '$.peer') = ?"),
    ("action", "json_extract(data, '$.action') = ?"),
    ("since", "json_extract(data, '$.at') >= ?"),
    ("until", "json_extract(data, '$.at') < ?"),
)


class AuditStore:
    """Reads of the audit log, proofs, and checkpoints on demand; the node's `AuditSource`
    (node/audit/source.py) for evidence bundles."""

    def __init__(self, reader: aiosqlite.Connection, writer: GroupCommitWriter,
                 journal: AuditJournal) -> None:  # fmt: skip
        self._r = reader
        self._writer = writer
        self.journal = journal

    async def query(self, filters: Filters, *, limit: int = 0) -> list[StoredEntry]:
        """Entries in log order (the last `limit` of those selected, if given)."""
        where = ["seq >= ?"]
        params: list[object] = [filters.first]
        if filters.last:
            where.append("seq <= ?")
            params.append(filters.last)
        for name, clause in _FILTERS:
            value = getattr(filters, name)
            if value:
                where.append(clause)
                params.append(value)
        clauses = " AND ".join(where)  # of _FILTERS' fixed texts, with ? marks
        sql = f"SELECT seq, CAST(data AS BLOB), leaf_hash FROM audit_log WHERE {clauses}"  # noqa: S608
        if limit:
            sql = f"SELECT * FROM ({sql} ORDER BY seq DESC LIMIT ?)"  # noqa: S608 (only ? marks)
            params.append(limit)
        cursor = await self._r.execute(sql + " ORDER BY seq", params)
        return [StoredEntry(s, bytes(d), bytes(h)) for s, d, h in await cursor.fetchall()]

    async def last(self) -> int:
        """The highest entry number stored (the log's size, unless it was changed in the file)."""
        cursor = await self._r.execute("SELECT coalesce(max(seq), 0) FROM audit_log")
        row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def checkpoints(self) -> list[tuple[int, bytes]]:
        cursor = await self._r.execute("SELECT size, note FROM audit_checkpoints ORDER BY size")
        return [(size, bytes(note)) for size, note in await cursor.fetchall()]

    async def checkpoint(self, size: int) -> bytes | None:
        cursor = await self._r.execute("SELECT note FROM audit_checkpoints WHERE size = ?", (size,))
        row = await cursor.fetchone()
        return None if row is None else bytes(row[0])

    async def covering(self, size: int) -> tuple[int, bytes]:
        """The latest checkpoint, signing a new one first if it does not cover `size` entries."""
        cursor = await self._r.execute(
            "SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
        )
        row = await cursor.fetchone()
        if row is None or row[0] < size:
            await self.sign_now()
            return await self.covering_stored(size)
        return int(row[0]), bytes(row[1])

    async def covering_stored(self, size: int) -> tuple[int, bytes]:
        cursor = await self._r.execute(
            "SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
        )
        row = await cursor.fetchone()
        if row is None or row[0] < size:
            raise LookupError(f"no checkpoint covers entry {size}: the node signs none")
        return int(row[0]), bytes(row[1])

    async def sign_now(self) -> None:
        """A checkpoint of the whole log as it is now (none if one of this size exists)."""
        await asyncio.shield(self._writer.enqueue_call(self.journal.checkpoint))

    async def _nodes(self, ids: Sequence[merkle.NodeId]) -> list[bytes]:
        seqs = sorted(
            {s for level, index in ids if level < STORED_LEVEL for s in _leaf_range(level, index)}
        )
        inner = [(level, index) for level, index in ids if level >= STORED_LEVEL]
        leaves: dict[int, bytes] = {}
        stored: dict[merkle.NodeId, bytes] = {}
        for at in range(0, len(seqs), 400):
            chunk = seqs[at : at + 400]
            cursor = await self._r.execute(
                f"SELECT seq, leaf_hash FROM audit_log WHERE seq IN ({','.join('?' * len(chunk))})",  # noqa: S608
                chunk,
            )
            leaves.update((s, bytes(h)) for s, h in await cursor.fetchall())
        for at in range(0, len(inner), 200):
            pairs = inner[at : at + 200]
            marks = ",".join("(?, ?)" for _ in pairs)
            cursor = await self._r.execute(
                f"SELECT level, idx, hash FROM audit_nodes WHERE (level, idx) IN (VALUES {marks})",  # noqa: S608
                [v for node in pairs for v in node],
            )
            stored.update(((lv, ix), bytes(h)) for lv, ix, h in await cursor.fetchall())
        return _derive(ids, leaves, stored)

    async def _proof(self, plan: list[list[merkle.NodeId]]) -> list[bytes]:
        ids = merkle.plan_ids(plan)
        return merkle.assemble(plan, await self._nodes(ids) if ids else [])

    async def inclusion(self, seq: int, size: int) -> list[bytes]:
        """The inclusion proof of entry `seq` in the tree of the first `size` entries."""
        return await self._proof(merkle.inclusion_plan(seq - 1, size))

    async def consistency(self, old: int, new: int) -> list[bytes]:
        return await self._proof(merkle.consistency_plan(old, new))

    async def root(self, size: int) -> bytes:
        return (
            merkle.fold(await self._nodes(merkle.range_ids(0, size))) if size else merkle.EMPTY_ROOT
        )

    async def evidence_for(self, message_id: str) -> MessageEvidence:
        entries = await self.query(Filters(message_id=message_id))
        newest = entries[-1].seq if entries else 0
        size, note = await self.covering(newest)
        proven = [
            ProvenEntry(e.seq, e.data, tuple(await self.inclusion(e.seq, size))) for e in entries
        ]
        return MessageEvidence(tuple(proven), note)
