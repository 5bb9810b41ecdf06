"""`accord`: the command line. Thin over the federation authority and the node's local API.

Each command group registers itself in its own `_add_*` function; `build_parser()` only lists
them, so a new group is one function and one line. Every command that talks to a running node
goes through `node.client.connect()`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import grpc

from certs.ca import FederationAuthority, load_cert
from certs.directory import TLP_LABELS, tlp_label, tlp_name
from certs.errors import PkiError
from certs.identity import check_agency_code
from node import config as config_mod
from node import logs, signing
from node.cli_args import (
    MAX_RETENTION_DAYS,
    UsageError,
    _check_signature,
    _choice,
    _csv,
    _home_argument,
    _local_arguments,
    _names,
    _read_body,
    _table,
    agency_code,
    json_argument,
    message_id,
    number,
    path_arg,
    whole,
)
from node.client import connect, local_error, resolve_home
from node.errors import AccordError
from node.text import printable

Handler = Callable[[argparse.Namespace], int]
log = logging.getLogger("accord")

MAX_CERT_DAYS = 3650  # a node certificate lives at most ten years
MAX_CRL_HOURS = 8760.0  # a CRL promises at most a year ahead
MAX_DIRECTORY_DAYS = 365  # and the directory as far


class Parser(argparse.ArgumentParser):
    """Command-line mistakes look like every other error: one `accord: error:` line, status 2."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("accord").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"accord: error: {where}{message} (see `{self.prog} --help`)\n")


class StartupError(AccordError):
    """`accord node run` could not start the node; nothing of it is left running."""


def _now() -> datetime:
    return datetime.now(UTC)


