"""The inbound side: check each envelope, store it durably, answer with a signed receipt.

The receiver verifies each batch's signatures (the I/O-free checks need their result), runs the
inbound checks of node/policy/inbound.py on each envelope (each refusal has its own reason code
and never breaks the stream), then stores and signs. Accepted envelopes, and final refusals of
verified content, are committed (group commit) before their receipt leaves, and a resent
envelope gets the receipt it got the first time. A refusal that is not a decision about
verified content (a signature that does not verify, an unknown key, a store that cannot take
it) is answered DEFERRED and not kept, so it claims nothing: the sender tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from node import deadlines, signing, wire
from node.clock import Clock
from node.delivery.budget import CooledDown, RefusalBudget, VolumeBudget
from node.errors import TRANSIENT, Reason, Refused
from node.messages import MessageMeta, SignedReceipt
from node.policy.inbound import AllOf, Inbound, Verdict
from node.policy.redress import Held, held_of
from node.signing import Signer
from node.store import Store, StoredMessage
from node.store.audit import entry_txn
from node.store.db import PriorAnswer
from node.store.keys import Sealed
from node.store.writer import Statement
from node.trust import Peer

log = logging.getLogger(__name__)

Arrival = wire.Arrival

# Batches with at least this many distinct signatures verify them in a worker thread (OpenSSL
# releases the GIL); fewer inline, since a thread hop adds latency that only pays off under load.
THREAD_BATCH = 16


class RedressLookups(Protocol):
    """What the redress checks need looked up in the store (node/redress.py)."""

    async def held(self, peer: str, ids: Sequence[str]) -> dict[str, Held]:
        """The messages this node holds from `peer` under these ids."""
        ...

    async def sent(self, peer: str, ids: Sequence[str]) -> dict[str, str]:
        """The types of the messages this node sent `peer` under these ids."""
        ...

    def applied(self, verdict: Verdict, *, sender: str, now: datetime) -> list[Statement]:
        """What commits with an accepted redress: its effect on the message it acts on."""
        ...


class _Lookups:
    """The held and sent messages a batch's redresses name: looked up only when a check asks
    (the first pass over a batch records what was asked), and what the batch itself brings."""

    def __init__(self) -> None:
        self.held: dict[str, Held] = {}
        self.sent: dict[str, str] = {}
        self.missed_held: set[str] = set()
        self.missed_sent: set[str] = set()
        self.fetched = False

    def held_one(self, message_id: str) -> Held | None:
        found = self.held.get(message_id)
        if found is None and not self.fetched:
            self.missed_held.add(message_id)
        return found

    def sent_one(self, message_id: str) -> str | None:
        found = self.sent.get(message_id)
        if found is None and not self.fetched:
            self.missed_sent.add(message_id)
        return found


@dataclass(frozen=True, slots=True)
class Answer:
    receipt: bytes
    signature: bytes
    content_sha256: bytes
    accepted: bool
    reason: str
    proof: bytes = b""  # audit path to the batch root the signature is over (message.proto)

    def signed_receipt(self) -> SignedReceipt:
        return SignedReceipt(self.receipt, self.signature, self.proof)


@dataclass(slots=True)
class _Draft:
    """One envelope's answer before its receipt is signed (with the rest of its batch)."""

    receipt: bytes  # ReceiptContent
    sha: bytes
    mid: str  # the message id the receipt names ("" if none could be read)
    reason: Reason | None = None  # None: accepted
    detail: str = ""  # why it was refused
    # Stored (and so matched when a copy comes again): accepted, or refused after the content
    # verified and named a valid id. Anything else is answered and forgotten.
    stored: bool = False
    # For an accepted envelope: what is stored.
    meta: MessageMeta | None = None
    retain_until: datetime | None = None
    signature: bytes = b""  # the envelope's own
    proof: bytes = b""  # and its audit path
    sealed: Sealed | None = None
    answer: Answer | None = None
    message: StoredMessage | None = None
    verdict: Verdict | None = None
    size: int = 0  # of the content, for an accepted envelope (the peer's volume budget)

    def signed(self) -> Answer:
        assert self.answer is not None, "receipts are signed before answers are read"
        return self.answer

    def stored_message(self) -> StoredMessage:
        assert self.message is not None, "receipts are signed before rows are written"
        return self.message


