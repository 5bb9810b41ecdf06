"""The local API servicer (unix socket): thin wrappers over Operations.

The caller is authenticated by LocalAuthInterceptor; every method acts as `current_user()`.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from accord.v1 import federation_pb2, local_pb2, local_pb2_grpc, message_pb2
from node import wire
from node.delivery.outbound import Sent
from node.errors import AccordError, Gone, InvalidRequest, PermissionDenied, Refused
from node.logins import Logins
from node.messages import SignedEnvelope
from node.operations import InboxItem, Operations
from node.policy.access import User
from node.store import Delivery, StoredMessage
from node.store.access import REFUSAL_AUDITED, Approval, UserRecord
from node.store.audit import Filters
from node.store.holds import Hold
from node.transport.local_auth import CURRENT_USER, current_token, current_user

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Ctx = grpc.aio.ServicerContext[Any, Any]


def maps_errors(
    fn: Callable[[Any, Req, Ctx], Awaitable[Resp]],
) -> Callable[[Any, Req, Ctx], Awaitable[Resp]]:
    """The one mapping of domain errors to gRPC status for the local API.

    A refusal carries its reason code in the `accord-reason` trailer, a permission denial its
    missing condition in `accord-denied`, so tools need not parse messages.

    Every refusal is audited on this side: one that no check has written an entry for gets one
    here, naming the call (the request may be bad: its fields are not copied).
    """

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Req, context: Ctx) -> Resp:
        REFUSAL_AUDITED.set(False)
        try:
            return await fn(self, request, context)
        except AccordError as exc:
            if not REFUSAL_AUDITED.get():
                await audit_refusal(self._ops, fn.__name__, exc)
            await abort(context, exc)
            raise  # unreachable: abort raises

    return wrapper


async def audit_refusal(ops: Operations, call: str, exc: AccordError) -> None:
    user = CURRENT_USER.get(None)
    try:
        await ops.refused(user.name if user is not None else "", call, exc)
    except Exception as failed:  # the caller still hears why it was refused
        log.error("could not audit the refusal of %s: %s", call, failed)


async def abort(context: Ctx, exc: AccordError) -> None:
    """End the call with the error's status and message, its reason code or missing condition
    in a trailer."""
    if isinstance(exc, Refused | Gone):
        context.set_trailing_metadata((("accord-reason", exc.reason.value),))
    elif isinstance(exc, PermissionDenied):
        context.set_trailing_metadata((("accord-denied", exc.code),))
    await context.abort(exc.status, str(exc))


def _ts(when: datetime | None) -> Timestamp:
    ts = Timestamp()
    if when is not None:
        ts.FromDatetime(when.astimezone(UTC))
    return ts


def summary(
    m: StoredMessage, *, status: str = "", deadline: datetime | None = None
) -> local_pb2.MessageSummary:
    s = local_pb2.MessageSummary(
        message_id=m.message_id,
        sender=m.sender,
        type=f"MESSAGE_TYPE_{m.type}",
        purpose=m.purpose,
        correlation_id=m.correlation_id,
        tlp=f"TLP_{m.tlp}",
        direction=m.direction,
        urgency=f"URGENCY_{m.urgency or 'UNSPECIFIED'}",
        status=status,
    )
    s.created_at.CopyFrom(_ts(m.created_at))
    s.received_at.CopyFrom(_ts(m.received_at))
    if m.retain_until is not None:
        s.retain_until.CopyFrom(_ts(m.retain_until))
    due = deadline if deadline is not None else m.reply_deadline
    if due is not None:
        s.reply_deadline.CopyFrom(_ts(due))
    if m.erased_at is not None:
        s.erased_at.CopyFrom(_ts(m.erased_at))
        s.erase_reason = m.erase_reason
    return s


def inbox_summary(item: InboxItem) -> local_pb2.MessageSummary:
    s = summary(item.message, status=item.status, deadline=item.deadline)
    if item.expected is not None:
        s.expected_by.CopyFrom(_ts(item.expected))
        if item.now is not None:
            s.seconds_left = (item.expected - item.now).total_seconds()
    if item.answered_at is not None:
        s.answered_at.CopyFrom(_ts(item.answered_at))
    return s


def send_response(sent: Sent) -> local_pb2.SendResponse:
    """What Send, Forward and Redress answer: the message queued (or held) and for whom."""
    return local_pb2.SendResponse(
        message_id=sent.message_id,
        recipients=sent.recipients,
        pending_approval=sent.pending_approval,
    )


def hold_info(h: Hold) -> local_pb2.HoldInfo:
    info = local_pb2.HoldInfo(
        id=h.id,
        message_id=h.message_id,
        correlation_id=h.correlation_id,
        justification=h.justification,
        held_by=h.held_by,
        released_by=h.released_by,
        release_note=h.release_note,
    )
    info.held_at.CopyFrom(_ts(h.held_at))
    if h.released_at is not None:
        info.released_at.CopyFrom(_ts(h.released_at))
    return info


def _type_filter(value: int) -> str:
    if not value:
        return ""
    if value not in message_pb2.MessageType.values():
        raise InvalidRequest(f"type {value} is not a message type")
    return str(message_pb2.MessageType.Name(value)).removeprefix("MESSAGE_TYPE_")


def delivery_status(d: Delivery, *, with_receipt: bool = True) -> local_pb2.DeliveryStatus:
    status = local_pb2.DeliveryStatus(
        recipient=d.recipient, state=d.state, attempts=d.attempts, last_error=d.last_error
    )
    if d.receipt is not None:
        if with_receipt:
            status.receipt.CopyFrom(
                message_pb2.Receipt(
                    content=d.receipt,
                    signature=d.receipt_signature or b"",
                    proof=d.receipt_proof or b"",
                )
            )
        status.receipt_content.ParseFromString(d.receipt)
    return status


def user_info(u: User, record: UserRecord | None = None) -> local_pb2.UserInfo:
    info = local_pb2.UserInfo(
        name=u.name,
        role=u.role.value,
        clearances=sorted(u.clearances),
        disabled=u.disabled,
        state="active",
    )
    if record is not None:
        info.state = record.state
        change = record.requested
        if change is not None:
            info.requested_role = change.role or ""
            info.requested_by = record.requested_by or ""
            if change.clearances is not None:
                info.has_requested_clearances = True
                info.requested_clearances.extend(sorted(change.clearances))
            if change.enabled is not None:
                info.requested_state = "active" if change.enabled else "disabled"
    return info


def record_info(r: UserRecord) -> local_pb2.UserInfo:
    return user_info(r.user, r)


def approval_info(a: Approval, m: StoredMessage | None) -> local_pb2.ApprovalInfo:
    info = local_pb2.ApprovalInfo(
        message_id=a.message_id,
        author=a.author,
        recipients=a.recipients,
        state=a.state,
        requested_at=a.requested_at,
        decided_by=a.decided_by or "",
        decided_at=a.decided_at or "",
        note=a.note,
    )
    if m is not None:
        info.type = message_pb2.MessageType.Value(f"MESSAGE_TYPE_{m.type}")  # type: ignore[assignment]
        info.purpose = m.purpose
    return info


class LocalApiServicer(local_pb2_grpc.LocalApiServicer):  # type: ignore[misc]
    def __init__(self, operations: Operations, logins: Logins) -> None:
        self._ops = operations
        self._logins = logins

    # ---- messages ---------------------------------------------------------------------------

    @maps_errors
    async def Send(self, request: local_pb2.SendRequest, context: Ctx) -> local_pb2.SendResponse:
        if not request.HasField("content"):
            raise InvalidRequest("content is required")
        sent = await self._ops.send(current_user(), wire.draft(request.content))
        return send_response(sent)

    @maps_errors
    async def Inbox(self, request: local_pb2.InboxRequest, context: Ctx) -> local_pb2.InboxResponse:
        limit = min(request.limit or 100, 1000)
        items = await self._ops.inbox(
            current_user(),
            limit=limit,
            before=request.before_message_id,
            direction=request.direction or "in",
            type=_type_filter(request.type),
            purpose=request.purpose,
            peer=request.peer,
            correlation_id=request.correlation_id,
            message_id=request.message_id,
        )
        response = local_pb2.InboxResponse(messages=[inbox_summary(i) for i in items])
        response.now.CopyFrom(_ts(self._ops.now()))
        return response

    @maps_errors
    async def Status(
        self, request: local_pb2.StatusRequest, context: Ctx
    ) -> local_pb2.StatusResponse:
        status = await self._ops.status()
        response = local_pb2.StatusResponse(
            agency=status.agency,
            health=status.health,
            crl_state=status.crl_state,
            directory_serial=status.directory_serial,
        )
        response.now.CopyFrom(_ts(status.now))
        response.crl_next_update.CopyFrom(_ts(status.crl_next_update))
        if status.directory_issued_at is not None:
            response.directory_issued_at.CopyFrom(_ts(status.directory_issued_at))
        for p in status.peers:
            peer = response.peers.add(
                agency=p.agency,
                link=p.link,
                last_error=p.last_error,
                queued=p.queued,
                sent=p.sent,
                receipted=p.receipted,
            )
            if p.oldest_queued_at is not None:
                peer.oldest_queued_at.CopyFrom(_ts(p.oldest_queued_at))
        return response

    @maps_errors
    async def ListSent(
        self, request: local_pb2.ListSentRequest, context: Ctx
    ) -> local_pb2.ListSentResponse:
        limit = min(request.limit or 100, 1000)
        sent = await self._ops.sent(current_user(), limit=limit, before=request.before_message_id)
        response = local_pb2.ListSentResponse()
        for m, deliveries in sent:
            item = response.messages.add(summary=summary(m))
            item.deliveries.extend(delivery_status(d, with_receipt=False) for d in deliveries)
            if not deliveries:  # held for approval: no outbox rows yet
                pending = await self._ops.approval(m.message_id)
                if pending is not None:
                    for r in pending.recipients:
                        item.deliveries.add(recipient=r, state=f"approval-{pending.state}")
        return response

    @maps_errors
    async def Get(self, request: local_pb2.GetRequest, context: Ctx) -> local_pb2.GetResponse:
        if not request.message_id:
            raise InvalidRequest("message_id is required")
        result = await self._ops.read(
            current_user(),
            message_id=request.message_id,
            sender=request.sender,
            justification=request.justification,
        )
        response = local_pb2.GetResponse(summary=summary(result.message))
        if result.content is not None:
            envelope = SignedEnvelope(
                result.content, result.message.signature, result.message.signature_proof or b""
            )
            response.envelope.CopyFrom(wire.envelope_message(envelope))
            response.content.CopyFrom(wire.content_message(result.content))
        return response

    @maps_errors
    async def Evidence(
        self, request: local_pb2.EvidenceRequest, context: Ctx
    ) -> local_pb2.EvidenceResponse:
        if not request.message_id:
            raise InvalidRequest("message_id is required")
        bundle = await self._ops.evidence(
            current_user(),
            message_id=request.message_id,
            sender=request.sender,
            justification=request.justification,
        )
        return local_pb2.EvidenceResponse(bundle=bundle.to_zip())

    @maps_errors
    async def Overdue(
        self, request: local_pb2.OverdueRequest, context: Ctx
    ) -> local_pb2.OverdueResponse:
        now, found = await self._ops.overdue(current_user())
        response = local_pb2.OverdueResponse(now=_ts(now))
        for o in found:
            p = o.progress
            response.requests.add(
                summary=summary(o.message, deadline=p.deadline),
                peer=o.peer,
                owed_by_us=o.owed_by_us,
                deadline=_ts(p.deadline),
                expected_by=_ts(p.expected),
                delayed=p.delayed,
                overdue_seconds=(now - p.expected).total_seconds(),
            )
        return response

    @maps_errors
    async def Report(
        self, request: local_pb2.ReportRequest, context: Ctx
    ) -> local_pb2.ReportResponse:
        if not request.HasField("from") or not request.HasField("to"):
            raise InvalidRequest("a report needs its period: from and to")
        done = await self._ops.report(
            current_user(),
            since=getattr(request, "from").ToDatetime(tzinfo=UTC),
            until=request.to.ToDatetime(tzinfo=UTC),
        )
        return local_pb2.ReportResponse(json=json.dumps(done.to_json()))

    @maps_errors
    async def Receipts(
        self, request: local_pb2.ReceiptsRequest, context: Ctx
    ) -> local_pb2.ReceiptsResponse:
        _, deliveries = await self._ops.receipts(current_user(), message_id=request.message_id)
        pending = await self._ops.approval(request.message_id)
        response = local_pb2.ReceiptsResponse(message_id=request.message_id)
        response.deliveries.extend(delivery_status(d) for d in deliveries)
        if not deliveries and pending is not None:
            for r in pending.recipients:
                response.deliveries.add(recipient=r, state=f"approval-{pending.state}")
        return response

    async def Watch(
        self, request: local_pb2.WatchRequest, context: Ctx
    ) -> AsyncIterator[local_pb2.MessageSummary]:
        REFUSAL_AUDITED.set(False)
        try:
            async for m in self._ops.watch(current_user()):
                yield summary(m)
        except AccordError as exc:
            if not REFUSAL_AUDITED.get():
                await audit_refusal(self._ops, "Watch", exc)
            await abort(context, exc)

    # ---- users ------------------------------------------------------------------------------

    @maps_errors
    async def WhoAmI(self, request: local_pb2.WhoAmIRequest, context: Ctx) -> local_pb2.UserInfo:
        return user_info(current_user())

    @maps_errors
    async def AddUser(
        self, request: local_pb2.AddUserRequest, context: Ctx
    ) -> local_pb2.AddUserResponse:
        added = await self._ops.add_user(
            current_user(),
            name=request.name,
            role=request.role,
            clearances=list(request.clearances),
        )
        return local_pb2.AddUserResponse(
            user=record_info(added.record),
            enrolment_code=added.code,
            code_expires_at=added.expires_at.isoformat() if added.expires_at else "",
            pending_approval=added.record.user.pending,
        )

    @maps_errors
    async def ListUsers(
        self, request: local_pb2.ListUsersRequest, context: Ctx
    ) -> local_pb2.ListUsersResponse:
        users = await self._ops.users(current_user())
        return local_pb2.ListUsersResponse(users=[record_info(r) for r in users])

    @maps_errors
    async def SetClearances(
        self, request: local_pb2.SetClearancesRequest, context: Ctx
    ) -> local_pb2.UserInfo:
        record = await self._ops.set_clearances(
            current_user(), name=request.name, clearances=list(request.clearances)
        )
        return record_info(record)

    @maps_errors
    async def DisableUser(
        self, request: local_pb2.DisableUserRequest, context: Ctx
    ) -> local_pb2.UserInfo:
        return record_info(await self._ops.disable_user(current_user(), name=request.name))

    @maps_errors
    async def Enrol(self, request: local_pb2.EnrolRequest, context: Ctx) -> local_pb2.EnrolResponse:
        record, token = await self._ops.enrol(name=request.name, code=request.code)
        return local_pb2.EnrolResponse(user=record_info(record), token=token)

    @maps_errors
    async def SetRole(self, request: local_pb2.SetRoleRequest, context: Ctx) -> local_pb2.UserInfo:
        return record_info(
            await self._ops.set_role(current_user(), name=request.name, role=request.role)
        )

    @maps_errors
    async def EnableUser(
        self, request: local_pb2.EnableUserRequest, context: Ctx
    ) -> local_pb2.UserInfo:
        return record_info(await self._ops.enable_user(current_user(), name=request.name))

    @maps_errors
    async def DecideUser(
        self, request: local_pb2.DecideUserRequest, context: Ctx
    ) -> local_pb2.DecideUserResponse:
        record, code, expires = await self._ops.decide_user(
            current_user(), name=request.name, approve=request.approve
        )
        response = local_pb2.DecideUserResponse(
            enrolment_code=code, code_expires_at=expires.isoformat() if expires else ""
        )
        if record is not None:
            response.user.CopyFrom(record_info(record))
        return response

    # ---- approvals, forwarding --------------------------------------------------------------

    @maps_errors
    async def ListApprovals(
        self, request: local_pb2.ListApprovalsRequest, context: Ctx
    ) -> local_pb2.ListApprovalsResponse:
        approvals = await self._ops.approvals(current_user(), state=request.state)
        return local_pb2.ListApprovalsResponse(
            approvals=[approval_info(a, m) for a, m in approvals]
        )

    @maps_errors
    async def Decide(
        self, request: local_pb2.DecideRequest, context: Ctx
    ) -> local_pb2.ApprovalInfo:
        decided = await self._ops.decide(
            current_user(),
            message_id=request.message_id,
            approve=request.approve,
            note=request.note,
        )
        m = await self._ops.sent_message(request.message_id)
        return approval_info(decided, m)

    @maps_errors
    async def Forward(
        self, request: local_pb2.ForwardRequest, context: Ctx
    ) -> local_pb2.SendResponse:
        if not request.message_id or not request.to:
            raise InvalidRequest("message_id and to are required")
        sent = await self._ops.forward(
            current_user(),
            message_id=request.message_id,
            sender=request.sender,
            to=request.to,
            purpose=request.purpose,
            justification=request.justification,
            terms=wire.forward_terms(
                onward_transfer=request.onward_transfer,
                tlp=request.tlp,
                handling_codes=request.handling_codes,
                retention=request.retention if request.HasField("retention") else None,
            ),
        )
        return send_response(sent)

    @maps_errors
    async def Redress(
        self, request: local_pb2.RedressRequest, context: Ctx
    ) -> local_pb2.SendResponse:
        if not request.message_id:
            raise InvalidRequest("message_id is required")
        sent = await self._ops.redress(
            current_user(),
            message_id=request.message_id,
            type_name=wire.type_name(request.type),
            reason=request.reason,
            tlp=request.tlp,
            handling_codes=request.handling_codes,
            handling_conditions=request.handling_conditions,
            corrected_incident=request.corrected_incident
            if request.HasField("corrected_incident")
            else None,
        )
        return send_response(sent)

    @maps_errors
    async def RedressStatus(
        self, request: local_pb2.RedressStatusRequest, context: Ctx
    ) -> local_pb2.RedressStatusResponse:
        states = await self._ops.redress_status(current_user(), message_id=request.message_id)
        response = local_pb2.RedressStatusResponse()
        for st in states:
            info = response.redresses.add(
                redress_id=st.redress_id,
                type=st.type,
                target_message_id=st.target,
                created_at=st.created_at,
            )
            for h in st.holders:
                info.holders.add(
                    agency=h.agency,
                    via=h.via,
                    state=h.state,
                    result=h.result,
                    detail=h.detail,
                    answered_at=h.answered_at,
                )
        return response

    # ---- policy and audit -------------------------------------------------------------------

    @maps_errors
    async def GetPolicy(
        self, request: local_pb2.PolicyRequest, context: Ctx
    ) -> federation_pb2.SignedPolicy:
        return wire.signed_policy_message(await self._ops.policy(request.peer))

    @maps_errors
    async def AccessLog(
        self, request: local_pb2.AccessLogRequest, context: Ctx
    ) -> local_pb2.AccessLogResponse:
        entries = await self._ops.access_log(
            current_user(), limit=min(request.limit or 200, 5000), message_id=request.message_id
        )
        return local_pb2.AccessLogResponse(
            entries=[
                local_pb2.AccessLogEntry(
                    at=e.at,
                    user=e.user,
                    action=e.action,
                    message_id=e.message_id,
                    purpose=e.purpose,
                    justification=e.justification,
                    recipient=e.recipient,
                    outcome=e.outcome,
                    detail=e.detail,
                )
                for e in entries
            ]
        )

    async def AuditLog(
        self, request: local_pb2.AuditLogRequest, context: Ctx
    ) -> AsyncIterator[local_pb2.AuditLogChunk]:
        user = current_user()
        filters = Filters(
            message_id=request.message_id,
            actor=request.actor,
            peer=request.peer,
            action=request.action,
            since=request.since,
            until=request.until,
            first=max(request.first, 1),
            last=request.last,
        )
        REFUSAL_AUDITED.set(False)
        try:
            key = self._ops.audit_key
            head = local_pb2.AuditLogChunk(origin=key.name, verifier_key=key.vkey())
            if request.checkpoints:
                head.checkpoints.extend(await self._ops.audit_checkpoints(user))
            sent_head = False
            async for page in self._ops.audit_log(user, filters, limit=request.limit):
                chunk = head if not sent_head else local_pb2.AuditLogChunk()
                chunk.entries.extend(
                    local_pb2.AuditRecord(seq=e.seq, data=e.data, leaf_hash=e.leaf_hash)
                    for e in page
                )
                sent_head = True
                yield chunk
            if not sent_head:
                yield head
        except AccordError as exc:
            if not REFUSAL_AUDITED.get():
                await audit_refusal(self._ops, "AuditLog", exc)
            await abort(context, exc)

    @maps_errors
    async def AuditProve(
        self, request: local_pb2.AuditProveRequest, context: Ctx
    ) -> local_pb2.AuditProof:
        entry, proof, note = await self._ops.audit_prove(
            current_user(), seq=request.seq, size=request.size
        )
        return local_pb2.AuditProof(seq=entry.seq, entry=entry.data, hashes=proof, checkpoint=note)

    @maps_errors
    async def AuditConsistency(
        self, request: local_pb2.AuditConsistencyRequest, context: Ctx
    ) -> local_pb2.AuditProof:
        proof, old, new = await self._ops.audit_consistency(
            current_user(), old=request.old_size, new=request.new_size
        )
        return local_pb2.AuditProof(hashes=proof, checkpoint=new, old_checkpoint=old)

    @maps_errors
    async def Outbox(
        self, request: local_pb2.OutboxRequest, context: Ctx
    ) -> local_pb2.OutboxResponse:
        response = local_pb2.OutboxResponse()
        for q, connected in await self._ops.outbox(current_user()):
            peer = response.peers.add(
                peer=q.recipient, queued=q.queued, connected=connected, last_error=q.last_error
            )
            if q.oldest_queued_at is not None:
                peer.oldest_queued_at.CopyFrom(_ts(q.oldest_queued_at))
            if q.last_receipt_at is not None:
                peer.last_receipt_at.CopyFrom(_ts(q.last_receipt_at))
        return response

    # ---- retention --------------------------------------------------------------------------

    async def _retention_status(self) -> local_pb2.RetentionStatus:
        last, counts, keys = await self._ops.retention_status()
        status = local_pb2.RetentionStatus(
            live=counts.live,
            expired_waiting=counts.expired,
            erased=counts.erased,
            held=counts.held,
            holds=counts.holds,
            keys=keys,
            sweep_seconds=self._ops.sweep_seconds,
        )
        if last is not None:
            status.last_sweep_at.CopyFrom(_ts(last.at))
            status.last_expired = last.expired
            status.last_sunset = last.sunset
            status.last_keys_destroyed = last.keys_destroyed
            status.last_seconds = last.seconds
        return status

    @maps_errors
    async def RetentionSweep(
        self, request: local_pb2.RetentionSweepRequest, context: Ctx
    ) -> local_pb2.RetentionStatus:
        await self._ops.retention_sweep(current_user())
        return await self._retention_status()

    @maps_errors
    async def GetRetentionStatus(
        self, request: local_pb2.RetentionStatusRequest, context: Ctx
    ) -> local_pb2.RetentionStatus:
        return await self._retention_status()

    @maps_errors
    async def Hold(self, request: local_pb2.HoldRequest, context: Ctx) -> local_pb2.HoldInfo:
        held = await self._ops.hold(
            current_user(),
            message_id=request.message_id,
            correlation_id=request.correlation_id,
            justification=request.justification,
        )
        return hold_info(held)

    @maps_errors
    async def Release(
        self, request: local_pb2.ReleaseRequest, context: Ctx
    ) -> local_pb2.ReleaseResponse:
        released = await self._ops.release(
            current_user(),
            message_id=request.message_id,
            correlation_id=request.correlation_id,
            note=request.note,
        )
        return local_pb2.ReleaseResponse(released=[hold_info(h) for h in released])

    @maps_errors
    async def Review(
        self, request: local_pb2.ReviewRequest, context: Ctx
    ) -> local_pb2.ReviewResponse:
        items = await self._ops.review(
            current_user(), within_days=request.within_days, limit=request.limit
        )
        response = local_pb2.ReviewResponse()
        for item in items:
            added = response.items.add(summary=summary(item.message), why=item.why, held=item.held)
            if item.keep_at_most is not None:
                added.keep_at_most.CopyFrom(_ts(item.keep_at_most))
        return response

    @maps_errors
    async def Keep(self, request: local_pb2.KeepRequest, context: Ctx) -> local_pb2.MessageSummary:
        if not request.HasField("until"):
            raise InvalidRequest("until: the new retain_until is required")
        kept = await self._ops.keep(
            current_user(),
            message_id=request.message_id,
            sender=request.sender,
            until=request.until.ToDatetime(tzinfo=UTC),
            justification=request.justification,
        )
        return summary(kept)

    @maps_errors
    async def AdvanceClock(
        self, request: local_pb2.AdvanceClockRequest, context: Ctx
    ) -> local_pb2.ClockInfo:
        now, offset = await self._ops.advance_clock(current_user(), seconds=request.seconds)
        return local_pb2.ClockInfo(now=_ts(now), offset_seconds=offset.total_seconds())

    # ---- logins (the gateway) ---------------------------------------------------------------

    @maps_errors
    async def Login(self, request: local_pb2.LoginRequest, context: Ctx) -> local_pb2.LoginResponse:
        session = await self._logins.login(name=request.name, password=request.password)
        response = local_pb2.LoginResponse(
            session_token=session.token,
            user=user_info(session.user),
            idle_seconds=int(session.idle_seconds),
        )
        response.expires_at.CopyFrom(_ts(session.expires_at))
        return response

    @maps_errors
    async def Logout(
        self, request: local_pb2.LogoutRequest, context: Ctx
    ) -> local_pb2.LogoutResponse:
        await self._logins.logout(current_user(), token=current_token())
        return local_pb2.LogoutResponse()

    @maps_errors
    async def SetPassword(
        self, request: local_pb2.SetPasswordRequest, context: Ctx
    ) -> local_pb2.SetPasswordResponse:
        revoked = await self._logins.set_password(
            current_user(),
            token=current_token(),
            old=request.old_password,
            new=request.new_password,
        )
        return local_pb2.SetPasswordResponse(sessions_revoked=revoked)

    @maps_errors
    async def Members(
        self, request: local_pb2.MembersRequest, context: Ctx
    ) -> local_pb2.MembersResponse:
        serial, members = self._ops.members()
        return local_pb2.MembersResponse(
            members=[local_pb2.Member(agency=agency, name=name) for agency, name in members],
            directory_serial=serial,
        )
