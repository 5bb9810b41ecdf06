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

from node import inbox, signing, wire
from node.audit.checkpoint import NoteKey
from node.clock import Clock, OffsetClock
from node.delivery.links import Links
from node.delivery.outbound import Outbound, Record, Sent
from node.errors import (
    AccordError,
    FailedPrecondition,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    Reason,
    Refused,
    Unreadable,
)
from node.health import Health
from node.ids import uuid7
from node.messages import Draft, ForwardTerms, PublishedPolicy, SignedEnvelope
from node.policy import access, onward
from node.policy.access import Role, User
from node.store import PeerQueue, Store, StoredMessage
from node.store.access import (
    REFUSAL_AUDITED,
    AccessEntry,
    AccessStore,
    Approval,
    UserRecord,
    log_txn,
)
from node.store.audit import Filters, StoredEntry
from node.store.db import Delivery
from node.store.keys import SealError
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


def enrolment_code() -> str:
    """128 random bits in base32 (A-Z, 2-7): typed or pasted by a person, and never starting
    with '-', which a command line would take for an option (`users enrol --code CODE`)."""
    return base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class InboxItem:
    message: StoredMessage
    status: str  # node/inbox.py
    deadline: datetime | None


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
        audit_key: NoteKey,
    ) -> None:
        """`published`: this node's own signed policy; `drill_clock`: the clock a drill-mode
        node lets an administrator move (None: not in drill mode)."""
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
        replies = await self._store.replies_to([m.message_id for m in received])
        now = self._clock.now()
        return [
            InboxItem(m, inbox.status(m, replies.get(m.message_id, ()), now), inbox.deadline(m))
            if m.direction == "in"
            else InboxItem(m, "", None)
            for m in shown
        ]

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
                    "CLEARANCE", f"{user.name} is not cleared for {sent.purpose!r}"
                )

        await self._guard(user, "receipts", cleared, message_id=message_id, purpose=sent.purpose)
        return sent, await self._store.deliveries(message_id)

    async def read(
        self, user: User, *, message_id: str, sender: str, justification: str
    ) -> ReadResult:
        check_text("justification", justification)
        m: StoredMessage | None = await self._store.get_message(message_id, sender=sender or None)
        if m is None:
            raise NotFound(f"no message {message_id}")
        fields = {"message_id": m.message_id, "purpose": m.purpose, "justification": justification}

        def may_read(tlp: str) -> Callable[[], None]:
            return lambda: access.check_read(
                user, purpose=m.purpose, tlp=tlp, justification=justification
            )

        await self._guard(user, "consult", may_read(m.tlp), **fields)
        content = await self._open(user, "consult", m, **fields)
        if content is not None:
            # The row's markings are bound to its seal; the content's own (and, in a forward,
            # the original's) count too: the strictest decides.
            purpose, tlp = _markings(content)
            if purpose != m.purpose:
                await self._log(user, "consult", "refused", detail="row purpose altered", **fields)
                raise Unreadable(f"message {m.message_id}: {_ALTERED}")
            if onward.tlp_rank(tlp) > onward.tlp_rank(m.tlp):
                await self._guard(user, "consult", may_read(tlp), **fields)
        await self._log(user, "consult", "granted", **fields)
        return ReadResult(m, content)

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
        await self._known_purpose(user, "send", draft.purpose)
        await self._guard(
            user,
            "send",
            lambda: access.check_send(user, purpose=draft.purpose),
            purpose=draft.purpose,
        )
        try:
            return await self._outbound.send(
                draft, author=user.name, record=self._recorded(user, "send", draft.purpose)
            )
        except (Refused, InvalidRequest) as exc:
            await self._log(user, "send", "refused", purpose=draft.purpose, detail=str(exc))
            raise

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
        # The held message's markings, never looser than the original's, tightened by `terms`.
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
        return await self._outbound.send(
            draft,
            author=user.name,
            forward=True,
            record=self._recorded(user, "transfer", **fields),
        )

    # ---- users ------------------------------------------------------------------------------

    async def add_user(
        self, user: User, *, name: str, role: str, clearances: Sequence[str]
    ) -> Enrolment:
        """A new user and their enrolment code (never a token: the user redeems the code for
        one). A supervisor, auditor or administrator waits for a second administrator's
        approval, and their code needs a second part from that administrator; except that a
        node with a single active administrator may add one more administrator at once."""
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        if not name or not set(name) <= USER_NAME_CHARS or len(name) > 64:
            raise InvalidRequest("user name: 1-64 of a-z, 0-9, '.', '_', '-'")
        role_ = _role(role)
        self._check_purposes(clearances)
        if await self.access.user(name) is not None:
            raise InvalidRequest(f"user {name} exists")
        now = self._clock.now()
        bootstrap = role_ == Role.ADMINISTRATOR and len(await self._active_admins()) == 1
        pending = role_ in access.PRIVILEGED and not bootstrap
        code = enrolment_code()
        expires = now + ENROLMENT_CODE_TTL
        if pending:
            detail = f"{name} as {role_}: awaits a second administrator"
        elif bootstrap:
            detail = f"{name} as {role_}: the second administrator, added alone (bootstrap)"
        else:
            detail = f"{name} as {role_}"
        await self.access.add_enrolling_user(
            name=name,
            role=role_,
            purposes=clearances,
            code=code,
            expires_at=expires,
            requested_by=user.name if pending else None,
            now=now,
            also=[
                self._entry(user, "add-user", "requested" if pending else "granted", detail=detail)
            ],
        )
        return Enrolment(await self._record(name), code, None if pending else expires)

    async def enrol(self, *, name: str, code: str) -> tuple[UserRecord, str]:
        """Redeem an enrolment code (both parts, joined by '+', where there are two) for the
        user's token, shown here once: the one call made without a token."""
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
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        self._check_purposes(clearances)
        await self._record(name)
        entry = self._entry(
            user, "set-clearances", "granted", detail=f"{name}: {','.join(clearances)}"
        )
        await self.access.set_clearances(name=name, purposes=clearances, also=[entry])
        self._watchers.end(name)
        return await self._record(name)

    async def set_role(self, user: User, *, name: str, role: str) -> UserRecord:
        """A lower role at once; a supervisor, auditor or administrator role waits for a second
        administrator. The last active administrator keeps the role."""
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        role_ = _role(role)
        target = (await self._record(name)).user
        if target.role == role_:
            return await self._record(name)
        await self._keep_an_administrator(user, target, "set-role")
        now = self._clock.now()
        if role_ in access.PRIVILEGED:
            detail = f"{name} as {role_}: awaits a second admin"
            await self.access.request_role(
                name=name, role=role_, by=user.name, now=now,
                also=[self._entry(user, "set-role", "requested", detail=detail)],
            )  # fmt: skip
        else:
            entry = self._entry(user, "set-role", "granted", detail=f"{name} as {role_}")
            await self.access.set_role(name=name, role=role_, also=[entry])
            self._watchers.end(name)
        return await self._record(name)

    async def decide_user(
        self, user: User, *, name: str, approve: bool
    ) -> tuple[UserRecord | None, str, datetime | None]:
        """Approve (or reject) the role `name` waits for: an administrator other than the one
        who asked. For a new user, approval gives the second part of their enrolment code
        (returned, with its new expiry); rejection removes them."""
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        record = await self._record(name)
        if record.requested_role is None:
            raise InvalidRequest(f"user {name} has no role awaiting approval")

        def second_person() -> None:
            if record.requested_by == user.name:
                raise PermissionDenied(
                    "FOUR_EYES", "the administrator who asked for a role cannot approve it"
                )

        action = "approve-user" if approve else "reject-user"
        await self._guard(user, action, second_person, detail=name)
        second = enrolment_code() if approve and record.user.pending else None
        expires = self._clock.now() + ENROLMENT_CODE_TTL
        detail = f"{name} as {record.requested_role} (asked by {record.requested_by})"
        await self.access.decide_role(
            name=name, approve=approve, second=second, expires_at=expires,
            also=[self._entry(user, action, "granted", detail=detail)],
        )  # fmt: skip
        self._watchers.end(name)
        after = await self.access.records(name)
        return (after[0] if after else None), second or "", expires if second else None

    async def disable_user(self, user: User, *, name: str) -> UserRecord:
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        target = (await self._record(name)).user
        await self._keep_an_administrator(user, target, "disable-user")
        entry = self._entry(user, "disable-user", "granted", detail=name)
        await self.access.disable_user(name=name, now=self._clock.now(), also=[entry])
        self._watchers.end(name)
        return await self._record(name)

    async def enable_user(self, user: User, *, name: str) -> UserRecord:
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        await self._record(name)
        entry = self._entry(user, "enable-user", "granted", detail=name)
        await self.access.enable_user(name=name, also=[entry])
        return await self._record(name)

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
        """The last active administrator can be neither disabled nor given another role:
        a node nobody can administer cannot be repaired through its API."""
        admins = await self._active_admins()

        def not_the_last() -> None:
            if [a.name for a in admins] == [target.name]:
                raise PermissionDenied(
                    "LAST_ADMINISTRATOR",
                    f"{target.name} is the last active administrator: add another first",
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
        member, identity = self._trust.member_peer(peer, self._clock.now())
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