def _time_arg(text: str, what: str) -> datetime:
    """An RFC 3339 time with its UTC offset (2026-12-01T18:00:00+01:00, or ...Z)."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{what}: {text!r} is not an RFC 3339 time like 2026-12-01T18:00:00+01:00"
        ) from None
    if when.tzinfo is None:
        raise UsageError(f"{what}: {text!r} needs a UTC offset (Z or +01:00)")
    return when


# ---- certs -------------------------------------------------------------------------------------


def cmd_certs_init(args: argparse.Namespace) -> int:
    fa = FederationAuthority.init(Path(args.dir), federation=args.federation, now=_now())
    print(f"federation {fa.name} created in {fa.root}")
    print(f"  CA certificate: {fa.ca_path}\n  CRL: {fa.crl_path}\n  directory: {fa.directory_path}")
    return 0


def cmd_certs_issue(args: argparse.Namespace) -> int:
    fa = FederationAuthority(Path(args.dir))
    check_agency_code(args.agency)
    now = _now()
    previous = fa.unrevoked(args.agency, now)
    if previous and not args.replace:
        serials = ", ".join(f"{s:x}" for s in previous)
        raise UsageError(
            f"{args.agency} already has a certificate (serial {serials}); pass --replace to "
            "issue a new key and certificate in its place"
        )
    issued = fa.issue(
        agency=args.agency,
        endpoint=args.endpoint,
        name=args.name or "",
        days=args.days,
        now=now,
        out=Path(args.out) if args.out else None,
    )
    print(f"issued {issued.agency} certificate serial {issued.serial:x} into {issued.directory}")
    for serial in previous:
        # Not revoked automatically: the operator decides whether the old key was compromised.
        print(
            f"the previous certificate (serial {serial:x}) is no longer listed in the directory, "
            "so peers stop accepting it once they load this directory; it is not revoked: "
            f"`accord certs revoke --dir {args.dir} --serial {serial:x}` puts it on the CRL"
        )
    return 0


def cmd_certs_revoke(args: argparse.Namespace) -> int:
    fa = FederationAuthority(Path(args.dir))
    try:
        serial = int(args.serial, 16) if args.serial else None
    except ValueError as exc:
        raise UsageError(f"--serial: {args.serial!r} is not a hexadecimal serial") from exc
    for s in fa.revoke(now=_now(), agency=args.agency, serial=serial):
        print(f"revoked serial {s:x}")
    print(f"CRL republished: {fa.crl_path}; directory updated: {fa.directory_path}")
    return 0


def cmd_certs_crl(args: argparse.Namespace) -> int:
    fa = FederationAuthority(Path(args.dir))
    path = fa.publish_crl(now=_now(), next_update=timedelta(hours=args.hours))
    print(f"CRL republished: {path} (next update in {args.hours} h)")
    return 0


def cmd_certs_directory(args: argparse.Namespace) -> int:
    fa = FederationAuthority(Path(args.dir))
    d = fa.publish_directory(now=_now(), days=args.days)
    print(f"directory serial {d.serial} signed, valid until {d.valid_until.isoformat()}")
    return 0


def cmd_certs_endpoint(args: argparse.Namespace) -> int:
    fa = FederationAuthority(Path(args.dir))
    d = fa.set_endpoint(agency=args.agency, endpoint=args.endpoint, now=_now())
    print(f"directory serial {d.serial}: {args.agency} at {args.endpoint}")
    return 0


def _add_certs(sub: Any) -> None:
    certs = sub.add_parser("certs", help="federation PKI: CA, certificates, CRL, directory")
    csub = certs.add_subparsers(dest="certs_command", required=True, metavar="SUBCOMMAND")
    p = csub.add_parser("init-federation", help="create a federation CA, CRL and directory")
    p.add_argument(
        "--dir", required=True, type=path_arg, help="federation authority directory to create"
    )
    p.add_argument("--federation", default="accord.test", help="federation DNS name")
    p.set_defaults(func=cmd_certs_init)

    p = csub.add_parser("issue", help="issue a node key and certificate and list it")
    p.add_argument("--dir", required=True, type=path_arg, help="federation authority directory")
    p.add_argument("--agency", required=True, type=agency_code, help="agency code, e.g. NL-POL")
    p.add_argument("--endpoint", required=True, help="HOST:PORT the node listens on")
    p.add_argument("--name", help="agency display name (default: the one listed, else CODE)")
    p.add_argument(
        "--replace",
        action="store_true",
        help="issue even though the agency has a certificate: the directory then lists only the "
        "new one (the old one is not revoked; `certs revoke --serial` does that)",
    )
    p.add_argument(
        "--days",
        type=whole(1, MAX_CERT_DAYS),
        default=365,
        metavar="N",
        help=f"validity in days, 1 to {MAX_CERT_DAYS} (default 365)",
    )
    p.add_argument(
        "--out",
        type=path_arg,
        help="where to write node.key, node.pem, ca.pem (default DIR/issued/CODE)",
    )
    p.set_defaults(func=cmd_certs_issue)

    p = csub.add_parser("revoke", help="revoke a certificate and republish CRL and directory")
    p.add_argument("--dir", required=True, type=path_arg, help="federation authority directory")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--agency", type=agency_code, help="revoke every certificate of this agency")
    group.add_argument("--serial", help="revoke one certificate by serial (hex)")
    p.set_defaults(func=cmd_certs_revoke)

    p = csub.add_parser("crl", help="republish the CRL with a fresh nextUpdate")
    p.add_argument("--dir", required=True, type=path_arg, help="federation authority directory")
    p.add_argument(
        "--hours",
        type=number(0, MAX_CRL_HOURS),
        default=168.0,
        metavar="H",
        help=f"hours until nextUpdate, more than 0 and at most {MAX_CRL_HOURS:g} (default 168); "
        "nodes refuse every peer once it passes",
    )
    p.set_defaults(func=cmd_certs_crl)

    p = csub.add_parser(
        "directory",
        help="sign the directory again with a fresh validity (nodes refuse it once it lapses)",
    )
    p.add_argument("--dir", required=True, type=path_arg, help="federation authority directory")
    p.add_argument(
        "--days",
        type=whole(1, MAX_DIRECTORY_DAYS),
        metavar="N",
        help=f"days it stays valid, 1 to {MAX_DIRECTORY_DAYS}; later publications keep this "
        "(default: as before, at first 30)",
    )
    p.set_defaults(func=cmd_certs_directory)

    p = csub.add_parser("set-endpoint", help="change a member's endpoint in the directory")
    p.add_argument("--dir", required=True, type=path_arg, help="federation authority directory")
    p.add_argument("--agency", required=True, type=agency_code, help="agency code of the member")
    p.add_argument("--endpoint", required=True, help="HOST:PORT")
    p.set_defaults(func=cmd_certs_endpoint)


# ---- node --------------------------------------------------------------------------------------


def cmd_node_init(args: argparse.Namespace) -> int:
    from certs.directory import load_directory
    from node.home import init_home

    fed = Path(args.federation)
    agency = check_agency_code(args.agency)
    # Only the published files (ca.pem, directory.json), never the authority's private key:
    # an agency receives those, not the federation's state directory.
    directory = load_directory(fed / "directory.json", load_cert(fed / "ca.pem"))
    listen = args.listen
    if listen is None:
        member = directory.member(agency)
        if member is None:
            raise UsageError(
                f"{agency} is not in the federation directory, so there is no endpoint to "
                "listen on: pass --listen HOST:PORT (or issue its certificate first)"
            )
        listen = member.endpoint
    path = init_home(
        Path(args.home),
        agency=agency,
        federation=args.federation_name or directory.federation,
        listen=listen,
        issued=Path(args.certs) if args.certs else fed / "issued" / agency,
        directory=fed / "directory.json",
        crl=fed / "crl.pem",
    )
    print(f"node home ready: {path.parent} (listens on {listen}; token of the administrator in "
          f"{path.parent / 'tokens' / 'admin'})")  # fmt: skip
    return 0


# How long `node run` lets in-flight streams finish on SIGTERM, and how much longer it waits for
# the rest of the stop before it exits anyway.
STOP_GRACE = 5.0
STOP_MARGIN = 10.0


def cmd_node_run(args: argparse.Namespace) -> int:
    import threading

    from node.app import Node, tune_collector

    logs.configure(level=args.log_level, fmt=args.log_format)
    config = config_mod.load(resolve_home(args.home), drill=args.drill)
    stopped_in_time = True
    before = set(threading.enumerate())

    async def run() -> None:
        nonlocal stopped_in_time
        try:
            with logs.held():
                node = await Node.open(config, drill=args.drill)
        except (AccordError, PkiError):
            raise
        except Exception as exc:
            log.debug("start-up failed", exc_info=True)
            raise StartupError(f"{config.node.agency} did not start: {describe(exc)}") from exc
        tune_collector()
        metrics = ""
        if node.metrics_port:
            host = config.metrics.address.rpartition(":")[0]
            metrics = f"; metrics at http://{host}:{node.metrics_port}/metrics"
        print(f"{node.agency} ready on port {node.port}{metrics}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # A second signal while stopping: the operator wants it gone now.
            loop.add_signal_handler(sig, os._exit, 128 + sig)
        try:
            await asyncio.wait_for(node.stop(grace=STOP_GRACE), STOP_GRACE + STOP_MARGIN)
        except TimeoutError:
            stopped_in_time = False
            log.error("stop did not finish within %.0f s; exiting anyway", STOP_GRACE + STOP_MARGIN)

    try:
        asyncio.run(run())
    finally:
        _exit_if_stuck(before)
    return 0 if stopped_in_time else 1


def describe(exc: BaseException) -> str:
    """One line for an unforeseen start-up failure (a corrupt database, a bad certificate)."""
    import sqlite3

    if isinstance(exc, sqlite3.DatabaseError):
        return f"database: {exc}; restore accord.db from backup"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _exit_if_stuck(before: set[Any]) -> None:
    """A thread the node left behind after a failed start or stop (a database connection)
    would keep the process alive after main returns: nothing may keep `accord node run` from
    exiting. (Threads that were there `before` are not the node's.)"""
    import threading

    for thread in threading.enumerate():
        if thread not in before and not thread.daemon:
            thread.join(timeout=2.0)
            if thread.is_alive():
                log.error("thread %s still running after the node stopped; exiting", thread.name)
                logging.shutdown()
                sys.stderr.flush()
                os._exit(1)


def cmd_node_health(args: argparse.Namespace) -> int:
    from node.client import health

    status = asyncio.run(health(resolve_home(args.home)))
    print(status)
    return 0 if status == "SERVING" else 1


def _add_node(sub: Any) -> None:
    node = sub.add_parser("node", help="create and run a node")
    nsub = node.add_subparsers(dest="node_command", required=True, metavar="SUBCOMMAND")
    p = nsub.add_parser("init", help="create a node home from issued certificates")
    p.add_argument("--home", required=True, type=path_arg, help="node home directory to create")
    p.add_argument("--agency", required=True, type=agency_code, help="this node's agency code")
    p.add_argument(
        "--federation",
        required=True,
        type=path_arg,
        help="directory with the federation's published files",
    )
    p.add_argument("--federation-name", default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="where to listen for federation traffic (default: the endpoint the directory "
        "lists for the agency)",
    )
    p.add_argument(
        "--certs",
        type=path_arg,
        help="directory with node.key, node.pem, ca.pem (default FED/issued/CODE)",
    )
    p.set_defaults(func=cmd_node_init)

    p = nsub.add_parser("run", help="run the node until SIGINT/SIGTERM")
    _home_argument(p)
    p.add_argument(
        "--drill",
        action="store_true",
        help="drill mode, for a drill cluster only: the administrator can advance the node's "
        "clock, and the config's [drill] section routes peers through fault-injecting proxies",
    )
    p.add_argument(
        "--log-format",
        choices=logs.FORMATS,
        default="text",
        help="text (default) or json: one JSON object per line, for log shippers",
    )
    p.add_argument(
        "--log-level",
        choices=logs.LEVELS,
        default="info",
        help="info (default): one line per event (message queued, received, refused, "
        "receipt stored, link up or down), never content",
    )
    p.set_defaults(func=cmd_node_run)

    p = nsub.add_parser(
        "health",
        help="exit 0 if the node answers its health check as SERVING",
        description="Ask the node at HOME for its gRPC health status on its local socket (no "
        "token needed); print it, exit 0 when SERVING, 1 otherwise (2: no node answers).",
    )
    _home_argument(p)
    p.set_defaults(func=cmd_node_health)


# ---- messages (over the local API) -------------------------------------------------------------


def _paged_listing(p: argparse.ArgumentParser) -> None:
    """A listing of messages over the local API: newest first, a page at a time."""
    _local_arguments(p)
    p.add_argument(
        "--limit",
        type=whole(1, 1000),
        default=100,
        metavar="N",
        help="at most N messages, 1 to 1000 (default 100)",
    )
    p.add_argument(
        "--before", metavar="ID", type=message_id, help="page: messages older than this id"
    )
    json_argument(p)


def build_content(args: argparse.Namespace) -> Any:
    """The MessageContent `accord send` asks the node to send (the node signs and completes it)."""
    from accord.v1 import message_pb2 as pb
    from node.wire import CONTROL_TYPES, INCIDENT_TYPES, MESSAGE_TYPES

    recipients = _csv(args.to)
    if not recipients:
        raise UsageError("--to: name at least one agency code")
    for code in recipients:
        check_agency_code(code)
    type_name = _choice(args.type, MESSAGE_TYPES, what="--type", prefix="MESSAGE_TYPE_")
    fields: dict[str, Any] = {}
    if args.retention_days is not None:
        fields["retention"] = pb.Retention(days=args.retention_days)
    if args.tlp:
        tlp = tlp_name(args.tlp)
        if tlp is None:
            raise UsageError(f"--tlp {args.tlp!r} is not one of: {', '.join(TLP_LABELS)}")
        fields["tlp"] = f"TLP_{tlp}"
    codes = _names(pb.HandlingCode, "HANDLING_CODE_")
    fields["handling_codes"] = [
        "HANDLING_CODE_" + _choice(c, codes, what="--handling code", prefix="HANDLING_CODE_")
        for c in _csv(args.handling)
    ]
    if args.onward:
        rules = _names(pb.OnwardTransfer, "ONWARD_TRANSFER_")
        rule = _choice(args.onward, rules, what="--onward", prefix="ONWARD_TRANSFER_")
        fields["onward_transfer"] = f"ONWARD_TRANSFER_{rule}"
    body: Any
    if type_name in INCIDENT_TYPES:
        kind, body = "incident", pb.IncidentBody()
    elif type_name in CONTROL_TYPES:
        kind, body = "control", pb.ControlBody()
    else:
        kind, body = "liaison", pb.LiaisonBody()
    _read_body(args.body, body, type_name=type_name)
    fields[kind] = body
    if args.reply_by:
        from google.protobuf.timestamp_pb2 import Timestamp

        due = _time_arg(args.reply_by, "--reply-by")
        if due <= _now():
            raise UsageError(f"--reply-by: {args.reply_by} is in the past")
        fields["reply_deadline"] = Timestamp()
        fields["reply_deadline"].FromDatetime(due.astimezone(UTC))
    return pb.MessageContent(
        recipients=recipients,
        type=f"MESSAGE_TYPE_{type_name}",
        purpose=args.purpose,
        legal_basis=args.legal_basis or "",
        urgency="URGENCY_URGENT" if args.urgent else "URGENCY_NORMAL",
        directly_accessible=args.direct,
        in_reply_to=args.reply_to or "",
        # A reply continues the thread of what it answers unless told otherwise.
        correlation_id=args.correlation or args.reply_to or "",
        **fields,
    )


def cmd_send(args: argparse.Namespace) -> int:
    from accord.v1 import local_pb2

    content = build_content(args)
    home = resolve_home(args.home)

    async def send() -> Any:
        async with connect(home, user=args.as_user) as node:
            return await node.api.Send(local_pb2.SendRequest(content=content))

    response = asyncio.run(send())
    print(response.message_id)
    if response.pending_approval:
        status = "held until a supervisor other than you approves it (four eyes)"
    else:
        status = f"queued for {', '.join(response.recipients)}"
    print(f"{status}; follow it with `accord receipts {response.message_id}`", file=sys.stderr)
    return 0


def _iso(ts: Any) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return str(ts.ToDatetime(tzinfo=UTC).isoformat())


def _enum(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix)


def _summary_dict(s: Any) -> dict[str, Any]:
    from accord.v1 import message_pb2 as pb

    doc = {
        "message_id": s.message_id,
        "sender": s.sender,
        "type": _enum(pb.MessageType, s.type, "MESSAGE_TYPE_"),
        "purpose": s.purpose,
        "correlation_id": s.correlation_id,
        "tlp": tlp_label(_enum(pb.Tlp, s.tlp, "TLP_")),
        "urgency": _enum(pb.Urgency, s.urgency, "URGENCY_"),
        "direction": s.direction,
        "created_at": _iso(s.created_at),
        "received_at": _iso(s.received_at),
        "reply_deadline": _iso(s.reply_deadline),
        "retain_until": _iso(s.retain_until),
        "erased_at": _iso(s.erased_at),
        "erase_reason": s.erase_reason,
    }
    if s.direction == "in":
        doc["status"] = s.status
        doc["expected_by"] = _iso(s.expected_by) if s.HasField("expected_by") else None
        doc["answered_at"] = _iso(s.answered_at) if s.HasField("answered_at") else None
        unanswered = doc["expected_by"] is not None and doc["answered_at"] is None
        doc["seconds_left"] = s.seconds_left if unanswered else None
    return doc


def _duration(seconds: float) -> str:
    """A span as a person reads it at a glance, one word for a table: 2d3h, 5h12m, 40m."""
    minutes = int(abs(seconds)) // 60
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days}d{hours}h"
    return f"{hours}h{mins:02d}m" if hours else f"{mins}m"


