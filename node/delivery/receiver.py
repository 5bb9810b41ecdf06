"""The inbound side: check each envelope, store it durably, answer with a signed receipt.

Order of checks (each refusal has its own reason code and never breaks the stream): size,
signature by the authenticated peer's key, structure, sender and recipient, message type,
agreement policy. Accepted and refused envelopes alike are committed (group commit) before their
receipt leaves, and a resent envelope gets the receipt it got the first time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from node.clock import Clock
from node.envelope import (
    MessageMeta,
    digest,
    envelope_signed_bytes,
    message_id_hint,
    meta_of,
    parse_content,
    receipt_content,
    sign,
    sign_receipts,
    verify,
)
from node.errors import Reason, Refused
from node.onward import check_forwarded
from node.policy import Policy
from node.store import Store, StoredMessage
from node.store.keys import Sealed
from node.store.writer import Statement
from node.trust import Peer

log = logging.getLogger(__name__)

# What a stream hands the receiver for each envelope: the content, the sender's signature (None:
# the frame was not an Envelope at all) and its audit path (empty: signed alone).
Arrival = tuple[bytes, bytes | None, bytes]

# Batches with at least this many distinct signatures verify them in a worker thread (OpenSSL
# releases the GIL); fewer inline, since a thread hop adds latency that only pays off under load.
THREAD_BATCH = 16


@dataclass(frozen=True, slots=True)
class Answer:
    receipt: bytes
    signature: bytes
    content_sha256: bytes
    accepted: bool
    reason: str
    proof: bytes = b""  # audit path to the batch root the signature is over (message.proto)


@dataclass(slots=True)
class _Unsigned:
    """An accepted envelope whose receipt is signed together with the rest of its batch."""

    receipt: bytes
    sha: bytes
    meta: MessageMeta
    retain_until: datetime | None
    signature: bytes  # the envelope's own
    proof: bytes  # and its audit path
    sealed: Sealed
    answer: Answer | None = None
    message: StoredMessage | None = None

    def signed(self) -> Answer:
        assert self.answer is not None, "receipts are signed before answers are read"
        return self.answer

    def stored(self) -> StoredMessage:
        assert self.message is not None, "receipts are signed before rows are written"
        return self.message


class Receiver:
    def __init__(
        self,
        *,
        agency: str,
        key: ec.EllipticCurvePrivateKey,
        store: Store,
        clock: Clock,
        policy: Callable[[], Policy],
        max_message_bytes: int,
        on_stored: Callable[[StoredMessage], None] = lambda m: None,
        on_refused: Callable[[str, str, str], None] = lambda sender, mid, reason: None,
        member_key: Callable[[str], ec.EllipticCurvePublicKey | None] = lambda agency: None,
    ) -> None:
        self.agency = agency
        self._key = key
        self._store = store
        self._clock = clock
        self._policy = policy
        self._max = max_message_bytes
        self._on_stored = on_stored
        self._on_refused = on_refused
        self._member_key = member_key
        self._order: dict[str, asyncio.Lock] = {}

    async def handle(
        self, peer: Peer, envelopes: Sequence[Arrival], *, receipt_paths: bool = False
    ) -> list[Answer]:
        """Answer a batch of envelopes from one peer, in order, after they are durable."""
        task = await self.admit(peer, envelopes, receipt_paths=receipt_paths)
        return await task

    async def admit(
        self, peer: Peer, envelopes: Sequence[Arrival], *, receipt_paths: bool = False
    ) -> asyncio.Task[list[Answer]]:
        """The ordered part of answering a batch: verify, check, and queue it for commit.

        `receipt_paths`: whether the stream's caller checks receipts' audit paths (it named
        receipt-proof/v1 when it opened the stream). If not (an older node), every receipt it
        is given is signed alone, the ones given before to an earlier copy included.

        Returns once the batch's unit is queued behind the peer's earlier batches; the task
        returned resolves to the answers after the commit. A stream calls this for one batch
        at a time, so envelopes that arrive meanwhile form the next, larger batch: under load
        the fixed cost of a batch is paid once for many envelopes (docs/benchmarks.md).

        Whether an envelope was answered before is decided inside the commit's transaction
        (`Store.admit`): the writer puts copies racing on several streams in order, so each
        gets the first copy's receipt, with no read before the commit and nothing to claim.
        """
        # A peer's batches reach the writer in the order they arrived (per-pair order), even
        # though each waits for its signatures in a worker thread.
        async with self._order.setdefault(peer.agency, asyncio.Lock()):
            verified = await self._verify_all(peer, envelopes)
            now = self._clock.now()
            ids = [message_id_hint(c) if len(c) <= self._max else "" for c, _, _ in envelopes]
            shas = [digest(content) for content, _, _ in envelopes]
            drafts: list[Answer | _Unsigned] = []
            writes: list[Statement | None] = []
            for (content, signature, proof), mid, sha, ok in zip(
                envelopes, ids, shas, verified, strict=True
            ):
                outcome = self._answer(peer, content, signature, proof, ok, sha, mid, now)
                if isinstance(outcome, _Unsigned):
                    drafts.append(outcome)
                    writes.append(None)  # written once its receipt is signed, below
                else:
                    drafts.append(outcome[0])
                    writes.append(outcome[1])
            # One signature for every accepted receipt in the batch (a Merkle root, each
            # receipt with its audit path): the receiver's signing cost is per batch.
            unsigned = [d for d in drafts if isinstance(d, _Unsigned)]
            if receipt_paths:
                receipts = sign_receipts(self._key, [u.receipt for u in unsigned])
            else:
                receipts = [(sign(self._key, u.receipt), b"") for u in unsigned]
            for u, (receipt_signature, proof) in zip(unsigned, receipts, strict=True):
                u.message = StoredMessage.of(
                    u.meta,
                    direction="in",
                    received_at=now,
                    retain_until=u.retain_until,
                    content_sha256=u.sha,
                    signature=u.signature,
                    signature_proof=u.proof,
                    sealed=u.sealed,
                    receipt=u.receipt,
                    receipt_signature=receipt_signature,
                    receipt_proof=proof,
                )
                u.answer = Answer(
                    u.receipt, receipt_signature, u.sha, accepted=True, reason="", proof=proof
                )
            arrivals: list[tuple[str, Statement]] = []  # one per envelope, in order
            for mid, draft, refusal_row in zip(ids, drafts, writes, strict=True):
                row = (
                    self._store.inbound_txn(draft.stored())
                    if isinstance(draft, _Unsigned)
                    else refusal_row
                )
                assert row is not None
                arrivals.append((mid, row))
            # One unit for the whole batch: one future, one place in the commit.
            committed = self._store.admit(peer.agency, arrivals)

        def announce(unit: asyncio.Future[Any]) -> None:
            """Stored messages are announced when the commit lands, whoever still waits."""
            if unit.cancelled() or unit.exception() is not None:
                return
            for draft, prior, mid in zip(drafts, unit.result(), ids, strict=True):
                if prior is not None:
                    continue  # a copy: answered as the first time, nothing new to report
                if isinstance(draft, _Unsigned):
                    self._on_stored(draft.stored())
                else:
                    # Reported only now: a copy of an envelope answered before may fail a
                    # check today (an agreement since expired), yet it is answered with its
                    # first receipt, not refused.
                    # The node logs it as an event (on_refused); here only for debugging.
                    log.debug("refused %s from %s: %s", mid or "?", peer.agency, draft.reason)
                    self._on_refused(peer.agency, mid, draft.reason)

        committed.add_done_callback(announce)
        return asyncio.create_task(
            self._finish(peer, committed, drafts, ids, shas, now, receipt_paths),
            name=f"answers-{peer.agency}",
        )

    async def _finish(
        self,
        peer: Peer,
        committed: asyncio.Future[Any],
        drafts: list[Answer | _Unsigned],
        ids: list[str],
        shas: list[bytes],
        now: datetime,
        receipt_paths: bool,
    ) -> list[Answer]:
        """The batch's answers, once it is committed: each envelope's own, or, for one
        answered before, the receipt it got the first time (signed again, alone, for a caller
        that does not check audit paths: the same receipt content, one it can check)."""
        priors = await asyncio.shield(committed)  # cancelling this wait must not cancel it
        out: list[Answer] = []
        for draft, prior, mid, sha in zip(drafts, priors, ids, shas, strict=True):
            if prior is None:
                out.append(draft.signed() if isinstance(draft, _Unsigned) else draft)
            elif isinstance(prior, int):  # a copy of an envelope earlier in this batch
                out.append(self._repeat(out[prior], sha, peer, mid, now))
            else:
                signature, proof = prior.receipt_signature, prior.receipt_proof
                if proof and not receipt_paths:
                    signature, proof = sign(self._key, prior.receipt), b""
                first = Answer(
                    prior.receipt,
                    signature,
                    prior.content_sha256,
                    accepted=True,
                    reason="duplicate",
                    proof=proof,
                )
                out.append(self._repeat(first, sha, peer, mid, now))
        return out

    def _repeat(self, first: Answer, sha: bytes, peer: Peer, mid: str, now: datetime) -> Answer:
        if first.content_sha256 == sha:
            return Answer(
                first.receipt,
                first.signature,
                sha,
                accepted=True,
                reason="duplicate",
                proof=first.proof,
            )
        # Same id, different bytes: refuse, without storing (the first copy stands).
        return self._refusal(
            peer,
            mid,
            sha,
            now,
            Reason.ID_CONFLICT,
            "a different message with this id was received before",
        )

    def _refusal(
        self,
        peer: Peer,
        mid: str,
        sha: bytes,
        now: datetime,
        reason: Reason,
        detail: str,
        *,
        report: bool = True,
    ) -> Answer:
        """A signed REJECTED receipt for an envelope, reported to on_refused unless the caller
        reports it itself once it is committed."""
        r = receipt_content(
            message_id=mid,
            content_sha256=sha,
            sender=peer.agency,
            receiver=self.agency,
            received_at=now,
            reason=reason,
            detail=detail[:500],
        )
        s = sign(self._key, r)
        if report:
            self._on_refused(peer.agency, mid, reason)
        return Answer(r, s, sha, accepted=False, reason=reason)

    def _answer(
        self,
        peer: Peer,
        content: bytes,
        signature: bytes | None,
        proof: bytes,
        verified: bool,
        sha: bytes,
        mid: str,
        now: datetime,
    ) -> _Unsigned | tuple[Answer, Statement]:
        """An accepted envelope (its receipt signed later, with the batch), or a refusal: its
        signed receipt and the row that remembers it."""
        try:
            meta, decision = self._checked(peer, content, signature, verified, now)
        except Refused as refusal:
            log.debug("refusing %s from %s: %s", mid or "?", peer.agency, refusal)
            answer = self._refusal(
                peer, mid, sha, now, refusal.reason, refusal.detail, report=False
            )
            write = self._store.rejection_txn(
                sender=peer.agency,
                message_id=mid,
                content_sha256=sha,
                reason_code=refusal.reason,
                received_at=now,
                receipt=answer.receipt,
                receipt_signature=answer.signature,
            )
            return answer, write
        assert signature is not None
        return _Unsigned(
            receipt=receipt_content(
                message_id=meta.message_id,
                content_sha256=sha,
                sender=peer.agency,
                receiver=self.agency,
                received_at=now,
                retained_until=decision,
            ),
            sha=sha,
            meta=meta,
            retain_until=decision,
            signature=signature,
            proof=proof,
            sealed=self._store.seal(
                sender=meta.sender, message_id=meta.message_id, content=content
            ),
        )

    def _checked(
        self, peer: Peer, content: bytes, signature: bytes | None, verified: bool, now: datetime
    ) -> tuple[MessageMeta, datetime | None]:
        """`_check`, with any unforeseen failure turned into a refusal: an exception here would
        end the peer's stream, and its resend would end the next one, stalling the pair."""
        try:
            return self._check(peer, content, signature, verified, now)
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
                envelope_signed_bytes(content, proof)
                if signature is not None and len(content) <= self._max
                else None
            )
            signed.append(None if over is None or signature is None else (over, signature))
        distinct = {pair for pair in signed if pair is not None}

        def verify_distinct() -> dict[tuple[bytes, bytes], bool]:
            return {pair: verify(peer.public_key, *pair) for pair in distinct}

        if len(distinct) < THREAD_BATCH:
            checked = verify_distinct()
        else:
            checked = await asyncio.to_thread(verify_distinct)
        return [pair is not None and checked[pair] for pair in signed]

    def _check(
        self,
        peer: Peer,
        content: bytes,
        signature: bytes | None,
        verified: bool,
        now: datetime,
    ) -> tuple[MessageMeta, datetime | None]:
        if signature is None:
            raise Refused(Reason.MALFORMED, "frame is not an accord.v1.Envelope")
        if len(content) > self._max:
            raise Refused(
                Reason.OVERSIZE, f"content is {len(content)} bytes; this node accepts {self._max}"
            )
        if not verified:
            raise Refused(
                Reason.BAD_SIGNATURE, f"signature does not verify with {peer.agency}'s key"
            )
        msg = parse_content(content)
        meta = meta_of(msg)
        decision = self._policy().check_inbound(meta, peer=peer.agency, now=now)
        if msg.HasField("forwarded"):
            original = msg.forwarded
            auth = msg.transfer_authorisation if msg.HasField("transfer_authorisation") else None
            sender_of_original = meta_of(parse_content(original.content)).sender
            check_forwarded(
                outer=meta,
                inner=(original.content, original.signature, original.proof),
                authorisation=(auth.content, auth.signature, auth.proof)
                if auth is not None
                else None,
                receiver=self.agency,
                originator_key=self._member_key(sender_of_original),
            )
        return meta, decision.retain_until
