"""Messages, the outbox, receipts and the node's own marks (the package docstring lists the
surface). Writes go through the group-commit writer, as named transactions; reads use a second
connection, which WAL mode lets run beside the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Self

import aiosqlite

from node.clock import Clock, SystemClock
from node.errors import ConfigError, Reason, Refused
from node.messages import MessageMeta
from node.store.audit import AuditJournal, AuditStore, import_access_log
from node.store.keys import SEAL_VERSION, KeyRing, Sealed, SealError, aad_for
from node.store.keystore import day_bucket
from node.store.rowmac import check_state, put_state, seal_existing
from node.store.writer import GroupCommitWriter, Statement

log = logging.getLogger(__name__)

_MIGRATION = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class StoredMessage:
    message_id: str
    sender: str
    direction: str
    type: str
    purpose: str
    agreement_id: str
    correlation_id: str
    in_reply_to: str
    tlp: str
    created_at: datetime
    received_at: datetime
    retain_until: datetime | None
    content_sha256: bytes
    signature: bytes
    sealed: Sealed | None
    receipt: bytes | None = None
    receipt_signature: bytes | None = None
    erased_at: datetime | None = None
    control_target: str = ""
    third_agency: str = ""
    granted: bool = False
    receipt_proof: bytes | None = None  # audit path when the receipt was signed in a batch
    signature_proof: bytes | None = None  # audit path when the envelope was signed in a batch
    handling_codes: tuple[str, ...] = ()
    seal: int = SEAL_VERSION  # how `sealed` binds the row (keys.aad_for)
    urgency: str = ""
    reply_deadline: datetime | None = None
    expected_by: datetime | None = None  # a DELAY_NOTICE's new date for the answer
    erase_reason: str = ""  # a tombstone's: why it was erased (expired, sunset, a request...)
    erased_by: str = ""  # and who or what erased it (a user, "sweeper")

    @classmethod
    def of(
        cls,
        meta: MessageMeta,
        *,
        agreement_id: str | None = None,
        direction: str,
        received_at: datetime,
        retain_until: datetime | None,
        content_sha256: bytes,
        signature: bytes,
        sealed: Sealed,
        receipt: bytes | None = None,
        receipt_signature: bytes | None = None,
        receipt_proof: bytes | None = None,
        signature_proof: bytes | None = None,
    ) -> StoredMessage:
        return cls(
            message_id=meta.message_id,
            sender=meta.sender,
            direction=direction,
            type=meta.type,
            purpose=meta.purpose,
            agreement_id=meta.agreement_id if agreement_id is None else agreement_id,
            correlation_id=meta.correlation_id or meta.message_id,
            in_reply_to=meta.in_reply_to,
            tlp=meta.tlp,
            created_at=meta.created_at,
            received_at=received_at,
            retain_until=retain_until,
            content_sha256=content_sha256,
            signature=signature,
            sealed=sealed,
            receipt=receipt,
            receipt_signature=receipt_signature,
            receipt_proof=receipt_proof,
            signature_proof=signature_proof,
            control_target=meta.control_target,
            third_agency=meta.third_agency,
            granted=meta.granted,
            handling_codes=meta.handling_codes,
            urgency=meta.urgency,
            reply_deadline=meta.reply_deadline,
            expected_by=meta.expected_by,
        )


@dataclass(frozen=True, slots=True)
class PendingEnvelope:
    seq: int
    message_id: str
    recipient: str
    content: bytes
    signature: bytes
    content_sha256: bytes
    proof: bytes = b""  # the signature's audit path (Envelope.proof); empty: signed alone
    queued_at: datetime | None = None  # when the send was accepted (delivery latency)


@dataclass(frozen=True, slots=True)
class Delivery:
    seq: int
    message_id: str
    recipient: str
    state: str
    attempts: int
    last_error: str
    receipt: bytes | None
    receipt_signature: bytes | None
    reason_code: str
    receipt_proof: bytes | None


@dataclass(frozen=True, slots=True)
class Answer:
    """A REPLY, REFUSAL or DELAY_NOTICE to a request, from the agency that owes the answer."""

    request_id: str
    peer: str  # the requested agency: the answer's sender, or (our answer) the requester
    type: str
    at: datetime  # when this node sent it, or received it
    expected_by: datetime | None  # a DELAY_NOTICE's new date


@dataclass(frozen=True, slots=True)
class PeerQueue:
    """The outbox as seen from one peer: what waits for it, and when it last receipted."""

    recipient: str
    queued: int
    oldest_queued_at: datetime | None
    last_receipt_at: datetime | None
    last_error: str


@dataclass(frozen=True, slots=True)
class PriorAnswer:
    """What this node already answered for a (sender, message id)."""

    content_sha256: bytes
    receipt: bytes
    receipt_signature: bytes
    receipt_proof: bytes


def succeeded(unit: asyncio.Future[None]) -> bool:
    """Whether a done unit of the writer committed."""
    return not unit.cancelled() and unit.exception() is None


_TS_TEXT: dict[datetime, str] = {}


def time_text(value: datetime | None) -> str | None:
    """A time as ISO 8601 text. The text of a UTC time is remembered: the same instants recur
    (a batch's received_at and retain_until, a frame's receipt time) and `isoformat` showed in
    the profile on both sides. Other zones are formatted each time (equal instants in another
    zone must keep their own text)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        return value.isoformat()
    text = _TS_TEXT.get(value)
    if text is None:
        if len(_TS_TEXT) >= 1024:
            _TS_TEXT.clear()
        text = _TS_TEXT[value] = value.isoformat()
    return text


