"""The HTTP/JSON API (/api/v1): one thin route per local API call, as the calling user."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from accord.v1 import local_pb2
from accord.v1 import message_pb2 as pb
from gateway import convert, events
from gateway.auth import Caller
from gateway.errors import bad_request
from gateway.models import (
    AccessLogOut,
    ApprovalOut,
    ApprovalsOut,
    ComposeOptionsOut,
    DecideIn,
    ErrorOut,
    ForwardIn,
    LoginIn,
    MembersOut,
    MeOut,
    MessageOut,
    MessagesOut,
    MessageType,
    PasswordIn,
    PolicyOut,
    ReadIn,
    ReceiptsOut,
    SendIn,
    SentOut,
    SessionOut,
)
from gateway.rules import compose_options
from gateway.state import Gateway, acting_caller, caller, gateway

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in (
        (400, "bad request"),
        (401, "not logged in, or an unknown token"),
        (403, "the node (or the CSRF check) refuses: `denied` names the missing condition"),
        (404, "not found, or not visible to you"),
        (422, "refused by the agreements: `reason` is the node's reason code"),
        (503, "the node is not answering"),
    )
}

router = APIRouter(prefix="/api/v1", responses=ERRORS)
Gw = Annotated[Gateway, Depends(gateway)]
Reader = Annotated[Caller, Depends(caller)]
Actor = Annotated[Caller, Depends(acting_caller)]


# ---- sessions ----------------------------------------------------------------------------------


@router.post("/login", tags=["session"], response_model=SessionOut)
async def login(body: LoginIn, request: Request, response: Response, gw: Gw) -> dict[str, Any]:
    """Log in with a password; sets the session cookie. Send the returned `csrf_token` as
    `X-CSRF-Token` with every state-changing request made with the cookie."""
    answer = await gw.login(request, name=body.name, password=body.password)
    gw.set_session(response, answer.session_token)
    return {
        "user": convert.user(answer.user),
        "csrf_token": gw.csrf(Caller(answer.session_token, session=True)),
        "expires_at": convert.when(answer.expires_at),
        "idle_seconds": answer.idle_seconds,
    }


@router.post("/logout", tags=["session"], status_code=204)
async def logout(who: Actor, response: Response, gw: Gw) -> None:
    """End this session (the node revokes it)."""
    await gw.node.call(who.token, "Logout", local_pb2.LogoutRequest())
    gw.clear_session(response)


@router.get("/me", tags=["session"], response_model=MeOut)
async def me(who: Reader, gw: Gw) -> dict[str, Any]:
    """Who the node says you are, and (for a session) the CSRF token to send."""
    return {"user": await gw.me(who), "csrf_token": gw.csrf(who)}


@router.put("/me/password", tags=["session"], status_code=204)
async def set_password(body: PasswordIn, who: Actor, gw: Gw) -> None:
    """Set your password; from a session, the old one is needed too. Your other sessions end."""
    await gw.node.call(
        who.token,
        "SetPassword",
        local_pb2.SetPasswordRequest(
            old_password=body.old_password, new_password=body.new_password
        ),
    )


# ---- messages ----------------------------------------------------------------------------------


@router.get("/messages", tags=["messages"], response_model=MessagesOut)
async def messages(
    who: Reader,
    gw: Gw,
    direction: Annotated[str, Query(pattern="^(in|out|all)$")] = "in",
    type: MessageType | None = None,
    purpose: Annotated[str, Query(max_length=100)] = "",
    peer: Annotated[str, Query(max_length=32)] = "",
    thread: Annotated[str, Query(max_length=64, description="a correlation id")] = "",
    before: Annotated[str, Query(max_length=64, description="page: older than this id")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Message metadata, newest first (received by default). No content: reading needs a
    justification (POST .../read). Status and deadline filters come with the node's request
    status."""
    found = await list_messages(
        gw,
        who,
        direction=direction,
        type=type,
        purpose=purpose,
        peer=peer,
        thread=thread,
        before=before,
        limit=limit,
    )
    return {
        "messages": found,
        "next_before": found[-1]["message_id"] if len(found) == limit else None,
    }