class Receiver:
    def __init__(
        self,
        *,
        agency: str,
        signer: Signer,
        store: Store,
        clock: Clock,
        checks: AllOf,
        directory_serial: Callable[[], int],
        max_message_bytes: int,
        on_stored: Callable[[StoredMessage], None] = lambda m: None,
        on_refused: Callable[[str, str, str], None] = lambda sender, mid, reason: None,
        budget: RefusalBudget | None = None,
        redress: RedressLookups | None = None,
        volume: VolumeBudget | None = None,
    ) -> None:
        """`checks`: what each envelope must pass (node/policy/inbound.py); `directory_serial`:
        the serial of the directory loaded now, which stored refusals are remembered under;
        `budget`: each peer's refused (and copied) envelopes; `volume`: each peer's stored
        bytes."""
        self.agency = agency
        self._budget = budget
        self._volume = volume
        self._signer = signer
        self._store = store
        self._clock = clock
        self._checks = checks
        self._serial = directory_serial
        self._max = max_message_bytes
        self._on_stored = on_stored
        self._on_refused = on_refused
        self._order: dict[str, asyncio.Lock] = {}
        self._storage_down = False  # said once per outage, not per batch
        self._redress = redress
        self._last_unit: dict[str, asyncio.Future[Any]] = {}  # each peer's newest batch

    async def admit(self, peer: Peer, envelopes: Sequence[Arrival]) -> asyncio.Task[list[Answer]]:
        """The ordered part of answering a batch: verify, check, and queue it for commit.

        Returns once the batch's unit is queued behind the peer's earlier batches; the task
        returned resolves to the answers after the commit. A stream calls this for one batch
        at a time, so envelopes that arrive meanwhile form the next, larger batch: under load
        the fixed cost of a batch is paid once for many envelopes.

        Whether an envelope was answered before is decided inside the commit's transaction
        (`Store.admit`): the writer puts copies racing on several streams in order, so each
        gets the first copy's receipt, with no read before the commit and nothing to claim.
        Only answers about verified content are stored and matched; a refusal made under an
        older directory is decided afresh.
        """
        # A peer's batches reach the writer in the order they arrived (per-pair order), even
        # though each waits for its signatures in a worker thread.
        async with self._order.setdefault(peer.agency, asyncio.Lock()):
            if self._budget is not None:
                self._budget.check(peer.agency)
            verified = await self._verify_all(peer, envelopes)
            now = self._clock.now()
            serial = self._serial()
            lookups = _Lookups()
            drafts = self._drafts(peer, envelopes, verified, now, lookups)
            if lookups.missed_held or lookups.missed_sent:
                # A redress names a message: looked up once the peer's earlier batches (which
                # may bring it) are committed, then the batch is checked again.
                await self._look_up(peer.agency, lookups)
                drafts = self._drafts(peer, envelopes, verified, now, lookups)
            if self._volume is not None:
                drafts = [self._within_volume(peer, d, now) for d in drafts]
            if self._budget is not None:
                # A peer over its refusal budget waits here, holding up only its own batches.
                refused = sum(1 for d in drafts if d.reason is not None)
                delay = self._budget.charge(peer.agency, refused)
                if delay:
                    await asyncio.sleep(delay)
            # One signature for every receipt of the batch, refusals included (a Merkle root,
            # each receipt with its audit path): the receiver's signing cost is per batch.
            self._sign(drafts, now=now)
            arrivals: list[
                tuple[str, Statement | list[Statement] | None]
            ] = []  # one per envelope, in order
            for d in drafts:
                if d.reason is None:
                    row = self._store.message_txn(d.stored_message())
                    if d.verdict is not None and d.verdict.redress is not None:
                        assert self._redress is not None
                        also = self._redress.applied(d.verdict, sender=peer.agency, now=now)
                        arrivals.append((d.mid, [row, *also]))
                    else:
                        arrivals.append((d.mid, row))
                elif d.stored:
                    answer = d.signed()
                    row = self._store.rejection_txn(
                        sender=peer.agency,
                        message_id=d.mid,
                        content_sha256=d.sha,
                        reason_code=d.reason,
                        received_at=now,
                        receipt=answer.receipt,
                        receipt_signature=answer.signature,
                        receipt_proof=answer.proof,
                        directory_serial=serial,
                    )
                    arrivals.append((d.mid, row))
                else:
                    arrivals.append((d.mid, None))  # matched (same bytes: same answer), not kept
            # One unit for the whole batch: one future, one place in the commit.
            committed = self._store.admit(
                peer.agency,
                arrivals,
                directory_serial=serial,
                audits=[self._collected(peer, d, now) for d in drafts],
            )
            self._last_unit[peer.agency] = committed

        def announce(unit: asyncio.Future[Any]) -> None:
            """Stored messages are announced when the commit lands, whoever still waits."""
            if unit.cancelled() or unit.exception() is not None:
                return
            for draft, prior in zip(drafts, unit.result(), strict=True):
                if prior is not None and (draft.stored or _same(prior, draft, drafts)):
                    continue  # a copy: answered as the first time, nothing new to report
                if draft.reason is None:
                    self._on_stored(draft.stored_message())
                else:
                    # Reported only now: a copy of an envelope answered before may fail a
                    # check today (an agreement since expired), yet it is answered with its
                    # first receipt, not refused.
                    # The node logs it as an event (on_refused); here only for debugging.
                    log.debug("refused %s from %s: %s", draft.mid or "?", peer.agency, draft.reason)
                    self._on_refused(peer.agency, draft.mid, draft.reason)

        committed.add_done_callback(announce)
        return asyncio.create_task(
            self._finish(peer, committed, drafts, now),
            name=f"answers-{peer.agency}",
        )

    def _drafts(
        self,
        peer: Peer,
        envelopes: Sequence[Arrival],
        verified: Sequence[bool],
        now: datetime,
        lookups: _Lookups,
    ) -> list[_Draft]:
        """Each envelope's answer, in order; a message accepted here can be the target of a
        redress later in the same batch."""
        drafts = []
        for (content, signature, proof), ok in zip(envelopes, verified, strict=True):
            draft = self._answer(peer, content, signature, proof, ok, now, lookups)
            drafts.append(draft)
            if draft.reason is None and draft.verdict is not None and lookups.fetched:
                meta = draft.verdict.meta
                lookups.held.setdefault(
                    meta.message_id,
                    held_of(
                        wire.decode(content),
                        row_tlp=meta.tlp,
                        retain_until=draft.verdict.retain_until,
                    ),
                )
        return drafts

    async def _look_up(self, peer: str, lookups: _Lookups) -> None:
        earlier = self._last_unit.get(peer)
        if earlier is not None and not earlier.done():
            await asyncio.wait([earlier])
        if self._redress is not None:
            lookups.held.update(await self._redress.held(peer, sorted(lookups.missed_held)))
            lookups.sent.update(await self._redress.sent(peer, sorted(lookups.missed_sent)))
        lookups.fetched = True

    def _within_volume(self, peer: Peer, draft: _Draft, now: datetime) -> _Draft:
        """An accepted envelope past the peer's volume budget is deferred, not stored."""
        if draft.reason is not None or self._volume is None:
            return draft
        if self._volume.take(peer.agency, draft.size):
            return draft
        return self._refusal_draft(
            peer,
            draft.mid,
            draft.sha,
            now,
            Reason.VOLUME_EXCEEDED,
            f"{self.agency} takes at most limits.peer_bytes_per_day from one peer (GetPolicy); "
            "not kept, send it again later",
        )

    def _sign(self, drafts: Sequence[_Draft], *, now: datetime) -> None:
        """Sign the drafts' receipts (one signature for all of them) and complete each: its
        answer and, if accepted, the row to store."""
        signatures = self._signer.sign_batch([d.receipt for d in drafts], signing.RECEIPT)
        for d, (receipt_signature, proof) in zip(drafts, signatures, strict=True):
            d.answer = Answer(
                d.receipt,
                receipt_signature,
                d.sha,
                accepted=d.reason is None,
                reason=d.reason or "",
                proof=proof,
            )
            if d.reason is None:
                assert d.meta is not None and d.sealed is not None
                d.message = StoredMessage.of(
                    d.meta,
                    direction="in",
                    received_at=now,
                    retain_until=d.retain_until,
                    content_sha256=d.sha,
                    signature=d.signature,
                    signature_proof=d.proof,
                    sealed=d.sealed,
                    receipt=d.receipt,
                    receipt_signature=receipt_signature,
                    receipt_proof=proof,
                )
                if d.meta.type == deadlines.REQUEST:
                    # The Directive's limit binds this agency from receipt (node/deadlines.py).
                    due = deadlines.receiver_deadline(
                        d.meta.reply_deadline,
                        now,
                        urgent=d.meta.urgency == "URGENT",
                        direct=d.meta.directly_accessible,
                    )
                    d.message = replace(d.message, reply_deadline=due)

    async def _finish(
        self,
        peer: Peer,
        committed: asyncio.Future[Any],
        drafts: list[_Draft],
        now: datetime,
    ) -> list[Answer]:
        """The batch's answers, once it is committed: each envelope's own, or, for one
        answered before, the receipt it got the first time. If the store could not take the
        batch, every envelope is answered DEFERRED (STORAGE_UNAVAILABLE): nothing was stored,
        and the sender sends it again."""
        try:
            priors = await asyncio.shield(committed)  # cancelling this wait must not cancel it
        except sqlite3.Error as exc:
            return self._unstored(peer, drafts, now, exc)
        # A batch whose sealing could not make its day's key (_answer) committed nothing of it.
        sealed = all(d.reason != Reason.STORAGE_UNAVAILABLE for d in drafts)
        if self._storage_down and sealed:
            self._storage_down = False
            log.warning("storage available again: envelopes are stored and answered")
        out: list[Answer | None] = []
        conflicts: list[tuple[int, _Draft]] = []  # answered ID_CONFLICT, signed below
        copies = 0  # envelopes answered before: each costs this node the work of a refusal
        for draft, prior in zip(drafts, priors, strict=True):
            if prior is None:
                out.append(draft.signed())
                continue
            copies += 1
            if self._volume is not None and draft.reason is None:
                self._volume.give_back(peer.agency, draft.size)  # not stored again
            if isinstance(prior, int):  # a copy of an envelope earlier in this batch
                first = out[prior]
                assert first is not None
            else:
                first = Answer(
                    prior.receipt,
                    prior.receipt_signature,
                    prior.content_sha256,
                    accepted=True,
                    reason="duplicate",
                    proof=prior.receipt_proof,
                )
            if first.content_sha256 == draft.sha:
                out.append(replace(first, accepted=True, reason="duplicate"))
                continue
            if not draft.stored:
                # Unverified bytes under a stored id: its own answer (the id is not its to
                # conflict with).
                out.append(draft.signed())
                continue
            # Same id, different bytes: refused without storing (the first copy stands).
            conflicts.append((len(out), self._refusal_draft(
                peer, draft.mid, draft.sha, now, Reason.ID_CONFLICT,
                "a different message with this id was received before",
            )))  # fmt: skip
            out.append(None)
        if copies and self._budget is not None:
            # A resend after a lost receipt costs a few; a peer that sends the same envelopes
            # over and over is slowed and cut off like one sending junk.
            with contextlib.suppress(CooledDown):  # its next batch is refused
                self._budget.charge(peer.agency, copies)
        if conflicts:
            await self._audit_refusals(peer, [c for _, c in conflicts], now)
            self._sign([c for _, c in conflicts], now=now)
            for at, conflict in conflicts:
                out[at] = conflict.signed()
                self._on_refused(peer.agency, conflict.mid, Reason.ID_CONFLICT)
        answers = [a for a in out if a is not None]
        assert len(answers) == len(drafts)
        return answers

    async def _audit_refusals(self, peer: Peer, drafts: Sequence[_Draft], now: datetime) -> None:
        """Audit entries of refusals decided after the batch committed (ID_CONFLICT). The
        refusal stores nothing, so it is answered even if its entry cannot be written."""
        try:
            await self._store.writer.submit([self._collected(peer, d, now) for d in drafts])
        except Exception as exc:
            log.error("could not write the audit entries of %d refusals: %s", len(drafts), exc)

    def _unstored(
        self,
        peer: Peer,
        drafts: Sequence[_Draft],
        now: datetime,
        error: Exception,
    ) -> list[Answer]:
        """DEFERRED answers for a batch the store could not take."""
        if not self._storage_down:
            self._storage_down = True
            log.error(
                "cannot store envelopes (%s): answering STORAGE_UNAVAILABLE; senders retry", error
            )
        deferred = [
            self._refusal_draft(
                peer,
                d.mid,
                d.sha,
                now,
                Reason.STORAGE_UNAVAILABLE,
                "the receiver could not store it now; it is not kept, send it again later",
            )
            for d in drafts
        ]
        self._sign(deferred, now=now)
        return [d.signed() for d in deferred]

    def _refusal_draft(
        self, peer: Peer, mid: str, sha: bytes, now: datetime, reason: Reason, detail: str
    ) -> _Draft:
        return _Draft(
            receipt=wire.receipt_content(
                message_id=mid,
                content_sha256=sha,
                sender=peer.agency,
                receiver=self.agency,
                received_at=now,
                reason=reason,
                detail=detail[:500],
                final=reason not in TRANSIENT,
            ),
            sha=sha,
            mid=mid,
            reason=reason,
            detail=detail,
        )

    def _collected(self, peer: Peer, draft: _Draft, now: datetime) -> Statement:
        """The audit entry of an envelope's collection: accepted, or refused with its reason."""
        if draft.reason is None:
            assert draft.meta is not None
            return entry_txn(
                at=now, actor="node", action="collect", outcome="accepted", message_id=draft.mid,
                peer=peer.agency, purpose=draft.meta.purpose, detail=draft.meta.type,
            )  # fmt: skip
        return entry_txn(
            at=now, actor="node", action="collect", outcome="refused", message_id=draft.mid,
            peer=peer.agency, detail=f"{draft.reason}: {draft.detail}",
        )  # fmt: skip

    def _answer(
        self,
        peer: Peer,
        content: bytes,
        signature: bytes | None,
        proof: bytes,
        verified: bool,
        now: datetime,
        lookups: _Lookups,
    ) -> _Draft:
        """An envelope's answer, its receipt not yet signed: accepted, with the row to store,
        or refused, stored only if the refusal is a final decision about verified content
        that names a valid message id."""
        sha = signing.digest(content)
        try:
            verdict = self._checked(peer, content, signature, verified, now, lookups)
        except Refused as refusal:
            mid = wire.message_id_hint(content) if len(content) <= self._max else ""
            log.debug("refusing %s from %s: %s", mid or "?", peer.agency, refusal)
            draft = self._refusal_draft(peer, mid, sha, now, refusal.reason, refusal.detail)
            draft.stored = verified and bool(mid) and refusal.reason not in TRANSIENT
            return draft
        assert signature is not None
        meta = verdict.meta
        try:
            # A new expiry day's first message makes that day's key in the keystore.
            sealed = self._store.seal_message(meta, content, retain_until=verdict.retain_until)
        except sqlite3.Error as exc:
            if not self._storage_down:  # said once, as for a batch the writer could not take
                self._storage_down = True
                log.error(
                    "cannot store envelopes (%s): answering STORAGE_UNAVAILABLE; senders retry",
                    exc,
                )
            return self._refusal_draft(
                peer,
                meta.message_id,
                sha,
                now,
                Reason.STORAGE_UNAVAILABLE,
                "the receiver could not store it now; it is not kept, send it again later",
            )
        return _Draft(
            receipt=wire.receipt_content(
                message_id=meta.message_id,
                content_sha256=sha,
                sender=peer.agency,
                receiver=self.agency,
                received_at=now,
                retained_until=verdict.retain_until,
                redress=verdict.redress.outcome if verdict.redress is not None else None,
            ),
            sha=sha,
            mid=meta.message_id,
            stored=True,
            verdict=verdict,
            meta=meta,
            retain_until=verdict.retain_until,
            signature=signature,
            proof=proof,
            sealed=sealed,
            size=len(content),
        )

    def _checked(
        self,
        peer: Peer,
        content: bytes,
        signature: bytes | None,
        verified: bool,
        now: datetime,
        lookups: _Lookups,
    ) -> Verdict:
        """The checks, with any unforeseen failure turned into a refusal: an exception here
        would end the peer's stream, and its resend would end the next one, stalling the
        pair."""
        inbound = Inbound(
            peer=peer.agency,
            content=content,
            framed=signature is not None,
            verified=verified,
            now=now,
            held=lookups.held_one,
            sent=lookups.sent_one,
        )
        try:
            return self._checks.check(inbound)
        except Refused:
            raise
        except Exception as exc:
            log.exception("could not check an envelope from %s", peer.agency)
            raise Refused(
                Reason.MALFORMED, f"content could not be checked: {type(exc).__name__}: {exc}"
            ) from exc

    async def _verify_all(self, peer: Peer, envelopes: Sequence[Arrival]) -> list[bool]:
        """Each envelope's signature check. Envelopes the sender signed as one batch share a
        signature over the same root, which is verified once. Many distinct signatures are
        verified in a worker thread: OpenSSL releases the GIL while it verifies, so the event
        loop goes on meanwhile. Envelopes refused before the signature is looked at (no
        signature, oversize) are not verified."""
        signed: list[tuple[bytes, bytes] | None] = []
        for content, signature, proof in envelopes:
            over = (
                signing.signed_bytes(content, proof, signing.ENVELOPE)
                if signature is not None and len(content) <= self._max
                else None
            )
            signed.append(None if over is None or signature is None else (over, signature))
        distinct = {pair for pair in signed if pair is not None}

        def verify_distinct() -> dict[tuple[bytes, bytes], bool]:
            return {pair: signing.verify_signed(peer.public_key, *pair) for pair in distinct}

        if len(distinct) < THREAD_BATCH:
            checked = verify_distinct()
        else:
            checked = await asyncio.to_thread(verify_distinct)
        return [pair is not None and checked[pair] for pair in signed]


def _same(prior: PriorAnswer | int, draft: _Draft, drafts: Sequence[_Draft]) -> bool:
    """Whether an envelope matched to an earlier answer is the very content answered then."""
    first = drafts[prior].sha if isinstance(prior, int) else prior.content_sha256
    return first == draft.sha