def _time_left(m: dict[str, Any]) -> str:
    """Time left to answer a received request; negative once it is overdue."""
    left = m.get("seconds_left")
    if left is None:
        return "-"
    return _duration(left) if left >= 0 else f"-{_duration(left)}"


def _thread(m: dict[str, Any]) -> str:
    """A message's thread for a table: '-' when it starts one itself."""
    return "-" if m["correlation_id"] in ("", m["message_id"]) else str(m["correlation_id"])


def _listing(args: argparse.Namespace, method: str, request: Any) -> Any:
    home = resolve_home(args.home)

    async def call() -> Any:
        async with connect(home, user=args.as_user) as node:
            return await getattr(node.api, method)(request)

    return asyncio.run(call())


def _print_listing(
    args: argparse.Namespace,
    docs: list[dict[str, Any]],
    *,
    empty: str,
    headers: Sequence[str],
    row: Callable[[dict[str, Any]], list[str]],
) -> int:
    """A listing as JSON (--json), or as a table, or a line saying there is nothing."""
    if args.json:
        print(json.dumps(docs, indent=2))
    elif not docs:
        print(empty)
    else:
        print(_table(headers, [row(d) for d in docs]))
    return 0


def cmd_inbox(args: argparse.Namespace) -> int:
    from accord.v1 import local_pb2

    request = local_pb2.InboxRequest(limit=args.limit, before_message_id=args.before or "")
    response = _listing(args, "Inbox", request)
    now = response.now.ToDatetime(tzinfo=UTC)
    messages = [_summary_dict(s) for s in response.messages]
    for m in messages:
        m["days_left"] = _days_left(m, now)
    headers = ["ID", "SENDER", "TYPE", "PURPOSE", "URGENCY", "RECEIVED", "DEADLINE", "LEFT",
               "STATUS", "THREAD", "RETAIN-UNTIL", "DAYS-LEFT"]  # fmt: skip
    return _print_listing(
        args,
        messages,
        empty="inbox is empty",
        headers=headers,
        row=lambda m: [
            m["message_id"],
            m["sender"],
            m["type"],
            m["purpose"],
            m["urgency"],
            _short(m["received_at"]),
            _short(m["reply_deadline"]),
            _time_left(m),
            m["status"].upper(),
            _thread(m),
            _short(m["retain_until"]),
            _days_text(m["days_left"], m),
        ],
    )


