"""What local users do, with the access rules applied and every decision logged.

The local API servicer is a thin shell over these; the gateway reaches them the same way.
"""

from __future__ import annotations

import base64
import logging
import math
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial

from cryptography.hazmat.primitives import serialization

from node import deadlines, inbox, report, signing, wire
from node.audit.checkpoint import NoteKey
from node.audit.source import AuditSource
from node.clock import Clock, OffsetClock
from node.delivery.links import Links
from node.delivery.outbound import Outbound, Record, Sent
from node.errors import (
    AccordError,
    FailedPrecondition,
    Gone,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    Reason,
    Refused,
    Unauthenticated,
    Unreadable,
)
from node.evidence.bundle import Bundle, Signed
from node.health import Health
from node.ids import uuid7
from node.messages import Draft, ForwardTerms, PublishedPolicy, Retention, SignedEnvelope
from node.policy import access, onward
from node.policy.access import Role, User
from node.policy.agreements import REDRESS_TYPES
from node.policy.redress import GONE
from node.redress import RedressService, RedressState
from node.report import Report
from node.retention import RetentionService, ReviewItem, SweepResult, check_live
from node.store import PeerQueue, Store, StoredMessage
from node.store.access import (
    REFUSAL_AUDITED,
    AccessEntry,
    AccessStore,
    Approval,
    UserChange,
    UserRecord,
    log_txn,
)
from node.store.audit import Filters, StoredEntry
from node.store.db import Answer, Delivery
from node.store.holds import Counts, Hold
from node.store.keys import SealError
from node.store.redress import Applied
from node.store.report import ReportStore
from node.store.writer import Statement
from node.text import check_text
from node.transport.peer import CallFailed, Connector
from node.trust import Trust
from node.watch import Watchers

log = logging.getLogger(__name__)

USER_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")
KEEP_TERMS = ForwardTerms()  # a forward under the held message's own terms
AUDIT_PAGE = 2000  # audit entries per page of AuditLog


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A user just added, and the code they redeem for their token (its first part, if their
    role waits for a second administrator; `expires_at` is then given at approval)."""

    record: UserRecord
    code: str
    expires_at: datetime | None


# How long an enrolment code can be redeemed.
ENROLMENT_CODE_TTL = timedelta(hours=72)


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError as exc:
        raise InvalidRequest(f"role must be one of {', '.join(r.value for r in Role)}") from exc


def _check_user_name(name: str) -> None:
    if not name or not set(name) <= USER_NAME_CHARS or len(name) > 64:
        raise InvalidRequest("user name: 1-64 of a-z, 0-9, '.', '_', '-'")


def enrolment_code() -> str:
    """128 random bits in base32 (A-Z, 2-7): typed or pasted by a person, and never starting
    with '-', which a command line would take for an option (`users enrol --code CODE`)."""
    return base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class InboxItem:
    message: StoredMessage
    status: str  # node/inbox.py
    deadline: datetime | None
    expected: datetime | None = None  # the deadline, moved by a delay notice
    answered_at: datetime | None = None
    now: datetime | None = None  # the node's time, for the time left


@dataclass(frozen=True, slots=True)
class OverdueRequest:
    """A REQUEST_INFO past the date its answer was due, unanswered."""

    message: StoredMessage
    peer: str  # who asked (owed by this node) or who was asked (owed to it)
    owed_by_us: bool
    progress: deadlines.Progress


@dataclass(frozen=True, slots=True)
class ReadResult:
    message: StoredMessage
    content: bytes | None  # None once erased


@dataclass(frozen=True, slots=True)
class PeerStatus:
    agency: str
    link: str  # idle, connecting, connected, retrying or failing
    last_error: str
    queued: int
    oldest_queued_at: datetime | None
    sent: int
    receipted: int


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """What `accord status` shows: health, trust, and each peer's link and outbox."""

    agency: str
    health: str
    crl_state: str
    crl_next_update: datetime | None
    directory_serial: int
    directory_issued_at: datetime | None
    now: datetime
    peers: list[PeerStatus]


_ALTERED = (
    "its stored markings (purpose, TLP, handling codes) are not the ones it was sealed with, "
    "or the master key is not this database's: it is not shown (restore the database or key "
    "from backup)"
)


def _markings(content: bytes) -> tuple[str, str]:
    """A stored content's purpose, and the strictest TLP it carries (in a forward: the
    forward's or the original's)."""
    message = wire.decode(content)
    meta = message.meta
    tlp = meta.tlp
    if message.forwarded is not None:
        original = wire.decode(message.forwarded.content).meta
        tlp = max((tlp, original.tlp), key=onward.tlp_rank)
    return meta.purpose, tlp


def _answer_tuples(answers: Sequence[Answer]) -> list[tuple[str, datetime, datetime | None]]:
    return [(a.type, a.at, a.expected_by) for a in answers]


async def request_progress(store: Store) -> list[tuple[StoredMessage, str, deadlines.Progress]]:
    """Every REQUEST_INFO with a deadline, per agency owing or owed its answer, and where it
    stands (node/deadlines.py)."""
    pairs = [(m, peer) for m, peer in await store.requests() if m.reply_deadline is not None]
    answers = await store.answers(sorted({m.message_id for m, _ in pairs}))
    out = []
    for m, peer in pairs:
        assert m.reply_deadline is not None
        between = [a for a in answers.get(m.message_id, ()) if a.peer == peer]
        out.append((m, peer, deadlines.progress(m.reply_deadline, _answer_tuples(between))))
    return out


def _bounded_retention(
    terms: ForwardTerms, retain_until: datetime | None, *, now: datetime
) -> ForwardTerms:
    """`terms` with a retention no later than `retain_until` (kept if it asks for less)."""
    if retain_until is None:
        return terms
    asked = terms.retention
    if asked is not None:
        if asked.days is not None and now + timedelta(days=asked.days) <= retain_until:
            return terms
        if asked.until is not None and asked.until <= retain_until:
            return terms
    return replace(terms, retention=Retention(until=retain_until))