async def list_messages(
    gw: Gateway,
    who: Caller,
    *,
    direction: str = "in",
    type: str | None = None,
    purpose: str = "",
    peer: str = "",
    thread: str = "",
    before: str = "",
    limit: int = 100,
    message_id: str = "",
) -> list[dict[str, Any]]:
    request = local_pb2.InboxRequest(
        limit=limit,
        before_message_id=before,
        direction=direction,
        purpose=purpose,
        peer=peer,
        correlation_id=thread,
        message_id=message_id,
    )
    if type:
        request.type = pb.MessageType.Value(f"MESSAGE_TYPE_{type}")  # type: ignore[assignment]
    answer = await gw.node.call(who.token, "Inbox", request)
    return [convert.summary(m) for m in answer.messages]


@router.post("/messages", tags=["messages"], status_code=201, response_model=SentOut)
async def send(body: SendIn, who: Actor, gw: Gw) -> dict[str, Any]:
    """Send a message. Answers once it is in the node's durable outbox, or held for approval."""
    sent = await gw.node.call(
        who.token, "Send", local_pb2.SendRequest(content=convert.content(body))
    )
    return {
        "message_id": sent.message_id,
        "recipients": list(sent.recipients),
        "pending_approval": sent.pending_approval,
    }


@router.post("/messages/{message_id}/read", tags=["messages"], response_model=MessageOut)
async def read(message_id: str, body: ReadIn, who: Actor, gw: Gw) -> dict[str, Any]:
    """Read a message's content with a written justification (logged by the node)."""
    answer = await gw.node.call(
        who.token,
        "Get",
        local_pb2.GetRequest(
            message_id=message_id, sender=body.sender, justification=body.justification
        ),
    )
    return convert.message(answer)


@router.get("/messages/{message_id}/receipts", tags=["messages"], response_model=ReceiptsOut)
async def receipts(message_id: str, who: Reader, gw: Gw) -> dict[str, Any]:
    """Each recipient's delivery state and signed receipt, for a message sent from this node."""
    answer = await gw.node.call(
        who.token, "Receipts", local_pb2.ReceiptsRequest(message_id=message_id)
    )
    return {
        "message_id": answer.message_id,
        "deliveries": [convert.delivery(d) for d in answer.deliveries],
    }


@router.post(
    "/messages/{message_id}/forward", tags=["messages"], status_code=201, response_model=SentOut
)
async def forward(message_id: str, body: ForwardIn, who: Actor, gw: Gw) -> dict[str, Any]:
    """Forward a received message to a third agency, as its originator allows."""
    sent = await gw.node.call(
        who.token,
        "Forward",
        local_pb2.ForwardRequest(
            message_id=message_id,
            sender=body.sender,
            to=body.to,
            purpose=body.purpose,
            justification=body.justification,
        ),
    )
    return {
        "message_id": sent.message_id,
        "recipients": list(sent.recipients),
        "pending_approval": sent.pending_approval,
    }


@router.get("/events", tags=["messages"], response_class=StreamingResponse)
async def live(request: Request, who: Reader, gw: Gw) -> StreamingResponse:
    """Server-sent events: `message` with a message's metadata as it arrives (the same fields
    as in /messages), comments to keep the connection open, `end` when the session ends."""
    return await events.stream(gw, who, request)


# ---- approvals ---------------------------------------------------------------------------------


@router.get("/approvals", tags=["approvals"], response_model=ApprovalsOut)
async def approvals(
    who: Reader,
    gw: Gw,
    state: Annotated[str, Query(pattern="^(pending|approved|rejected|all)$")] = "pending",
) -> dict[str, Any]:
    """Messages held for a second person's approval (four eyes)."""
    answer = await gw.node.call(
        who.token, "ListApprovals", local_pb2.ListApprovalsRequest(state=state)
    )
    return {"approvals": [convert.approval(a) for a in answer.approvals]}