def cmd_overdue(args: argparse.Namespace) -> int:
    from accord.v1 import local_pb2

    response = _listing(args, "Overdue", local_pb2.OverdueRequest())
    docs = [
        {
            **_summary_dict(o.summary),
            "peer": o.peer,
            "owed": "by us" if o.owed_by_us else "to us",
            "deadline": _iso(o.deadline),
            "expected_by": _iso(o.expected_by),
            "delayed": o.delayed,
            "overdue_seconds": o.overdue_seconds,
        }
        for o in response.requests
    ]
    headers = ["OWED", "ID", "PEER", "PURPOSE", "URGENCY", "DEADLINE", "EXPECTED", "OVERDUE BY"]
    return _print_listing(
        args,
        docs,
        empty="no request is overdue",
        headers=headers,
        row=lambda d: [
            d["owed"],
            d["message_id"],
            d["peer"],
            d["purpose"],
            d["urgency"],
            _short(d["deadline"]),
            _short(d["expected_by"]) + (" (delayed)" if d["delayed"] else ""),
            _duration(d["overdue_seconds"]),
        ],
    )


def _days_left(m: dict[str, Any], now: datetime) -> float | None:
    """Days from the node's `now` to the message's retain_until (None: no limit)."""
    if m["retain_until"] is None:
        return None
    left = (datetime.fromisoformat(m["retain_until"]) - now).total_seconds() / 86400
    return round(left, 2)


