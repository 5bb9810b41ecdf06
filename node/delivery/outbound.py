"""The one way a message leaves this node: checked, signed, sealed and queued in the outbox.

`Outbound.send` returns once the message is in the durable outbox (or held for a supervisor's
approval); the store hands what it commits to the links (node/delivery/links.py). Operations
(node/operations.py) calls it for local users, after their access checks, with the access log
row of the send, which commits in the same unit as the message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from node import signing, wire
from node.activity import Activity
from node.clock import Clock
from node.delivery.links import Links
from node.errors import InvalidRequest, Reason, Refused
from node.ids import uuid7
from node.messages import Draft, MessageMeta
from node.policy import Policy
from node.policy.agreements import REDRESS_TYPES
from node.policy.inbound import check_created_at
from node.policy.onward import GRANT_DAYS
from node.policy.redress import GONE
from node.retention import check_live
from node.signing import BatchSigner, Signer
from node.store import Store, StoredMessage
from node.store.access import AccessStore, log_txn
from node.store.redress import RedressStore
from node.store.writer import Statement
from node.trust import NotCurrent, Trust

# What a send commits with a message: (message id, recipients, held for approval) -> rows.
Record = Callable[[str, tuple[str, ...], bool], Sequence[Statement]]


@dataclass(frozen=True, slots=True)
class Sent:
    message_id: str
    recipients: tuple[str, ...]
    content: bytes
    pending_approval: bool = False


class Outbound:
    def __init__(
        self,
        *,
        agency: str,
        trust: Trust,
        policy: Callable[[], Policy],
        store: Store,
        access: AccessStore,
        signer: Signer,
        batch_signer: BatchSigner,
        links: Links,
        activity: Activity,
        clock: Clock,
        max_message_bytes: int,
        clock_skew: timedelta,
    ) -> None:
        self._agency = agency
        self._trust = trust
        self._policy = policy
        self._store = store
        self._access = access
        self._signer = signer
        self._batch_signer = batch_signer
        self._links = links
        self._activity = activity
        self._clock = clock
        self._max = max_message_bytes
        self._skew = clock_skew
        self._redress = RedressStore(store)

    async def send(
        self,
        draft: Draft,
        *,
        author: str = "",
        forward: bool = False,
        record: Record | None = None,
    ) -> Sent:
        """`_send`, reported: one event per send, queued, held or refused."""
        type_name = draft.type
        try:
            sent = await self._send(draft, author=author, forward=forward, record=record)
        except Refused as exc:
            self._activity.send_refused(
                message_id=draft.message_id,
                recipients=draft.recipients,
                type_name=type_name,
                reason=exc.reason.value,
            )
            raise
        self._activity.sent(
            message_id=sent.message_id,
            recipients=sent.recipients,
            type_name=type_name,
            held=sent.pending_approval,
        )
        return sent

    async def _check_redress_target(self, meta: MessageMeta) -> None:
        """A redress names a message this node originated, goes to agencies it was sent to and
        keeps its purpose: refused otherwise, before it leaves (the receivers check the same)."""
        target = await self._store.get_message(
            meta.control_target, sender=self._agency, direction="out"
        )
        if target is None:
            raise Refused(
                Reason.UNKNOWN_TARGET,
                f"this node sent no message {meta.control_target}: a redress acts on a message "
                "its originator sent (`accord sent` lists them)",
            )
        if await self._redress.is_forward(target.message_id):
            raise Refused(
                Reason.NOT_ORIGINATOR,
                f"{target.message_id} is a forward of another agency's message: only its "
                "originator may redress it",
            )
        sent_to = {d.recipient for d in await self._store.deliveries(target.message_id)}
        others = sorted(set(meta.recipients) - sent_to)
        if others:
            raise Refused(
                Reason.WRONG_RECIPIENT,
                f"{target.message_id} was not sent to {', '.join(others)}",
            )
        if meta.purpose != target.purpose:
            raise Refused(
                Reason.REDRESS_NOT_APPLICABLE,
                f"a redress keeps its message's purpose {target.purpose!r}",
            )

    async def _send(
        self, draft: Draft, *, author: str, forward: bool, record: Record | None
    ) -> Sent:
        """Check, sign, seal and queue a message; returns once it is in the durable outbox.

        A message the agreement marks as consequential is stored but held out of the outbox
        until a supervisor other than `author` approves it. Only `Operations.forward` makes a
        forward (`forward=True`): it checks the right to read the original, the originator's
        grant and its terms. `record(message_id, recipients, held)` gives statements (the
        access log entry of the send) that commit in the same unit as the message: both are
        stored, or neither.
        """
        if not forward and draft.forward:
            raise InvalidRequest(
                "content with `forwarded` or `transfer_authorisation` is a forward: use Forward "
                "(`accord forward`), which checks the originator's terms and grant"
            )
        now = self._clock.now()
        try:
            # A node that cannot vouch for its peers now sends nothing new (queued messages
            # wait): the same rule that refuses every peer, said to the user at once.
            self._trust.check_current(now)
        except NotCurrent as exc:
            raise Refused(exc.reason, str(exc)) from exc
        fresh_id = not draft.message_id
        if draft.sender and draft.sender != self._agency:
            raise Refused(Reason.SENDER_MISMATCH, f"this node sends as {self._agency}")
        draft, meta = wire.complete(
            draft,
            message_id=draft.message_id or uuid7(),
            sender=self._agency,
            now=now,
            grant_until=now + timedelta(days=GRANT_DAYS),
        )
        check_created_at(meta, now=now, skew=self._skew)
        threads = [meta.correlation_id]
        if meta.in_reply_to:
            replied = await self._store.get_message(meta.in_reply_to)
            if replied is None:
                raise InvalidRequest(
                    f"in_reply_to {meta.in_reply_to!r}: this node holds no such message (a "
                    "reply answers a message this node sent or received)"
                )
            if replied.direction == "in":
                done = await self._redress.latest(
                    sender=replied.sender, message_id=replied.message_id
                )
                if done is not None and done.result in GONE:
                    raise Refused(
                        Reason.REDRESSED,
                        f"{meta.in_reply_to} was {done.result.lower()} by its originator "
                        f"(redress {done.origin_redress_id}): it is not replied to",
                    )
            # An expired or erased message is answered by nobody: its content is gone.
            await check_live(self._store, replied, now=now)
            threads.append(replied.correlation_id)
        if meta.type in REDRESS_TYPES and not forward:
            await self._check_redress_target(meta)
        # Four-eyes rules on replies look at the whole thread, not only in_reply_to: a reply
        # that names the hit by its correlation id alone, or answers another message of the
        # hit's thread, is the same reply.
        thread = await self._store.thread_types(ids=[meta.in_reply_to], threads=threads)
        decision = self._policy().check_outbound(meta, now=now, thread=thread)
        data = wire.serialise(draft, agreement_id=decision.agreement.id)
        if len(data) > self._max:
            raise Refused(
                Reason.OVERSIZE, f"message is {len(data)} bytes; the limit is {self._max}"
            )
        if decision.needs_approval:
            # Signed alone: a message a supervisor may still reject must not leave even its
            # hash in the audit path of another envelope.
            signature, proof = self._signer.sign(data, signing.ENVELOPE), b""
        else:
            signature, proof = await self._batch_signer.sign(data, recipients=meta.recipients)
        stored = StoredMessage.of(
            meta,
            agreement_id=meta.agreement_id or decision.agreement.id,
            direction="out",
            received_at=now,
            retain_until=decision.retain_until,
            content_sha256=signing.digest(data),
            signature=signature,
            signature_proof=proof,
            sealed=self._store.seal_message(meta, data, retain_until=decision.retain_until),
        )
        held = decision.needs_approval
        if record is not None:
            also = record(meta.message_id, meta.recipients, held)
        else:  # a send by the node itself (no local user's): still a disclosure, audited
            also = [
                log_txn(
                    at=now, user=author or "node", action="send", outcome="held" if held
                    else "queued", message_id=meta.message_id, purpose=meta.purpose,
                    recipient=",".join(meta.recipients),
                )
            ]  # fmt: skip
        if held:
            await self._access.hold_for_approval(
                stored, recipients=meta.recipients, author=author, now=now, also=also
            )
            return Sent(meta.message_id, meta.recipients, data, pending_approval=True)

        await self._store.queue_outbound(
            stored,
            meta.recipients,
            content=data,
            fresh_id=fresh_id,
            on_commit=partial(self._links.hand_over, fresh=fresh_id),
            also=also,
        )
        return Sent(meta.message_id, meta.recipients, data)
