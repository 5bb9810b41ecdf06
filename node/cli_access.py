"""`accord` commands for purpose limitation and access control: users and clearances,
four-eyes approvals, onward transfer, published policy, the access log and agreements."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from accord.v1 import local_pb2
from accord.v1 import message_pb2 as pb
from certs.ca import FederationAuthority
from certs.directory import agreement_from_dict, agreement_to_dict
from node import signing
from node.cli_args import (
    MAX_RETENTION_DAYS,
    UsageError,
    _choice,
    _csv,
    _home_argument,
    _local_arguments,
    _names,
    _table,
    agency_code,
    json_argument,
    message_id,
    path_arg,
    whole,
)
from node.client import connect, resolve_home
from node.policy.onward import GRANT_DAYS
from node.text import printable


def _call(args: argparse.Namespace, method: str, request: Any, *, anonymous: bool = False) -> Any:
    home = resolve_home(args.home)

    async def run() -> Any:
        async with connect(home, user=args.as_user, anonymous=anonymous) as node:
            return await getattr(node.api, method)(request)

    return asyncio.run(run())


# ---- users -------------------------------------------------------------------------------------

_USER_HEADERS = ["user", "role", "cleared for", "state"]


def _user_row(u: Any) -> list[str]:
    state = u.state or ("disabled" if u.disabled else "active")
    asked = [f"as {u.requested_role}"] if u.requested_role else []
    if u.has_requested_clearances:
        asked.append(f"cleared for {','.join(u.requested_clearances) or 'nothing'}")
    if u.requested_state:
        asked.append(u.requested_state)
    if asked:
        state += f" ({', '.join(asked)}, asked by {u.requested_by}: awaits a second admin)"
    return [u.name, u.role, ",".join(u.clearances) or "-", state]


def _rows(rows: list[list[str]]) -> list[list[str]]:
    """Table cells with control characters escaped: text the node stored (notes, details,
    peers' reasons) must never start a line of its own in the output."""
    return [[printable(cell) for cell in row] for row in rows]


def _print_users(users: Any, *, as_json: bool = False) -> int:
    if as_json:
        docs = [
            {"name": u.name, "role": u.role, "clearances": list(u.clearances),
             "disabled": u.disabled, "state": u.state or None,
             "requested_role": u.requested_role or None, "requested_by": u.requested_by or None,
             "requested_clearances": list(u.requested_clearances)
             if u.has_requested_clearances else None,
             "requested_state": u.requested_state or None}
            for u in users
        ]  # fmt: skip
        print(json.dumps(docs, indent=2))
        return 0
    print(_table(_USER_HEADERS, _rows([_user_row(u) for u in users])))
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    response = _call(
        args,
        "AddUser",
        local_pb2.AddUserRequest(name=args.name, role=args.role, clearances=_csv(args.clearance)),
    )
    print(response.enrolment_code)
    if response.pending_approval:
        print(
            f"user {args.name} ({args.role}) awaits a second administrator: "
            f"`accord users approve {args.name}` (another administrator) gives the code's "
            "second part; hand this first part to the user",
            file=sys.stderr,
        )
    else:
        print(
            f"user {args.name} ({args.role}) created; hand them this enrolment code (single use, "
            f"until {response.code_expires_at}): `accord users enrol {args.name} --code CODE`",
            file=sys.stderr,
        )
    return 0


def cmd_users_enrol(args: argparse.Namespace) -> int:
    code = "+".join(c.strip() for c in args.code)
    tokens = resolve_home(args.home) / "tokens"
    # Checked before the code is spent: a token file is never overwritten.
    if args.save and (tokens / args.name).exists():
        raise UsageError(f"{tokens / args.name} exists; a token file is never overwritten")
    response = _call(
        args, "Enrol", local_pb2.EnrolRequest(name=args.name, code=code), anonymous=True
    )
    if args.save:
        try:
            tokens.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(tokens / args.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(response.token)
        except OSError as exc:
            # The code is spent now: the token is shown rather than lost.
            print(response.token)
            raise UsageError(
                f"{args.name} enrolled, but could not save the token to {tokens / args.name}: "
                f"{exc}; the token is on stdout, shown only this once"
            ) from exc
        print(f"{args.name} enrolled; token saved to {tokens / args.name}")
    else:
        print(f"{args.name} enrolled; token (shown once):", file=sys.stderr)
        print(response.token)
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    users = _call(args, "ListUsers", local_pb2.ListUsersRequest()).users
    return _print_users(users, as_json=args.json)


def cmd_users_clearances(args: argparse.Namespace) -> int:
    u = _call(
        args,
        "SetClearances",
        local_pb2.SetClearancesRequest(name=args.name, clearances=_csv(args.clearance)),
    )
    _print_users([u])
    return 0


def cmd_users_role(args: argparse.Namespace) -> int:
    _print_users([_call(args, "SetRole", local_pb2.SetRoleRequest(name=args.name, role=args.role))])
    return 0


def _decide_user(args: argparse.Namespace, approve: bool) -> int:
    response = _call(
        args, "DecideUser", local_pb2.DecideUserRequest(name=args.name, approve=approve)
    )
    if response.enrolment_code:
        print(response.enrolment_code)
        print(
            f"approved; hand {args.name} this second part of their enrolment code (until "
            f"{response.code_expires_at}): `accord users enrol {args.name} --code FIRST "
            "--code SECOND`",
            file=sys.stderr,
        )
    elif response.HasField("user"):
        _print_users([response.user])
    else:
        print(f"rejected: {args.name} was not created")
    return 0


def cmd_users_approve(args: argparse.Namespace) -> int:
    return _decide_user(args, True)


def cmd_users_reject(args: argparse.Namespace) -> int:
    return _decide_user(args, False)


def cmd_users_disable(args: argparse.Namespace) -> int:
    _print_users([_call(args, "DisableUser", local_pb2.DisableUserRequest(name=args.name))])
    return 0


def cmd_users_enable(args: argparse.Namespace) -> int:
    _print_users([_call(args, "EnableUser", local_pb2.EnableUserRequest(name=args.name))])
    return 0


def cmd_whoami(args: argparse.Namespace) -> int:
    me = _call(args, "WhoAmI", local_pb2.WhoAmIRequest())
    return _print_users([me], as_json=args.json)


# ---- approvals ---------------------------------------------------------------------------------


def cmd_approvals_list(args: argparse.Namespace) -> int:
    approvals = _call(args, "ListApprovals", local_pb2.ListApprovalsRequest(state=args.state))
    docs = [
        {
            "message_id": a.message_id,
            "type": pb.MessageType.Name(a.type).removeprefix("MESSAGE_TYPE_") if a.type else None,
            "purpose": a.purpose or None,
            "author": a.author,
            "recipients": list(a.recipients),
            "state": a.state,
            "requested_at": a.requested_at,
            "decided_by": a.decided_by or None,
            "decided_at": a.decided_at or None,
            "note": a.note,
        }
        for a in approvals.approvals
    ]
    if args.json:
        print(json.dumps(docs, indent=2))
        return 0
    rows = [
        [
            d["message_id"],
            d["type"] or "-",
            d["purpose"] or "-",
            d["author"],
            ",".join(d["recipients"]),
            d["state"],
            d["decided_by"] or "-",
        ]
        for d in docs
    ]
    print(
        _table(["message", "type", "purpose", "author", "to", "state", "decided by"], _rows(rows))
    )
    return 0


def _decide(args: argparse.Namespace, approve: bool) -> int:
    a = _call(
        args,
        "Decide",
        local_pb2.DecideRequest(message_id=args.id, approve=approve, note=args.note or ""),
    )
    verb = "approved: now in the outbox for" if approve else "rejected: will not be sent to"
    print(f"{a.message_id} {verb} {', '.join(a.recipients)}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, True)


def cmd_reject(args: argparse.Namespace) -> int:
    if not (args.note or "").strip():
        raise UsageError("a rejection needs --note saying why")
    return _decide(args, False)


# ---- onward transfer ---------------------------------------------------------------------------


def cmd_forward(args: argparse.Namespace) -> int:
    request = local_pb2.ForwardRequest(
        message_id=args.id,
        sender=args.sender or "",
        to=args.to,
        purpose=args.purpose or "",
        justification=args.justification,
    )
    if args.onward:
        rules = _names(pb.OnwardTransfer, "ONWARD_TRANSFER_")
        rule = _choice(args.onward, rules, what="--onward", prefix="ONWARD_TRANSFER_")
        request.onward_transfer = pb.OnwardTransfer.Value(f"ONWARD_TRANSFER_{rule}")  # type: ignore[assignment]
    if args.tlp:
        tlp = _choice(args.tlp, _names(pb.Tlp, "TLP_"), what="--tlp", prefix="TLP_")
        request.tlp = pb.Tlp.Value(f"TLP_{tlp}")  # type: ignore[assignment]
    codes = _names(pb.HandlingCode, "HANDLING_CODE_")
    for c in _csv(args.handling):
        code = _choice(c, codes, what="--handling code", prefix="HANDLING_CODE_")
        request.handling_codes.append(pb.HandlingCode.Value(f"HANDLING_CODE_{code}"))  # type: ignore[arg-type]
    if args.retention_days is not None:
        request.retention.days = args.retention_days
    response = _call(args, "Forward", request)
    print(response.message_id)
    held = " (held for approval)" if response.pending_approval else ""
    print(f"forward queued for {args.to}{held}", file=sys.stderr)
    return 0


def _transfer(args: argparse.Namespace, kind: int, control: pb.ControlBody, to: str) -> int:
    content = pb.MessageContent(
        recipients=[to],
        type=kind,  # type: ignore[arg-type]
        purpose=args.purpose,
        correlation_id=control.target_message_id,
        in_reply_to=getattr(args, "in_reply_to", None) or "",
        control=control,
    )
    response = _call(args, "Send", local_pb2.SendRequest(content=content))
    print(response.message_id)
    return 0


def cmd_transfer_request(args: argparse.Namespace) -> int:
    control = pb.ControlBody(
        target_message_id=args.id,
        third_agency=args.third,
        transfer_purpose=args.transfer_purpose or "",
        reason=args.reason,
    )
    return _transfer(args, pb.MESSAGE_TYPE_TRANSFER_AUTHORISATION_REQUEST, control, args.to)


def cmd_transfer_grant(args: argparse.Namespace) -> int:
    control = pb.ControlBody(
        target_message_id=args.id,
        third_agency=args.third,
        transfer_purpose=args.transfer_purpose or "",
        granted=not args.deny,
        conditions=args.conditions or "",
        reason=args.reason or "",
    )
    if args.valid_days is not None and not args.deny:
        control.valid_until.FromDatetime(datetime.now(UTC) + timedelta(days=args.valid_days))
    return _transfer(args, pb.MESSAGE_TYPE_TRANSFER_AUTHORISATION_GRANT, control, args.to)


# ---- policy, access log, agreements ------------------------------------------------------------


def agreement_state(a: dict[str, Any], now: datetime) -> str:
    """Whether a published agreement is in force now, from its valid_from and valid_until."""
    if now < datetime.fromisoformat(a["valid_from"]):
        return "not yet in force"
    if now >= datetime.fromisoformat(a["valid_until"]):
        return "EXPIRED"
    review = a.get("review_date")
    if review and date.fromisoformat(review) <= now.date():
        return "in force, review due"
    return "in force"


def _agreement_rows(agreements: list[dict[str, Any]], now: datetime) -> str:
    rows = [
        [
            a["id"],
            agreement_state(a, now),
            ",".join(a["parties"]),
            ",".join(a["purposes"]),
            str(a["max_retention_days"]),
            a["max_tlp"],
            a["onward_transfer"],
            a["valid_until"][:10],
        ]
        for a in agreements
    ]
    headers = ["agreement", "state", "parties", "purposes", "max days", "max TLP", "onward",
               "until"]  # fmt: skip
    return _table(headers, rows)


def cmd_policy_show(args: argparse.Namespace) -> int:
    from node.cli_args import _check_signature

    signed = _call(args, "GetPolicy", local_pb2.PolicyRequest(peer=args.peer or ""))
    doc = json.loads(signed.policy_json)
    now = datetime.now(UTC)
    home = resolve_home(args.home)
    data = signing.signed_bytes(signed.policy_json, b"", signing.POLICY)
    assert data is not None  # a policy has no audit path
    ok, check = _check_signature(home, signed.agency, data, signed.signature)
    if args.json:
        # The signed bytes exactly as signed, with the signature: a third party checks them
        # with the agency's certificate (openssl dgst -sha256 -verify).
        print(
            json.dumps(
                {
                    "agency": signed.agency,
                    "policy_json": signed.policy_json.decode(),
                    "signature": base64.b64encode(signed.signature).decode(),
                    "certificate_pem": signed.certificate_pem,
                    "signature_valid": ok,
                    "signature_check": check,
                    "policy": doc,
                    "agreement_states": {
                        a["id"]: agreement_state(a, now) for a in doc["agreements"]
                    },
                },
                indent=2,
            )
        )
        return 0
    print(f"policy of {doc['agency']} (directory serial {doc['directory_serial']}); "
          f"signature {check}")  # fmt: skip
    print(_agreement_rows(doc["agreements"], now))
    print(f"retention: {doc['retention']['rule']}")
    return 1 if ok is False else 0


def cmd_access_log(args: argparse.Namespace) -> int:
    entries = _call(
        args,
        "AccessLog",
        local_pb2.AccessLogRequest(limit=args.limit, message_id=args.message or ""),
    ).entries
    if args.json:
        fields = ("at", "user", "action", "outcome", "message_id", "purpose", "justification",
                  "recipient", "detail")  # fmt: skip
        print(json.dumps([{f: getattr(e, f) for f in fields} for e in entries], indent=2))
        return 0
    rows = [
        [
            e.at[:19],
            e.user,
            e.action,
            e.outcome,
            e.message_id or "-",
            e.purpose or "-",
            printable(e.justification or e.detail or "-")[:60],
        ]
        for e in entries
    ]
    headers = ["at", "user", "action", "outcome", "message", "purpose", "why / detail"]
    print(_table(headers, _rows(rows)))
    return 0


def cmd_agreements_set(args: argparse.Namespace) -> int:
    fa = FederationAuthority(Path(args.dir))
    path = Path(args.file)
    try:
        raw = json.loads(path.read_bytes().decode())
    except UnicodeDecodeError as exc:
        raise UsageError(f"{args.file}: not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"{args.file}: not valid JSON: {exc}") from exc
    if not isinstance(raw, list):
        raise UsageError(f"{args.file}: expected a JSON list of agreements")
    current = fa.directory()
    # Everything is checked before anything is published: one bad agreement publishes none.
    agreements = tuple(
        agreement_from_dict(
            a,
            f"{args.file}[{i}]",
            purposes=current.purpose_codes(),
            members=frozenset(m.agency for m in current.members),
        )
        for i, a in enumerate(raw)
    )
    d = fa.set_agreements(agreements, now=datetime.now(UTC))
    print(f"directory serial {d.serial} published with {len(agreements)} agreement(s)")
    for a in agreements:
        if a.review_date is not None and a.review_date <= date.today():
            print(f"note: agreement {a.id} was due for review on {a.review_date}")
    return 0


def cmd_agreements_show(args: argparse.Namespace) -> int:
    d = FederationAuthority(Path(args.dir)).directory()
    now = datetime.now(UTC)
    agreements = [agreement_to_dict(a) for a in d.agreements]
    if args.json:
        print(json.dumps([{**a, "state": agreement_state(a, now)} for a in agreements], indent=2))
        return 0
    print(f"directory serial {d.serial}: {len(agreements)} agreement(s)")
    print(_agreement_rows(agreements, now))
    return 0


# ---- registration ------------------------------------------------------------------------------


def add_users(sub: Any) -> None:
    users = sub.add_parser(
        "users", help="local users, roles and purpose clearances (administrator)"
    )
    usub = users.add_subparsers(dest="users_command", required=True, metavar="SUBCOMMAND")
    roles = ["liaison_officer", "supervisor", "auditor", "administrator"]
    p = usub.add_parser(
        "add",
        help="create a user and print their enrolment code (its first part: the user awaits "
        "a second administrator, but for the bootstrap's second administrator)",
    )
    p.add_argument("name", help="user name (a-z, 0-9, . _ -)")
    p.add_argument("--role", required=True, choices=roles)
    p.add_argument(
        "--clearance",
        action="append",
        metavar="PURPOSE[,PURPOSE]",
        help="purpose(s) the user is cleared for; repeatable",
    )
    _local_arguments(p)
    p.set_defaults(func=cmd_users_add)
    p = usub.add_parser(
        "enrol", help="redeem an enrolment code for your token (needs no token itself)"
    )
    p.add_argument("name", help="your user name")
    p.add_argument(
        "--code",
        required=True,
        action="append",
        help="the enrolment code; twice (first, then second part) where there are two",
    )
    p.add_argument("--save", action="store_true", help="write the token to HOME/tokens/NAME (0600)")
    _home_argument(p)
    p.set_defaults(func=cmd_users_enrol, as_user=None)
    p = usub.add_parser(
        "role", help="give a user another role (one with new access awaits a second administrator)"
    )
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=roles)
    _local_arguments(p)
    p.set_defaults(func=cmd_users_role)
    p = usub.add_parser("list", help="list users")
    _local_arguments(p)
    json_argument(p)
    p.set_defaults(func=cmd_users_list)
    p = usub.add_parser("clearances", help="replace a user's purpose clearances")
    p.add_argument("name", help="the user")
    p.add_argument(
        "--clearance",
        action="append",
        metavar="PURPOSE[,PURPOSE]",
        default=[],
        help="the purposes the user is cleared for from now on (none given: none); repeatable",
    )
    _local_arguments(p)
    p.set_defaults(func=cmd_users_clearances)
    for command, what, func in (
        ("approve", "approve a role another administrator asked for (prints a code part)",
         cmd_users_approve),
        ("reject", "reject a role another administrator asked for", cmd_users_reject),
        ("disable", "disable a user (their token stops working)", cmd_users_disable),
        ("enable", "enable a disabled user again (their token works again)", cmd_users_enable),
    ):  # fmt: skip
        p = usub.add_parser(command, help=what)
        p.add_argument("name", help="the user")
        _local_arguments(p)
        p.set_defaults(func=func)
    p = sub.add_parser("whoami", help="the local user the CLI acts as")
    _local_arguments(p)
    json_argument(p)
    p.set_defaults(func=cmd_whoami)


def add_approvals(sub: Any) -> None:
    ap = sub.add_parser("approvals", help="four-eyes approval of consequential messages")
    asub = ap.add_subparsers(dest="approvals_command", required=True, metavar="SUBCOMMAND")
    p = asub.add_parser("list", help="messages waiting for (or given) a decision")
    p.add_argument(
        "--state",
        default="pending",
        choices=["pending", "approved", "rejected", "all"],
        help="which decisions to list (default pending)",
    )
    _local_arguments(p)
    json_argument(p)
    p.set_defaults(func=cmd_approvals_list)
    p = asub.add_parser("approve", help="approve a held message (a supervisor, not its author)")
    p.add_argument("id", type=message_id, help="message id")
    p.add_argument("--note", help="why")
    _local_arguments(p)
    p.set_defaults(func=cmd_approve)
    p = asub.add_parser("reject", help="reject a held message; it is never sent")
    p.add_argument("id", type=message_id, help="message id")
    p.add_argument("--note", help="why (required)")
    _local_arguments(p)
    p.set_defaults(func=cmd_reject)


def add_transfer(sub: Any) -> None:
    p = sub.add_parser("forward", help="forward a received message to a third agency")
    p.add_argument("id", type=message_id, help="id of the received message")
    p.add_argument("--to", required=True, type=agency_code, help="third agency code")
    p.add_argument("--justification", required=True, help="why it must go there (logged)")
    p.add_argument("--purpose", help="purpose of the transfer (default: the original's)")
    p.add_argument("--sender", type=agency_code, help="originator, if the id is ambiguous")
    p.add_argument(
        "--onward",
        metavar="RULE",
        help="a stricter onward rule for the third agency: FORBIDDEN or WITH_ORIGINATOR_CONSENT "
        "(never looser than the original's)",
    )
    p.add_argument(
        "--tlp", metavar="LEVEL", help="a stricter TLP (never lower than the original's)"
    )
    p.add_argument("--handling", action="append", metavar="CODES", help="handling codes to add")
    p.add_argument(
        "--retention-days",
        type=whole(1, MAX_RETENTION_DAYS),
        metavar="N",
        help=f"a shorter retention (never longer than the original's), 1 to {MAX_RETENTION_DAYS}",
    )
    _local_arguments(p)
    p.set_defaults(func=cmd_forward)
    tr = sub.add_parser("transfer", help="ask for or give consent to onward transfer")
    tsub = tr.add_subparsers(dest="transfer_command", required=True, metavar="SUBCOMMAND")
    p = tsub.add_parser("request", help="ask the originator for consent to forward a message")
    p.add_argument("id", type=message_id, help="id of the message to forward")
    p.add_argument("--to", required=True, type=agency_code, help="the originator (who decides)")
    p.add_argument(
        "--third", required=True, type=agency_code, help="the third agency it would go to"
    )
    p.add_argument("--purpose", required=True, help="purpose code of this request message")
    p.add_argument("--transfer-purpose", help="purpose of the transfer, if not the original's")
    p.add_argument("--reason", required=True, help="grounds for the transfer")
    _local_arguments(p)
    p.set_defaults(func=cmd_transfer_request)
    p = tsub.add_parser("grant", help="grant (or --deny) onward transfer of your message")
    p.add_argument("id", type=message_id, help="id of your original message")
    p.add_argument("--to", required=True, type=agency_code, help="the agency that asked")
    p.add_argument("--third", required=True, type=agency_code, help="the third agency")
    p.add_argument("--purpose", required=True, help="purpose code of this grant message")
    p.add_argument("--transfer-purpose", help="purpose the transfer is granted for")
    p.add_argument("--in-reply-to", type=message_id, help="id of the request being answered")
    p.add_argument("--conditions", help="conditions attached to the grant")
    p.add_argument("--reason", help="grounds (required in practice for a refusal)")
    p.add_argument(
        "--valid-days",
        type=whole(1, MAX_RETENTION_DAYS),
        metavar="N",
        help=f"consent lasts N days, 1 to {MAX_RETENTION_DAYS} (default {GRANT_DAYS}); a later "
        "grant replaces it",
    )
    p.add_argument(
        "--deny", action="store_true", help="refuse instead of grant (withdraws an earlier grant)"
    )
    _local_arguments(p)
    p.set_defaults(func=cmd_transfer_grant)


def add_policy(sub: Any) -> None:
    pol = sub.add_parser("policy", help="published policy: agreements, purposes, retention")
    psub = pol.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")
    p = psub.add_parser("show", help="this node's policy, or a peer's (--peer), signature checked")
    p.add_argument("--peer", type=agency_code, help="agency code of a peer")
    p.add_argument(
        "--json",
        action="store_true",
        help="the signed policy document as signed, with its signature and certificate",
    )
    _local_arguments(p)
    p.set_defaults(func=cmd_policy_show)
    p = sub.add_parser("access-log", help="who consulted, forwarded or approved what (auditor)")
    p.add_argument("--message", type=message_id, help="only entries for this message id")
    p.add_argument(
        "--limit",
        type=whole(1, 5000),
        default=200,
        metavar="N",
        help="the N latest entries, 1 to 5000 (default 200)",
    )
    _local_arguments(p)
    json_argument(p)
    p.set_defaults(func=cmd_access_log)
    ag = sub.add_parser("agreements", help="cooperation agreements in the federation directory")
    gsub = ag.add_subparsers(dest="agreements_command", required=True, metavar="SUBCOMMAND")
    p = gsub.add_parser("set", help="publish agreements from a JSON file (signed, new serial)")
    p.add_argument("--dir", required=True, type=path_arg, help="federation authority directory")
    p.add_argument(
        "--file",
        required=True,
        type=path_arg,
        help="JSON list of agreements (see docs/policy.md)",
    )
    p.set_defaults(func=cmd_agreements_set)
    p = gsub.add_parser(
        "show", help="list the directory's agreements and whether each is in force now"
    )
    p.add_argument("--dir", required=True, type=path_arg, help="federation authority directory")
    json_argument(p)
    p.set_defaults(func=cmd_agreements_show)


GROUPS = (add_users, add_approvals, add_transfer, add_policy)