def _days_text(left: float | None, m: dict[str, Any]) -> str:
    if m.get("erased_at"):
        return "erased"
    if left is None:
        return "-"
    return "expired" if left <= 0 else f"{left:.1f}"


def _delivery_text(d: dict[str, Any]) -> str:
    reason = f" ({d['reason_code']})" if d["reason_code"] else ""
    return f"{d['recipient']} {d['state']}{reason}"


def cmd_sent(args: argparse.Namespace) -> int:
    from accord.v1 import local_pb2

    request = local_pb2.ListSentRequest(limit=args.limit, before_message_id=args.before or "")
    messages = []
    for item in _listing(args, "ListSent", request).messages:
        doc = _summary_dict(item.summary)
        doc["deliveries"] = [
            {
                "recipient": d.recipient,
                "state": d.state.upper(),
                "reason_code": d.receipt_content.reason_code,
                "attempts": d.attempts,
                "last_error": d.last_error,
            }
            for d in item.deliveries
        ]
        messages.append(doc)
    return _print_listing(
        args,
        messages,
        empty="nothing sent",
        headers=["ID", "TYPE", "PURPOSE", "SENT", "DELIVERY", "THREAD"],
        row=lambda m: [
            m["message_id"],
            m["type"],
            m["purpose"],
            _short(m["created_at"]),
            ", ".join(_delivery_text(d) for d in m["deliveries"]) or "-",
            _thread(m),
        ],
    )