def text_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


_MESSAGE_COLUMNS = (
    "message_id, sender, direction, type, purpose, agreement_id, correlation_id, in_reply_to, "
    "tlp, created_at, received_at, retain_until, content_sha256, signature, ciphertext, "
    "wrapped_key, receipt, receipt_signature, erased_at, control_target, third_agency, granted, "
    "receipt_proof, signature_proof, handling_codes, seal, urgency, reply_deadline, key_id, "
    "erase_reason, erased_by, expected_by"
)


def row_aad(m: StoredMessage) -> bytes:
    """The associated data a stored row's seal binds (keys.aad_for)."""
    return aad_for(
        m.sender,
        m.message_id,
        purpose=m.purpose,
        tlp=m.tlp,
        handling_codes=m.handling_codes,
        version=m.seal,
    )


def _message_from_row(row: Sequence[Any]) -> StoredMessage:
    sealed = (
        Sealed(row[14], row[15], row[28]) if row[14] is not None and row[15] is not None else None
    )
    created, received = text_time(row[9]), text_time(row[10])
    assert created is not None and received is not None
    return StoredMessage(
        message_id=row[0],
        sender=row[1],
        direction=row[2],
        type=row[3],
        purpose=row[4],
        agreement_id=row[5],
        correlation_id=row[6],
        in_reply_to=row[7],
        tlp=row[8],
        created_at=created,
        received_at=received,
        retain_until=text_time(row[11]),
        content_sha256=row[12],
        signature=row[13],
        sealed=sealed,
        receipt=row[16],
        receipt_signature=row[17],
        erased_at=text_time(row[18]),
        control_target=row[19],
        third_agency=row[20],
        granted=bool(row[21]),
        receipt_proof=row[22],
        signature_proof=row[23],
        handling_codes=tuple(row[24].split(",")) if row[24] else (),
        seal=int(row[25]),
        urgency=row[26],
        reply_deadline=text_time(row[27]),
        erase_reason=row[29],
        erased_by=row[30],
        expected_by=text_time(row[31]),
    )


