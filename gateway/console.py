"""The web console: server-rendered pages (Jinja2) over the same calls as the JSON API.

Plain HTML forms work without script; `static/console.js` adds the live inbox (server-sent
events), the retention countdown and receipts that update as they arrive. Every form that
changes something carries the session's CSRF token.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from accord.v1 import local_pb2
from gateway import api, api_records, convert
from gateway.auth import CSRF_FIELD, Caller, caller_of
from gateway.errors import ApiError, bad_request
from gateway.models import SendIn
from gateway.state import Gateway, acting_caller, caller, gateway
from node.wire import MESSAGE_TYPES

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(resources.files("gateway") / "templates"))
Gw = Annotated[Gateway, Depends(gateway)]
Reader = Annotated[Caller, Depends(caller)]
Actor = Annotated[Caller, Depends(acting_caller)]
Page = Response  # an HTML page or a redirect
ANONYMOUS: dict[str, Any] = {"me": None, "csrf": None, "agency": ""}  # a page's header, logged out


def _left(until: datetime | None, now: datetime) -> str:
    """A retention countdown as people read it (the console's script keeps it current)."""
    if until is None:
        return "no limit"
    seconds = (until - now).total_seconds()
    if seconds <= 0:
        return "expired"
    days, hours = int(seconds // 86400), int(seconds % 86400 // 3600)
    return f"{days} d {hours} h" if days else f"{hours} h {int(seconds % 3600 // 60)} min"


templates.env.filters["left"] = lambda until: _left(until, datetime.now(UTC))
templates.env.filters["tlp_label"] = lambda tlp: "TLP:" + str(tlp).replace("_", "+")
templates.env.filters["iso"] = lambda when: when.isoformat() if when else ""
templates.env.filters["short"] = lambda when: (
    when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if when else "-"
)


async def _context(request: Request, gw: Gateway, who: Caller | None) -> dict[str, Any]:
    context: dict[str, Any] = dict(ANONYMOUS)
    if who is not None:
        context["me"] = await gw.me(who)
        context["csrf"] = gw.csrf(who)
        context["agency"] = await _agency(gw, who)
    return context


async def _agency(gw: Gateway, who: Caller) -> str:
    if not gw.agency:
        gw.agency = (await api.policy_of(gw, who))["agency"]
    return gw.agency


def render(
    request: Request, name: str, context: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status)


def error_page(request: Request, error: ApiError) -> Response:
    """An error as a page, without the navigation (whoever asked may not be known)."""
    return render(request, "error.html", {**ANONYMOUS, "error": error}, status=error.status)


async def _form(request: Request) -> dict[str, Any]:
    form = await request.form()
    return {k: form.getlist(k) if k == "handling" else form.get(k) for k in form if k != CSRF_FIELD}


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# ---- login -------------------------------------------------------------------------------------


@router.get("/")
async def home() -> RedirectResponse:
    return _redirect("/inbox")


@router.get("/login")
async def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", {**ANONYMOUS, "error": None})


@router.post("/login")
async def login(request: Request, gw: Gw) -> Page:
    form = await request.form()
    name, password = str(form.get("name") or ""), str(form.get("password") or "")
    try:
        answer = await gw.login(request, name=name, password=password)
    except ApiError as exc:
        if exc.status not in (401, 403, 429):
            raise
        context = {**ANONYMOUS, "error": exc, "name": name}
        return render(request, "login.html", context, status=exc.status)
    response = _redirect("/inbox")
    gw.set_session(response, answer.session_token)
    return response


@router.post("/logout")
async def logout(who: Actor, gw: Gw) -> RedirectResponse:
    response = _redirect("/login")
    try:
        await gw.node.call(who.token, "Logout", local_pb2.LogoutRequest())
    except ApiError as exc:
        if exc.status != 401:  # an expired session is as good as logged out
            raise
    gw.clear_session(response)
    return response


@router.get("/account")
async def account(request: Request, who: Reader, gw: Gw) -> HTMLResponse:
    context = await _context(request, gw, who)
    return render(request, "account.html", {**context, "error": None, "done": False})


@router.post("/account/password")
async def set_password(request: Request, who: Actor, gw: Gw) -> HTMLResponse:
    form = await _form(request)
    context = await _context(request, gw, who)
    if form.get("new_password") != form.get("repeat_password"):
        error = bad_request("the two new passwords differ")
        return render(
            request, "account.html", {**context, "error": error, "done": False}, status=400
        )
    try:
        await gw.node.call(
            who.token,
            "SetPassword",
            local_pb2.SetPasswordRequest(
                old_password=str(form.get("old_password") or ""),
                new_password=str(form.get("new_password") or ""),
            ),
        )
    except ApiError as exc:
        if exc.status not in (400, 403):
            raise
        context = {**context, "error": exc, "done": False}
        return render(request, "account.html", context, status=exc.status)
    return render(request, "account.html", {**context, "error": None, "done": True})


# ---- messages ----------------------------------------------------------------------------------


async def _listing(request: Request, gw: Gateway, who: Caller, *, direction: str) -> HTMLResponse:
    q = request.query_params
    type_, purpose, peer = q.get("type") or None, q.get("purpose", ""), q.get("peer", "")
    filters = {"type": type_, "purpose": purpose, "peer": peer}
    before = q.get("before", "")
    if type_ and type_ not in MESSAGE_TYPES:
        raise bad_request(f"type {type_!r} is not a message type")
    limit = 50
    messages = await api.list_messages(
        gw,
        who,
        direction=direction,
        before=before,
        limit=limit,
        type=type_,
        purpose=purpose,
        peer=peer,
    )
    context = await _context(request, gw, who)
    return render(
        request,
        "inbox.html",
        {
            **context,
            "direction": direction,
            "messages": messages,
            "filters": filters,
            "types": MESSAGE_TYPES,
            # Live rows only on the unfiltered first page of received messages.
            "live": direction == "in" and not before and not any(filters.values()),
            "next_before": messages[-1]["message_id"] if len(messages) == limit else None,
        },
    )


@router.get("/inbox")
async def inbox(request: Request, who: Reader, gw: Gw) -> HTMLResponse:
    return await _listing(request, gw, who, direction="in")


@router.get("/sent")
async def sent(request: Request, who: Reader, gw: Gw) -> HTMLResponse:
    return await _listing(request, gw, who, direction="out")


@router.get("/events")
async def events(request: Request, who: Reader, gw: Gw) -> Response:
    return await api.live(request, who, gw)


async def _message_context(
    request: Request, gw: Gateway, who: Caller, message_id: str, sender: str
) -> dict[str, Any]:
    """Metadata (no content) of one message the user may see, and its receipts if sent."""
    found = await api.list_messages(gw, who, direction="all", message_id=message_id, limit=10)
    found = [m for m in found if not sender or m["sender"] == sender]
    if not found:
        raise ApiError(404, "NOT_FOUND", f"no message {message_id} that you may see")
    summary = found[0]
    deliveries = redresses = None
    if summary["direction"] == "out":
        deliveries = (await api.receipts(message_id, who, gw))["deliveries"]
        redresses = (await api_records.redress_status(message_id, who, gw))["redresses"]
    context = await _context(request, gw, who)
    return {
        **context,
        "summary": summary,
        "deliveries": deliveries,
        "redresses": redresses,
        "message": None,
    }


@router.get("/messages/{message_id}")
async def message(request: Request, message_id: str, who: Reader, gw: Gw) -> HTMLResponse:
    sender = request.query_params.get("sender", "")
    context = await _message_context(request, gw, who, message_id, sender)
    return render(request, "message.html", {**context, "error": None})


@router.post("/messages/{message_id}/read")
async def read(request: Request, message_id: str, who: Actor, gw: Gw) -> HTMLResponse:
    form = await _form(request)
    sender = str(form.get("sender") or "")
    context = await _message_context(request, gw, who, message_id, sender)
    try:
        answer = await gw.node.call(
            who.token,
            "Get",
            local_pb2.GetRequest(
                message_id=message_id,
                sender=context["summary"]["sender"],
                justification=str(form.get("justification") or ""),
            ),
        )
    except ApiError as exc:
        if exc.status != 403:
            raise
        return render(request, "message.html", {**context, "error": exc}, status=403)
    read = convert.message(answer)
    thread = await api.list_messages(
        gw, who, direction="all", thread=read["summary"]["correlation_id"], limit=100
    )
    members = await gw.node.call(who.token, "Members", local_pb2.MembersRequest())
    return render(
        request,
        "message.html",
        {
            **context,
            "error": None,
            "message": read,
            "body": _body_view(read["content"]),
            "thread": thread,
            "forward_to": [m.agency for m in members.members if m.agency != context["agency"]],
        },
    )


def _body_view(content: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The typed body as label/value rows: every field the sender filled in, nested ones
    flattened (`location.place`), so nothing is hidden and nothing needs a script."""
    if content is None:
        return []
    for kind in ("incident", "liaison", "control"):
        if kind in content:
            rows: list[tuple[str, str]] = []
            _flatten(content[kind], "", rows)
            return rows
    return []


def _flatten(value: Any, prefix: str, rows: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(inner, f"{prefix}.{key}" if prefix else key, rows)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            _flatten(inner, f"{prefix}[{i + 1}]", rows)
    else:
        rows.append((prefix.replace("_", " "), str(value)))


@router.post("/messages/{message_id}/forward")
async def forward(request: Request, message_id: str, who: Actor, gw: Gw) -> Page:
    form = await _form(request)
    sent = await gw.node.call(
        who.token,
        "Forward",
        local_pb2.ForwardRequest(
            message_id=message_id,
            sender=str(form.get("sender") or ""),
            to=str(form.get("to") or ""),
            purpose=str(form.get("purpose") or ""),
            justification=str(form.get("justification") or ""),
        ),
    )
    return _redirect(f"/messages/{sent.message_id}")


# ---- compose -----------------------------------------------------------------------------------


async def _compose_page(
    request: Request,
    gw: Gateway,
    who: Caller,
    *,
    values: dict[str, Any],
    error: ApiError | None = None,
) -> HTMLResponse:
    options = await api.options_for(gw, who, values.get("to") or None)
    context = await _context(request, gw, who)
    return render(
        request,
        "compose.html",
        {**context, "options": options, "values": values, "error": error},
        status=error.status if error else 200,
    )


@router.get("/compose")
async def compose(request: Request, who: Reader, gw: Gw) -> HTMLResponse:
    return await _compose_page(request, gw, who, values=dict(request.query_params))


def _draft(form: dict[str, Any]) -> SendIn:
    type_ = str(form.get("type") or "")
    if convert.body_kind(type_) == "incident":
        body: dict[str, Any] = {
            "incident_id": form.get("incident_id") or "",
            "narrative": form.get("narrative") or "",
            "location": {"country": form.get("country") or "", "place": form.get("place") or ""},
        }
        if form.get("offence_code"):
            body["offence"] = {
                "scheme": form.get("offence_scheme") or "eu-eaw-32",
                "code": form.get("offence_code"),
            }
    else:
        body = {"subject": form.get("subject") or "", "text": form.get("text") or ""}
    days = str(form.get("retention_days") or "").strip()
    try:
        return SendIn(
            recipients=[str(form.get("to") or "")],
            type=type_,
            purpose=str(form.get("purpose") or ""),
            body=body,
            tlp=form.get("tlp") or None,
            handling_codes=list(form.get("handling") or []),
            onward_transfer=form.get("onward") or None,
            retention_days=int(days) if days.isdigit() else None,
            urgent=form.get("urgent") == "on",
            legal_basis=str(form.get("legal_basis") or ""),
            in_reply_to=str(form.get("reply_to") or ""),
        )
    except ValidationError as exc:
        raise invalid_form(exc) from exc


def invalid_form(exc: ValidationError) -> ApiError:
    return bad_request(
        "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    )


@router.post("/compose")
async def send(request: Request, who: Actor, gw: Gw) -> Page:
    form = await _form(request)
    try:
        draft = _draft(form)
        if draft.retention_days is None:
            raise bad_request("retention: give the number of days the recipient may keep it")
        sent = await gw.node.call(
            who.token, "Send", local_pb2.SendRequest(content=convert.content(draft))
        )
    except ApiError as exc:
        if exc.status not in (400, 403, 422):
            raise
        return await _compose_page(request, gw, who, values=form, error=exc)
    return _redirect(f"/messages/{sent.message_id}")


# ---- approvals, policy, access log -------------------------------------------------------------


@router.get("/approvals")
async def approvals(request: Request, who: Reader, gw: Gw) -> HTMLResponse:
    listing = await api.approvals(who, gw, state="all")
    pending = [a for a in listing["approvals"] if a["state"] == "pending"]
    decided = [a for a in listing["approvals"] if a["state"] != "pending"][-20:]
    context = await _context(request, gw, who)
    return render(
        request, "approvals.html", {**context, "pending": pending, "decided": decided[::-1]}
    )


@router.post("/approvals/{message_id}")
async def decide(request: Request, message_id: str, who: Actor, gw: Gw) -> RedirectResponse:
    form = await _form(request)
    approve = form.get("decision") == "approve"
    await api.decide(gw, who, message_id, approve=approve, note=str(form.get("note") or ""))
    return _redirect("/approvals")


@router.get("/policy")
async def policy(request: Request, who: Reader, gw: Gw) -> HTMLResponse:
    signed = await api.policy_of(gw, who)
    context = await _context(request, gw, who)
    return render(
        request,
        "policy.html",
        {**context, "policy": signed["policy"], "signed": signed},
    )


@router.get("/access-log")
async def access_log(request: Request, who: Reader, gw: Gw) -> HTMLResponse:
    """The node's access log (auditors): the interim audit view until the audit log lands."""
    entries = (await api.access_log(who, gw, limit=500, message_id=""))["entries"]
    context = await _context(request, gw, who)
    return render(request, "access_log.html", {**context, "entries": entries})


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    """The API's documentation, rendered from /openapi.json by static/console.js."""
    who = caller_of(request)
    context = dict(ANONYMOUS)
    if who is not None:
        with contextlib.suppress(ApiError):  # a stale cookie: the page is public
            context = await _context(request, gateway(request), who)
    return render(request, "docs.html", context)