async def decide(gw: Gateway, who: Caller, message_id: str, *, approve: bool, note: str) -> Any:
    if not approve and not note.strip():
        raise bad_request("a rejection needs a note saying why")
    return await gw.node.call(
        who.token,
        "Decide",
        local_pb2.DecideRequest(message_id=message_id, approve=approve, note=note),
    )


@router.post("/approvals/{message_id}/approve", tags=["approvals"], response_model=ApprovalOut)
async def approve(message_id: str, body: DecideIn, who: Actor, gw: Gw) -> dict[str, Any]:
    """Approve a held message (a supervisor other than its author): it goes to the outbox."""
    return convert.approval(await decide(gw, who, message_id, approve=True, note=body.note))


@router.post("/approvals/{message_id}/reject", tags=["approvals"], response_model=ApprovalOut)
async def reject(message_id: str, body: DecideIn, who: Actor, gw: Gw) -> dict[str, Any]:
    """Reject a held message, with a note: it is never sent."""
    return convert.approval(await decide(gw, who, message_id, approve=False, note=body.note))


# ---- policy, directory, access log -------------------------------------------------------------


async def policy_of(gw: Gateway, who: Caller, peer: str = "") -> dict[str, Any]:
    signed = await gw.node.call(who.token, "GetPolicy", local_pb2.PolicyRequest(peer=peer))
    return {
        "agency": signed.agency,
        "policy": json.loads(signed.policy_json),
        "policy_json": base64.b64encode(signed.policy_json).decode(),
        "signature": base64.b64encode(signed.signature).decode(),
        "certificate_pem": signed.certificate_pem,
    }


@router.get("/policy", tags=["policy"], response_model=PolicyOut)
async def policy(
    who: Reader, gw: Gw, peer: Annotated[str, Query(max_length=32)] = ""
) -> dict[str, Any]:
    """This node's signed published policy (agreements, purposes, retention), or a peer's,
    fetched by the node over the federation with its signature checked."""
    return await policy_of(gw, who, peer)


@router.get("/members", tags=["policy"], response_model=MembersOut)
async def members(who: Reader, gw: Gw) -> dict[str, Any]:
    """The federation's members, from the signed directory."""
    answer = await gw.node.call(who.token, "Members", local_pb2.MembersRequest())
    return {
        "members": [{"agency": m.agency, "name": m.name} for m in answer.members],
        "directory_serial": answer.directory_serial,
    }


async def options_for(gw: Gateway, who: Caller, recipient: str | None) -> dict[str, Any]:
    me, signed, directory = (
        await gw.me(who),
        await policy_of(gw, who),
        await gw.node.call(who.token, "Members", local_pb2.MembersRequest()),
    )
    return compose_options(
        policy=signed["policy"],
        members=[m.agency for m in directory.members],
        me=signed["agency"],
        role=me["role"],
        clearances=me["clearances"],
        # The node's clock as it signed the policy, so drills on a moved clock agree with it.
        now=datetime.fromisoformat(signed["policy"]["issued_at"]),
        recipient=recipient,
    )


@router.get("/compose-options", tags=["policy"], response_model=ComposeOptionsOut)
async def compose(
    who: Reader, gw: Gw, to: Annotated[str | None, Query(max_length=32)] = None
) -> dict[str, Any]:
    """What you may send to `to` under the agreements in force and your clearances, and why
    each other choice is not offered."""
    return await options_for(gw, who, to)


@router.get("/access-log", tags=["audit"], response_model=AccessLogOut)
async def access_log(
    who: Reader,
    gw: Gw,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    message_id: Annotated[str, Query(max_length=64)] = "",
) -> dict[str, Any]:
    """Consultations, refusals, approvals, disclosures and logins (auditors)."""
    answer = await gw.node.call(
        who.token, "AccessLog", local_pb2.AccessLogRequest(limit=limit, message_id=message_id)
    )
    return {"entries": [convert.access_entry(e) for e in answer.entries]}
