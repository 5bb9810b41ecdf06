"""Redress that reaches every holder (docs/redress.md).

The receiver applies a redress in the commit that stores it (node/delivery/receiver.py asks
`applied` for the statements). What follows the commit happens here: the holder relays the
originator's redress to every agency it forwarded the message to, and reports back towards the
originator, hop by hop, who it relayed to and each onward holder's signed receipt. All of it
goes through the outbox, so a holder that is down gets it when it is back; a node stopped
between applying and relaying relays on its next start (`resume`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from node import signing, wire
from node.clock import Clock
from node.delivery.link import ReceiptEvent
from node.delivery.outbound import Outbound
from node.errors import NotFound, Refused
from node.messages import RedressOutcome, SignedEnvelope, SignedReceipt
from node.policy.agreements import REDRESS_TYPES
from node.policy.inbound import Verdict
from node.policy.redress import ERASING, Held, Markings, held_of
from node.store import Store, StoredMessage
from node.store.keys import SealError
from node.store.redress import Applied, Holder, RedressStore, Relay
from node.store.writer import Statement

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HolderState:
    """One holder of a redress as the originator sees it."""

    agency: str
    via: str  # "" for a direct recipient
    state: str  # pending, confirmed or refused
    result: str
    detail: str
    answered_at: str


@dataclass(frozen=True, slots=True)
class RedressState:
    redress_id: str
    type: str
    target: str
    created_at: str
    holders: list[HolderState]


class RedressService:
    def __init__(
        self,
        *,
        agency: str,
        store: Store,
        outbound: Outbound,
        clock: Clock,
        member_key: Callable[[str], ec.EllipticCurvePublicKey | None],
    ) -> None:
        self.agency = agency
        self._store = store
        self.store = RedressStore(store)
        self._outbound = outbound
        self._clock = clock
        self._member_key = member_key
        self._tasks: set[asyncio.Task[None]] = set()
        # Relays sent and not answered yet: a receipt is looked at only if it answers one.
        self._open_relays: set[str] = set()

    # ---- lookups for the receiver's checks --------------------------------------------------

    async def held(self, peer: str, ids: Sequence[str]) -> dict[str, Held]:
        found: dict[str, Held] = {}
        for message_id in ids:
            row = await self._store.get_message(message_id, sender=peer, direction="in")
            if row is None:
                continue
            applied = await self.store.latest(sender=peer, message_id=message_id)
            try:
                content = self._store.open_content(row)
            except SealError:
                content = None
            hold = await self.store.hold_reference(row.message_id, row.correlation_id)
            if content is None:
                if applied is not None:  # erased by a redress: the redress says whose it was
                    found[message_id] = replace(_erased(row, applied), hold_reference=hold)
                elif row.erased_at is not None:
                    found[message_id] = _tombstone(row)
                continue
            markings = None
            if applied is not None:
                markings = Markings(
                    applied.tlp, applied.handling_codes, applied.handling_conditions
                )
            found[message_id] = replace(
                held_of(
                    wire.decode(content),
                    row_tlp=row.tlp,
                    retain_until=row.retain_until,
                    result=applied.result if applied else "",
                    markings=markings,
                ),
                hold_reference=hold,
            )
        return found

    async def sent(self, peer: str, ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for message_id in ids:
            row = await self._store.get_message(message_id, sender=self.agency, direction="out")
            if row is None:
                continue
            if any(d.recipient == peer for d in await self._store.deliveries(message_id)):
                found[message_id] = row.type
        return found

    def applied(self, verdict: Verdict, *, sender: str, now: datetime) -> list[Statement]:
        decision = verdict.redress
        assert decision is not None
        held, outcome, markings = decision.held, decision.outcome, decision.markings
        if held.gone:
            return []  # nothing changes; the receipt says what was done before
        return [
            self.store.applied_txn(
                Applied(
                    sender=held.sender,
                    message_id=held.message_id,
                    redress_sender=sender,
                    redress_id=verdict.meta.message_id,
                    origin_redress_id=decision.redress.message_id,
                    origin_sender=held.originator,
                    origin_id=held.origin_id,
                    result=outcome.result,
                    tlp=markings.tlp,
                    handling_codes=markings.handling_codes,
                    handling_conditions=markings.handling_conditions,
                    applied_at=now.isoformat(),
                )
            )
        ]

    # ---- after the commit -------------------------------------------------------------------

    def stored(self, message: StoredMessage) -> None:
        """A received message was committed: a redress is relayed on, a report taken in."""
        if message.type in REDRESS_TYPES:
            self._spawn(self._relay_stored(message))
        elif message.type == "REDRESS_REPORT":
            self._spawn(self._take_report(message))

    def receipted(self, event: ReceiptEvent) -> None:
        """A receipt was committed: an answer to a relay goes back towards the originator."""
        if event.message_id in self._open_relays:
            self._open_relays.discard(event.message_id)
            self._spawn(self._relay_answered(event))

    async def resume(self) -> None:
        """Relay what was applied but not relayed before the node stopped."""
        self._open_relays.update(await self.store.open_relays())
        for applied in await self.store.unrelayed():
            await self._erase(applied)
            await self._relay(applied)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("redress: %s", t.exception())

        task.add_done_callback(done)

    async def _relay_stored(self, message: StoredMessage) -> None:
        applied = await self.store.by_redress(
            redress_sender=message.sender, redress_id=message.message_id
        )
        if applied is not None:
            await self._erase(applied)
            await self._relay(applied)

    async def _erase(self, applied: Applied) -> None:
        """Erase what the redress removes: the message (crypto-shredding, with a tombstone) and
        every version an earlier rectification brought, except the one this redress brings."""
        if applied.result not in ERASING:
            return
        why = (
            f"{applied.result.lower()} by its originator {applied.origin_sender} "
            f"(redress {applied.origin_redress_id})"
        )
        rows = [(applied.sender, applied.message_id)]
        rows += await self.store.versions(sender=applied.sender, message_id=applied.message_id)
        for sender, message_id in rows:
            if (sender, message_id) == (applied.redress_sender, applied.redress_id):
                continue
            with contextlib.suppress(NotFound):
                await self._store.erase_message(
                    message_id,
                    direction="in",
                    reason=why,
                    actor=f"redress from {applied.origin_sender}",
                    sender=sender,
                )

    async def _relay(self, applied: Applied) -> None:
        """Pass the originator's redress to every agency this node forwarded the message to,
        and tell the redress's sender who those are."""
        row = await self._store.get_message(
            applied.redress_id, sender=applied.redress_sender, direction="in"
        )
        content = self._store.open_content(row) if row is not None else None
        forwards = await self.store.forwards_of(
            origin_sender=applied.origin_sender, origin_id=applied.origin_id
        )
        if row is None or content is None or not forwards:
            await self._store.writer.submit([self.store.relayed_txn(applied)])
            return
        received = wire.decode(content)
        inner = received.forwarded or SignedEnvelope(
            content, row.signature, row.signature_proof or b""
        )
        relayed: list[str] = []
        for forward_id, recipient in forwards:
            draft = wire.relay_draft(
                inner,
                type_name=row.type,
                target=forward_id,
                to=recipient,
                purpose=await self._purpose_of(forward_id, row.purpose),
            )

            def record(
                relay_id: str, recipients: tuple[str, ...], held: bool, recipient: str = recipient
            ) -> list[Statement]:
                self._open_relays.add(relay_id)
                return [
                    self.store.relay_txn(
                        Relay(
                            relay_id,
                            upstream=row.sender,
                            upstream_id=row.message_id,
                            origin_redress_id=applied.origin_redress_id,
                            recipient=recipient,
                        )
                    ),
                    self.store.holder_txn(
                        origin_redress_id=applied.origin_redress_id,
                        holder=recipient,
                        via=self.agency,
                        state="pending",
                    ),
                ]

            try:
                await self._outbound.send(draft, forward=True, record=record)
            except Refused as exc:
                # This node's own check stops the relay (the agency left the federation, or a
                # RECTIFICATION after the agreement's sunset): said to the originator as that
                # holder's refusal, by this node.
                log.warning("redress %s not relayed to %s: %s", row.message_id, recipient, exc)
                await self.store.record_holders(
                    [
                        self.store.holder_txn(
                            origin_redress_id=applied.origin_redress_id,
                            holder=recipient,
                            via=self.agency,
                            state="refused",
                            detail=f"not relayed by {self.agency}: {exc}",
                            at=self._clock.now(),
                        )
                    ]
                )
                continue
            relayed.append(recipient)
        await self._store.writer.submit([self.store.relayed_txn(applied)])
        await self._report(
            to=row.sender,
            target=row.message_id,
            purpose=row.purpose,
            receipts=[],
            relayed_to=[f"{self.agency}>{r}" for r in relayed],
        )

    async def _purpose_of(self, sent_id: str, default: str) -> str:
        sent = await self._store.get_message(sent_id, sender=self.agency, direction="out")
        return sent.purpose if sent is not None else default

    async def _report(
        self,
        *,
        to: str,
        target: str,
        purpose: str,
        receipts: Sequence[SignedReceipt],
        relayed_to: Sequence[str],
    ) -> None:
        draft = wire.report_draft(
            target=target, to=to, purpose=purpose, receipts=receipts, relayed_to=relayed_to
        )
        await self._outbound.send(draft)

    async def _relay_answered(self, event: ReceiptEvent) -> None:
        relay = await self.store.relay(event.message_id)
        if relay is None:
            return
        receipt = next(
            (
                SignedReceipt(d.receipt, d.receipt_signature, d.receipt_proof or b"")
                for d in await self._store.deliveries(event.message_id)
                if d.recipient == event.recipient and d.receipt and d.receipt_signature
            ),
            None,
        )
        if receipt is None:
            return
        await self.store.record_holders([self._holder_row(relay.origin_redress_id, receipt)])
        upstream = await self._store.get_message(
            relay.upstream_id, sender=relay.upstream, direction="in"
        )
        await self._report(
            to=relay.upstream,
            target=relay.upstream_id,
            purpose=upstream.purpose if upstream is not None else "",
            receipts=[receipt],
            relayed_to=[],
        )

    def _holder_row(self, origin_redress_id: str, receipt: SignedReceipt) -> Statement:
        info = wire.parse_receipt(receipt.content)
        outcome = info.redress
        return self.store.holder_txn(
            origin_redress_id=origin_redress_id,
            holder=info.receiver,
            via=info.sender,
            state="confirmed" if info.accepted else "refused",
            result=outcome.result if outcome is not None else "",
            detail=_detail(info.reason_code, info.reason_detail, outcome),
            receipt=receipt,
            at=info.received_at,
        )

    async def _take_report(self, message: StoredMessage) -> None:
        """A holder's report on a redress this node sent it: each onward holder's receipt,
        checked with that holder's key and for the originator's redress, is recorded (and
        passed on towards the originator, if this node only relayed the redress)."""
        content = self._store.open_content(message)
        if content is None:
            return
        relay = await self.store.relay(message.control_target)
        origin = relay.origin_redress_id if relay is not None else message.control_target
        receipts, relayed_to = wire.report_of(content)
        good: list[SignedReceipt] = []
        rows: list[Statement] = []
        for receipt in receipts:
            info = wire.parse_receipt(receipt.content)
            key = self._member_key(info.receiver)
            if (
                key is None
                or not signing.verify(
                    key, receipt.content, receipt.signature, signing.RECEIPT, receipt.proof
                )
                # An accepted receipt names the originator's redress itself; a refusal (of a
                # relay) names only the relay, and the reporting holder says which redress
                # that relay carried.
                or (info.redress is None and info.accepted)
                or (info.redress is not None and info.redress.redress_id != origin)
            ):
                log.warning("redress report %s: a receipt that does not check", message.message_id)
                continue
            good.append(receipt)
            rows.append(self._holder_row(origin, receipt))
        pending = [p.split(">", 1) for p in relayed_to if p.count(">") == 1]
        for via, holder in pending:
            rows.append(
                self.store.holder_txn(
                    origin_redress_id=origin, holder=holder, via=via, state="pending"
                )
            )
        await self.store.record_holders(rows)
        if relay is not None and (good or pending):
            upstream = await self._store.get_message(
                relay.upstream_id, sender=relay.upstream, direction="in"
            )
            await self._report(
                to=relay.upstream,
                target=relay.upstream_id,
                purpose=upstream.purpose if upstream is not None else message.purpose,
                receipts=good,
                relayed_to=relayed_to,
            )

    # ---- for local users --------------------------------------------------------------------

    async def state_of(self, row: StoredMessage) -> Applied | None:
        """The newest redress applied to a held message, or None."""
        if row.direction != "in":
            return None
        return await self.store.latest(sender=row.sender, message_id=row.message_id)

    async def current_version(self, row: StoredMessage) -> StoredMessage | None:
        """The newest version a rectification brought of a held message (None: its own)."""
        if row.direction != "in":
            return None
        versions = await self.store.versions(sender=row.sender, message_id=row.message_id)
        if not versions:
            return None
        sender, message_id = versions[-1]
        return await self._store.get_message(message_id, sender=sender, direction="in")

    async def status(self, message_id: str) -> list[RedressState]:
        out = []
        for redress_id, type_name, created_at in await self.store.sent_redresses(message_id):
            row = await self._store.get_message(redress_id, direction="out")
            holders = []
            for d in await self._store.deliveries(redress_id):
                info = wire.parse_receipt(d.receipt) if d.receipt else None
                outcome = info.redress if info is not None else None
                state = {"queued": "pending", "accepted": "confirmed"}.get(d.state, "refused")
                holders.append(
                    HolderState(
                        agency=d.recipient,
                        via="",
                        state=state,
                        result=outcome.result if outcome is not None else "",
                        detail=_detail(d.reason_code, info.reason_detail if info else "", outcome),
                        answered_at=info.received_at.isoformat() if info else "",
                    )
                )
            holders += [_onward(h) for h in await self.store.holders(redress_id)]
            out.append(
                RedressState(
                    redress_id=redress_id,
                    type=type_name,
                    target=row.control_target if row is not None else "",
                    created_at=created_at,
                    holders=holders,
                )
            )
        return out


