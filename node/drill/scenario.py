"""Drill scenarios: a TOML file parsed and checked completely before any node starts.

Every mistake is one error naming the file and the line (`drills/x.toml:42: step 7 (send):
unknown field 'too'`). tomllib gives no line numbers, so they are found in the text: the Nth
`[[step]]` header, then the line of the field inside it. The step vocabulary and each step's
fields are in STEPS (docs/drills.md describes them).
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.protobuf import json_format  # type: ignore[import-untyped, unused-ignore]

from accord.v1 import local_pb2
from accord.v1 import message_pb2 as pb
from certs.ca import DEFAULT_PURPOSES
from certs.directory import TLP_LABELS, Agreement, agreement_from_dict, tlp_name
from certs.errors import PkiError
from certs.identity import AGENCY_CODE
from node.drill.cluster import DEFAULT_AGENCIES, UserSpec, default_users
from node.drill.proxy import Mode
from node.errors import AccordError, Reason
from node.policy.access import Role
from node.wire import CONTROL_TYPES, INCIDENT_TYPES, MESSAGE_TYPES

DEFAULT_TIMEOUT = 15.0
DEFAULT_USER = "officer"


class ScenarioError(AccordError):
    """A drill file that cannot be run; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Step:
    n: int  # 1-based
    line: int
    do: str
    fields: dict[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    @property
    def where(self) -> str:
        return f"step {self.n} ({self.do}, line {self.line})"


@dataclass(frozen=True, slots=True)
class Scenario:
    path: Path
    name: str
    description: str
    agencies: tuple[str, ...]
    timeout: float
    agreements: tuple[dict[str, Any], ...]  # as written; made concrete when the drill starts
    users: tuple[UserSpec, ...]  # declared beyond the cluster's defaults
    steps: tuple[Step, ...]
    purposes: tuple[str, ...] = field(default=tuple(c for c, _ in DEFAULT_PURPOSES))

    def agreements_at(self, now: datetime) -> tuple[Agreement, ...] | None:
        """The scenario's agreements, with `valid_days` counted from `now`."""
        if not self.agreements:
            return None
        return tuple(
            _agreement(a, now, f"{self.path}: agreement {i + 1}")
            for i, a in enumerate(self.agreements)
        )


def _agreement(raw: dict[str, Any], now: datetime, where: str) -> Agreement:
    doc = dict(raw)
    days = doc.pop("valid_days", 365)
    doc.setdefault("valid_from", (now - timedelta(days=1)).isoformat())
    doc.setdefault("valid_until", (now + timedelta(days=days)).isoformat())
    doc.setdefault("message_types", list(MESSAGE_TYPES))
    try:
        return agreement_from_dict(doc, where)
    except PkiError as exc:
        raise ScenarioError(str(exc)) from exc


# ---- what each step takes ----------------------------------------------------------------------

Check = Callable[[Any, "Context"], str | None]  # an error text, or None


@dataclass(slots=True)
class Context:
    agencies: tuple[str, ...]
    users: dict[str, set[str]]  # agency -> user names
    roles: dict[tuple[str, str], str]
    messages: set[str] = field(default_factory=set)  # labels defined so far
    streams: set[str] = field(default_factory=set)
    agreements: set[str] = field(default_factory=set)
    originated: dict[str, str] = field(default_factory=dict)  # a send's label -> its agency
    redressed: set[str] = field(default_factory=set)  # labels of redressed messages, redresses


def _str(v: Any, c: Context) -> str | None:
    return None if isinstance(v, str) and v.strip() else "must be a non-empty string"


def _bool(v: Any, c: Context) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _number(v: Any, c: Context) -> str | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
    return None if ok else "must be a number >= 0"


def _positive_int(v: Any, c: Context) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and v >= 1
    return None if ok else "must be a whole number >= 1"


def _table(v: Any, c: Context) -> str | None:
    return None if isinstance(v, dict) else "must be a table"


def _strs(v: Any, c: Context) -> str | None:
    ok = isinstance(v, list) and all(isinstance(s, str) for s in v)
    return None if ok else "must be a list of strings"


def _agency(v: Any, c: Context) -> str | None:
    if not isinstance(v, str) or v not in c.agencies:
        return f"unknown agency {v!r} (the drill's agencies: {', '.join(c.agencies)})"
    return None


def _agencies(v: Any, c: Context) -> str | None:
    values = [v] if isinstance(v, str) else v
    if not isinstance(values, list) or not values:
        return "must name an agency or a list of agencies"
    for a in values:
        if (error := _agency(a, c)) is not None:
            return error
    return None


def _pair(v: Any, c: Context) -> str | None:
    if not isinstance(v, list) or len(v) != 2 or v[0] == v[1]:
        return 'must name two different agencies, e.g. ["NL-POL", "DE-BKA"]'
    return _agencies(v, c)


def split_user(value: str) -> tuple[str, str]:
    agency, _, name = value.partition("/")
    return agency, name or DEFAULT_USER


def _user(v: Any, c: Context) -> str | None:
    if not isinstance(v, str):
        return 'must be AGENCY/USER, e.g. "NL-POL/officer"'
    agency, name = split_user(v)
    if (error := _agency(agency, c)) is not None:
        return error
    if name not in c.users.get(agency, set()):
        known = ", ".join(sorted(c.users.get(agency, set())))
        return f"unknown user {name!r} on {agency} (known: {known}; declare others in [[user]])"
    return None


def _message_type(v: Any, c: Context) -> str | None:
    if not isinstance(v, str) or type_name(v) not in MESSAGE_TYPES:
        return f"unknown message type {v!r} (known: {', '.join(t.lower() for t in MESSAGE_TYPES)})"
    return None


def _label(kind: str) -> Check:
    def check(v: Any, c: Context) -> str | None:
        known = c.messages if kind == "message" else c.streams
        if not isinstance(v, str) or v not in known:
            return f"no {kind} {v!r} defined by an earlier step (an `id = ...` of a " + (
                "send or forward)" if kind == "message" else "stream)"
            )
        return None

    return check


def _new_label(v: Any, c: Context) -> str | None:
    if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", v):
        return "must be a name of letters, digits, '.', '_' or '-'"
    if v in c.messages or v in c.streams:
        return f"{v!r} is already the id of an earlier step"
    return None


def _one_of(*values: str) -> Check:
    def check(v: Any, c: Context) -> str | None:
        return None if v in values else f"must be one of {', '.join(values)} (got {v!r})"

    return check


def _tlp(v: Any, c: Context) -> str | None:
    if isinstance(v, str) and tlp_name(v) is not None:
        return None
    return f"must be one of {', '.join(TLP_LABELS)} (got {v!r})"


def _reason(v: Any, c: Context) -> str | None:
    if v not in {r.value for r in Reason}:
        return f"unknown reason code {v!r} (see docs/policy.md)"
    return None


def _gone_reason(v: Any, c: Context) -> str | None:
    return None if v in GONE_REASONS else f"must be one of {', '.join(GONE_REASONS)} (got {v!r})"


def _redressed(v: Any, c: Context) -> str | None:
    if (error := _label("message")(v, c)) is not None:
        return error
    if v not in c.redressed:
        return f"no `redress` step before this one redresses {v!r}"
    return None


def _denied(v: Any, c: Context) -> str | None:
    codes = ("ROLE", "CLEARANCE", "JUSTIFICATION", "TLP", "FOUR_EYES")
    return None if v in codes else f"must be one of {', '.join(codes)} (got {v!r})"


def _duration(v: Any, c: Context) -> str | None:
    try:
        seconds(v)
    except ValueError as exc:
        return str(exc)
    return None


def _agreement_id(v: Any, c: Context) -> str | None:
    if not isinstance(v, str) or (c.agreements and v not in c.agreements):
        return f"unknown agreement {v!r} (the drill's: {', '.join(sorted(c.agreements))})"
    return None


def seconds(value: Any) -> float:
    """A duration: a number of seconds, or a string like "90s", "15m", "2h", "3d"."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", value)
        if m:
            return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    raise ValueError(f'must be seconds or a duration like "90s", "2h", "3d" (got {value!r})')


def type_name(value: str) -> str:
    return value.strip().upper().replace("-", "_").removeprefix("MESSAGE_TYPE_")


COMMON: dict[str, Check] = {"do": _str, "note": _str}
EXPECT = _one_of("queued", "held", "refused")
# Why a read of a message that is no longer there is refused (docs/retention.md, redress.md).
GONE_REASONS = ("ERASED", "EXPIRED", "REDRESSED")
# A `redress` step's kind -> the message type, and what each holder answers it did.
REDRESS_KINDS = {
    "erase": ("ERASURE_REQUEST", "ERASED"),
    "retract": ("INCIDENT_RETRACT", "RETRACTED"),
    "rectify": ("RECTIFICATION", "REPLACED"),
    "handling": ("HANDLING_UPDATE", "HANDLING_UPDATED"),
}
REDRESS_RESULTS = ("ERASED", "RETRACTED", "REPLACED", "HANDLING_UPDATED", "HELD")

# Step name -> (required fields, optional fields). docs/drills.md documents each.
STEPS: dict[str, tuple[dict[str, Check], dict[str, Check]]] = {
    "say": ({"text": _str}, {}),
    "send": (
        {"as": _user, "to": _agencies, "type": _message_type, "purpose": _str},
        {
            "id": _new_label,
            "body": _table,
            "reply_to": _label("message"),
            "correlation": _label("message"),
            "target": _label("message"),
            "retention_days": _positive_int,
            "tlp": _tlp,
            "handling": _strs,
            "onward": _one_of("FORBIDDEN", "WITH_ORIGINATOR_CONSENT", "ALLOWED"),
            "urgent": _bool,
            "direct": _bool,
            "legal_basis": _str,
            "deadline": _duration,
            "expected_in": _duration,
            "expect": EXPECT,
            "reason": _reason,
        },
    ),
    "expect_receipt": (
        {
            "message": _label("message"),
            "status": _one_of("ACCEPTED", "REJECTED", "HELD", "QUEUED"),
        },
        {"from": _agencies, "reason": _reason, "within": _duration},
    ),
    "expect_inbox": (
        {"as": _user},
        {
            "has": _strs,
            "lacks": _strs,
            "thread": _label("message"),
            "within": _duration,
        },
    ),
    "read": (
        {"as": _user, "message": _label("message")},
        {
            "justification": _str,
            "expect": _one_of("granted", "denied", "gone"),
            "denied": _denied,
            "reason": _gone_reason,
            "within": _duration,
            "contains": _strs,
        },
    ),
    "forward": (
        {"as": _user, "message": _label("message"), "to": _agency, "justification": _str},
        {"id": _new_label, "purpose": _str, "expect": EXPECT, "reason": _reason},
    ),
    "approve": (
        {"as": _user, "message": _label("message")},
        {
            "decision": _one_of("approve", "reject"),
            "note": _str,
            "expect": _one_of("granted", "denied"),
            "denied": _denied,
        },
    ),
    "redress": (
        {"as": _user, "message": _label("message"), "kind": _one_of(*REDRESS_KINDS)},
        {
            "id": _new_label,
            "reason": _str,
            "body": _table,
            "tlp": _tlp,
            "handling": _strs,
            "conditions": _str,
        },
    ),
    "expect_redress": (
        {"message": _redressed},
        {"holders": _agencies, "result": _one_of(*REDRESS_RESULTS), "within": _duration},
    ),
    "sweep": ({}, {"agency": _agencies}),
    "audit_verify": ({}, {"agency": _agencies}),
    "evidence": ({"as": _user, "message": _label("message")}, {"justification": _str}),
    "kill": ({"agency": _agency}, {}),
    "restart": ({"agency": _agency}, {"within": _duration}),
    "partition": (
        {"between": _pair},
        {"mode": _one_of(Mode.DROP, Mode.RESET, Mode.BLACKHOLE)},
    ),
    "heal": ({}, {"between": _pair, "within": _duration}),
    "fault": (
        {"from": _agency, "to": _agency, "mode": _one_of(*Mode)},
        {"delay_ms": _number},
    ),
    "revoke": ({"agency": _agency}, {"within": _duration}),
    "publish": (
        {},
        {"agreement": _agreement_id, "set": _table, "within": _duration},
    ),
    "expire_agreement": ({"agreement": _agreement_id}, {"within": _duration}),
    "advance_clock": ({"by": _duration}, {}),
    "wait": ({"seconds": _duration}, {}),
    "stream": (
        {"id": _new_label, "as": _user, "to": _agency},
        {"rate": _number, "type": _message_type, "purpose": _str},
    ),
    "stream_stop": ({"stream": _label("stream")}, {}),
    "expect_stream": (
        {"stream": _label("stream")},
        {"within": _duration, "min_messages": _positive_int},
    ),
}
# Fields of an agreement that `publish` may change (`set = {...}`).
AGREEMENT_FIELDS = (
    "title",
    "parties",
    "purposes",
    "message_types",
    "max_retention_days",
    "max_tlp",
    "handling_codes",
    "onward_transfer",
    "approval_required",
    "allowed_fields",
    "valid_days",
)


# ---- lines -------------------------------------------------------------------------------------


class _Lines:
    """Where things are in the file's text, for error messages."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def headers(self, table: str) -> list[int]:
        pattern = re.compile(rf"^\s*\[\[\s*{re.escape(table)}\s*\]\]")
        return [i + 1 for i, line in enumerate(self.lines) if pattern.match(line)]

    def key(self, name: str, *, start: int = 1, end: int | None = None) -> int | None:
        pattern = re.compile(rf"^\s*[\"']?{re.escape(name)}[\"']?\s*=")
        stop = end if end is not None else len(self.lines) + 1
        for i in range(start - 1, min(stop - 1, len(self.lines))):
            if pattern.match(self.lines[i]):
                return i + 1
        return None

    def next_header(self, after: int) -> int:
        for i in range(after, len(self.lines)):
            if self.lines[i].lstrip().startswith("["):
                return i + 1
        return len(self.lines) + 1


def load(path: Path) -> Scenario:
    """Parse and check a drill file completely; ScenarioError names the file and line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        line = f"{m.group(1)}:" if m else ""
        raise ScenarioError(f"{path}:{line} not valid TOML: {exc}") from exc
    return parse(raw, path=path, text=text)


def parse(raw: dict[str, Any], *, path: Path, text: str) -> Scenario:
    lines = _Lines(text)

    def fail(line: int | None, message: str) -> ScenarioError:
        return ScenarioError(f"{path}:{line or 1}: {message}")

    for key in raw:
        if key not in ("drill", "agreement", "user", "step"):
            raise fail(
                lines.key(key) or _first(lines.headers(key)),
                f"unknown table {key!r} (known: drill, agreement, user, step)",
            )
    head = raw.get("drill")
    if not isinstance(head, dict):
        raise fail(None, "a [drill] table with at least `name` is required")
    head_line = lines.key("name") or 1
    for key in head:
        if key not in ("name", "description", "agencies", "timeout"):
            raise fail(
                lines.key(key),
                f"[drill]: unknown field {key!r} (known: name, description, agencies, timeout)",
            )
    if not isinstance(head.get("name"), str) or not head["name"].strip():
        raise fail(head_line, "[drill]: `name` must be a non-empty string")
    agencies = head.get("agencies", list(DEFAULT_AGENCIES))
    if (
        not isinstance(agencies, list)
        or len(agencies) < 2
        or len(set(agencies)) != len(agencies)
        or not all(isinstance(a, str) and AGENCY_CODE.match(a) for a in agencies)
    ):
        raise fail(
            lines.key("agencies"),
            "[drill]: `agencies` must list two or more different agency codes like NL-POL",
        )
    timeout = head.get("timeout", DEFAULT_TIMEOUT)
    if _number(timeout, Context((), {}, {})) is not None or timeout <= 0:
        raise fail(lines.key("timeout"), "[drill]: `timeout` must be a number of seconds > 0")
    purposes = tuple(c for c, _ in DEFAULT_PURPOSES)

    # Agreements: checked as the federation authority would publish them.
    agreements = raw.get("agreement", [])
    headers = lines.headers("agreement")
    if not isinstance(agreements, list):
        raise fail(lines.key("agreement"), "`agreement` must be written as [[agreement]] tables")
    for i, a in enumerate(agreements):
        a.setdefault("parties", list(agencies))
        try:
            made = _agreement(a, datetime.now(UTC), f"agreement {i + 1}")
        except ScenarioError as exc:
            raise fail(_nth(headers, i), str(exc)) from None
        strangers = sorted(set(made.parties) - set(agencies))
        unknown = sorted(set(made.purposes) - set(purposes))
        if strangers or unknown:
            what = (
                f"parties {', '.join(strangers)} not in the drill's agencies"
                if strangers
                else f"purposes {', '.join(unknown)} not in the federation's vocabulary"
            )
            raise fail(_nth(headers, i), f"agreement {i + 1} ({made.id}): {what}")

    # Users: the cluster's defaults plus any declared.
    users = default_users(agencies, purposes)
    declared = raw.get("user", [])
    headers = lines.headers("user")
    if not isinstance(declared, list):
        raise fail(lines.key("user"), "`user` must be written as [[user]] tables")
    extra = []
    for i, u in enumerate(declared):
        line = _nth(headers, i)
        unknown_keys = sorted(set(u) - {"agency", "name", "role", "clearances"})
        if unknown_keys:
            raise fail(
                line,
                f"user {i + 1}: unknown field {unknown_keys[0]!r} "
                "(known: agency, name, role, clearances)",
            )
        if u.get("agency") not in agencies:
            raise fail(line, f"user {i + 1}: unknown agency {u.get('agency')!r}")
        if not isinstance(u.get("name"), str) or not re.fullmatch(r"[a-z0-9._-]{1,64}", u["name"]):
            raise fail(line, f"user {i + 1}: `name` must be 1-64 of a-z, 0-9, '.', '_', '-'")
        if u.get("role") not in {r.value for r in Role}:
            raise fail(
                line, f"user {i + 1}: `role` must be one of {', '.join(r.value for r in Role)}"
            )
        clearances = u.get("clearances", list(purposes))
        if _strs(clearances, Context((), {}, {})) or set(clearances) - set(purposes):
            raise fail(line, f"user {i + 1}: `clearances` must list purposes of the vocabulary")
        if any(x.agency == u["agency"] and x.name == u["name"] for x in users):
            raise fail(line, f"user {i + 1}: {u['agency']}/{u['name']} exists already")
        spec = UserSpec(u["agency"], u["name"], u["role"], tuple(clearances))
        users.append(spec)
        extra.append(spec)

    ctx = Context(
        agencies=tuple(agencies),
        users={a: {u.name for u in users if u.agency == a} for a in agencies},
        roles={(u.agency, u.name): u.role for u in users},
        agreements={str(a["id"]) for a in agreements} if agreements else {"AGR-DRILL-2026"},
    )
    raw_steps = raw.get("step", [])
    if not isinstance(raw_steps, list) or not raw_steps:
        raise fail(None, "no steps: add [[step]] tables")
    headers = lines.headers("step")
    steps = []
    for i, s in enumerate(raw_steps):
        line = _nth(headers, i) or 1
        end = lines.next_header(line)
        steps.append(
            _check_step(
                i + 1,
                line,
                s,
                ctx,
                fail,
                functools.partial(lines.key, start=line, end=end),
            )
        )
    return Scenario(
        path=path,
        name=head["name"],
        description=str(head.get("description", "")),
        agencies=tuple(agencies),
        timeout=float(timeout),
        agreements=tuple(agreements),
        users=tuple(extra),
        steps=tuple(steps),
    )


def _first(values: Sequence[int]) -> int | None:
    return values[0] if values else None


def _nth(values: Sequence[int], i: int) -> int | None:
    return values[i] if i < len(values) else None


def _check_step(
    n: int,
    line: int,
    raw: Any,
    ctx: Context,
    fail: Callable[[int | None, str], ScenarioError],
    key_line: Callable[[str], int | None],
) -> Step:
    if not isinstance(raw, dict):
        raise fail(line, f"step {n}: must be a table")
    do = raw.get("do")
    if do not in STEPS:
        raise fail(
            key_line("do") or line, f"step {n}: unknown step {do!r} (known: {', '.join(STEPS)})"
        )
    where = f"step {n} ({do})"
    required, optional = STEPS[do]
    known = {**COMMON, **required, **optional}
    for key in raw:
        if key not in known:
            raise fail(
                key_line(key) or line, f"{where}: unknown field {key!r} (known: {', '.join(known)})"
            )
    for key in required:
        if key not in raw:
            raise fail(line, f"{where}: `{key}` is required")
    for key, value in raw.items():
        error = known[key](value, ctx)
        if error is not None:
            raise fail(key_line(key) or line, f"{where}: {key}: {error}")
    step = Step(n, line, do, dict(raw))
    _check_meaning(
        step, ctx, lambda key, message: fail(key_line(key) or line, f"{where}: {message}")
    )
    if do in ("send", "forward", "redress") and "id" in raw:
        ctx.messages.add(raw["id"])
    if do == "send" and "id" in raw:
        ctx.originated[raw["id"]] = split_user(raw["as"])[0]
    if do == "redress":
        ctx.redressed.add(raw["message"])
        if "id" in raw:
            ctx.redressed.add(raw["id"])
    if do == "stream":
        ctx.streams.add(raw["id"])
    return step


def _check_meaning(step: Step, ctx: Context, fail: Callable[[str, str], ScenarioError]) -> None:
    """What the field checks alone cannot see: combinations, bodies, roles."""
    f = step.fields
    if step.do in ("send", "forward"):
        if f.get("expect", "queued") == "refused" and "reason" not in f:
            raise fail("expect", 'expect = "refused" needs `reason` (the reason code)')
        if "reason" in f and f.get("expect") != "refused":
            raise fail("reason", '`reason` goes with expect = "refused"')
    if step.do == "send":
        sender, _ = split_user(f["as"])
        recipients = [f["to"]] if isinstance(f["to"], str) else f["to"]
        if sender in recipients:
            raise fail("to", f"{sender} cannot send to itself")
        build_content(
            step,
            lambda label: "00000000-0000-7000-8000-000000000000",
            fail=lambda m: fail("body", m),
        )
        name = type_name(f["type"])
        if "target" in f and name not in CONTROL_TYPES:
            raise fail("target", f"`target` is for control messages, not {name}")
        if "expected_in" in f and name != "DELAY_NOTICE":
            raise fail(
                "expected_in", "expected_in: only a delay_notice names when the answer is expected"
            )
    if step.do in ("read", "approve"):
        denied = f.get("expect") == "denied"
        if "denied" in f and not denied:
            raise fail("denied", '`denied` goes with expect = "denied"')
    if step.do == "read" and "justification" not in f and f.get("expect") == "granted":
        raise fail("expect", 'a read without `justification` is refused; expect "denied"')
    if step.do == "read":
        gone = f.get("expect") == "gone"
        for key in ("reason", "within"):
            if key in f and not gone:
                raise fail(key, f'`{key}` goes with expect = "gone"')
        if gone and "reason" not in f:
            raise fail("expect", f'expect = "gone" needs `reason` ({", ".join(GONE_REASONS)})')
        if gone and "justification" not in f:
            raise fail(
                "expect",
                'expect = "gone" needs a `justification` (without one the read is refused '
                "for that first)",
            )
    if step.do == "redress":
        _check_redress(f, ctx, fail)
    if step.do == "approve":
        agency, name = split_user(f["as"])
        if f.get("expect", "granted") == "granted" and ctx.roles[(agency, name)] != "supervisor":
            raise fail(
                "as",
                f"{agency}/{name} is not a supervisor; only a supervisor approves "
                '(write expect = "denied" to show the refusal)',
            )
    if step.do == "fault" and f["from"] == f["to"]:
        raise fail("to", "a fault lies between two different agencies")
    if step.do == "fault" and "delay_ms" in f and f["mode"] != "delay":
        raise fail("delay_ms", '`delay_ms` goes with mode = "delay"')
    if step.do == "stream":
        sender, _ = split_user(f["as"])
        if sender == f["to"]:
            raise fail("to", f"{sender} cannot stream to itself")
        if f.get("rate", 10) <= 0 or f.get("rate", 10) > 200:
            raise fail("rate", "`rate` must be between 0 and 200 messages a second")
    if step.do == "publish" and "set" in f:
        if "agreement" not in f:
            raise fail("set", "`set` changes an agreement: name it with `agreement`")
        for key in f["set"]:
            if key not in AGREEMENT_FIELDS:
                raise fail(
                    "set",
                    f"set: unknown agreement field {key!r} (known: {', '.join(AGREEMENT_FIELDS)})",
                )


def _check_redress(
    f: dict[str, Any], ctx: Context, fail: Callable[[str, str], ScenarioError]
) -> None:
    agency, _ = split_user(f["as"])
    origin = ctx.originated.get(f["message"])
    if origin is None:
        raise fail(
            "message",
            f"{f['message']!r} is not the id of a `send`: only a message's originator redresses "
            "it (not a forward, not a redress)",
        )
    if origin != agency:
        raise fail("as", f"{f['message']!r} was sent by {origin}: only {origin} redresses it")
    kind = f["kind"]
    allowed = {"rectify": ("body",), "handling": ("tlp", "handling", "conditions")}.get(kind, ())
    for key in ("body", "tlp", "handling", "conditions"):
        if key in f and key not in allowed:
            raise fail(key, f"`{key}` does not go with kind = {kind!r}")
    if kind == "rectify" and "body" not in f:
        raise fail("kind", 'kind = "rectify" needs `body` (the corrected IncidentBody)')
    if kind == "handling" and not any(k in f for k in allowed):
        raise fail("kind", 'kind = "handling" needs `tlp`, `handling` or `conditions`')
    build_redress(f, "00000000-0000-7000-8000-000000000000", fail=lambda m: fail("body", m))


def _handling_codes(codes: list[str], fail: Callable[[str], Exception]) -> list[Any]:
    for code in codes:
        if code not in ("H0", "H1", "H2", "H3"):
            raise fail(f"handling: unknown code {code!r} (H0-H3)")
    return [f"HANDLING_CODE_{code}" for code in codes]


def build_redress(
    f: dict[str, Any], message_id: str, *, fail: Callable[[str], Exception]
) -> local_pb2.RedressRequest:
    """The RedressRequest a `redress` step asks the originator's node to send."""
    type_name, _ = REDRESS_KINDS[f["kind"]]
    request = local_pb2.RedressRequest(
        message_id=message_id,
        type=f"MESSAGE_TYPE_{type_name}",
        reason=f.get("reason", ""),
        handling_conditions=f.get("conditions", ""),
    )
    if "tlp" in f:
        request.tlp = f"TLP_{tlp_name(str(f['tlp']))}"  # type: ignore[assignment]
    request.handling_codes.extend(_handling_codes(f.get("handling", []), fail))
    if "body" in f:
        try:
            json_format.ParseDict(f["body"], request.corrected_incident)
        except json_format.ParseError as exc:
            raise fail(f"body: not a valid IncidentBody: {' '.join(str(exc).split())}") from exc
    return request


def build_content(
    step: Step,
    message_id: Callable[[str], str],
    *,
    fail: Callable[[str], Exception],
    now: datetime | None = None,
) -> pb.MessageContent:
    """The MessageContent a `send` step asks its node to send; `message_id` resolves labels."""
    f = step.fields
    name = type_name(f["type"])
    recipients = [f["to"]] if isinstance(f["to"], str) else list(f["to"])
    content = pb.MessageContent(
        recipients=recipients,
        type=f"MESSAGE_TYPE_{name}",
        purpose=f["purpose"],
        legal_basis=f.get("legal_basis", "Directive (EU) 2023/977"),
        tlp=f"TLP_{tlp_name(str(f.get('tlp', 'GREEN')))}",
        retention=pb.Retention(days=f.get("retention_days", 30)),
        urgency="URGENCY_URGENT" if f.get("urgent") else "URGENCY_NORMAL",
        directly_accessible=bool(f.get("direct")),
    )
    content.handling_codes.extend(_handling_codes(f.get("handling", ["H0"]), fail))
    if "onward" in f:
        content.onward_transfer = f"ONWARD_TRANSFER_{f['onward']}"  # type: ignore[assignment]
    if "deadline" in f and now is not None:
        content.reply_deadline.FromDatetime(now + timedelta(seconds=seconds(f["deadline"])))
    if "reply_to" in f:
        content.in_reply_to = message_id(f["reply_to"])
        content.correlation_id = message_id(f["reply_to"])
    if "correlation" in f:
        content.correlation_id = message_id(f["correlation"])
    body: Any
    if name in INCIDENT_TYPES:
        body, kind = content.incident, "IncidentBody"
    elif name in CONTROL_TYPES:
        body, kind = content.control, "ControlBody"
    else:
        body, kind = content.liaison, "LiaisonBody"
    try:
        json_format.ParseDict(f.get("body", {}), body)
    except json_format.ParseError as exc:
        raise fail(f"body: not a valid {kind} for {name}: {' '.join(str(exc).split())}") from exc
    if name in CONTROL_TYPES and "target" in f:
        content.control.target_message_id = message_id(f["target"])
        if not content.correlation_id:
            content.correlation_id = content.control.target_message_id
    if "expected_in" in f and name == "DELAY_NOTICE" and now is not None:
        expected = now + timedelta(seconds=seconds(f["expected_in"]))
        content.liaison.delay.expected_by.FromDatetime(expected)
    body.SetInParent()  # an empty body still says which kind it is
    return content
