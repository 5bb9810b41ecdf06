"""`accord` commands for retention (docs/retention.md): the sweeper on demand and its status,
legal holds and their release, the review list, and keeping a message longer."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from accord.v1 import local_pb2
from node.cli_access import _call
from node.cli_args import (
    UsageError,
    _local_arguments,
    _table,
    json_argument,
    message_id,
    whole,
)


def _iso(ts: Any) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return str(ts.ToDatetime(tzinfo=UTC).isoformat())


def _status_doc(s: Any) -> dict[str, Any]:
    return {
        "last_sweep_at": _iso(s.last_sweep_at),
        "last_expired": s.last_expired,
        "last_sunset": s.last_sunset,
        "last_keys_destroyed": s.last_keys_destroyed,
        "last_seconds": round(s.last_seconds, 4),
        "live": s.live,
        "expired_waiting": s.expired_waiting,
        "erased": s.erased,
        "held": s.held,
        "holds": s.holds,
        "keys": s.keys,
        "sweep_seconds": s.sweep_seconds,
    }


def _print_status(args: argparse.Namespace, s: Any) -> int:
    doc = _status_doc(s)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    if doc["last_sweep_at"] is None:
        print(f"no sweep since the node started (one runs every {s.sweep_seconds:g} s)")
    else:
        print(
            f"last sweep {doc['last_sweep_at']}: {s.last_expired} expired and {s.last_sunset} "
            f"sunset messages erased, {s.last_keys_destroyed} keys destroyed "
            f"({s.last_seconds * 1000:.1f} ms); every {s.sweep_seconds:g} s"
        )
    print(
        f"messages: {s.live} kept ({s.held} under {s.holds} hold(s)), {s.expired_waiting} expired "
        f"awaiting the sweep, {s.erased} erased (tombstones); keystore: {s.keys} key(s)"
    )
    return 0


def cmd_retention_sweep(args: argparse.Namespace) -> int:
    return _print_status(args, _call(args, "RetentionSweep", local_pb2.RetentionSweepRequest()))


def cmd_retention_status(args: argparse.Namespace) -> int:
    status = _call(args, "GetRetentionStatus", local_pb2.RetentionStatusRequest())
    return _print_status(args, status)


def _target(args: argparse.Namespace) -> tuple[str, str]:
    if bool(args.id) == bool(args.correlation):
        raise UsageError("give a message id or --correlation ID, not both")
    return args.id or "", args.correlation or ""


def _hold_doc(h: Any) -> dict[str, Any]:
    return {
        "id": h.id,
        "message_id": h.message_id or None,
        "correlation_id": h.correlation_id or None,
        "justification": h.justification,
        "held_by": h.held_by,
        "held_at": _iso(h.held_at),
        "released_by": h.released_by or None,
        "released_at": _iso(h.released_at),
        "release_note": h.release_note or None,
    }


def _print_holds(args: argparse.Namespace, holds: list[Any], verb: str) -> int:
    docs = [_hold_doc(h) for h in holds]
    if args.json:
        print(json.dumps(docs if len(docs) != 1 else docs[0], indent=2))
        return 0
    for d in docs:
        what = f"message {d['message_id']}" if d["message_id"] else (
            f"correlation {d['correlation_id']}"
        )  # fmt: skip
        print(f"hold {d['id']} on {what} {verb}")
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    mid, correlation = _target(args)
    held = _call(
        args,
        "Hold",
        local_pb2.HoldRequest(
            message_id=mid, correlation_id=correlation, justification=args.justification
        ),
    )
    return _print_holds(args, [held], "in force: not swept until released")


def cmd_release(args: argparse.Namespace) -> int:
    mid, correlation = _target(args)
    released = _call(
        args,
        "Release",
        local_pb2.ReleaseRequest(
            message_id=mid, correlation_id=correlation, note=args.justification
        ),
    )
    return _print_holds(args, list(released.released), "released: expiry resumes")


def cmd_review(args: argparse.Namespace) -> int:
    response = _call(
        args, "Review", local_pb2.ReviewRequest(within_days=args.days or 0, limit=args.limit)
    )
    docs = [
        {
            "message_id": i.summary.message_id,
            "sender": i.summary.sender,
            "direction": i.summary.direction,
            "purpose": i.summary.purpose,
            "retain_until": _iso(i.summary.retain_until),
            "why": i.why,
            "held": i.held,
            "keep_at_most": _iso(i.keep_at_most),
        }
        for i in response.items
    ]
    if args.json:
        print(json.dumps(docs, indent=2))
        return 0
    if not docs:
        print("nothing to review")
        return 0
    headers = ["ID", "SENDER", "PURPOSE", "RETAIN-UNTIL", "HELD", "KEEP AT MOST", "WHY"]
    rows = [
        [
            d["message_id"],
            d["sender"],
            d["purpose"],
            (d["retain_until"] or "-")[:16],
            "yes" if d["held"] else "-",
            (d["keep_at_most"] or "-")[:16],
            d["why"],
        ]
        for d in docs
    ]
    print(_table(headers, rows))
    return 0


def _until(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 time like 2027-03-01T00:00:00Z"
        ) from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset (Z or +01:00)")
    return when


def cmd_keep(args: argparse.Namespace) -> int:
    request = local_pb2.KeepRequest(
        message_id=args.id, sender=args.sender or "", justification=args.justification
    )
    request.until.FromDatetime(args.until.astimezone(UTC))
    kept = _call(args, "Keep", request)
    until = _iso(kept.retain_until)
    if args.json:
        print(json.dumps({"message_id": kept.message_id, "retain_until": until}, indent=2))
    else:
        print(f"message {kept.message_id} kept until {until}")
    return 0


def add_retention(sub: Any) -> None:
    r = sub.add_parser("retention", help="the retention sweeper: sweep now, or its status")
    rsub = r.add_subparsers(dest="retention_command", required=True, metavar="SUBCOMMAND")
    p = rsub.add_parser(
        "sweep",
        help="erase expired messages now (supervisor or administrator)",
        description="Erase every expired message not under a legal hold, and what the sunset "
        "rule of an ended agreement erases, and destroy the keys that could still open them.",
    )
    _local_arguments(p)
    json_argument(p, "print one JSON document")
    p.set_defaults(func=cmd_retention_sweep)
    p = rsub.add_parser("status", help="the last sweep and what the node keeps")
    _local_arguments(p)
    json_argument(p, "print one JSON document")
    p.set_defaults(func=cmd_retention_status)


def add_holds(sub: Any) -> None:
    for name, func, what in (
        ("hold", cmd_hold, "put a legal hold: not swept until released (a supervisor)"),
        ("release", cmd_release, "release the holds on a message or correlation id"),
    ):
        p = sub.add_parser(name, help=what)
        p.add_argument("id", nargs="?", type=message_id, help="message id")
        p.add_argument("--correlation", type=message_id, help="every message of this thread")
        p.add_argument("--justification", required=True, help="why (logged)")
        _local_arguments(p)
        json_argument(p, "print JSON")
        p.set_defaults(func=func)
    p = sub.add_parser(
        "review",
        help="messages near expiry or past their agreement's review date",
        description="Messages within --days of their retain_until (or past it), and those of "
        "agreements past their review date, with the longest `accord keep` may allow.",
    )
    p.add_argument(
        "--days",
        type=whole(1, 36500),
        metavar="N",
        help="N days ahead, 1 to 36500 (default: the node's retention.review_days)",
    )
    p.add_argument(
        "--limit",
        type=whole(1, 1000),
        default=100,
        metavar="N",
        help="at most N messages, 1 to 1000 (default 100)",
    )
    _local_arguments(p)
    json_argument(p)
    p.set_defaults(func=cmd_review)
    p = sub.add_parser(
        "keep",
        help="keep a message longer (a supervisor; never past its agreement's maximum)",
    )
    p.add_argument("id", type=message_id, help="message id")
    p.add_argument("--until", required=True, type=_until, help="the new retain_until (RFC 3339)")
    p.add_argument("--justification", required=True, help="why (logged)")
    p.add_argument("--sender", help="sender, if the id is ambiguous")
    _local_arguments(p)
    json_argument(p, "print JSON")
    p.set_defaults(func=cmd_keep)


GROUPS = (add_retention, add_holds)