def _short(iso: str | None) -> str:
    if iso is None:
        return "-"
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%SZ")


def _check_receipt(home: Path, agency: str, receipt: Any) -> tuple[bool | None, str]:
    """A receipt's signature, over its content or, signed in a batch, over the batch root its
    audit path leads to (see Receipt in message.proto)."""
    from node.signing import RECEIPT

    return _check_signed(home, agency, receipt, RECEIPT)


def _check_envelope(home: Path, agency: str, envelope: Any) -> tuple[bool | None, str]:
    """An envelope's signature, over its content or, signed with the other sends of its
    batch, over the batch root its audit path leads to (see Envelope in message.proto)."""
    from node.signing import ENVELOPE

    return _check_signed(home, agency, envelope, ENVELOPE)


def _check_signed(
    home: Path, agency: str, item: Any, domain: signing.Domain
) -> tuple[bool | None, str]:
    """`item` (content, signature, proof) checked with `agency`'s certificate."""
    signed = signing.signed_bytes(item.content, item.proof, domain)
    if signed is None:
        return False, "DOES NOT VERIFY: the audit path to the signed batch root is malformed"
    ok, check = _check_signature(home, agency, signed, item.signature)
    if item.proof:
        steps = len(item.proof) // 33
        check += f"; signed in a batch, audit path of {steps} step(s)"
    return ok, check


def _content_doc(content: Any) -> dict[str, Any]:
    """A MessageContent as JSON (the protobuf mapping, field names as in message.proto), with
    an embedded envelope (a forward's original, its originator's grant) opened: its originator
    as an agency code, its message id and its content, instead of base64 bytes."""
    from google.protobuf import json_format  # type: ignore[import-untyped, unused-ignore]

    from node.wire import content_message

    doc: dict[str, Any] = json_format.MessageToDict(content, preserving_proto_field_name=True)
    for name in ("forwarded", "transfer_authorisation"):
        if not content.HasField(name):
            continue
        envelope = getattr(content, name)
        inner = content_message(envelope.content)
        doc[name] = {
            "originator": inner.sender,
            "message_id": inner.message_id,
            "content_sha256": hashlib.sha256(envelope.content).hexdigest(),
            "signature": base64.b64encode(envelope.signature).decode(),
            "signature_proof": base64.b64encode(envelope.proof).decode(),
            "content": _content_doc(inner),
        }
    return doc


def cmd_show(args: argparse.Namespace) -> int:
    from accord.v1 import local_pb2

    home = resolve_home(args.home)

    async def get() -> Any:
        async with connect(home, user=args.as_user) as node:
            request = local_pb2.GetRequest(
                message_id=args.id, sender=args.sender or "", justification=args.justification or ""
            )
            return await node.api.Get(request)

    response = asyncio.run(get())
    summary = _summary_dict(response.summary)
    erased = not response.HasField("envelope")
    data, signature = response.envelope.content, response.envelope.signature
    ok, check = (None, "content erased") if erased else _check_envelope(
        home, response.summary.sender, response.envelope
    )  # fmt: skip
    sha256 = hashlib.sha256(data).hexdigest() if not erased else None
    content = None if erased else _content_doc(response.content)
    if args.json:
        doc = {
            **summary,
            "recipients": list(response.content.recipients),
            "content_sha256": sha256,
            "signature": base64.b64encode(signature).decode() if not erased else None,
            # The audit path to the signed batch root (empty: signed over the content alone).
            "signature_proof": (
                base64.b64encode(response.envelope.proof).decode() if not erased else None
            ),
            "signature_valid": ok,
            "signature_check": check,
            "content": content,
        }
        print(json.dumps(doc, indent=2))
        return 0
    pairs = [
        ("message", summary["message_id"]),
        ("from", summary["sender"]),
        ("to", ", ".join(response.content.recipients) or "-"),
        ("type", summary["type"]),
        ("purpose", summary["purpose"]),
        ("tlp", summary["tlp"]),
        ("urgency", summary["urgency"]),
        ("correlation", summary["correlation_id"] or "-"),
        ("direction", summary["direction"]),
        ("created", _short(summary["created_at"])),
        ("received", _short(summary["received_at"])),
        ("reply by", _short(summary["reply_deadline"])),
        ("retain until", _short(summary["retain_until"])),
        ("content sha256", sha256 or "-"),
        (
            "signature",
            f"ECDSA P-256/SHA-256, {len(signature)} bytes, {check}" if not erased else "-",
        ),
    ]
    if content is not None and "forwarded" in content:
        original = content["forwarded"]
        pairs.append(
            ("forward of", f"message {original['message_id']} by {original['originator']}")
        )
    if summary.get("status"):
        pairs.insert(5, ("status", summary["status"]))
    for key, value in pairs:
        print(f"{key + ':':<16}{value}")
    print()
    print("(content erased)" if content is None else json.dumps(content, indent=2))
    return 1 if ok is False else 0


