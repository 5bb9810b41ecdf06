"""The HTTP/JSON API's retention, redress, deadline and audit routes (/api/v1): as api.py, one
thin route per local API call, as the calling user; the node decides who may do what."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from google.protobuf import json_format

from accord.v1 import local_pb2
from gateway import convert
from gateway.api import ERRORS
from gateway.auth import Caller
from gateway.errors import bad_request
from gateway.models import (
    AuditOut,
    EvidenceIn,
    HoldIn,
    HoldOut,
    OverdueOut,
    RedressIn,
    RedressStatusOut,
    ReleasedOut,
    ReleaseIn,
    RetentionOut,
    ReviewOut,
    SentOut,
)
from gateway.state import Gateway, acting_caller, caller, gateway
from node.audit.verify import format_time
from node.wire import set_time

router = APIRouter(prefix="/api/v1", responses=ERRORS)
Gw = Annotated[Gateway, Depends(gateway)]
Reader = Annotated[Caller, Depends(caller)]
Actor = Annotated[Caller, Depends(acting_caller)]


# ---- retention ---------------------------------------------------------------------------------


@router.get("/retention", tags=["retention"], response_model=RetentionOut)
async def retention(who: Reader, gw: Gw) -> dict[str, Any]:
    """The retention sweeper's last run and what the node holds, erased and keeps under hold."""
    answer = await gw.node.call(who.token, "GetRetentionStatus", local_pb2.RetentionStatusRequest())
    return convert.retention(answer)