class Operations:
    def __init__(
        self,
        *,
        agency: str,
        store: Store,
        access: AccessStore,
        outbound: Outbound,
        links: Links,
        trust: Trust,
        clock: Clock,
        watchers: Watchers,
        health: Health,
        connector: Connector,
        published: Callable[[], PublishedPolicy],
        drill_clock: OffsetClock | None,
        redress: RedressService,
        retention: RetentionService,
        audit_key: NoteKey,
        audit_source: AuditSource,
    ) -> None:
        """`published`: this node's own signed policy; `drill_clock`: the clock a drill-mode
        node lets an administrator move (None: not in drill mode)."""
        self._redress = redress
        self.agency = agency
        self._store = store
        self.access = access
        self._outbound = outbound
        self._links = links
        self._trust = trust
        self._clock = clock
        self._watchers = watchers
        self._health = health
        self._connector = connector
        self._published = published
        self._drill_clock = drill_clock
        self._audit_source = audit_source  # the audit log's proofs, for evidence bundles
        self._retention = retention
        self.audit_key = audit_key  # what the audit log's checkpoints are signed with

    def _entry(self, user: User, action: str, outcome: str, **fields: str) -> Statement:
        """An audit entry to commit with the change it records."""
        return log_txn(
            at=self._clock.now(), user=user.name, action=action, outcome=outcome, **fields
        )

    async def _log(self, user: User, action: str, outcome: str, **fields: str) -> None:
        await self.access.log(
            at=self._clock.now(), user=user.name, action=action, outcome=outcome, **fields
        )

    async def refused(self, actor: str, action: str, exc: AccordError) -> None:
        """The audit entry of a local API call refused with no entry of its own (bad input,
        not found, a refusal raised before any check logged it)."""
        await self.access.log(
            at=self._clock.now(),
            user=actor,
            action=action,
            outcome="refused",
            detail=f"{type(exc).__name__}: {exc}",
        )

    async def unauthenticated(self, call: str) -> None:
        """The audit entry of a local API call refused for want of a valid token."""
        try:
            await self.access.log(
                at=self._clock.now(),
                user="",
                action=call,
                outcome="refused",
                detail="UNAUTHENTICATED: missing or unknown token, or an expired session",
            )
        except Exception as exc:  # the caller is refused all the same
            log.error("could not audit an unauthenticated call to %s: %s", call, exc)

    async def _guard(
        self, user: User, action: str, check: Callable[[], None], **fields: str
    ) -> None:
        """Run an access check; a refusal is logged before it reaches the caller."""
        try:
            check()
        except PermissionDenied as exc:
            detail = f"{exc.code}: {exc}"
            if "detail" in fields:
                detail = f"{fields.pop('detail')}: {detail}"
            await self._log(user, action, "refused", detail=detail, **fields)
            raise

    # ---- messages ---------------------------------------------------------------------------

    async def inbox(
        self, user: User, *, limit: int, before: str, direction: str = "in", **filters: str
    ) -> list[InboxItem]:
        """Message metadata, newest first: received (`direction` "in"), sent ("out") or both
        ("all"), narrowed by `filters` (type, purpose, peer, correlation_id, message_id)."""
        await self._guard(user, "list", lambda: access.check_list(user))
        if direction not in ("in", "out", "all"):
            raise InvalidRequest(f"direction must be in, out or all, not {direction!r}")
        messages: list[StoredMessage] = await self._store.list_messages(
            direction=None if direction == "all" else direction,
            limit=limit,
            before=before,
            **filters,
        )
        shown = [m for m in messages if access.sees_metadata(user, purpose=m.purpose)]
        # Status and deadline are a received message's (node/inbox.py); a sent one has none.
        received = [m for m in shown if m.direction == "in"]
        ids = [m.message_id for m in received]
        replies = await self._store.replies_to(ids)
        answers = await self._store.answers(
            [m.message_id for m in received if m.type == deadlines.REQUEST]
        )
        now = self._clock.now()
        items = []
        for m in shown:
            if m.direction != "in":
                items.append(InboxItem(m, "", None))
                continue
            due = inbox.deadline(m)
            expected: datetime | None = due
            answered_at = None
            if due is not None and m.type == deadlines.REQUEST:
                p = deadlines.progress(due, _answer_tuples(answers.get(m.message_id, ())))
                expected, answered_at = p.expected, p.answered_at
            status = inbox.status(m, replies.get(m.message_id, ()), now, expected)
            items.append(InboxItem(m, status, due, expected, answered_at, now))
        return items

    async def sent(
        self, user: User, *, limit: int, before: str
    ) -> list[tuple[StoredMessage, list[Delivery]]]:
        """Messages this node sent, newest first, with their deliveries: metadata, so the
        listing rule applies (role, then clearance for each message's purpose)."""
        await self._guard(user, "list-sent", lambda: access.check_list(user))
        messages: list[StoredMessage] = await self._store.list_messages(
            direction="out", limit=limit, before=before
        )
        shown = [m for m in messages if access.sees_metadata(user, purpose=m.purpose)]
        deliveries = await self._store.deliveries_of([m.message_id for m in shown])
        return [(m, deliveries.get(m.message_id, [])) for m in shown]

    async def receipts(
        self, user: User, *, message_id: str
    ) -> tuple[StoredMessage, list[Delivery]]:
        """A sent message's deliveries and receipts: metadata, so the listing rule applies
        (role, then clearance for its purpose); a refusal is written to the access log."""
        await self._guard(user, "receipts", lambda: access.check_list(user), message_id=message_id)
        sent = await self._store.get_message(message_id, direction="out")
        if sent is None:
            raise NotFound(f"no message {message_id} sent from this node")

        def cleared() -> None:
            if not access.sees_metadata(user, purpose=sent.purpose):
                raise PermissionDenied(
                    "CLEARANCE", f"{user.name} is not cleared for this message's purpose"
                )

        await self._guard(user, "receipts", cleared, message_id=message_id, purpose=sent.purpose)
        return sent, await self._store.deliveries(message_id)

    async def read(
        self,
        user: User,
        *,
        message_id: str,
        sender: str,
        justification: str,
        action: str = "consult",
    ) -> ReadResult:
        """A message's content, for a user who may read it (logged as `action`)."""
        check_text("justification", justification)
        m: StoredMessage | None = await self._store.get_message(message_id, sender=sender or None)
        if m is None:
            raise NotFound(f"no message {message_id}")
        fields = {"message_id": m.message_id, "purpose": m.purpose, "justification": justification}

        row_purpose = m.purpose

        def may_read(tlp: str) -> Callable[[], None]:
            return lambda: access.check_read(
                user, purpose=row_purpose, tlp=tlp, justification=justification
            )

        redressed = await self._redress.state_of(m)
        await self._refuse_gone(user, action, redressed, **fields)
        tlp_now = m.tlp
        if redressed is not None and onward.tlp_rank(redressed.tlp) > onward.tlp_rank(m.tlp):
            tlp_now = redressed.tlp  # the originator's handling update tightened it
        await self._guard(user, action, may_read(tlp_now), **fields)
        newer = await self._redress.current_version(m)
        if newer is not None:
            m = newer  # the originator's rectification is the message now: its new version
        await self._live(user, action, m, **fields)
        content = await self._open(user, action, m, **fields)
        if content is not None:
            # The row's markings are bound to its seal; the content's own (and, in a forward,
            # the original's) count too: the strictest decides.
            purpose, tlp = _markings(content)
            if purpose != m.purpose:
                await self._log(user, action, "refused", detail="row purpose altered", **fields)
                raise Unreadable(f"message {m.message_id}: {_ALTERED}")
            if onward.tlp_rank(tlp) > onward.tlp_rank(m.tlp):
                await self._guard(user, action, may_read(tlp), **fields)
        await self._log(user, action, "granted", **fields)
        return ReadResult(m, content)

    async def _refuse_gone(
        self, user: User, action: str, redressed: Applied | None, **fields: str
    ) -> None:
        """REDRESSED (logged) for a message its originator had erased or retracted."""
        if redressed is None or redressed.result not in GONE:
            return
        exc = Refused(
            Reason.REDRESSED,
            f"{redressed.message_id} was {redressed.result.lower()} by its originator "
            f"{redressed.origin_sender} (redress {redressed.origin_redress_id}): it can no "
            "longer be read, forwarded or replied to",
        )
        await self._log(user, action, "refused", detail=str(exc), **fields)
        raise exc

    async def _live(self, user: User, action: str, m: StoredMessage, **fields: str) -> None:
        """Gone (logged) if `m` is past its retain_until and not held, or erased."""
        try:
            await check_live(self._store, m, now=self._clock.now())
        except Gone as exc:
            detail = f"{exc.reason}: {exc.detail}"
            await self._log(user, action, "refused", **{**fields, "detail": detail})
            raise

    async def _open(self, user: User, action: str, m: StoredMessage, **fields: str) -> bytes | None:
        """A stored message's content, or Unreadable (logged) if its row does not open."""
        try:
            return self._store.open_content(m)
        except SealError as exc:
            await self._log(user, action, "refused", detail=f"row does not open: {exc}", **fields)
            raise Unreadable(f"message {m.message_id}: {_ALTERED}") from exc

    async def _known_purpose(self, user: User, action: str, purpose: str, **fields: str) -> None:
        """UNKNOWN_PURPOSE (logged) for a purpose outside the federation's vocabulary: said
        before any clearance check, which could only answer that nobody is cleared for it."""
        directory = self._trust.directory
        if directory is not None and purpose not in directory.purpose_codes():
            exc = Refused(
                Reason.UNKNOWN_PURPOSE,
                f"purpose {purpose!r} is not in the federation's purpose vocabulary "
                "(`accord policy show` lists them)",
            )
            await self._log(user, action, "refused", purpose=purpose, detail=str(exc), **fields)
            raise exc

    async def send(self, user: User, draft: Draft) -> Sent:
        for field, text in draft.texts:
            check_text(field, text)
        if draft.type == "REDRESS_REPORT":
            raise InvalidRequest("a REDRESS_REPORT is sent by the node itself, never by a user")
        await self._known_purpose(user, "send", draft.purpose)
        await self._guard(
            user,
            "send",
            lambda: access.check_send(user, purpose=draft.purpose),
            purpose=draft.purpose,
        )
        if draft.type == "TRANSFER_AUTHORISATION_GRANT":
            await self._may_release(user, draft)
        try:
            return await self._outbound.send(
                draft, author=user.name, record=self._recorded(user, "send", draft.purpose)
            )
        except (Refused, InvalidRequest) as exc:
            await self._log(user, "send", "refused", purpose=draft.purpose, detail=str(exc))
            raise

    async def _may_release(self, user: User, draft: Draft) -> None:
        """This agency's consent to pass a message on discloses it: only someone who may see
        the message (role, clearance, TLP) gives or withdraws it."""
        target = await self._store.get_message(draft.control_target, direction="out")
        if target is None:
            exc = InvalidRequest(
                f"control.target_message_id {draft.control_target!r}: this node sent no such "
                "message (a grant releases a message of this agency's own)"
            )
            await self._log(user, "send", "refused", purpose=draft.purpose, detail=str(exc))
            raise exc
        await self._guard(
            user,
            "send",
            lambda: access.check_may_read(
                user,
                purpose=target.purpose,
                tlp=target.tlp,
                what="consenting to pass a message on",
            ),
            message_id=target.message_id,
            purpose=target.purpose,
            detail="transfer authorisation",
        )

    def _recorded(self, user: User, action: str, purpose: str, **fields: str) -> Record:
        """The access log row of a send or forward, committed with the message itself: a send
        answered with an error must not be delivered anyway, nor one delivered go unlogged."""

        def rows(
            message_id: str, recipients: tuple[str, ...], held: bool
        ) -> list[tuple[str, Sequence[object]]]:
            return [
                log_txn(
                    at=self._clock.now(),
                    user=user.name,
                    action=action,
                    outcome="held" if held else "queued",
                    purpose=purpose,
                    **{"message_id": message_id, "recipient": ",".join(recipients), **fields},
                )
            ]

        return rows

    # ---- four eyes --------------------------------------------------------------------------

    async def approvals(self, user: User, *, state: str) -> list[tuple[Approval, StoredMessage]]:
        """Held messages (and their stored rows) the user may see: those of a purpose the
        user is cleared for (auditors: all), as for any listing."""
        await self._guard(user, "list-approvals", lambda: access.check_list(user))
        shown: list[tuple[Approval, StoredMessage]] = []
        for a in await self.access.approvals(state=None if state == "all" else state or "pending"):
            m = await self._store.get_message(a.message_id, direction="out")
            if m is not None and access.sees_metadata(user, purpose=m.purpose):
                shown.append((a, m))
        return shown

    async def approval(self, message_id: str) -> Approval | None:
        """The approval a sent message waits for or got (shown beside a listing the user was
        allowed: ListSent, Receipts)."""
        return await self.access.approval(message_id)

    async def sent_message(self, message_id: str) -> StoredMessage | None:
        """A sent message's row (shown beside a decision on it)."""
        return await self._store.get_message(message_id, direction="out")

    async def decide(self, user: User, *, message_id: str, approve: bool, note: str) -> Approval:
        check_text("note", note)
        pending = await self.access.approval(message_id)
        held = await self._store.get_message(message_id, direction="out")
        if pending is None or held is None:
            raise NotFound(f"no message {message_id} awaits approval")
        if pending.state != "pending":
            raise InvalidRequest(f"message {message_id} was already {pending.state}")
        await self._guard(
            user,
            "approve",
            lambda: access.check_approve(user, author=pending.author, purpose=held.purpose),
            message_id=message_id,
            purpose=held.purpose,
        )

        action = "approve" if approve else "reject"

        def entry(why_not: str | None) -> Statement:
            if why_not is not None:  # another decision was made first; it stands
                return self._entry(user, action, "refused", message_id=message_id, detail=why_not)
            return self._entry(
                user, action, "granted", message_id=message_id,
                recipient=",".join(pending.recipients), justification=note,
            )  # fmt: skip

        why_not = await self.access.decide(
            message_id=message_id,
            author=pending.author,
            approver=user.name,
            approve=approve,
            note=note,
            now=self._clock.now(),
            recipients=pending.recipients,
            entry=entry,
            # Run as the approval commits, before anything committed after it is handed to a
            # link: a link that already sent a later envelope would otherwise skip this one.
            on_commit=partial(self._links.notify, pending.recipients) if approve else None,
        )
        if why_not is not None:
            REFUSAL_AUDITED.set(True)
            raise InvalidRequest(f"message {message_id} was {why_not}")
        decided = await self.access.approval(message_id)
        assert decided is not None
        return decided

    # ---- onward transfer --------------------------------------------------------------------

    async def forward(
        self,
        user: User,
        *,
        message_id: str,
        sender: str,
        to: str,
        purpose: str,
        justification: str,
        terms: ForwardTerms = KEEP_TERMS,
    ) -> Sent:
        check_text("justification", justification)
        held_row: StoredMessage | None = await self._store.get_message(
            message_id, sender=sender or None, direction="in"
        )
        if held_row is None:
            raise NotFound(f"no received message {message_id} to forward")
        redressed = await self._redress.state_of(held_row)
        await self._refuse_gone(user, "transfer", redressed, message_id=message_id)
        if await self._redress.current_version(held_row) is not None:
            raise InvalidRequest(
                f"message {message_id} was rectified by its originator: its old version is "
                "erased, and a rectified message is not forwarded (ask the originator to send "
                "the corrected version)"
            )

        await self._live(user, "transfer", held_row, message_id=message_id)
        content = await self._open(user, "transfer", held_row, message_id=message_id)
        if content is None:
            raise InvalidRequest(f"message {message_id} was erased; nothing to forward")
        held = wire.decode(content)
        # Forwards never nest: what travels on is always the originator's own envelope, so only
        # the originator's grants and terms count, however many hops the message has taken.
        inner = held.forwarded or SignedEnvelope(
            content, held_row.signature, held_row.signature_proof or b""
        )
        original = wire.decode(inner.content).meta
        if redressed is not None:
            # The originator's later terms (a handling update) count as its own: reads and
            # forwards obey them.
            original = replace(
                original,
                tlp=max((original.tlp, redressed.tlp), key=onward.tlp_rank),
                handling_codes=original.handling_codes
                + tuple(c for c in redressed.handling_codes if c not in original.handling_codes),
            )
            terms = wire.tighter_terms(
                terms, tlp=original.tlp, handling_codes=original.handling_codes
            )
        purpose = purpose or held_row.purpose
        fields = {
            "message_id": message_id,
            "purpose": purpose,
            "justification": justification,
            "recipient": to,
        }
        await self._known_purpose(
            user, "transfer", purpose, message_id=message_id, justification=justification
        )
        directory = self._trust.directory
        if directory is None or directory.member(to) is None:
            exc = Refused(
                Reason.WRONG_RECIPIENT,
                f"{to} is not a member of the federation: nothing is forwarded to it",
            )
            await self._log(user, "transfer", "refused", detail=str(exc), **fields)
            raise exc
        # Passing a message on discloses it: only someone who may read it may forward it, under
        # the strictest TLP of the stored row, the held content and the original.
        tlp = max((held_row.tlp, held.meta.tlp, original.tlp), key=onward.tlp_rank)

        def may_forward() -> None:
            access.check_read(user, purpose=held_row.purpose, tlp=tlp, justification=justification)
            access.check_forward(user, purpose=purpose, justification=justification)

        await self._guard(user, "transfer", may_forward, **fields)
        grants: list[onward.Grant] = []
        grant_rows: dict[str, StoredMessage] = {}
        for row in await self.access.grants_for(original.message_id):
            body = self._store.open_content(row)
            if body is None:
                continue
            g = onward.Grant.of(wire.decode(body).meta)
            grants.append(g)
            grant_rows[g.message_id] = row
        # The held message's markings, never looser than the original's, tightened by `terms`;
        # its retention is never later than this node's own retain_until, stated as a time: a
        # count of days would start again at the third agency (a forward would restart the
        # originator's clock at every hop).
        terms = _bounded_retention(terms, held_row.retain_until, now=self._clock.now())
        draft = wire.forward_draft(content, original=inner, to=to, purpose=purpose, terms=terms)
        try:
            now = self._clock.now()
            grant = onward.check_forward(
                original, forwarder=self.agency, to=to, purpose=purpose, grants=grants, now=now
            )
            # What the third agency will check, checked here first: the forward keeps the
            # terms of the message held and of the original.
            _, mine = wire.complete(
                draft, message_id=uuid7(), sender=self.agency, now=now, grant_until=now
            )
            purposes = [original.purpose, grant.transfer_purpose if grant is not None else ""]
            for terms_of in (held.meta, original):
                onward.check_markings_kept(
                    mine,
                    terms_of,
                    purposes=[p for p in (*purposes, terms_of.purpose) if p],
                    now=now,
                )
        except Refused as exc:
            await self._log(user, "transfer", "refused", detail=str(exc), **fields)
            raise
        if grant is not None:
            row = grant_rows[grant.message_id]
            grant_content = self._store.open_content(row)
            assert grant_content is not None
            draft = wire.authorised(
                draft, SignedEnvelope(grant_content, row.signature, row.signature_proof or b"")
            )
        # Logged against the original message (what was disclosed), with the forward.
        logged = self._recorded(user, "transfer", **fields)

        def record(
            forward_id: str, recipients: tuple[str, ...], held: bool
        ) -> list[tuple[str, Sequence[object]]]:
            # Which original the forward carries: a redress of it is relayed to `to`.
            return [
                *logged(forward_id, recipients, held),
                self._redress.store.forward_txn(
                    forward_id=forward_id,
                    origin_sender=original.sender,
                    origin_id=original.message_id,
                    recipient=to,
                ),
            ]

        return await self._outbound.send(draft, author=user.name, forward=True, record=record)

    # ---- redress ----------------------------------------------------------------------------

    async def redress(
        self,
        user: User,
        *,
        message_id: str,
        type_name: str,
        reason: str,
        tlp: int = 0,
        handling_codes: Sequence[int] = (),
        handling_conditions: str = "",
        corrected_incident: object = None,
    ) -> Sent:
        """A redress of a message this node sent, to every agency it went to (they relay it
        to those they forwarded it to)."""
        if type_name not in REDRESS_TYPES:
            raise InvalidRequest(
                f"type must be one of {', '.join(sorted(REDRESS_TYPES))}, not {type_name!r}"
            )
        sent = await self._store.get_message(message_id, sender=self.agency, direction="out")
        if sent is None:
            raise NotFound(
                f"this node sent no message {message_id}: only a message's originator redresses "
                "it (`accord sent` lists what this node sent)"
            )
        recipients = sorted({d.recipient for d in await self._store.deliveries(message_id)})
        if not recipients:
            raise FailedPrecondition(
                f"message {message_id} was not sent to anyone yet (it awaits approval)"
            )
        draft = wire.redress_draft(
            type_name=type_name,
            target=message_id,
            recipients=recipients,
            purpose=sent.purpose,
            reason=reason,
            tlp=tlp,
            handling_codes=handling_codes,
            handling_conditions=handling_conditions,
            corrected_incident=corrected_incident,
        )
        return await self.send(user, draft)

    async def redress_status(self, user: User, *, message_id: str) -> list[RedressState]:
        """Each redress of a sent message, with every holder known along the chain."""
        sent, _ = await self.receipts(user, message_id=message_id)
        target = sent.control_target if sent.type in REDRESS_TYPES else sent.message_id
        return await self._redress.status(target)

    async def overdue(self, user: User) -> tuple[datetime, list[OverdueRequest]]:
        """Requests past the date their answer was due, unanswered, on both sides: received
        ones this node owes an answer to, and sent ones a recipient owes. Metadata: the
        listing rule applies (role, then clearance for each request's purpose)."""
        await self._guard(user, "list-overdue", lambda: access.check_list(user))
        now = self._clock.now()
        found = [
            OverdueRequest(m, peer, m.direction == "in", p)
            for m, peer, p in await request_progress(self._store)
            if p.overdue(now) and access.sees_metadata(user, purpose=m.purpose)
        ]
        found.sort(key=lambda o: o.progress.expected)
        return now, found

    async def report(self, user: User, *, since: datetime, until: datetime) -> Report:
        """The transparency report (node/report.py): auditors and administrators."""

        def may_report() -> None:
            if user.role not in (Role.AUDITOR, Role.ADMINISTRATOR):
                raise PermissionDenied(
                    "ROLE", "the transparency report is for auditors and administrators"
                )

        await self._guard(user, "report", may_report)
        if until <= since:
            raise InvalidRequest(f"the report's period is empty: {since} is not before {until}")
        return await report.build(
            agency=self.agency,
            store=ReportStore(self._store),
            progress=await request_progress(self._store),
            since=since,
            until=until,
            now=self._clock.now(),
        )

    # ---- evidence ---------------------------------------------------------------------------

    async def evidence(
        self, user: User, *, message_id: str, sender: str, justification: str
    ) -> Bundle:
        """One message's evidence bundle (node/evidence/bundle.py). It holds the content, so
        exporting it is reading it: the same rules, logged as `export-evidence`."""
        result = await self.read(
            user,
            message_id=message_id,
            sender=sender,
            justification=justification,
            action="export-evidence",
        )
        m = result.message
        if result.content is None:
            raise FailedPrecondition(
                f"message {m.message_id} was erased: its content is gone, so there is no "
                "envelope to prove (its tombstone stays in the audit log)"
            )
        receipts: dict[str, Signed] = {}
        if m.direction == "out":
            for d in await self._store.deliveries(m.message_id):
                if d.receipt is not None and d.receipt_signature is not None:
                    receipts[d.recipient] = Signed(
                        d.receipt, d.receipt_signature, d.receipt_proof or b""
                    )
        elif m.receipt is not None and m.receipt_signature is not None:
            receipts[self.agency] = Signed(m.receipt, m.receipt_signature, m.receipt_proof or b"")
        audit = await self._audit_source.evidence_for(m.message_id)
        directory = self._trust.directory
        document = self._trust.directory_document
        if directory is None or document is None:
            raise FailedPrecondition("this node has no federation directory loaded")
        certificates: dict[str, bytes] = {}
        for agency in sorted({m.sender, *receipts, *([self.agency] if audit else [])}):
            member = directory.member(agency)
            if member is None:
                raise FailedPrecondition(
                    f"{agency} is no longer in the federation directory: its certificate, "
                    "which the bundle needs, is not listed"
                )
            certificates[agency] = member.certificate_pem.encode()
        return Bundle(
            message_id=m.message_id,
            exporter=self.agency,
            envelope=Signed(result.content, m.signature, m.signature_proof or b""),
            receipts=receipts,
            certificates=certificates,
            ca_pem=self._trust.ca.public_bytes(serialization.Encoding.PEM),
            directory=document[0],
            directory_signature=document[1],
            audit=audit,
            created=self._clock.now().isoformat(),
        )

    # ---- users ------------------------------------------------------------------------------

    async def add_user(
        self, user: User, *, name: str, role: str, clearances: Sequence[str]
    ) -> Enrolment:
        """A new user and the first part of their enrolment code (never a token: the user
        redeems the code for one). Every new user waits for a second administrator, whose
        approval gives the code's second part, so no administrator alone holds a code that
        opens content or the access log. The one exception (bootstrap): while the node has
        never had two administrators, its only administrator adds the second one alone."""
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        _check_user_name(name)
        role_ = _role(role)
        self._check_purposes(clearances)
        if await self.access.user(name) is not None:
            raise InvalidRequest(f"user {name} exists")
        now = self._clock.now()
        bootstrap = (
            role_ == Role.ADMINISTRATOR
            and len(await self._active_admins()) == 1
            and not await self.access.had_two_administrators()
        )
        code = enrolment_code()
        expires = now + ENROLMENT_CODE_TTL
        if bootstrap:
            detail = f"{name} as {role_}: the second administrator, added alone (bootstrap)"
        else:
            detail = f"{name} as {role_}: awaits a second administrator"
        outcome = "granted" if bootstrap else "requested"
        await self.access.add_enrolling_user(
            name=name,
            role=role_,
            purposes=clearances,
            code=code,
            expires_at=expires,
            requested_by=None if bootstrap else user.name,
            now=now,
            also=[self._entry(user, "add-user", outcome, detail=detail)],
        )
        if bootstrap:
            await self.access.remember_two_administrators()
        return Enrolment(await self._record(name), code, expires if bootstrap else None)

    async def enrol(self, *, name: str, code: str) -> tuple[UserRecord, str]:
        """Redeem an enrolment code (both parts, joined by '+', where there are two) for the
        user's token, shown here once: the one call made without a token."""
        # Checked before anything is logged: the one call without a token writes what it
        # is given to the access log.
        _check_user_name(name)
        check_text("code", code)
        token = secrets.token_urlsafe(32)
        why_not = await self.access.redeem(
            name=name, parts=code.split("+"), token=token, now=self._clock.now()
        )
        if why_not:
            REFUSAL_AUDITED.set(True)  # written with the attempt
            raise PermissionDenied("ENROLMENT", f"cannot enrol {name}: {why_not}")
        return await self._record(name), token

    async def users(self, user: User) -> list[UserRecord]:
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        return await self.access.records()

    async def set_clearances(
        self, user: User, *, name: str, clearances: Sequence[str]
    ) -> UserRecord:
        """Fewer clearances at once; any the user lacked waits for a second administrator."""
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        self._check_purposes(clearances)
        target = (await self._record(name)).user
        wanted = frozenset(clearances)
        if wanted <= target.clearances or target.pending:
            # A user awaiting approval has no access: the approver sees them as they are.
            entry = self._entry(
                user, "set-clearances", "granted", detail=f"{name}: {','.join(clearances)}"
            )
            await self.access.set_clearances(name=name, purposes=clearances, also=[entry])
            self._watchers.end(name)
        else:
            await self._request(user, "set-clearances", name, UserChange(clearances=wanted))
        return await self._record(name)

    async def set_role(self, user: User, *, name: str, role: str) -> UserRecord:
        """A supervisor made a liaison officer at once; any other change of role gives access
        the user lacked or demotes an administrator, and waits for a second administrator.
        The last active administrator keeps the role."""
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        role_ = _role(role)
        target = (await self._record(name)).user
        if target.role == role_:
            return await self._record(name)
        await self._keep_an_administrator(user, target, "set-role")
        if (target.role, role_) == (Role.SUPERVISOR, Role.LIAISON_OFFICER):
            entry = self._entry(user, "set-role", "granted", detail=f"{name} as {role_}")
            await self.access.set_role(name=name, role=role_, also=[entry])
            self._watchers.end(name)
        else:
            await self._request(user, "set-role", name, UserChange(role=role_))
        return await self._record(name)

    async def disable_user(self, user: User, *, name: str) -> UserRecord:
        """At once, except an administrator: one administrator cannot sideline the other
        alone (disabling one waits for a second administrator, who may be the target)."""
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        target = (await self._record(name)).user
        await self._keep_an_administrator(user, target, "disable-user")
        if target.role == Role.ADMINISTRATOR and not target.disabled:
            await self._request(user, "disable-user", name, UserChange(enabled=False))
            return await self._record(name)
        entry = self._entry(user, "disable-user", "granted", detail=name)
        await self.access.disable_user(name=name, now=self._clock.now(), also=[entry])
        self._watchers.end(name)
        return await self._record(name)

    async def enable_user(self, user: User, *, name: str) -> UserRecord:
        """Gives access back: waits for a second administrator."""
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        target = (await self._record(name)).user
        if not target.disabled:
            return await self._record(name)
        await self._request(user, "enable-user", name, UserChange(enabled=True))
        return await self._record(name)

    async def _request(self, user: User, action: str, name: str, change: UserChange) -> None:
        detail = f"{name} {change.describe()}: awaits a second admin"
        await self.access.request_change(
            name=name,
            change=change,
            by=user.name,
            now=self._clock.now(),
            also=[self._entry(user, action, "requested", detail=detail)],
        )

    async def decide_user(
        self, user: User, *, name: str, approve: bool
    ) -> tuple[UserRecord | None, str, datetime | None]:
        """Approve (or reject) the change `name` waits for: an administrator other than the one
        who asked. A user not enrolled yet gets the second part of their enrolment code with
        the approval (returned, with its new expiry), whatever role they had when their first
        part was made; a new user rejected is removed."""
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        record = await self._record(name)
        change = record.requested
        if change is None:
            raise InvalidRequest(f"user {name} has no change awaiting approval")

        def second_person() -> None:
            if record.requested_by == user.name:
                raise PermissionDenied(
                    "FOUR_EYES", "the administrator who asked for a change cannot approve it"
                )

        action = "approve-user" if approve else "reject-user"
        await self._guard(user, action, second_person, detail=name)
        if approve and (change.enabled is False or change.role not in (None, Role.ADMINISTRATOR)):
            await self._keep_an_administrator(user, record.user, action)
        second = enrolment_code() if approve and not record.enrolled else None
        now = self._clock.now()
        expires = now + ENROLMENT_CODE_TTL
        await self.access.decide_change(
            name=name, approve=approve, second=second, now=now, expires_at=expires
        )
        self._watchers.end(name)
        if len(await self._active_admins()) >= 2:
            await self.access.remember_two_administrators()
        detail = f"{name} {change.describe()} (asked by {record.requested_by})"
        await self._log(user, action, "granted", detail=detail)
        after = await self.access.records(name)
        return (after[0] if after else None), second or "", expires if second else None

    async def _record(self, name: str) -> UserRecord:
        found = await self.access.records(name)
        if not found:
            raise NotFound(f"no user {name}")
        return found[0]

    async def _active_admins(self) -> list[User]:
        return [
            u
            for u in await self.access.users()
            if u.role == Role.ADMINISTRATOR and not u.disabled and not u.pending
        ]

    async def _keep_an_administrator(self, user: User, target: User, action: str) -> None:
        """The last active administrator can be neither disabled nor given another role (a
        node nobody can administer cannot be repaired through its API); once the node has had
        two, the last two, so every change keeps a second administrator to approve it."""
        admins = [a.name for a in await self._active_admins()]
        keep = 2 if await self.access.had_two_administrators() else 1

        def not_the_last() -> None:
            if target.name in admins and len(admins) <= keep:
                last = (
                    "the last active administrator"
                    if keep == 1
                    else (
                        "one of the last two active administrators (a node that has had two keeps "
                        "two, so that every change has a second administrator to approve it)"
                    )
                )
                raise PermissionDenied(
                    "LAST_ADMINISTRATOR", f"{target.name} is {last}: add another first"
                )

        await self._guard(user, action, not_the_last, detail=target.name)

    def _check_purposes(self, purposes: Sequence[str]) -> None:
        directory = self._trust.directory
        known = directory.purpose_codes() if directory else frozenset()
        unknown = [p for p in purposes if p not in known]
        if unknown:
            raise InvalidRequest(
                f"unknown purpose(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )

    # ---- policy and audit -------------------------------------------------------------------

    async def access_log(self, user: User, *, limit: int, message_id: str) -> list[AccessEntry]:
        await self._guard(user, "read-access-log", lambda: access.check_audit(user))
        return await self.access.entries(limit=limit, message_id=message_id)

    async def audit_log(
        self, user: User, filters: Filters, *, limit: int
    ) -> AsyncIterator[list[StoredEntry]]:
        """Audit entries in log order, a page at a time (auditors and administrators). The
        check runs before the first page: a refusal is raised by the first `anext`."""
        await self._guard(user, "read-audit-log", lambda: access.check_audit(user))
        audit = self._store.audit
        if limit:
            yield await audit.query(filters, limit=limit)
            return
        first, last = max(filters.first, 1), filters.last or await audit.last()
        while first <= last:
            page = replace(filters, first=first, last=min(last, first + AUDIT_PAGE - 1))
            yield await audit.query(page)
            first += AUDIT_PAGE

    async def audit_checkpoints(self, user: User) -> list[bytes]:
        await self._guard(user, "read-audit-log", lambda: access.check_audit(user))
        return [note for _, note in await self._store.audit.checkpoints()]

    async def audit_prove(
        self, user: User, *, seq: int, size: int
    ) -> tuple[StoredEntry, list[bytes], bytes]:
        """Entry `seq`, its inclusion proof, and the checkpoint it is proven against."""
        await self._guard(user, "prove-audit-entry", lambda: access.check_audit(user))
        audit = self._store.audit
        found = await audit.query(Filters(first=seq, last=seq)) if seq >= 1 else []
        if not found:
            raise NotFound(f"no audit entry {seq} (the log has {await audit.last()})")
        if size:
            note = await audit.checkpoint(size)
            if note is None or size < seq:
                raise NotFound(f"no checkpoint of size {size} covers entry {seq}")
        else:
            size, note = await audit.covering(seq)
        return found[0], await audit.inclusion(seq, size), note

    async def audit_consistency(
        self, user: User, *, old: int, new: int
    ) -> tuple[list[bytes], bytes, bytes]:
        """The consistency proof from checkpoint `old` to checkpoint `new`, and both notes."""
        await self._guard(user, "prove-audit-consistency", lambda: access.check_audit(user))
        if not 0 < old <= new:
            raise InvalidRequest(f"sizes {old} and {new}: need 0 < OLD <= NEW")
        audit = self._store.audit
        notes = [await audit.checkpoint(old), await audit.checkpoint(new)]
        missing = [n for n, note in zip((old, new), notes, strict=True) if note is None]
        if missing:
            raise NotFound(f"no checkpoint of size {missing[0]} (`accord audit query` lists them)")
        old_note, new_note = notes
        assert old_note is not None and new_note is not None
        return await audit.consistency(old, new), old_note, new_note

    async def outbox(self, user: User) -> list[tuple[PeerQueue, bool]]:
        """Per peer: what waits in the outbox, and whether a stream to it is open now. Counts
        and times only, no traffic: any local user may see them."""
        links = self._links
        return [
            (q, q.recipient in links and links[q.recipient].connected)
            for q in await self._store.outbox()
        ]

    async def status(self) -> NodeStatus:
        """Health, trust and each peer's link and outbox (no traffic: any local user)."""
        depths = {q.recipient: q for q in await self._store.outbox() if q.queued}
        directory = self._trust.directory
        peers = []
        for agency in sorted(set(depths) | set(self._links)):
            link = self._links.get(agency)
            queue = depths.get(agency)
            peers.append(
                PeerStatus(
                    agency=agency,
                    link=link.state if link is not None else "idle",
                    last_error=link.last_error if link is not None else "",
                    queued=queue.queued if queue is not None else 0,
                    oldest_queued_at=queue.oldest_queued_at if queue is not None else None,
                    sent=link.sent if link is not None else 0,
                    receipted=link.receipted if link is not None else 0,
                )
            )
        return NodeStatus(
            agency=self.agency,
            health=self._health.serving,
            crl_state=self._health.check_crl(),
            crl_next_update=self._trust.crl_next_update,
            directory_serial=directory.serial if directory else 0,
            directory_issued_at=directory.issued_at if directory else None,
            now=self._clock.now(),
            peers=peers,
        )

    def members(self) -> tuple[int, list[tuple[str, str]]]:
        """The directory's serial, and its members as (agency, name)."""
        directory = self._trust.directory
        assert directory is not None
        return directory.serial, [(m.agency, m.name) for m in directory.members]

    async def watch(self, user: User) -> AsyncIterator[StoredMessage]:
        """Messages as they arrive, those the user may see. Ends with PermissionDenied when
        the user's account changes (disabled, role or clearances): what they may see is then
        decided again when they watch again."""
        if user.role == Role.ADMINISTRATOR:
            raise PermissionDenied("ROLE", "administrators do not see traffic")
        queue = self._watchers.watch(user.name)
        try:
            while True:
                m = await queue.get()
                # The user as they are now, for every item: an account disabled or changed
                # while the stream is open sees nothing more on it.
                now = await self.access.user(user.name)
                if m is None or now is None or now.disabled or now.role != user.role:
                    raise PermissionDenied(
                        "ACCOUNT_CHANGED",
                        f"{user.name}'s account changed (disabled, role or clearances): this "
                        "watch has ended; watch again",
                    )
                if access.sees_metadata(now, purpose=m.purpose):
                    yield m
        finally:
            self._watchers.unwatch(queue)

    # ---- retention --------------------------------------------------------------------------

    async def retention_sweep(self, user: User) -> SweepResult:
        """Sweep now (supervisors and administrators), logged."""
        await self._guard(user, "retention-sweep", lambda: access.check_sweep(user))
        result = await self._retention.sweeper.sweep()
        await self._log(
            user,
            "retention-sweep",
            "granted",
            detail=f"{result.expired} expired, {result.sunset} sunset erased; "
            f"{result.keys_destroyed} keys destroyed",
        )
        return result

    async def retention_status(self) -> tuple[SweepResult | None, Counts, int]:
        """The last sweep since start, the store's counts and the keystore's key count."""
        counts = await self._retention.holds.counts(now=self._clock.now())
        keystore = self._store.keys.keystore
        keys = sum(len(v) for v in keystore.buckets().values()) if keystore else 0
        return self._retention.sweeper.last, counts, keys

    def now(self) -> datetime:
        """The node's clock (a drill node's may run ahead of the system's)."""
        return self._clock.now()

    @property
    def sweep_seconds(self) -> float:
        return self._retention.settings.sweep_seconds

    async def _held_target(
        self, user: User, action: str, *, message_id: str, correlation_id: str, why: str
    ) -> str:
        """The purpose a hold or release concerns (checked: the target exists, one of the two
        is given), after the supervisor's right to decide on it is checked."""
        check_text("justification", why)
        if bool(message_id) == bool(correlation_id):
            raise InvalidRequest("give exactly one of a message id and --correlation")
        found = await self._store.list_messages(
            direction=None,
            limit=1,
            **({"message_id": message_id} if message_id else {"correlation_id": correlation_id}),
        )
        if not found:
            what = f"message {message_id}" if message_id else f"correlation id {correlation_id}"
            raise NotFound(f"no {what} stored here")
        purpose = found[0].purpose
        await self._guard(
            user,
            action,
            lambda: access.check_hold(user, purpose=purpose, justification=why),
            message_id=message_id,
            purpose=purpose,
        )
        return purpose

    async def hold(
        self, user: User, *, message_id: str, correlation_id: str, justification: str
    ) -> Hold:
        await self._held_target(
            user, "hold", message_id=message_id, correlation_id=correlation_id, why=justification
        )
        return await self._retention.holds.hold(
            message_id=message_id,
            correlation_id=correlation_id,
            justification=justification,
            by=user.name,
            now=self._clock.now(),
        )

    async def release(
        self, user: User, *, message_id: str, correlation_id: str, note: str
    ) -> list[Hold]:
        await self._held_target(
            user, "release", message_id=message_id, correlation_id=correlation_id, why=note
        )
        holds = [
            h
            for h in await self._retention.holds.in_force(
                message_id=message_id, correlation_id=correlation_id
            )
            if (h.message_id, h.correlation_id) == (message_id, correlation_id)
        ]
        if not holds:
            what = f"message {message_id}" if message_id else f"correlation id {correlation_id}"
            raise NotFound(f"no hold in force on {what}")
        await self._retention.holds.release(holds, by=user.name, note=note, now=self._clock.now())
        return [h for h in [await self._retention.holds.get(h.id) for h in holds] if h]

    def _agreement_max(self, m: StoredMessage) -> datetime | None:
        directory = self._trust.directory
        if directory is None:
            return None
        for a in directory.agreements:
            if a.id == m.agreement_id:
                return m.received_at + timedelta(days=a.max_retention_days)
        return None

    async def review(self, user: User, *, within_days: int, limit: int) -> list[ReviewItem]:
        """Messages within `within_days` of expiry (or expired), and those of agreements past
        their review date: metadata, so the listing rule applies."""
        await self._guard(user, "review", lambda: access.check_review(user))
        now = self._clock.now()
        days = within_days or self._retention.settings.review_days
        limit = limit or 100
        directory = self._trust.directory
        reviewed = {
            a.id: a.review_date
            for a in (directory.agreements if directory else ())
            if self.agency in a.parties and a.review_date and a.review_date <= now.date()
        }
        near = await self._retention.holds.review(
            now=now, near=now + timedelta(days=days), limit=limit
        )
        due = await self._retention.holds.under_agreements(sorted(reviewed), limit=limit)
        items: list[ReviewItem] = []
        seen: set[tuple[str, str]] = set()
        for m in [*near, *due]:
            if (m.sender, m.message_id) in seen or not access.sees_metadata(
                user, purpose=m.purpose
            ):
                continue
            seen.add((m.sender, m.message_id))
            whys = []
            if m.retain_until is not None and m.retain_until <= now + timedelta(days=days):
                left = (m.retain_until - now).total_seconds() / 86400
                whys.append("expired" if left <= 0 else f"expires in {left:.1f} days")
            if m.agreement_id in reviewed:
                whys.append(f"agreement review date {reviewed[m.agreement_id]} passed")
            items.append(
                ReviewItem(
                    m,
                    "; ".join(whys),
                    await self._store.held(m.message_id, m.correlation_id),
                    self._agreement_max(m),
                )
            )
        return items[:limit]

    async def keep(
        self, user: User, *, message_id: str, sender: str, until: datetime, justification: str
    ) -> StoredMessage:
        """Keep a message longer (a supervisor, with justification), never past its
        agreement's maximum from receipt; logged."""
        check_text("justification", justification)
        m = await self._store.get_message(message_id, sender=sender or None)
        if m is None:
            raise NotFound(f"no message {message_id}")
        fields = {"message_id": m.message_id, "purpose": m.purpose, "justification": justification}
        await self._guard(
            user,
            "keep",
            lambda: access.check_hold(user, purpose=m.purpose, justification=justification),
            **fields,
        )
        await self._live(user, "keep", m, **fields)
        most = self._agreement_max(m)
        exc: InvalidRequest | None = None
        if m.retain_until is not None and until <= m.retain_until:
            exc = InvalidRequest(
                f"until {until.isoformat()} is not later than the message's retain_until "
                f"{m.retain_until.isoformat()}: keep only extends"
            )
        elif most is None or until > most:
            limit = most.isoformat() if most else "unknown (agreement not in the directory)"
            exc = InvalidRequest(
                f"retain_until {until.isoformat()} is past what agreement {m.agreement_id} "
                f"allows for this message: {limit}"
            )
        if exc is not None:
            await self._log(user, "keep", "refused", **{**fields, "detail": str(exc)})
            raise exc
        await self._retention.holds.keep_until(
            m, until=until, by=user.name, justification=justification, now=self._clock.now()
        )
        kept = await self._store.get_message(m.message_id, sender=m.sender)
        assert kept is not None
        return kept

    # ---- drills -----------------------------------------------------------------------------

    async def advance_clock(self, user: User, *, seconds: float) -> tuple[datetime, timedelta]:
        """Move a drill-mode node's clock forward (retention, sunsets and deadlines come
        sooner); the node's time and offset after it. Refused on any other node."""
        clock = self._drill_clock
        if clock is None:
            await self._log(user, "advance-clock", "refused", detail="not in drill mode")
            raise FailedPrecondition(
                "this node was not started in drill mode (`accord node run --drill`, as "
                "`accord cluster up` does); its clock cannot be moved"
            )
        await self._guard(user, "advance-clock", lambda: access.check_move_clock(user))
        if not math.isfinite(seconds) or seconds < 0:
            raise InvalidRequest(f"seconds: must be a number >= 0, got {seconds}")
        clock.advance(timedelta(seconds=seconds))
        await self._log(user, "advance-clock", "granted", detail=f"+{seconds:g} s")
        return clock.now(), clock.offset

    # ---- published policies -----------------------------------------------------------------

    async def policy(self, peer: str = "") -> PublishedPolicy:
        """This node's published policy, or (`peer`) a peer's, fetched over mTLS and checked
        against the key the directory lists for it."""
        if not peer or peer == self.agency:
            return self._published()
        directory = self._trust.directory
        if directory is None or directory.member(peer) is None:
            raise NotFound(
                f"{peer} is not a member of the federation: it has no policy here "
                "(`accord policy show` without --peer shows this node's)"
            )
        try:
            member, identity = self._trust.member_peer(peer, self._clock.now())
        except Unauthenticated as exc:
            # About the peer, not the caller: the caller's own credentials are fine.
            raise FailedPrecondition(f"cannot fetch {peer}'s policy: {exc}") from exc
        try:
            async with self._connector.channel(peer, member.endpoint) as channel:
                signed = await channel.policy()
        except CallFailed as exc:
            raise InvalidRequest(f"{peer} did not answer: {exc.code} {exc.details}") from exc
        if not signing.verify(
            identity.public_key, signed.policy_json, signed.signature, signing.POLICY
        ):
            raise Refused(Reason.BAD_SIGNATURE, f"{peer}'s policy signature does not verify")
        return signed