def _erased(row: StoredMessage, applied: Applied) -> Held:
    """A held message whose body a redress erased: what the redress recorded of it. After a
    rectification its newer version stands (and can be redressed again)."""
    return Held(
        message_id=row.message_id,
        sender=row.sender,
        originator=applied.origin_sender,
        origin_id=applied.origin_id,
        type=row.type,
        purpose=row.purpose,
        markings=Markings(applied.tlp, applied.handling_codes, applied.handling_conditions),
        retain_until=row.retain_until,
        result=applied.result,
    )


def _tombstone(row: StoredMessage) -> Held:
    return Held(
        message_id=row.message_id,
        sender=row.sender,
        originator="",
        origin_id="",
        type=row.type,
        purpose=row.purpose,
        markings=Markings(row.tlp, row.handling_codes, ""),
        retain_until=row.retain_until,
        tombstone=True,
    )


def _onward(h: Holder) -> HolderState:
    return HolderState(
        agency=h.holder,
        via=h.via,
        state=h.state,
        result=h.result,
        detail=h.detail,
        answered_at=h.answered_at or "",
    )


def _detail(reason_code: str, reason_detail: str, outcome: RedressOutcome | None) -> str:
    if outcome is not None:
        if outcome.result == "HELD":
            return f"legal hold {outcome.hold_reference}"
        if outcome.result == "HANDLING_UPDATED":
            codes = ",".join(outcome.handling_codes)
            return f"TLP:{outcome.tlp} handling {codes} {outcome.handling_conditions}".strip()
        return ""
    return f"{reason_code}: {reason_detail}" if reason_code else ""