def cmd_receipts(args: argparse.Namespace) -> int:
    from accord.v1 import local_pb2

    home = resolve_home(args.home)

    async def receipts() -> Any:
        async with connect(home, user=args.as_user) as node:
            return await node.api.Receipts(local_pb2.ReceiptsRequest(message_id=args.id))

    response = asyncio.run(receipts())
    deliveries = []
    for d in response.deliveries:
        rc = d.receipt_content
        has_receipt = d.HasField("receipt")
        ok, check = (
            _check_receipt(home, d.recipient, d.receipt)
            if has_receipt
            else (None, "no receipt yet")
        )
        deliveries.append(
            {
                "recipient": d.recipient,
                "state": d.state.upper(),
                "reason_code": rc.reason_code,
                "reason_detail": rc.reason_detail,
                "received_at": _iso(rc.received_at) if has_receipt else None,
                "retained_until": _iso(rc.retained_until) if has_receipt else None,
                "content_sha256": rc.content_sha256.hex() if has_receipt else None,
                "receipt_signature": base64.b64encode(d.receipt.signature).decode()
                if has_receipt
                else None,
                "receipt_proof": base64.b64encode(d.receipt.proof).decode()
                if has_receipt
                else None,
                "receipt_signature_valid": ok,
                "receipt_signature_check": check,
                "attempts": d.attempts,
                "last_error": d.last_error,
            }
        )
    if args.json:
        print(json.dumps({"message_id": response.message_id, "deliveries": deliveries}, indent=2))
        return 0
    rows = [
        [
            d["recipient"],
            d["state"],
            d["reason_code"] or "-",
            _short(d["received_at"]),
            d["content_sha256"] or "-",
        ]
        for d in deliveries
    ]
    print(f"receipts for {response.message_id}")
    print(_table(["RECIPIENT", "STATE", "REASON", "RECEIVED", "RECEIPTED CONTENT SHA-256"], rows))
    for d in deliveries:
        # A peer's reason and a link's error are not this node's text: printed escaped.
        if d["reason_detail"]:
            print(f"{d['recipient']}: {d['reason_code']}: {printable(d['reason_detail'])}")
        if d["state"] == "QUEUED" and d["last_error"]:
            error = printable(d["last_error"])
            print(f"{d['recipient']}: {d['attempts']} attempt(s), last error: {error}")
        if d["content_sha256"]:
            print(f"{d['recipient']}: receipt signature {d['receipt_signature_check']}")
    return 0


def _add_messages(sub: Any) -> None:
    p = sub.add_parser(
        "send",
        help="send a message through the local node",
        description="Send a message through the local node; prints the message id once it is in "
        "the node's durable outbox. The node checks it against the agreements first and refuses "
        "it with a reason code if a recipient would.",
    )
    _local_arguments(p)
    p.add_argument(
        "--to",
        required=True,
        action="append",
        metavar="CODE[,CODE]",
        help="recipient code(s): DE-BKA,FR-PN",
    )
    p.add_argument(
        "--type",
        required=True,
        metavar="TYPE",
        help="message type without MESSAGE_TYPE_, any case: request_info, incident_publish, ...",
    )
    p.add_argument(
        "--purpose", required=True, help="purpose code, e.g. serious-crime-investigation"
    )
    p.add_argument(
        "--body",
        required=True,
        type=path_arg,
        metavar="FILE.json",
        help="typed body in protobuf JSON ('-' for stdin): IncidentBody for INCIDENT_PUBLISH and "
        "INCIDENT_UPDATE, ControlBody for control types (INCIDENT_RETRACT, HANDLING_UPDATE, "
        "ERASURE_REQUEST, RECTIFICATION, TRANSFER_AUTHORISATION_*), LiaisonBody otherwise",
    )
    p.add_argument(
        "--retention-days",
        type=whole(1, MAX_RETENTION_DAYS),
        metavar="N",
        help=f"keep at most N days after receipt, 1 to {MAX_RETENTION_DAYS}",
    )
    p.add_argument("--tlp", metavar="LEVEL", help="CLEAR, GREEN, AMBER, AMBER+STRICT or RED")
    p.add_argument(
        "--handling", action="append", metavar="CODES", help="handling codes, e.g. H0,H2"
    )
    p.add_argument(
        "--onward",
        metavar="RULE",
        help="onward transfer: FORBIDDEN, WITH_ORIGINATOR_CONSENT, ALLOWED",
    )
    p.add_argument(
        "--urgent",
        action="store_true",
        help="mark urgent (a request is due within 3 days, 8 hours with --direct)",
    )
    p.add_argument(
        "--direct",
        action="store_true",
        help="a request for information directly accessible to the requested agency",
    )
    p.add_argument("--reply-to", metavar="ID", type=message_id, help="the message this one answers")
    p.add_argument(
        "--reply-by",
        metavar="TIME",
        help="reply deadline, RFC 3339 with offset; a request's may be earlier, never later, "
        "than Directive (EU) 2023/977 allows (the default: 8 hours urgent with --direct, "
        "3 days urgent, else 7 days)",
    )
    p.add_argument(
        "--correlation",
        metavar="ID",
        type=message_id,
        help="thread id (default: --reply-to's id)",
    )
    p.add_argument("--legal-basis", metavar="TEXT", help="legal basis of the exchange")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("inbox", help="list messages received by the local node")
    _paged_listing(p)
    p.set_defaults(func=cmd_inbox)

    p = sub.add_parser(
        "overdue",
        help="requests for information past their deadline, unanswered (owed by or to us)",
    )
    _local_arguments(p)
    json_argument(p)
    p.set_defaults(func=cmd_overdue)

    p = sub.add_parser(
        "sent", help="list messages sent from the local node, with each recipient's state"
    )
    _paged_listing(p)
    p.set_defaults(func=cmd_sent)

    p = sub.add_parser(
        "show",
        help="show one message: content, digest and signature check",
        description="Show one message held by the local node. Exits 1 if its signature does not "
        "verify against the sender's certificate in the federation directory.",
    )
    _local_arguments(p)
    p.add_argument("id", metavar="ID", type=message_id, help="message id")
    p.add_argument(
        "--sender",
        type=agency_code,
        help="sender agency, when ids could repeat across senders",
    )
    p.add_argument(
        "--justification",
        metavar="TEXT",
        help="why you read it; the node requires one to show content and logs it",
    )
    json_argument(p, "print one JSON document")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("receipts", help="delivery state and signed receipts of a sent message")
    _local_arguments(p)
    p.add_argument("id", metavar="ID", type=message_id, help="id of a message sent from this node")
    json_argument(p, "print one JSON document")
    p.set_defaults(func=cmd_receipts)


