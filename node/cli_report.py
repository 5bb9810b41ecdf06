"""`accord report`: the transparency report over a period (docs/report.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from node.cli_args import UsageError, _local_arguments
from node.client import connect, resolve_home

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def period_bound(text: str, what: str, *, end: bool) -> datetime:
    """A date (a whole UTC day: from its start, or to its end) or an RFC 3339 time with its
    offset."""
    text = text.strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{what}: {text!r} is not a date (2026-01-31) or an RFC 3339 time "
            "(2026-01-31T18:00:00Z)"
        ) from None
    if _DATE.fullmatch(text):
        return when.replace(tzinfo=UTC) + (timedelta(days=1) if end else timedelta())
    if when.tzinfo is None:
        raise UsageError(f"{what}: {text!r} needs a UTC offset (Z or +01:00)")
    return when.astimezone(UTC)


def _lines(doc: Any, prefix: str = "") -> list[str]:
    """One `dotted.name: value` line per figure."""
    if isinstance(doc, dict):
        if not doc:
            return [f"{prefix}: none"]
        at = f"{prefix}." if prefix else ""
        return [line for key, value in doc.items() for line in _lines(value, f"{at}{key}")]
    return [f"{prefix}: {'not recorded' if doc is None else doc}"]


def cmd_report(args: argparse.Namespace) -> int:
    from accord.v1 import local_pb2
    from node.report import to_markdown

    since = period_bound(args.since, "--from", end=False)
    until = period_bound(args.until, "--to", end=True)
    if until <= since:
        raise UsageError(f"--to {args.until} is not after --from {args.since}")
    request = local_pb2.ReportRequest()
    getattr(request, "from").FromDatetime(since)
    request.to.FromDatetime(until)
    home = resolve_home(args.home)

    async def call() -> Any:
        async with connect(home, user=args.as_user) as node:
            return await node.api.Report(request)

    doc = json.loads(asyncio.run(call()).json)
    if args.json:
        print(json.dumps(doc, indent=2))
    elif args.md:
        print(to_markdown(doc))
    else:
        print("\n".join(_lines(doc)))
    return 0


def add_report(sub: Any) -> None:
    p = sub.add_parser(
        "report", help="transparency report over a period: counts only (auditor, administrator)"
    )
    p.add_argument(
        "--from",
        dest="since",
        required=True,
        metavar="WHEN",
        help="start: a date (from its first moment, UTC) or an RFC 3339 time",
    )
    p.add_argument(
        "--to",
        dest="until",
        required=True,
        metavar="WHEN",
        help="end, not included: an RFC 3339 time, or a date (to its end, UTC)",
    )
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="the report as JSON")
    form.add_argument("--md", action="store_true", help="the report as Markdown, to publish")
    _local_arguments(p)
    p.set_defaults(func=cmd_report)


GROUPS = (add_report,)