class Store:
    def __init__(
        self,
        *,
        writer_conn: aiosqlite.Connection,
        reader_conn: aiosqlite.Connection,
        outbox_conn: aiosqlite.Connection,
        keys: KeyRing,
        batch_max: int,
        journal: AuditJournal,
        wal_index: Path | None = None,
    ) -> None:
        self._wconn = writer_conn
        self._rconn = reader_conn
        self.reader = reader_conn  # for the other store classes sharing this database
        # The links' outbox reads have a connection of their own, used only for reads that run
        # to the end in one call (execute_fetchall). On the shared reader, a read issued
        # between another query's execute and its last fetch ran inside that query's read
        # transaction, saw its older snapshot and missed rows already committed; the link took
        # the short read for the whole queue and skipped them (issue 11, item 11).
        self._outbox = outbox_conn
        self.keys = keys
        # When erasures and sweeps happen (the node sets its own clock: tests run it forward).
        self.clock: Clock = SystemClock()
        self.writer = GroupCommitWriter(writer_conn, batch_max=batch_max, wal_index=wal_index)
        # Delivery seqs are given out here, when a unit is queued, not by SQLite at insert:
        # units commit in the order they are queued, so seq order is commit order, and a link
        # can be handed a just-committed envelope with its seq instead of reading it back.
        self._last_seq = 0
        self.writer.journal = journal
        self.audit = AuditStore(reader_conn, self.writer, journal)

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        keys: KeyRing,
        synchronous: str = "FULL",
        batch_max: int = 512,
        create: bool = True,
        keystore: Path | None = None,
    ) -> Self:
        """Open (with `create`, create) the database and bring its schema up to date, and its
        keystore (`keystore`; by default NAME-keys.db beside it), made if missing.

        Without `create` (a node's home, made by `accord node init`), a missing, empty or
        schema-less database is refused with DatabaseMissing rather than started afresh."""
        if create:
            _create_private(path)
        else:
            _check_initialised(path)
        # Used from the loop's thread and the connection's, never both at once (writer.py).
        wconn = await aiosqlite.connect(path, isolation_level=None, check_same_thread=False)
        rconn: aiosqlite.Connection | None = None
        outbox: aiosqlite.Connection | None = None
        try:
            mode = await wconn.execute_fetchall("PRAGMA journal_mode=WAL")
            if [tuple(row) for row in mode] != [("wal",)]:  # the writer's design needs WAL
                raise sqlite3.OperationalError(f"{path}: cannot use WAL mode ({list(mode)})")
            await wconn.execute(f"PRAGMA synchronous={synchronous}")
            # Checkpoints run between transactions on the connection's thread (writer.py), not
            # inside a COMMIT, which may run on the event loop's thread.
            await wconn.execute("PRAGMA wal_autocheckpoint=0")
            await wconn.execute("PRAGMA secure_delete=ON")
            await wconn.execute("PRAGMA foreign_keys=ON")
            await asyncio.to_thread(
                _migrate_file, path, create=create, synchronous=synchronous, keys=keys
            )
            # Inline transactions never wait for a lock on the loop's thread: the writer runs a
            # locked one again on the connection's thread, with a timeout (writer.py).
            await wconn.execute("PRAGMA busy_timeout=0")
            # A WAL that grew in a burst is cut back to this when it starts over.
            await wconn.execute("PRAGMA journal_size_limit=67108864")
            for suffix in ("-wal", "-shm"):
                side = path.with_name(path.name + suffix)
                if side.exists():
                    os.chmod(side, 0o600)
            rconn = await aiosqlite.connect(path, isolation_level=None)
            await rconn.execute("PRAGMA query_only=ON")
            outbox = await aiosqlite.connect(path, isolation_level=None)
            await outbox.execute("PRAGMA query_only=ON")
            # AUTOINCREMENT's high-water mark covers deleted rows too, so no seq is ever reused.
            rows = list(
                await wconn.execute_fetchall(
                    "SELECT max(coalesce((SELECT max(seq) FROM deliveries), 0), "
                    "coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'deliveries'), 0))"
                )
            )
            journal = await asyncio.to_thread(_restore_journal, path)
            # SQLite names the WAL index after the database file a symlink points to.
            wal_index = Path(await asyncio.to_thread(os.path.realpath, path) + "-shm")
        except BaseException:
            # A corrupt file fails here ("file is not a database"): the connections' threads
            # must not outlive the failure and keep the process alive.
            for conn in (outbox, rconn, wconn):
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            raise
        assert rconn is not None and outbox is not None
        try:
            keys.open_keystore(keystore or keystore_path(path))
        except BaseException:
            for conn in (outbox, rconn, wconn):
                with contextlib.suppress(Exception):
                    await conn.close()
            raise
        store = cls(
            writer_conn=wconn,
            reader_conn=rconn,
            outbox_conn=outbox,
            keys=keys,
            batch_max=batch_max,
            journal=journal,
            wal_index=wal_index,
        )
        store._last_seq = int(rows[0][0])
        store.writer.start()
        return store

    def observe_commits(self, observer: Callable[[int, float], None]) -> None:
        """Tell `observer` each committed group's size in units and its seconds (metrics)."""
        self.writer.observe = observer

    async def close(self) -> None:
        try:
            if self.audit.journal.sign is not None:
                try:  # a checkpoint at shutdown covers every entry made since the last one
                    await self.audit.sign_now()
                except Exception as exc:  # the next start's entries are covered by the next
                    log.error("could not sign the audit checkpoint at shutdown: %s", exc)
            await self.writer.close()
        finally:
            for conn in (self._outbox, self._rconn, self._wconn):
                with contextlib.suppress(Exception):
                    await conn.close()
            if self.keys.keystore is not None:
                self.keys.keystore.close()

    # ---- sealing ----------------------------------------------------------------------------

    def seal_message(
        self, meta: MessageMeta, content: bytes, *, retain_until: datetime | None
    ) -> Sealed:
        """Encrypt a message's content for its row: the row's sender, id, purpose, TLP and
        handling codes (`meta`'s) are bound in, so the row opens only with the markings it was
        stored with. Its data key goes in the keystore bucket of its expiry day."""
        aad = aad_for(
            meta.sender,
            meta.message_id,
            purpose=meta.purpose,
            tlp=meta.tlp,
            handling_codes=meta.handling_codes,
        )
        return self.keys.seal(content, aad, bucket=day_bucket(retain_until))

    def open_content(self, message: StoredMessage) -> bytes | None:
        """The content of a stored message (None once erased); SealError if the row does not
        open: its markings were changed since it was sealed, or the key is not its key."""
        if message.sealed is None:
            return None
        return self.keys.open(message.sealed, row_aad(message))

    # ---- named transactions -----------------------------------------------------------------

    def message_txn(self, m: StoredMessage) -> Statement:
        """Store a message (sent, held for approval, or received): a copy of a row already
        stored is ignored. Enqueue it at once: from here its bucket key is kept for it."""
        assert m.sealed is not None
        self.keys.settle(m.sealed.key_id)
        return (
            f"INSERT OR IGNORE INTO messages ({_MESSAGE_COLUMNS}) "  # noqa: S608 (constant column list)
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'','',?)",
            (
                m.message_id,
                m.sender,
                m.direction,
                m.type,
                m.purpose,
                m.agreement_id,
                m.correlation_id,
                m.in_reply_to,
                m.tlp,
                time_text(m.created_at),
                time_text(m.received_at),
                time_text(m.retain_until),
                m.content_sha256,
                m.signature,
                m.sealed.ciphertext,
                m.sealed.wrapped_key,
                m.receipt,
                m.receipt_signature,
                None,
                m.control_target,
                m.third_agency,
                int(m.granted),
                m.receipt_proof,
                m.signature_proof,
                ",".join(m.handling_codes),
                m.seal,
                m.urgency,
                time_text(m.reply_deadline),
                m.sealed.key_id,
                time_text(m.expected_by),
            ),
        )

    def deliveries_txn(
        self, message_id: str, recipients: Sequence[str]
    ) -> tuple[list[Statement], list[int]]:
        """Statements that queue `message_id` for each recipient, and the seq each gets.

        Enqueue them at once (no await in between), so seqs reach the writer in order.
        """
        seqs = list(range(self._last_seq + 1, self._last_seq + 1 + len(recipients)))
        self._last_seq += len(recipients)
        statements: list[Statement] = [
            ("INSERT OR IGNORE INTO deliveries (seq, message_id, recipient) VALUES (?, ?, ?)",
             (seq, message_id, r))
            for seq, r in zip(seqs, recipients, strict=True)
        ]  # fmt: skip
        return statements, seqs

    async def queue_outbound(
        self,
        m: StoredMessage,
        recipients: Sequence[str],
        *,
        content: bytes,
        fresh_id: bool = False,
        on_commit: Callable[[list[PendingEnvelope]], None] = lambda queued: None,
        also: Sequence[Statement] = (),
    ) -> None:
        """Store an outgoing message and queue it for each recipient, in one commit (with
        `also`: the access log entry that records the send, so that neither exists alone).

        `on_commit` gets the envelopes as queued (with their seqs) the moment the unit commits,
        in commit order with every other unit, and even if the caller stops waiting: the links
        are handed them there, without reading them back.
        """
        # INSERT OR IGNORE keeps a resend of the same message harmless, but would also drop
        # other content under a used id without a word while the caller thinks it was sent.
        # An id the node has just generated (UUIDv7, 74 random bits) is not in use, so the
        # check, a thread round trip on every send in the bench profile, is skipped for it.
        if not fresh_id:
            earlier = list(
                await self._rconn.execute_fetchall(
                    "SELECT content_sha256 FROM messages "
                    "WHERE message_id = ? AND sender = ? AND direction = 'out'",
                    (m.message_id, m.sender),
                )
            )
            if earlier and earlier[0][0] != m.content_sha256:
                raise Refused(
                    Reason.ID_CONFLICT,
                    f"message {m.message_id} was already sent with other content; use a new id",
                )
        queue, seqs = self.deliveries_txn(m.message_id, recipients)
        committed = self.writer.enqueue([self.message_txn(m), *queue, *also])
        queued = [
            PendingEnvelope(
                seq,
                m.message_id,
                r,
                content,
                m.signature,
                m.content_sha256,
                m.signature_proof or b"",
                m.received_at,
            )
            for seq, r in zip(seqs, recipients, strict=True)
        ]

        def committed_now(unit: asyncio.Future[None]) -> None:
            if succeeded(unit):
                on_commit(queued)

        committed.add_done_callback(committed_now)
        await asyncio.shield(committed)

    @staticmethod
    def rejection_txn(
        *,
        sender: str,
        message_id: str,
        content_sha256: bytes,
        reason_code: str,
        received_at: datetime,
        receipt: bytes,
        receipt_signature: bytes,
        receipt_proof: bytes = b"",
        directory_serial: int = 0,
    ) -> Statement:
        """A final refusal of verified content, remembered with the directory serial it was
        made under; a copy that arrives under a newer directory is decided afresh, and its
        answer replaces this one."""
        return (
            "INSERT OR REPLACE INTO rejections (sender, message_id, content_sha256, "
            "reason_code, received_at, receipt, receipt_signature, receipt_proof, "
            "directory_serial) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                sender,
                message_id,
                content_sha256,
                reason_code,
                time_text(received_at),
                receipt,
                receipt_signature,
                receipt_proof,
                directory_serial,
            ),
        )

    def admit(
        self,
        sender: str,
        arrivals: Sequence[tuple[str, Statement | list[Statement] | None]],
        *,
        directory_serial: int,
        audits: Sequence[Statement] = (),
    ) -> asyncio.Future[Any]:
        """Queue a batch of envelopes from `sender`, each (message id, the statement that
        stores it or its refusal), deduplicated inside the commit's own transaction. An
        arrival with no statement is not stored: it is only matched, by its id, against what
        is (and claims nothing for a later copy); one with no id is neither.

        For each arrival, in order: if a message, or a refusal made under directory serial
        `directory_serial` or later, with that id from that sender is already stored, nothing
        is written and its stored answer is the result; if an earlier arrival of this batch has
        the id, the result is that arrival's index; otherwise the statement runs and the result
        is None (a refusal made under an older directory is so decided afresh), and its audit
        entry (`audits`, one per arrival, `audit.entry_txn`) is appended. The future
        resolves to that list once committed (one read for the whole batch, inside the
        transaction). Copies racing on several streams are put in order by the writer itself,
        so no copy is answered twice.
        """

        def run(conn: sqlite3.Connection) -> list[PriorAnswer | int | None]:
            ids = sorted({message_id for message_id, _ in arrivals if message_id})
            known: dict[str, PriorAnswer | int] = {}
            for at in range(0, len(ids), 400):  # well under SQLite's limit on parameters
                chunk = ids[at : at + 400]
                marks = ",".join("?" * len(chunk))
                # Refusals first (the newest directory's last), so an accepted copy's receipt
                # wins (ORDER BY 1, 2).
                columns = "message_id, content_sha256, receipt, receipt_signature, receipt_proof"
                rows = conn.execute(
                    f"SELECT 0, directory_serial, {columns} FROM rejections "  # noqa: S608 (only ? marks)
                    f"WHERE sender = ? AND message_id IN ({marks}) "
                    f"UNION ALL SELECT 1, 0, {columns} FROM messages "
                    f"WHERE direction = 'in' AND sender = ? AND message_id IN ({marks}) "
                    "ORDER BY 1, 2",
                    (sender, *chunk, sender, *chunk),
                ).fetchall()
                for accepted, serial, mid, sha, receipt, signature, proof in rows:
                    if accepted or serial >= directory_serial:
                        known[mid] = PriorAnswer(sha, receipt, signature, proof or b"")
            answers: list[PriorAnswer | int | None] = []
            fresh: list[Statement] = []
            for index, (message_id, statement) in enumerate(arrivals):
                prior = known.get(message_id) if message_id else None
                answers.append(prior)
                if prior is None and statement is not None:
                    # A list: a message and what commits with it (a redress's effect).
                    fresh.extend(statement if isinstance(statement, list) else [statement])
                    if message_id:  # a second copy later in this batch answers as this one
                        known[message_id] = index
            for sql, params in fresh:
                conn.execute(sql, params)
            if audits:
                self.audit.journal.append(
                    conn,
                    [a[1] for a, answer in zip(audits, answers, strict=True) if answer is None],
                )
            return answers

        return self.writer.enqueue_call(run)

    def record_receipts(
        self,
        *,
        recipient: str,
        receipts: Sequence[tuple[str, bool, str, bytes, bytes, bytes]],
        at: datetime,
    ) -> asyncio.Future[None]:
        """Queue several receipts from one peer as one unit: (message id, accepted, reason
        code, receipt, receipt signature, receipt proof) each. The future resolves when they
        are committed."""
        when = time_text(at)
        return self.writer.enqueue(
            [
                (
                    "UPDATE deliveries SET state = ?, reason_code = ?, receipt = ?, "
                    "receipt_signature = ?, receipt_proof = ?, receipted_at = ? "
                    "WHERE message_id = ? AND recipient = ? AND state = 'queued'",
                    (
                        "accepted" if accepted else "rejected",
                        reason_code,
                        receipt,
                        receipt_signature,
                        proof,
                        when,
                        message_id,
                        recipient,
                    ),
                )
                for message_id, accepted, reason_code, receipt, receipt_signature, proof in receipts
            ]
        )

    async def record_attempt(self, *, recipient: str, error: str) -> None:
        """Count a failed connection attempt against every message queued for the peer."""
        await self.writer.submit(
            [
                (
                    "UPDATE deliveries SET attempts = attempts + 1, last_error = ? "
                    "WHERE recipient = ? AND state = 'queued'",
                    (error[:500], recipient),
                )
            ]
        )

    # ---- reads ------------------------------------------------------------------------------

    async def queued_for(
        self, recipient: str, *, after_seq: int = 0, limit: int = 512
    ) -> list[PendingEnvelope]:
        """Up to `limit` envelopes queued for `recipient` after `after_seq`, in seq order: every
        one committed before the call, on the outbox's own connection (see __init__)."""
        rows = await self._outbox.execute_fetchall(
            "SELECT d.seq, d.message_id, m.ciphertext, m.wrapped_key, m.signature, "
            "m.content_sha256, m.sender, m.signature_proof, m.purpose, m.tlp, m.handling_codes, "
            "m.seal, m.received_at, m.key_id FROM deliveries d JOIN messages m "
            "ON m.message_id = d.message_id AND m.direction = 'out' "
            "WHERE d.recipient = ? AND d.state = 'queued' AND d.seq > ? ORDER BY d.seq LIMIT ?",
            (recipient, after_seq, limit),
        )
        out = []
        for (
            seq, message_id, ciphertext, wrapped, signature, sha, sender, proof, purpose, tlp,
            handling, seal, at, key_id,
        ) in rows:  # fmt: skip
            aad = aad_for(
                sender,
                message_id,
                purpose=purpose,
                tlp=tlp,
                handling_codes=handling.split(",") if handling else (),
                version=seal,
            )
            if ciphertext is None:
                continue  # erased while queued: nothing is left to deliver
            content = self.keys.open(Sealed(ciphertext, wrapped, key_id), aad)
            out.append(
                PendingEnvelope(
                    seq, message_id, recipient, content, signature, sha, proof or b"", text_time(at)
                )
            )
        return out

    async def queued_seqs(self, recipient: str, *, limit: int) -> list[int]:
        """The lowest `limit` seqs still queued for `recipient` (a link's check on itself)."""
        rows = await self._outbox.execute_fetchall(
            "SELECT seq FROM deliveries WHERE recipient = ? AND state = 'queued' "
            "ORDER BY seq LIMIT ?",
            (recipient, limit),
        )
        return [int(r[0]) for r in rows]

    async def check_master_key(self, *, created: bool) -> None:
        """ConfigError unless this store's key is the one its messages were sealed with;
        `created`: the key was just made because none was found. Records the key's check
        value the first time (node_state)."""
        rows = list(
            await self._rconn.execute_fetchall(
                "SELECT value FROM node_state WHERE name = 'master_key_check'"
            )
        )
        recorded = bytes(rows[0][0]) if rows else None
        sealed = list(
            await self._rconn.execute_fetchall(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages "  # noqa: S608 (constant column list)
                "WHERE wrapped_key IS NOT NULL LIMIT 1"
            )
        )
        if recorded is not None or sealed:
            if created:
                raise ConfigError(
                    "master.key is missing, but accord.db holds messages sealed with a master "
                    "key: restore master.key from your backup (without it they cannot be read)"
                )
            if recorded is not None and recorded != self.keys.check_value:
                raise ConfigError(
                    "master.key is not the key accord.db was sealed with: restore the right "
                    "master.key from your backup"
                )
            if recorded is None:
                try:
                    self.open_content(_message_from_row(sealed[0]))
                except SealError as exc:
                    raise ConfigError(
                        "master.key does not open the messages in accord.db: restore the "
                        "right master.key from your backup"
                    ) from exc
        # Only now: node_state's MACs are keyed from the master key, so a missing or wrong
        # key would fail this check too, and is named above instead.
        try:
            await self._state()
        except ConfigError as exc:
            if created:
                raise ConfigError(
                    "master.key is missing, but accord.db was made with one: restore "
                    "master.key from your backup"
                ) from exc
            raise
        if recorded is None:
            keys = self.keys
            await self.writer.enqueue_call(
                lambda conn: put_state(conn, keys, "master_key_check", keys.check_value)
            )

    async def check_keystore(self) -> None:
        """ConfigError if the keystore was just made, empty, while the database holds rows
        sealed under keystore keys: it was lost or not restored, and starting would treat
        every such message as erased."""
        keystore = self.keys.keystore
        if keystore is None:
            return
        keystore.check()
        if not keystore.created:
            return
        rows = await self._rconn.execute_fetchall(
            "SELECT 1 FROM messages WHERE key_id IS NOT NULL AND erased_at IS NULL LIMIT 1"
        )
        if list(rows):
            raise ConfigError(
                f"{keystore.path.name} is missing, but accord.db holds messages sealed under "
                "its keys: restore it from your backup together with master.key (without it "
                "they cannot be read)"
            )

    async def _state(self) -> dict[str, object]:
        """node_state, checked (rowmac.read_state): ConfigError if it was altered."""
        found = await self._rconn.execute_fetchall("SELECT name, value, mac FROM node_state")
        return check_state(found, self.keys)

    async def high_waters(self, *names: str) -> dict[str, int]:
        """The highest values recorded under `names` (missing: never recorded), checked:
        ConfigError if node_state was altered."""
        state = await self._state()
        return {name: int(str(state[name])) for name in names if name in state}

    def record_high_waters(self, marks: dict[str, int]) -> asyncio.Future[None]:
        """Queue `marks` (name -> value) as one unit, each value kept unless a higher one is
        recorded already; the future resolves once they are committed."""
        keys = self.keys

        def run(conn: sqlite3.Connection) -> None:
            for name, value in marks.items():
                put_state(conn, keys, name, value, at_least=True)

        return self.writer.enqueue_call(run)

    async def sweep_rejections(self, *, before: datetime, limit: int) -> int:
        """Delete up to `limit` stored refusals received before `before`; how many went."""
        cursor = await self.writer.enqueue_call(
            lambda conn: (
                conn.execute(
                    "DELETE FROM rejections WHERE id IN (SELECT id FROM rejections "
                    "WHERE received_at < ? ORDER BY received_at LIMIT ?)",
                    (time_text(before), limit),
                ).rowcount
            )
        )
        return int(cursor)

    async def recipients_with_queued(self) -> list[str]:
        cursor = await self._rconn.execute(
            "SELECT DISTINCT recipient FROM deliveries WHERE state = 'queued'"
        )
        return [r[0] for r in await cursor.fetchall()]

    async def outbox(self) -> list[PeerQueue]:
        rows = await self._rconn.execute_fetchall(
            "SELECT d.recipient, sum(d.state = 'queued'), "
            "min(CASE WHEN d.state = 'queued' THEN m.received_at END), max(d.receipted_at), "
            "max(CASE WHEN d.state = 'queued' THEN d.last_error ELSE '' END) "
            "FROM deliveries d JOIN messages m "
            "ON m.message_id = d.message_id AND m.direction = 'out' "
            "GROUP BY d.recipient ORDER BY d.recipient"
        )
        return [
            PeerQueue(recipient, int(queued or 0), text_time(oldest), text_time(last), error or "")
            for recipient, queued, oldest, last, error in rows
        ]

    async def get_message(
        self, message_id: str, *, sender: str | None = None, direction: str | None = None
    ) -> StoredMessage | None:
        sql = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE message_id = ?"  # noqa: S608 (constant column list)
        params: list[Any] = [message_id]
        if sender:
            sql += " AND sender = ?"
            params.append(sender)
        if direction:
            sql += " AND direction = ?"
            params.append(direction)
        cursor = await self._rconn.execute(sql + " ORDER BY direction LIMIT 1", params)
        row = await cursor.fetchone()
        return _message_from_row(row) if row else None

    async def held(self, message_id: str, correlation_id: str) -> bool:
        """Whether a legal hold in force covers the message or its correlation id."""
        rows = await self._rconn.execute_fetchall(
            "SELECT 1 FROM holds WHERE released_at IS NULL AND ((message_id != '' AND "
            "message_id = ?) OR (correlation_id != '' AND correlation_id = ?)) LIMIT 1",
            (message_id, correlation_id),
        )
        return bool(list(rows))

    async def thread_types(self, *, ids: Sequence[str], threads: Sequence[str]) -> frozenset[str]:
        """The types of received messages with one of `ids`, or whose id or correlation id is
        one of `threads` (a reply's thread)."""
        ids = [*{i for i in (*ids, *threads) if i}]
        threads = [*{t for t in threads if t}]
        if not ids:
            return frozenset()
        sql = (
            "SELECT DISTINCT type FROM messages WHERE direction = 'in' AND "  # noqa: S608 (only ? marks)
            f"(message_id IN ({','.join('?' * len(ids))})"
        )
        if threads:
            sql += f" OR correlation_id IN ({','.join('?' * len(threads))})"
        rows = await self._rconn.execute_fetchall(sql + ")", [*ids, *threads])
        return frozenset(str(row[0]) for row in rows)

    async def list_messages(
        self,
        *,
        direction: str | None = "in",
        limit: int = 100,
        before: str = "",
        type: str = "",
        purpose: str = "",
        peer: str = "",
        correlation_id: str = "",
        message_id: str = "",
    ) -> list[StoredMessage]:
        """Newest first; every filter left empty matches anything. `peer` is the sender of a
        received message, a recipient of a sent one (queued, delivered or held for approval)."""
        sql = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE 1=1"  # noqa: S608 (constant column list)
        params: list[Any] = []
        if direction:
            sql += " AND direction = ?"
            params.append(direction)
        if before:
            sql += " AND message_id < ?"
            params.append(before)
        for column, value in (
            ("type", type),
            ("purpose", purpose),
            ("correlation_id", correlation_id),
            ("message_id", message_id),
        ):
            if value:
                sql += f" AND {column} = ?"
                params.append(value)
        if peer:
            sql += (
                " AND ((direction = 'in' AND sender = ?) OR (direction = 'out' AND ("
                "EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = messages.message_id "
                "AND d.recipient = ?) OR EXISTS (SELECT 1 FROM approvals a WHERE "
                "a.message_id = messages.message_id "
                "AND instr(',' || a.recipients || ',', ',' || ? || ',') > 0))))"
            )
            params += [peer, peer, peer]
        sql += " ORDER BY message_id DESC LIMIT ?"
        params.append(limit)
        cursor = await self._rconn.execute(sql, params)
        return [_message_from_row(r) for r in await cursor.fetchall()]

    async def replies_to(self, message_ids: Sequence[str]) -> dict[str, list[str]]:
        """The types of the messages this node sent in reply to each of `message_ids`."""
        out: dict[str, list[str]] = {}
        sql = "SELECT in_reply_to, type FROM messages WHERE direction = 'out' AND in_reply_to IN"
        for replied, kind in await self._for_ids(sql, message_ids):
            out.setdefault(replied, []).append(kind)
        return out

    async def requests(self) -> list[tuple[StoredMessage, str]]:
        """Every REQUEST_INFO with the agency each answer is owed by or to: a received one's
        sender, and each recipient that accepted a sent one."""
        cols = ", ".join(f"m.{c.strip()}" for c in _MESSAGE_COLUMNS.split(","))
        rows = await self._rconn.execute_fetchall(
            f"SELECT {cols}, m.sender FROM messages m "  # noqa: S608 (constant column list)
            "WHERE m.type = 'REQUEST_INFO' AND m.direction = 'in' UNION ALL "
            f"SELECT {cols}, d.recipient FROM messages m JOIN deliveries d "
            "ON d.message_id = m.message_id AND d.state = 'accepted' "
            "WHERE m.type = 'REQUEST_INFO' AND m.direction = 'out'"
        )
        return [(_message_from_row(r), str(r[-1])) for r in rows]

    async def answers(self, request_ids: Sequence[str]) -> dict[str, list[Answer]]:
        """The answers to each request, oldest first: only those between the two agencies it
        concerns (a received answer from a recipient of our request; our answer sent to the
        one who asked), so a third agency's message cannot answer, or delay, a request."""
        sql = (
            "SELECT r.in_reply_to, r.direction, r.sender, q.sender, r.type, r.received_at, "
            "r.expected_by FROM messages r JOIN messages q ON q.message_id = r.in_reply_to "
            "AND q.direction != r.direction AND q.type = 'REQUEST_INFO' "
            "WHERE r.type IN ('REPLY', 'REFUSAL', 'DELAY_NOTICE') AND ("
            "(r.direction = 'in' AND EXISTS (SELECT 1 FROM deliveries d "
            "WHERE d.message_id = q.message_id AND d.recipient = r.sender)) OR "
            "(r.direction = 'out' AND EXISTS (SELECT 1 FROM deliveries d "
            "WHERE d.message_id = r.message_id AND d.recipient = q.sender))) "
            "AND r.in_reply_to IN"
        )
        out: dict[str, list[Answer]] = {}
        rows = await self._for_ids(sql, request_ids)
        for request_id, direction, sender, requester, kind, at, expected_by in rows:
            when = text_time(at)
            assert when is not None
            peer = sender if direction == "in" else requester
            answer = Answer(request_id, peer, kind, when, text_time(expected_by))
            out.setdefault(request_id, []).append(answer)
        for found in out.values():
            found.sort(key=lambda a: a.at)
        return out

    async def deliveries_of(self, message_ids: Sequence[str]) -> dict[str, list[Delivery]]:
        """The deliveries of several sent messages, by message id."""
        out: dict[str, list[Delivery]] = {}
        sql = (
            "SELECT seq, message_id, recipient, state, attempts, last_error, receipt, "
            "receipt_signature, reason_code, receipt_proof FROM deliveries WHERE message_id IN"
        )
        for row in await self._for_ids(sql, message_ids, order="recipient"):
            out.setdefault(row[1], []).append(Delivery(*row))
        return out

    async def _for_ids(
        self, sql: str, ids: Sequence[str], *, order: str = ""
    ) -> list[tuple[Any, ...]]:
        """`sql` ending in `IN`, run for `ids` a chunk at a time (SQLite limits parameters)."""
        rows: list[tuple[Any, ...]] = []
        for at in range(0, len(ids), 400):
            chunk = list(ids[at : at + 400])
            marks = ",".join("?" * len(chunk))
            tail = f" ORDER BY {order}" if order else ""
            found = await self._rconn.execute_fetchall(f"{sql} ({marks}){tail}", chunk)
            rows += [tuple(r) for r in found]
        return rows

    async def deliveries(self, message_id: str) -> list[Delivery]:
        cursor = await self._rconn.execute(
            "SELECT seq, message_id, recipient, state, attempts, last_error, receipt, "
            "receipt_signature, reason_code, receipt_proof FROM deliveries WHERE message_id = ? "
            "ORDER BY recipient",
            (message_id,),
        )
        return [Delivery(*row) for row in await cursor.fetchall()]

    async def count(self, table: str) -> int:
        if table not in ("messages", "deliveries", "rejections"):
            raise ValueError(table)
        cursor = await self._rconn.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
        row = await cursor.fetchone()
        return int(row[0]) if row else 0


