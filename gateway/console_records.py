"""The console's retention, redress and audit pages: the review/hold queue (supervisors), the
redress of a sent message (its originator), the audit log and the transparency report
(auditors). The same calls as the JSON API, as the calling user: the node decides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from gateway import api_records
from gateway.auth import Caller
from gateway.console import _context, _form, _redirect, invalid_form, render
from gateway.errors import bad_request
from gateway.models import HoldIn, RedressIn, ReleaseIn
from gateway.state import Gateway, acting_caller, caller, gateway

router = APIRouter(include_in_schema=False)
Gw = Annotated[Gateway, Depends(gateway)]
Reader = Annotated[Caller, Depends(caller)]
Actor = Annotated[Caller, Depends(acting_caller)]
AUDIT_PAGE = 100
REPORT_DAYS = 30  # the report page's default period: the last 30 days


def _model(model: Any, form: dict[str, Any]) -> Any:
    try:
        return model.model_validate(form)
    except ValidationError as exc:
        raise invalid_form(exc) from exc


# ---- review and holds --------------------------------------------------------------------------


@router.get("/review")
async def review(request: Request, who: Reader, gw: Gw) -> HTMLResponse:
    within = request.query_params.get("within", "")
    if within and not (within.isdigit() and int(within) <= 3650):
        raise bad_request("within: a number of days, 0 to 3650")
    items = (await api_records.review(who, gw, within_days=int(within or 0), limit=200))["items"]
    status = await api_records.retention(who, gw)
    context = await _context(request, gw, who)
    return render(
        request,
        "review.html",
        {**context, "items": items, "status": status, "within": within},
    )


def _target(form: dict[str, Any]) -> dict[str, str]:
    """A form names a message or a thread by `target` ("message:ID" or "thread:ID")."""
    kind, _, value = str(form.pop("target", "")).partition(":")
    if kind not in ("message", "thread") or not value:
        raise bad_request("name a message or a thread to hold or release")
    return {"message_id" if kind == "message" else "correlation_id": value}


@router.post("/holds")
async def hold(request: Request, who: Actor, gw: Gw) -> RedirectResponse:
    form = await _form(request)
    body = _model(HoldIn, {**_target(form), "justification": form.get("justification") or ""})
    await api_records.hold(body, who, gw)
    return _back_to_review(form)


@router.post("/holds/release")
async def release(request: Request, who: Actor, gw: Gw) -> RedirectResponse:
    form = await _form(request)
    body = _model(ReleaseIn, {**_target(form), "note": form.get("note") or ""})
    await api_records.release(body, who, gw)
    return _back_to_review(form)


def _back_to_review(form: dict[str, Any]) -> RedirectResponse:
    """To the queue as it was shown (the same window of days)."""
    within = str(form.get("within") or "")
    return _redirect(f"/review?within={within}" if within.isdigit() else "/review")


# ---- redress -----------------------------------------------------------------------------------


@router.post("/messages/{message_id}/redress")
async def redress(request: Request, message_id: str, who: Actor, gw: Gw) -> RedirectResponse:
    form = await _form(request)
    fields = {k: form[k] for k in ("type", "reason") if form.get(k)}
    if form.get("tlp"):
        fields["tlp"] = form["tlp"]
    await api_records.redress_of(gw, who, message_id, _model(RedressIn, fields))
    return _redirect(f"/messages/{message_id}")


# ---- audit and report --------------------------------------------------------------------------


@router.get("/audit")
async def audit(request: Request, who: Reader, gw: Gw) -> HTMLResponse:
    q = request.query_params
    filters = {k: q.get(k, "").strip()[:64] for k in ("actor", "action", "message_id", "peer")}
    before = q.get("before", "")
    if before and not before.isdigit():
        raise bad_request("before: an entry number")
    page = await api_records.audit_page(
        gw,
        who,
        before=int(before or 0),
        limit=AUDIT_PAGE,
        actor=filters["actor"],
        action=filters["action"],
        message_id=filters["message_id"],
        peer=filters["peer"],
    )
    context = await _context(request, gw, who)
    return render(request, "audit.html", {**context, **page, "filters": filters})


def _day(text: str, field: str) -> datetime:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError as exc:
        raise bad_request(f"{field}: a date like 2026-11-01") from exc


def _figures(doc: Any, prefix: str = "") -> list[tuple[str, str]]:
    """The report's figures as `dotted.name`, value rows (as `accord report` prints them)."""
    if isinstance(doc, dict):
        if not doc:
            return [(prefix, "none")]
        at = f"{prefix}." if prefix else ""
        return [row for key, value in doc.items() for row in _figures(value, f"{at}{key}")]
    return [(prefix, "not recorded" if doc is None else str(doc))]


@router.get("/report")
async def report(request: Request, who: Reader, gw: Gw) -> HTMLResponse:
    q = request.query_params
    today = datetime.now(UTC).date()
    since_text = q.get("from") or (today - timedelta(days=REPORT_DAYS)).isoformat()
    until_text = q.get("to") or today.isoformat()
    since = _day(since_text, "from")
    until = _day(until_text, "to") + timedelta(days=1)  # the whole last day
    doc = await api_records.report_of(gw, who, since, until)
    figures = [row for row in _figures(doc) if row[0] not in ("agency", "from", "to", "as_of")]
    context = await _context(request, gw, who)
    return render(
        request,
        "report.html",
        {
            **context,
            "doc": doc,
            "figures": figures,
            "period": {"from": since_text, "to": until_text},
        },
    )
