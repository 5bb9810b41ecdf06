"""What local users do, with the access rules applied and every decision logged.

The local API servicer is a thin shell over these; the gateway reaches them the same way.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from accord.v1 import federation_pb2, federation_pb2_grpc, message_pb2
from certs.identity import agency_dns_name
from node import access, inbox, onward
from node.access import Role, User
from node.envelope import ENVELOPE_PROOF, meta_of, parse_content, verify
from node.errors import InvalidRequest, NotFound, PermissionDenied, Reason, Refused
from node.store import Store, StoredMessage
from node.store.access import AccessEntry, AccessStore, Approval, log_txn
from node.store.db import Delivery

if TYPE_CHECKING:
    from node.app import Node, Record, Sent

USER_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")


@dataclass(frozen=True, slots=True)
class InboxItem:
    message: StoredMessage
    status: str  # node/inbox.py
    deadline: datetime | None


@dataclass(frozen=True, slots=True)
class ReadResult:
    message: StoredMessage
    content: bytes | None  # None once erased


class Operations:
    def __init__(self, node: Node, access_store: AccessStore) -> None:
        self._node = node
        self.access = access_store

    @property
    def _store(self) -> Store:
        assert self._node.store is not None
        return self._node.store

    async def _log(self, user: User, action: str, outcome: str, **fields: str) -> None:
        await self.access.log(
            at=self._node.clock.now(), user=user.name, action=action, outcome=outcome, **fields
        )

    async def _guard(
        self, user: User, action: str, check: Callable[[], None], **fields: str
    ) -> None:
        """Run an access check; a refusal is logged before it reaches the caller."""
        try:
            check()
        except PermissionDenied as exc:
            await self._log(user, action, "refused", detail=f"{exc.code}: {exc}", **fields)
            raise

    # ---- messages ---------------------------------------------------------------------------

    async def inbox(self, user: User, *, limit: int, before: str) -> list[InboxItem]:
        await self._guard(user, "list", lambda: access.check_list(user))
        messages: list[StoredMessage] = await self._store.list_messages(
            direction="in", limit=limit, before=before
        )
        shown = [m for m in messages if access.sees_metadata(user, purpose=m.purpose)]
        replies = await self._store.replies_to([m.message_id for m in shown])
        now = self._node.clock.now()
        return [
            InboxItem(m, inbox.status(m, replies.get(m.message_id, ()), now), inbox.deadline(m))
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
        m: StoredMessage | None = await self._store.get_message(message_id, sender=sender or None)
        if m is None:
            raise NotFound(f"no message {message_id}")
        fields = {"message_id": m.message_id, "purpose": m.purpose, "justification": justification}
        await self._guard(
            user,
            "consult",
            lambda: access.check_read(
                user, purpose=m.purpose, tlp=m.tlp, justification=justification
            ),
            **fields,
        )
        await self._log(user, "consult", "granted", **fields)
        return ReadResult(m, self._store.open_content(m))

    async def send(self, user: User, draft: message_pb2.MessageContent) -> Sent:
        await self._guard(
            user,
            "send",
            lambda: access.check_send(user, purpose=draft.purpose),
            purpose=draft.purpose,
        )
        try:
            return await self._node.send(
                draft, author=user.name, record=self._recorded(user, "send", draft.purpose)
            )
        except Refused as exc:
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
                    at=self._node.clock.now(),
                    user=user.name,
                    action=action,
                    outcome="held" if held else "queued",
                    purpose=purpose,
                    **{"message_id": message_id, "recipient": ",".join(recipients), **fields},
                )
            ]

        return rows

    # ---- four eyes --------------------------------------------------------------------------

    async def approvals(self, user: User, *, state: str) -> list[Approval]:
        await self._guard(user, "list-approvals", lambda: access.check_list(user))
        return await self.access.approvals(state=None if state == "all" else state or "pending")

    async def decide(self, user: User, *, message_id: str, approve: bool, note: str) -> Approval:
        pending = await self.access.approval(message_id)
        if pending is None:
            raise NotFound(f"no message {message_id} awaits approval")
        if pending.state != "pending":
            raise InvalidRequest(f"message {message_id} was already {pending.state}")
        await self._guard(
            user,
            "approve",
            lambda: access.check_approve(user, author=pending.author),
            message_id=message_id,
        )

        def queued() -> None:
            # Run as the approval commits, before anything committed after it is handed to a
            # link: a link that already sent a later envelope would otherwise skip this one.
            for recipient in pending.recipients:
                self._node.link(recipient).notify()

        await self.access.decide(
            message_id=message_id,
            approver=user.name,
            approve=approve,
            note=note,
            now=self._node.clock.now(),
            recipients=pending.recipients,
            on_commit=queued if approve else None,
        )
        decided = await self.access.approval(message_id)
        assert decided is not None
        action, outcome = ("approve", "approved") if approve else ("reject", "rejected")
        if decided.decided_by != user.name or decided.state != outcome:
            # Someone else decided first (both found it pending); their decision stands.
            detail = f"already {decided.state} by {decided.decided_by}"
            await self._log(user, action, "refused", message_id=message_id, detail=detail)
            raise InvalidRequest(f"message {message_id} was {detail}")
        await self._log(
            user,
            action,
            "granted",
            message_id=message_id,
            recipient=",".join(pending.recipients),
            justification=note,
        )
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
    ) -> Sent:
        original_row: StoredMessage | None = await self._store.get_message(
            message_id, sender=sender or None, direction="in"
        )
        if original_row is None:
            raise NotFound(f"no received message {message_id} to forward")
        content = self._store.open_content(original_row)
        if content is None:
            raise InvalidRequest(f"message {message_id} was erased; nothing to forward")
        original_pb = parse_content(content)
        original = meta_of(original_pb)
        purpose = purpose or original.purpose
        fields = {
            "message_id": message_id,
            "purpose": purpose,
            "justification": justification,
            "recipient": to,
        }
        await self._guard(
            user,
            "transfer",
            lambda: access.check_forward(user, purpose=purpose, justification=justification),
            **fields,
        )
        grants = []
        grant_rows: dict[str, StoredMessage] = {}
        for row in await self.access.grants_for(message_id):
            body = self._store.open_content(row)
            if body is None:
                continue
            g = meta_of(parse_content(body))
            grants.append(
                onward.Grant(
                    g.sender, g.control_target, g.third_agency, g.granted, g.transfer_purpose
                )
            )
            grant_rows[g.message_id] = row
        try:
            grant = onward.check_forward(original, to=to, purpose=purpose, grants=grants)
        except Refused as exc:
            await self._log(user, "transfer", "refused", detail=str(exc), **fields)
            raise
        outer = message_pb2.MessageContent()
        outer.CopyFrom(original_pb)
        outer.ClearField("message_id")
        outer.ClearField("sender")
        outer.ClearField("created_at")
        outer.ClearField("agreement_id")
        outer.ClearField("in_reply_to")
        outer.ClearField("transfer_authorisation")
        del outer.recipients[:]
        outer.recipients.append(to)
        outer.purpose = purpose
        outer.forwarded.CopyFrom(
            message_pb2.Envelope(
                content=content,
                signature=original_row.signature,
                proof=original_row.signature_proof or b"",
            )
        )
        if grant is not None:
            row = next(r for r in grant_rows.values() if r.sender == grant.sender)
            grant_content = self._store.open_content(row)
            assert grant_content is not None
            outer.transfer_authorisation.CopyFrom(
                message_pb2.Envelope(
                    content=grant_content, signature=row.signature, proof=row.signature_proof or b""
                )
            )
        embedded = [outer.forwarded, *([outer.transfer_authorisation] if grant is not None else [])]
        known = self._node.peer_features(to)
        if known is not None and ENVELOPE_PROOF not in known and any(e.proof for e in embedded):
            # Only the originator could sign it again, alone; the third agency's node would
            # refuse it as BAD_SIGNATURE, for good (docs/evidence.md, "Older nodes").
            detail = (
                f"{to}'s node does not check batch-signed envelopes yet, and the original (or "
                "its grant) was signed with its batch: it can be forwarded once that node is "
                "upgraded"
            )
            await self._log(user, "transfer", "refused", detail=detail, **fields)
            raise InvalidRequest(detail)
        # Logged against the original message (what was disclosed), with the forward.
        return await self._node.send(
            outer, author=user.name, record=self._recorded(user, "transfer", **fields)
        )

    # ---- users ------------------------------------------------------------------------------

    async def add_user(
        self, user: User, *, name: str, role: str, clearances: Sequence[str]
    ) -> tuple[User, str]:
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        if not name or not set(name) <= USER_NAME_CHARS or len(name) > 64:
            raise InvalidRequest("user name: 1-64 of a-z, 0-9, '.', '_', '-'")
        try:
            role_ = Role(role)
        except ValueError as exc:
            raise InvalidRequest(f"role must be one of {', '.join(r.value for r in Role)}") from exc
        self._check_purposes(clearances)
        if any(u.name == name for u in await self.access.users()):
            raise InvalidRequest(f"user {name} exists")
        token = secrets.token_urlsafe(32)
        await self.access.add_user(
            name=name, role=role_, token=token, purposes=clearances, now=self._node.clock.now()
        )
        await self._log(user, "add-user", "granted", detail=f"{name} as {role_}")
        return User(name, role_, frozenset(clearances)), token

    async def users(self, user: User) -> list[User]:
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        return await self.access.users()

    async def set_clearances(self, user: User, *, name: str, clearances: Sequence[str]) -> User:
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        self._check_purposes(clearances)
        target = await self._user(name)
        await self.access.set_clearances(name=name, purposes=clearances)
        await self._log(user, "set-clearances", "granted", detail=f"{name}: {','.join(clearances)}")
        return User(target.name, target.role, frozenset(clearances), target.disabled)

    async def disable_user(self, user: User, *, name: str) -> User:
        await self._guard(user, "manage-users", lambda: access.check_manage_users(user))
        target = await self._user(name)
        await self.access.disable_user(name=name, now=self._node.clock.now())
        await self._log(user, "disable-user", "granted", detail=name)
        return User(target.name, target.role, target.clearances, True)

    async def _user(self, name: str) -> User:
        for u in await self.access.users():
            if u.name == name:
                return u
        raise NotFound(f"no user {name}")

    def _check_purposes(self, purposes: Sequence[str]) -> None:
        directory = self._node.trust.directory
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

    async def peer_policy(self, peer: str) -> federation_pb2.SignedPolicy:
        """Fetch a peer's published policy over mTLS and check its signature."""
        import grpc

        node = self._node
        member, identity = node.trust.member_peer(peer, node.clock.now())
        options = [
            ("grpc.ssl_target_name_override", agency_dns_name(node.config.node.federation, peer))
        ]
        async with grpc.aio.secure_channel(
            member.endpoint, node.credentials.channel(), options=options
        ) as ch:
            try:
                signed: federation_pb2.SignedPolicy = await federation_pb2_grpc.FederationStub(
                    ch
                ).GetPolicy(federation_pb2.GetPolicyRequest(), timeout=10)
            except grpc.aio.AioRpcError as exc:
                raise InvalidRequest(
                    f"{peer} did not answer: {exc.code().name} {exc.details()}"
                ) from exc
        if not verify(identity.public_key, signed.policy_json, signed.signature):
            raise Refused(Reason.BAD_SIGNATURE, f"{peer}'s policy signature does not verify")
        return signed