def keystore_path(database: Path) -> Path:
    """Where a database's keystore lives: beside it, NAME-keys.db."""
    return database.with_name(f"{database.stem}-keys.db")


def _create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite creates it with the umask's mode."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)


class DatabaseMissing(ConfigError):
    """A node home whose database is gone or empty: starting would begin a fresh node over lost
    messages, so the node refuses instead."""


def _check_initialised(path: Path) -> None:
    hint = "restore it from backup (a node never starts afresh over a lost database)"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DatabaseMissing(f"home initialised but database missing: {path}; {hint}") from None
    if size == 0:
        raise DatabaseMissing(f"home initialised but database empty: {path} is 0 bytes; {hint}")


def create_database(path: Path, keys: KeyRing, statements: Sequence[Statement] = ()) -> None:
    """A new database with the whole schema and `statements` run in one transaction after it
    (`accord node init`: the bootstrap administrator); synchronous, no writer. `keys`: the
    master key the node will use (it keys the rows' MACs)."""
    if path.exists():
        raise ConfigError(f"{path} exists; refusing to overwrite it")
    _create_private(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        _migrate_sync(conn, create=True, keys=keys)
        journal = AuditJournal.restore(conn)
        conn.execute("BEGIN IMMEDIATE")
        journal.begin()
        for sql, params in statements:
            if sql == journal.sql:
                journal.append(conn, [params])
            else:
                conn.execute(sql, params)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _scripts() -> list[tuple[int, str, str]]:
    folder = resources.files("node.store") / "migrations"
    return sorted(
        (int(m.group(1)), m.group(2), entry.read_text())
        for entry in folder.iterdir()
        if (m := _MIGRATION.match(entry.name))
    )


# Python steps of migrations, run after the version's SQL in the same transaction (they need
# the master key, which SQL does not have).
_STEPS: dict[int, Callable[[sqlite3.Connection, KeyRing], None]] = {41: seal_existing}


def _migrate_sync(conn: sqlite3.Connection, *, create: bool, keys: KeyRing) -> None:
    """Apply numbered migrations (NNN_name.sql, and a Python step where `_STEPS` has one) not
    yet applied, each in its own transaction.

    Without `create`, a database with no schema at all is refused: its home was initialised,
    so the schema was made there, and a file without it is not this node's database."""
    known = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()[0]
    if not known and not create:
        raise DatabaseMissing(
            "home initialised but its database has no schema: restore accord.db from backup"
        )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    for version, name, sql in _scripts():
        if version in applied:
            continue
        conn.executescript(f"BEGIN IMMEDIATE;\n{sql}")
        try:
            if version in _STEPS:
                _STEPS[version](conn, keys)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, datetime('now'))", (version, name)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    import_access_log(conn)


def _migrate_file(path: Path, *, create: bool, synchronous: str, keys: KeyRing) -> None:
    """`_migrate_sync` on a connection of its own, with the writer's settings."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA foreign_keys=ON")
        _migrate_sync(conn, create=create, keys=keys)
    finally:
        conn.close()


def _restore_journal(path: Path) -> AuditJournal:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return AuditJournal.restore(conn)
    finally:
        conn.close()