def cmd_status(args: argparse.Namespace) -> int:
    from accord.v1 import local_pb2

    r = _listing(args, "Status", local_pb2.StatusRequest())
    doc = {
        "agency": r.agency,
        "health": r.health,
        "crl_state": r.crl_state,
        "crl_next_update": _iso(r.crl_next_update),
        "directory_serial": r.directory_serial,
        "directory_issued_at": _iso(r.directory_issued_at),
        "peers": [
            {
                "agency": p.agency,
                "link": p.link,
                "last_error": p.last_error,
                "queued": p.queued,
                "oldest_queued_at": _iso(p.oldest_queued_at),
                "sent": p.sent,
                "receipted": p.receipted,
            }
            for p in r.peers
        ],
    }
    # Non-zero while the CRL is stale: every peer is refused, which a monitor should see.
    code = 1 if r.crl_state == "stale" else 0
    if args.json:
        print(json.dumps(doc, indent=2))
        return code
    crl = {
        "fresh": "fresh",
        "expiring": "EXPIRING within a day",
        "stale": "STALE: every peer is refused until a fresh CRL is published (accord certs crl)",
    }.get(r.crl_state, r.crl_state)
    print(f"{r.agency}: {r.health}")
    print(f"CRL: {crl}; next update {_short(doc['crl_next_update'])}")
    print(f"directory: serial {r.directory_serial}, issued {_short(doc['directory_issued_at'])}")
    rows = [
        [
            p["agency"],
            p["link"],
            str(p["queued"]),
            _short(p["oldest_queued_at"]),
            str(p["sent"]),
            str(p["receipted"]),
            (p["last_error"] or "-")[:80],
        ]
        for p in doc["peers"]
    ]
    if rows:
        headers = ["PEER", "LINK", "QUEUED", "OLDEST QUEUED", "SENT", "RECEIPTED", "LAST ERROR"]
        print(_table(headers, rows))
    else:
        print("no peers: nothing sent or queued since the node started")
    return code


def _add_status(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="the node's state: health, CRL, directory, outbox and link per peer",
        description="The node's state for its operator. Exits 1 while the federation CRL is "
        "stale (the node refuses every peer until a fresh one is published).",
    )
    _local_arguments(p)
    json_argument(p, "print one JSON document")
    p.set_defaults(func=cmd_status)


# ---- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="accord", description="Accord: federated secure message exchange between agencies."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from gateway import cli as gateway_cli
    from node import (
        cli_access,
        cli_audit,
        cli_drill,
        cli_evidence,
        cli_redress,
        cli_report,
        cli_retention,
    )

    for add in (
        _add_certs,
        _add_node,
        _add_messages,
        _add_status,
        *cli_access.GROUPS,
        *cli_retention.GROUPS,
        *cli_audit.GROUPS,
        *cli_drill.GROUPS,
        *cli_evidence.GROUPS,
        *cli_report.GROUPS,
        *cli_redress.GROUPS,
        gateway_cli.add_gateway,
    ):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func: Handler = args.func
    try:
        return func(args)
    except (AccordError, PkiError) as exc:
        return _fail(str(exc))
    except grpc.aio.AioRpcError as exc:
        return _fail(str(local_error(exc)))
    except OSError as exc:
        return _fail(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error worth a traceback at exit either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _fail(message: str) -> int:
    print(f"accord: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