@router.get("/review", tags=["retention"], response_model=ReviewOut)
async def review(
    who: Reader,
    gw: Gw,
    within_days: Annotated[int, Query(ge=0, le=3650, description="0: the node's")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Messages near expiry, expired, or past their agreement's review date (supervisors and
    auditors)."""
    answer = await gw.node.call(
        who.token, "Review", local_pb2.ReviewRequest(within_days=within_days, limit=limit)
    )
    return {"items": [convert.review_item(i) for i in answer.items]}


def _one_target(message_id: str, correlation_id: str) -> None:
    if bool(message_id) == bool(correlation_id):
        raise bad_request("give one of message_id and correlation_id")


@router.post("/holds", tags=["retention"], status_code=201, response_model=HoldOut)
async def hold(body: HoldIn, who: Actor, gw: Gw) -> dict[str, Any]:
    """Put a legal hold on a message or a thread (supervisors): not erased while in force."""
    _one_target(body.message_id, body.correlation_id)
    answer = await gw.node.call(
        who.token,
        "Hold",
        local_pb2.HoldRequest(
            message_id=body.message_id,
            correlation_id=body.correlation_id,
            justification=body.justification,
        ),
    )
    return convert.hold(answer)


@router.post("/holds/release", tags=["retention"], response_model=ReleasedOut)
async def release(body: ReleaseIn, who: Actor, gw: Gw) -> dict[str, Any]:
    """Release every hold in force on a message or a thread (supervisors): expiry resumes."""
    _one_target(body.message_id, body.correlation_id)
    answer = await gw.node.call(
        who.token,
        "Release",
        local_pb2.ReleaseRequest(
            message_id=body.message_id, correlation_id=body.correlation_id, note=body.note
        ),
    )
    return {"released": [convert.hold(h) for h in answer.released]}


# ---- redress -----------------------------------------------------------------------------------


async def redress_of(gw: Gateway, who: Caller, message_id: str, body: RedressIn) -> Any:
    request = local_pb2.RedressRequest(
        message_id=message_id,
        type=f"MESSAGE_TYPE_{body.type}",
        reason=body.reason,
        handling_codes=[f"HANDLING_CODE_{h}" for h in body.handling_codes],
        handling_conditions=body.handling_conditions,
    )
    if body.tlp:
        request.tlp = f"TLP_{body.tlp}"  # type: ignore[assignment]
    if body.corrected_incident is not None:
        try:
            json_format.ParseDict(body.corrected_incident, request.corrected_incident)
        except json_format.ParseError as exc:
            problem = " ".join(str(exc).split())
            raise bad_request(f"corrected_incident: not a valid IncidentBody: {problem}") from exc
    return await gw.node.call(who.token, "Redress", request)


@router.post(
    "/messages/{message_id}/redress", tags=["redress"], status_code=201, response_model=SentOut
)
async def redress(message_id: str, body: RedressIn, who: Actor, gw: Gw) -> dict[str, Any]:
    """Ask every holder of a message this node sent to erase it (ERASURE_REQUEST), replace it
    (RECTIFICATION), treat it as withdrawn (INCIDENT_RETRACT) or handle it under tighter terms
    (HANDLING_UPDATE). Liaison officers and supervisors cleared for its purpose."""
    sent = await redress_of(gw, who, message_id, body)
    return {
        "message_id": sent.message_id,
        "recipients": list(sent.recipients),
        "pending_approval": sent.pending_approval,
    }


@router.get("/messages/{message_id}/redress", tags=["redress"], response_model=RedressStatusOut)
async def redress_status(message_id: str, who: Reader, gw: Gw) -> dict[str, Any]:
    """Each redress of a sent message, and every holder known along the chain with its answer."""
    answer = await gw.node.call(
        who.token, "RedressStatus", local_pb2.RedressStatusRequest(message_id=message_id)
    )
    return {"redresses": [convert.redress(r) for r in answer.redresses]}


# ---- deadlines and evidence --------------------------------------------------------------------


@router.get("/overdue", tags=["messages"], response_model=OverdueOut)
async def overdue(who: Reader, gw: Gw) -> dict[str, Any]:
    """Requests for information past their legal time limit, unanswered, on both sides."""
    answer = await gw.node.call(who.token, "Overdue", local_pb2.OverdueRequest())
    return {
        "requests": [convert.overdue_item(i) for i in answer.requests],
        "now": convert.when(answer.now),
    }


@router.post(
    "/messages/{message_id}/evidence",
    tags=["messages"],
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}, "description": "the bundle (zip)"}},
)
async def evidence(message_id: str, body: EvidenceIn, who: Actor, gw: Gw) -> Response:
    """One message's evidence bundle (docs/evidence.md): needs what reading it needs, and a
    justification (logged)."""
    answer = await gw.node.call(
        who.token,
        "Evidence",
        local_pb2.EvidenceRequest(
            message_id=message_id, sender=body.sender, justification=body.justification
        ),
    )
    # Header values are Latin-1 and one line: keep only what cannot break them.
    safe_id = re.sub(r"[^0-9A-Za-z-]", "", message_id)[:64]
    headers = {"Content-Disposition": f'attachment; filename="evidence-{safe_id}.zip"'}
    return Response(answer.bundle, media_type="application/zip", headers=headers)


# ---- audit -------------------------------------------------------------------------------------


async def audit_page(
    gw: Gateway,
    who: Caller,
    *,
    before: int = 0,
    limit: int = 100,
    message_id: str = "",
    actor: str = "",
    peer: str = "",
    action: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    request = local_pb2.AuditLogRequest(
        message_id=message_id,
        actor=actor,
        peer=peer,
        action=action,
        since=_audit_time(since, "since"),
        until=_audit_time(until, "until"),
        limit=limit,
    )
    if before:
        if before <= 1:
            raise bad_request("before: there is no entry before entry 1")
        request.last = before - 1
    chunks = await gw.node.stream(who.token, "AuditLog", request)
    entries = [json.loads(e.data) for c in chunks for e in c.entries][::-1]
    return {
        "origin": chunks[0].origin if chunks else "",
        "verifier_key": chunks[0].verifier_key if chunks else "",
        "entries": entries,
        "next_before": (
            entries[-1]["seq"] if len(entries) == limit and entries[-1]["seq"] > 1 else None
        ),
    }


def _audit_time(value: datetime | None, field: str) -> str:
    """As the entries write their times (UTC, microseconds), so the node compares like with like."""
    if value is None:
        return ""
    if value.tzinfo is None:
        raise bad_request(f"{field}: give a time with its UTC offset (RFC 3339)")
    return format_time(value)


@router.get("/audit", tags=["audit"], response_model=AuditOut)
async def audit(
    who: Reader,
    gw: Gw,
    message_id: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=64, description="a local user name")] = "",
    peer: Annotated[str, Query(max_length=32)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    since: Annotated[datetime | None, Query(description="entries at or after (RFC 3339)")] = None,
    until: Annotated[datetime | None, Query(description="entries before (RFC 3339)")] = None,
    before: Annotated[int, Query(ge=0, description="page: entries numbered below this")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The node's audit log (auditors and administrators), newest first, filtered. Verify it
    offline with `accord audit verify`/`export`: the gateway passes the node's entries on."""
    return await audit_page(
        gw,
        who,
        before=before,
        limit=limit,
        message_id=message_id,
        actor=actor,
        peer=peer,
        action=action,
        since=since,
        until=until,
    )


async def report_of(gw: Gateway, who: Caller, since: datetime, until: datetime) -> Any:
    if since.tzinfo is None or until.tzinfo is None:
        raise bad_request("from, to: give times with their UTC offset (RFC 3339)")
    if until <= since:
        raise bad_request("to must be after from")
    request = local_pb2.ReportRequest()
    set_time(getattr(request, "from"), since)
    set_time(request.to, until)
    answer = await gw.node.call(who.token, "Report", request)
    return json.loads(answer.json)


@router.get(
    "/report",
    tags=["audit"],
    responses={200: {"description": "the report document (docs/report.md lists its figures)"}},
)
async def report(
    who: Reader,
    gw: Gw,
    since: Annotated[datetime, Query(alias="from", description="period start (RFC 3339)")],
    until: Annotated[datetime, Query(alias="to", description="period end, excluded")],
) -> dict[str, Any]:
    """The transparency report over [from, to): counts only (auditors and administrators)."""
    doc: dict[str, Any] = await report_of(gw, who, since, until)
    return doc
