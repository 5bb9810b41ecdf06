"""Playing a drill scenario against a cluster: `accord drill run FILE [--cluster DIR] [--out DIR]`.

The engine acts as the people and operators of each agency would: through each node's local
API as its users (`node.client.connect`), on the federation authority's files (revocation,
agreements), and on the cluster's processes and proxies (kill -9, restart, partitions). It
checks receipts itself against the published directory rather than trusting a sender's view.

An expectation that does not hold is recorded and the drill goes on, so one run shows every
failure; a step that cannot be carried out at all (a node that will not start, a message a
later step needs that was never sent) stops the run. The report lists both.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc
from cryptography import x509
from google.protobuf import json_format  # type: ignore[import-untyped, unused-ignore]

from accord.v1 import local_pb2
from accord.v1 import message_pb2 as pb
from certs.ca import FederationAuthority, load_cert
from certs.directory import agreement_from_dict, agreement_to_dict, load_directory
from certs.errors import PkiError
from node.audit.checkpoint import NoteKey, origin_for
from node.audit.verify import LogEntry, verify_log
from node.client import NodeNotRunningError, connect, local_error
from node.drill import scenario as sc
from node.drill.cluster import (
    ClusterError,
    ClusterSpec,
    Control,
    RemoteCluster,
    Supervisor,
    advance_node_clock,
    clock_offset,
    cluster_now,
    create_cluster,
    default_users,
    node_health,
    outbox,
    set_clock_offset,
    tail,
)
from node.drill.proxy import Mode
from node.errors import AccordError
from node.evidence.bundle import read_zip
from node.evidence.verify import check_bundle
from node.ids import uuid7
from node.signing import ENVELOPE, RECEIPT, public_key_of, verify
from node.wire import parse_receipt

POLL = 0.05
CALL_TIMEOUT = 10.0
JUSTIFICATION = "drill: check what was exchanged and its signature"
T = TypeVar("T")


class StepFailed(Exception):
    """A step that could not be carried out; the drill stops there."""


@dataclass(slots=True)
class Expectation:
    step: int
    line: int
    do: str
    what: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class Sent:
    label: str
    agency: str
    user: str
    message_id: str
    recipients: list[str]
    sha256: bytes | None  # None when the sender's own user may not read it back


@dataclass(slots=True)
class Stream:
    label: str
    sender: str  # AGENCY/user
    to: str
    rate: float
    type: str
    purpose: str
    confirmed: list[str] = field(default_factory=list)  # ids the sender's node queued
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    retries: int = 0


@dataclass(slots=True)
class Report:
    drill: str
    file: str
    cluster: str
    started_at: str = ""
    seconds: float = 0.0
    steps_total: int = 0
    steps_run: int = 0
    stopped: str = ""  # why the run stopped early, if it did
    expectations: list[Expectation] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    drains: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: {"kills": 0, "restarts": 0, "partitions": 0, "faults": 0}
    )
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.stopped and bool(self.expectations) and all(e.ok for e in self.expectations)

    def latency_summary(self) -> dict[str, float | int | None]:
        values = sorted(self.latencies_ms)
        if not values:
            return {"count": 0, "p50": None, "p95": None, "max": None}
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        return {
            "count": len(values),
            "p50": round(statistics.median(values), 1),
            "p95": round(p95, 1),
            "max": round(values[-1], 1),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "drill": self.drill,
            "file": self.file,
            "cluster": self.cluster,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 2),
            "passed": self.passed,
            "steps": {"total": self.steps_total, "run": self.steps_run},
            "stopped": self.stopped or None,
            "expectations": [
                {
                    "step": e.step,
                    "line": e.line,
                    "do": e.do,
                    "what": e.what,
                    "ok": e.ok,
                    "detail": e.detail,
                }
                for e in self.expectations
            ],
            "delivery_latency_ms": self.latency_summary(),
            "outbox_drains": self.drains,
            "counts": self.counts,
            "streams": self.streams,
            "logs": self.logs,
        }

    def table(self) -> str:
        rows = [
            [
                str(e.step),
                str(e.line),
                "pass" if e.ok else "FAIL",
                e.what[:90],
                e.detail[:60] if not e.ok else "",
            ]
            for e in self.expectations
        ]
        widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(HEADERS)]
        lines = [HEADERS, *rows]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            for line in lines
        )

    def summary(self) -> str:
        failed = sum(not e.ok for e in self.expectations)
        lat = self.latency_summary()
        lines = [
            f"{'PASS' if self.passed else 'FAIL'}: {self.drill}: "
            f"{len(self.expectations) - failed} of {len(self.expectations)} expectations held, "
            f"{self.steps_run} of {self.steps_total} steps run, {self.seconds:.1f} s",
        ]
        if self.stopped:
            lines.append(f"stopped early: {self.stopped}")
        if lat["count"]:
            lines.append(
                f"delivery latency over {lat['count']} receipts: p50 {lat['p50']} ms, "
                f"p95 {lat['p95']} ms, max {lat['max']} ms"
            )
        for d in self.drains:
            lines.append(
                f"outbox drained {d['seconds']:.2f} s after step {d['step']} ({d['after']})"
            )
        c = self.counts
        lines.append(
            f"faults: {c['kills']} kills, {c['restarts']} restarts, {c['partitions']} "
            f"partitions, {c['faults']} other faults"
        )
        for label, s in self.streams.items():
            lines.append(
                f"stream {label}: {s['sent']} sent, {s['accepted']} receipted ACCEPTED, "
                f"{s['received']} at {s['to']} ({s['unique']} distinct): {s['lost']} lost, "
                f"{s['duplicated']} duplicated"
            )
        return "\n".join(lines)

    def markdown(self) -> str:
        lat = self.latency_summary()
        out = [
            f"# Drill report: {self.drill}",
            "",
            f"- file: `{self.file}`",
            f"- cluster: `{self.cluster}`",
            f"- started: {self.started_at}, {self.seconds:.1f} s",
            f"- result: **{'PASS' if self.passed else 'FAIL'}**"
            + (f" (stopped early: {self.stopped})" if self.stopped else ""),
            f"- steps run: {self.steps_run} of {self.steps_total}",
            "",
            "## Expectations",
            "",
            "| step | line | | expectation | detail |",
            "|---|---|---|---|---|",
        ]
        for e in self.expectations:
            detail = e.detail.replace("|", "\\|")
            out.append(
                f"| {e.step} ({e.do}) | {e.line} | {'pass' if e.ok else '**FAIL**'} | "
                f"{e.what.replace('|', chr(92) + '|')} | {detail} |"
            )
        out += ["", "## Delivery latency (receipt time minus creation time)", ""]
        if lat["count"]:
            out.append(
                f"{lat['count']} receipts: p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
                f"max {lat['max']} ms"
            )
        else:
            out.append("no receipts observed")
        out += ["", "## Outbox drain after faults", ""]
        if self.drains:
            out += ["| step | after | seconds |", "|---|---|---|"]
            out += [f"| {d['step']} | {d['after']} | {d['seconds']:.2f} |" for d in self.drains]
        else:
            out.append("no faults healed")
        c = self.counts
        out += [
            "",
            "## Faults",
            "",
            f"{c['kills']} kills, {c['restarts']} restarts, {c['partitions']} partitions, "
            f"{c['faults']} other faults",
        ]
        if self.streams:
            out += [
                "",
                "## Streams",
                "",
                "| stream | to | sent | accepted | received | distinct | lost | duplicated |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for label, s in self.streams.items():
                out.append(
                    f"| {label} | {s['to']} | {s['sent']} | {s['accepted']} | {s['received']} "
                    f"| {s['unique']} | {s['lost']} | {s['duplicated']} |"
                )
        if self.logs:
            out += ["", "## Node logs (last lines)", ""]
            for agency, text in self.logs.items():
                out += [f"### {agency}", "", "```", text, "```", ""]
        return "\n".join(out) + "\n"

    def write(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        (out / "report.md").write_text(self.markdown())


HEADERS = ["STEP", "LINE", "", "EXPECTATION", "DETAIL"]


def _type_name(value: int) -> str:
    return str(pb.MessageType.Name(value)).removeprefix("MESSAGE_TYPE_")


class Engine:
    def __init__(
        self,
        scenario: sc.Scenario,
        *,
        root: Path,
        spec: ClusterSpec,
        control: Control,
        report: Report,
        say: Callable[[str], None],
        out: Path | None = None,
    ) -> None:
        self.scenario = scenario
        self.root = root
        self.out = out or root / "drill-output"  # evidence bundles go here
        self.spec = spec
        self.control = control
        self.report = report
        self.say = say
        self.sent: dict[str, Sent] = {}
        self.streams: dict[str, Stream] = {}
        self.partitions: set[tuple[str, str]] = set()  # (src, dst) ways not passing
        self.certificates: dict[str, x509.Certificate] = {}
        # A redress's label -> the message it redresses, the redress's id, its kind.
        self.redresses: dict[str, tuple[Sent, str, str]] = {}
        self.checkpoints: dict[str, list[bytes]] = {}  # agency -> audit checkpoints seen
        self._latency_seen: set[tuple[str, str]] = set()
        self._step: sc.Step | None = None
        self._refresh_certificates()

    # ---- plumbing ---------------------------------------------------------------------------

    def home(self, agency: str) -> Path:
        return self.root / self.spec.agency(agency).home

    async def api(
        self, who: str, method: str, request: Any, *, deadline: float = CALL_TIMEOUT
    ) -> Any:
        """Call the local API of `who`'s node (AGENCY/user) as that user."""
        agency, user = sc.split_user(who)
        async with connect(self.home(agency), user=user) as node:
            return await getattr(node.api, method)(request, timeout=deadline)

    def expect(self, ok: bool, what: str, detail: str = "") -> bool:
        step = self._step
        assert step is not None
        self.report.expectations.append(Expectation(step.n, step.line, step.do, what, ok, detail))
        mark = "ok" if ok else "FAIL"
        self.say(f"      [{mark}] {what}" + (f": {detail}" if detail and not ok else ""))
        return ok

    async def until(
        self, what: str, probe: Callable[[], Awaitable[T | None]], *, within: float
    ) -> T | None:
        """Poll `probe` until it returns a value; None after `within` seconds."""
        self.say(f"      waiting up to {within:g} s for {what}")
        deadline = time.monotonic() + within
        while True:
            with contextlib.suppress(NodeNotRunningError, grpc.aio.AioRpcError):
                value = await probe()
                if value is not None:
                    return value
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(POLL)

    def within(self, step: sc.Step) -> float:
        return sc.seconds(step.get("within", self.scenario.timeout))

    def message(self, label: str) -> Sent:
        try:
            return self.sent[label]
        except KeyError:
            raise StepFailed(f"message {label!r} was never sent (an earlier step failed)") from None

    def _refresh_certificates(self) -> None:
        """Certificates of every member the directory has listed during the drill: receipts
        and envelopes are checked against them even after a member is revoked."""
        fed = self.root / "federation"
        directory = load_directory(fed / "directory.json", load_cert(fed / "ca.pem"))
        for m in directory.members:
            self.certificates[m.agency] = m.certificate()

    def _verifies_receipt(self, agency: str, receipt: Any) -> bool:
        cert = self.certificates.get(agency)
        return cert is not None and verify(
            public_key_of(cert), receipt.content, receipt.signature, RECEIPT, receipt.proof
        )

    # ---- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        steps = self.scenario.steps
        self.report.steps_total = len(steps)
        try:
            for step in steps:
                self._step = step
                self.say(
                    f"[{step.n}/{len(steps)}] line {step.line}: {step.do}"
                    + (f": {step.get('note')}" if step.get("note") else "")
                )
                try:
                    await getattr(self, f"do_{step.do}")(step)
                except (StepFailed, AccordError, PkiError, OSError, grpc.aio.AioRpcError) as exc:
                    # AccordError covers ClusterError and a node that does not answer.
                    text = (
                        str(local_error(exc)) if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
                    )
                    self.expect(False, f"{step.do} can be carried out", text)
                    self.report.stopped = f"step {step.n} (line {step.line}): {text}"
                    return
                self.report.steps_run += 1
        finally:
            for stream in self.streams.values():
                stream.stop.set()
            for stream in self.streams.values():
                if stream.task is not None:
                    stream.task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await stream.task

    # ---- messages ---------------------------------------------------------------------------

    async def do_say(self, step: sc.Step) -> None:
        self.say(f"      {step.get('text')}")

    async def do_send(self, step: sc.Step) -> None:
        who = step.get("as")
        agency, user = sc.split_user(who)
        content = sc.build_content(
            step,
            lambda label: self.message(label).message_id,
            fail=StepFailed,
            now=cluster_now(self.root),
        )
        expected = step.get("expect", "queued")
        what = f"{who} sends {_type_name(content.type)} to {', '.join(content.recipients)}"
        try:
            response = await self.api(who, "Send", local_pb2.SendRequest(content=content))
        except grpc.aio.AioRpcError as exc:
            error = local_error(exc)
            if expected == "refused":
                self.expect(
                    error.reason == step.get("reason"),
                    f"{what}: refused by {agency} with {step.get('reason')}",
                    f"got {error.reason or error.code.name}: {error.detail}",
                )
                return
            self.expect(False, f"{what}: {expected}", str(error))
            return
        state = "held" if response.pending_approval else "queued"
        if expected == "refused":
            self.expect(
                False,
                f"{what}: refused with {step.get('reason')}",
                f"it was {state} as {response.message_id}",
            )
        else:
            self.expect(state == expected, f"{what}: {expected}", f"it was {state}")
        await self._record(step, agency, user, str(response.message_id), list(response.recipients))

    async def _record(
        self, step: sc.Step, agency: str, user: str, message_id: str, recipients: list[str]
    ) -> None:
        self.say(f"      message {message_id}")
        sha = None
        with contextlib.suppress(grpc.aio.AioRpcError):
            mine = await self.api(
                f"{agency}/{user}",
                "Get",
                local_pb2.GetRequest(
                    message_id=message_id, sender=agency, justification=JUSTIFICATION
                ),
            )
            sha = hashlib.sha256(mine.envelope.content).digest()
        label = step.get("id") or f"step-{step.n}"
        self.sent[label] = Sent(label, agency, user, message_id, recipients, sha)

    async def do_expect_receipt(self, step: sc.Step) -> None:
        sent = self.message(step.get("message"))
        wanted = step.get("from", sent.recipients)
        recipients = [wanted] if isinstance(wanted, str) else list(wanted)
        status = step.get("status")
        reason = step.get("reason", "")
        state = {
            "ACCEPTED": "accepted",
            "REJECTED": "rejected",
            "HELD": "approval-pending",
            "QUEUED": "queued",
        }[status]
        who = f"{sent.agency}/{sent.user}"
        if status == "QUEUED":
            await self._still_queued(step, sent, recipients, who)
            return

        async def settled() -> Any:
            r = await self.api(
                who, "Receipts", local_pb2.ReceiptsRequest(message_id=sent.message_id)
            )
            mine = {d.recipient: d for d in r.deliveries if d.recipient in recipients}
            final = all(
                d.state not in ("queued", "approval-pending") or d.state == state
                for d in mine.values()
            )
            return mine if len(mine) == len(recipients) and final else None

        got = await self.until(
            f"{', '.join(recipients)}'s receipt for {sent.label!r} ({status}"
            + (f" {reason}" if reason else "")
            + ")",
            settled,
            within=self.within(step),
        )
        for recipient in recipients:
            what = f"{recipient} answers {sent.label!r} with {status}" + (
                f" {reason}" if reason else ""
            )
            d = got.get(recipient) if got else None
            if d is None:
                self.expect(False, what, f"no settled delivery within {self.within(step):g} s")
                continue
            if d.state != state or (reason and d.receipt_content.reason_code != reason):
                self.expect(
                    False, what, f"got {d.state.upper()} {d.receipt_content.reason_code}".strip()
                )
                continue
            if status == "HELD":
                self.expect(True, f"{sent.label!r} to {recipient} is held for approval")
                continue
            info = parse_receipt(d.receipt.content)
            signed = self._verifies_receipt(recipient, d.receipt)
            digest = sent.sha256 is None or info.content_sha256 == sent.sha256
            if not signed:
                problem = f"the receipt's signature does not verify with {recipient}'s certificate"
            else:
                problem = "the receipt names another digest than the one sent"
            self.expect(signed and digest, what + ", signed, naming the digest sent", problem)
            self._latency(sent.message_id, recipient, d)

    async def _still_queued(
        self, step: sc.Step, sent: Sent, recipients: list[str], who: str
    ) -> None:
        """QUEUED: no receipt from any of `recipients` for the whole of `within`."""
        within = self.within(step)
        self.say(f"      watching {within:g} s: {', '.join(recipients)} must not receipt it")
        deadline = time.monotonic() + within
        while True:
            r = await self.api(
                who, "Receipts", local_pb2.ReceiptsRequest(message_id=sent.message_id)
            )
            settled = [d for d in r.deliveries if d.recipient in recipients and d.state != "queued"]
            if settled or time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL)
        for recipient in recipients:
            d = next((d for d in r.deliveries if d.recipient == recipient), None)
            what = f"{sent.label!r} to {recipient} stays undelivered for {within:g} s"
            if d is None or d.state != "queued":
                self.expect(False, what, "it was " + (d.state.upper() if d else "never queued"))
            else:
                self.expect(True, what + (f" ({d.last_error})" if d.last_error else ""))

    def _latency(self, message_id: str, recipient: str, d: Any) -> None:
        if (message_id, recipient) in self._latency_seen or not d.HasField("receipt"):
            return
        self._latency_seen.add((message_id, recipient))
        # The message id is a UUIDv7: its first 48 bits are the creation time in ms.
        created_ms = int(message_id.replace("-", "")[:12], 16)
        received = d.receipt_content.received_at.ToDatetime(tzinfo=UTC)
        offset_ms = clock_offset(self.root) * 1000
        latency = received.timestamp() * 1000 - offset_ms - created_ms
        if latency >= 0:
            self.report.latencies_ms.append(latency)

    async def do_expect_inbox(self, step: sc.Step) -> None:
        who = step.get("as")
        has = [self.message(label) for label in step.get("has", [])]
        lacks = [self.message(label) for label in step.get("lacks", [])]
        thread = self.message(step.get("thread")).message_id if step.get("thread") else None

        async def listed() -> dict[str, Any] | None:
            inbox = await self.api(who, "Inbox", local_pb2.InboxRequest(limit=1000))
            rows = {m.message_id: m for m in inbox.messages}
            return rows if all(s.message_id in rows for s in has) else None

        rows = await self.until(
            f"{', '.join(s.label for s in has) or 'the inbox'} in {who}'s inbox",
            listed,
            within=self.within(step) if has else 0,
        )
        if rows is None and not has:
            inbox = await self.api(who, "Inbox", local_pb2.InboxRequest(limit=1000))
            rows = {m.message_id: m for m in inbox.messages}
        for s in has:
            row = rows.get(s.message_id) if rows else None
            ok = row is not None and row.sender == s.agency
            self.expect(
                ok,
                f"{who}'s inbox lists {s.label!r} from {s.agency}",
                "not there" if row is None else f"from {row.sender}",
            )
            if thread is not None and row is not None:
                self.expect(
                    row.correlation_id == thread,
                    f"{who} files {s.label!r} in the thread of {step.get('thread')!r}",
                    f"its thread is {row.correlation_id or 'none'}",
                )
        for s in lacks:
            present = bool(rows) and s.message_id in (rows or {})
            self.expect(not present, f"{who}'s inbox does not hold {s.label!r}", "it does")

    async def do_read(self, step: sc.Step) -> None:
        who = step.get("as")
        sent = self.message(step.get("message"))
        justification = step.get("justification", "")
        expected = step.get("expect", "granted" if justification else "denied")
        if expected == "gone":
            await self._read_gone(step, who, sent, justification)
            return
        what = (
            f"{who} reads {sent.label!r} "
            + ("with" if justification else "without")
            + " a justification"
        )
        try:
            got = await self.api(
                who,
                "Get",
                local_pb2.GetRequest(
                    message_id=sent.message_id, sender=sent.agency, justification=justification
                ),
            )
        except grpc.aio.AioRpcError as exc:
            error = local_error(exc)
            if expected == "denied":
                code = step.get("denied")
                self.expect(
                    error.code == grpc.StatusCode.PERMISSION_DENIED
                    and (code is None or error.denied == code),
                    f"{what}: refused" + (f" ({code})" if code else ""),
                    str(error),
                )
            else:
                self.expect(False, f"{what}: granted", str(error))
            return
        if expected == "denied":
            self.expect(False, f"{what}: refused", "the content was shown")
            return
        cert = self.certificates.get(sent.agency)
        env = got.envelope
        intact = cert is not None and verify(
            public_key_of(cert), env.content, env.signature, ENVELOPE, env.proof
        )
        self.expect(intact, f"{what}: shown, with {sent.agency}'s signature intact")
        text = json_format.MessageToJson(got.content)
        for fragment in step.get("contains", []):
            self.expect(fragment in text, f"{sent.label!r} as read at {who} contains {fragment!r}")

    async def _read_gone(self, step: sc.Step, who: str, sent: Sent, justification: str) -> None:
        """A read refused because the message is no longer there (redressed, expired, erased):
        polled, as an originator's redress reaches each holder in its own time."""
        reason = step.get("reason")
        request = local_pb2.GetRequest(
            message_id=sent.message_id, sender=sent.agency, justification=justification
        )
        last = ""

        async def refused() -> bool | None:
            nonlocal last
            try:
                await self.api(who, "Get", request)
            except grpc.aio.AioRpcError as exc:
                error = local_error(exc)
                if error.code == grpc.StatusCode.UNAVAILABLE:
                    raise
                # A refusal's detail starts with its reason code when it has one.
                last = "refused: " + (
                    error.detail if error.reason else f"{error.code.name}: {error.detail}"
                )
                return error.reason == reason or None
            last = "the content was shown"
            return None

        done = await self.until(
            f"{who}'s read of {sent.label!r} to be refused {reason}",
            refused,
            within=self.within(step),
        )
        self.expect(bool(done), f"{who} reads {sent.label!r}: refused, {reason}", last)

    async def do_forward(self, step: sc.Step) -> None:
        who = step.get("as")
        agency, user = sc.split_user(who)
        original = self.message(step.get("message"))
        expected = step.get("expect", "queued")
        what = f"{who} forwards {original.label!r} to {step.get('to')}"
        request = local_pb2.ForwardRequest(
            message_id=original.message_id,
            sender=original.agency,
            to=step.get("to"),
            purpose=step.get("purpose", ""),
            justification=step.get("justification"),
        )
        try:
            response = await self.api(who, "Forward", request)
        except grpc.aio.AioRpcError as exc:
            error = local_error(exc)
            ok = expected == "refused" and error.reason == step.get("reason")
            self.expect(
                ok,
                f"{what}: {expected}"
                + (f" with {step.get('reason')}" if expected == "refused" else ""),
                str(error),
            )
            return
        state = "held" if response.pending_approval else "queued"
        self.expect(state == expected, f"{what}: {expected}", f"it was {state}")
        await self._record(step, agency, user, str(response.message_id), list(response.recipients))

    async def do_approve(self, step: sc.Step) -> None:
        who = step.get("as")
        sent = self.message(step.get("message"))
        approve = step.get("decision", "approve") == "approve"
        expected = step.get("expect", "granted")
        what = f"{who} {'approves' if approve else 'rejects'} {sent.label!r}"
        try:
            await self.api(
                who,
                "Decide",
                local_pb2.DecideRequest(
                    message_id=sent.message_id,
                    approve=approve,
                    note=step.get("note", "drill: second person's decision"),
                ),
            )
        except grpc.aio.AioRpcError as exc:
            error = local_error(exc)
            code = step.get("denied")
            ok = (
                expected == "denied"
                and error.code == grpc.StatusCode.PERMISSION_DENIED
                and (code is None or error.denied == code)
            )
            self.expect(
                ok,
                f"{what}: "
                + (
                    "refused" + (f" ({code})" if code else "")
                    if expected == "denied"
                    else "granted"
                ),
                str(error),
            )
            return
        self.expect(expected == "granted", f"{what}: {expected}", "it was granted")

    # ---- redress, retention, audit, evidence -----------------------------------------------

    async def do_redress(self, step: sc.Step) -> None:
        who = step.get("as")
        agency, user = sc.split_user(who)
        target = self.message(step.get("message"))
        kind = step.get("kind")
        request = sc.build_redress(step.fields, target.message_id, fail=StepFailed)
        what = f"{who} sends the {kind} redress of {target.label!r}"
        try:
            response = await self.api(who, "Redress", request)
        except grpc.aio.AioRpcError as exc:
            self.expect(False, f"{what}: queued", str(local_error(exc)))
            return
        self.expect(True, f"{what}: queued for {', '.join(response.recipients)}")
        await self._record(step, agency, user, str(response.message_id), list(response.recipients))
        label = step.get("id") or f"step-{step.n}"
        self.redresses[label] = (target, str(response.message_id), kind)

    async def do_expect_redress(self, step: sc.Step) -> None:
        """Every holder the originator knows along the chain has confirmed the redress (the
        originator's node checked each onward holder's signed receipt); the direct holders'
        receipts are checked here too, against the directory."""
        label = step.get("message")
        if label in self.redresses:
            target, redress_id, kind = self.redresses[label]
        else:
            target = self.message(label)
            mine = [(r, k) for t, r, k in self.redresses.values() if t == target]
            if not mine:
                raise StepFailed(f"no redress of {label!r} was sent (an earlier step failed)")
            redress_id, kind = mine[-1]
        redress_type, result = sc.REDRESS_KINDS[kind]
        result = step.get("result", result)
        wanted = step.get("holders")
        holders_wanted = {wanted} if isinstance(wanted, str) else set(wanted or ()) or None
        who = f"{target.agency}/{target.user}"

        async def confirmed() -> Any:
            status = await self.api(
                who, "RedressStatus", local_pb2.RedressStatusRequest(message_id=redress_id)
            )
            info = next((r for r in status.redresses if r.redress_id == redress_id), None)
            if info is None or not info.holders:
                return None
            agencies = {h.agency for h in info.holders}
            if holders_wanted is not None and agencies != holders_wanted:
                return None
            if any(h.state != "confirmed" or h.result != result for h in info.holders):
                return None
            return info

        info = await self.until(
            f"every holder of {target.label!r} to confirm {redress_type} ({result})",
            confirmed,
            within=self.within(step),
        )
        if info is None:
            status = await self.api(
                who, "RedressStatus", local_pb2.RedressStatusRequest(message_id=redress_id)
            )
            info = next((r for r in status.redresses if r.redress_id == redress_id), None)
        holders = list(info.holders) if info is not None else []
        listed = {h.agency for h in holders}
        for agency in sorted((holders_wanted or set()) - listed):
            self.expect(
                False, f"{agency} holds {target.label!r} and confirms {result}", "not listed"
            )
        for h in holders:
            via = f" (via {h.via})" if h.via else ""
            what = f"{h.agency}{via} confirms {redress_type} of {target.label!r}: {result}"
            if holders_wanted is not None and h.agency not in holders_wanted:
                self.expect(False, what, f"{h.agency} holds it, which the step does not expect")
                continue
            ok = h.state == "confirmed" and h.result == result
            self.expect(ok, what, f"{h.state} {h.result} {h.detail}".strip())
        await self._check_redress_receipts(who, target, redress_id, result, holders)

    async def _check_redress_receipts(
        self, who: str, target: Sent, redress_id: str, result: str, holders: list[Any]
    ) -> None:
        """A direct holder's receipt of the redress: signed by it, naming the message it acts
        on and what it did."""
        direct = {h.agency for h in holders if not h.via and h.state == "confirmed"}
        if not direct:
            return
        r = await self.api(who, "Receipts", local_pb2.ReceiptsRequest(message_id=redress_id))
        for d in r.deliveries:
            if d.recipient not in direct:
                continue
            signed = d.HasField("receipt") and self._verifies_receipt(d.recipient, d.receipt)
            content = pb.ReceiptContent.FromString(d.receipt.content) if signed else None
            said = (
                pb.RedressResult.Name(content.redress.result).removeprefix("REDRESS_RESULT_")
                if content is not None
                else ""
            )
            ok = (
                content is not None
                and said == result
                and content.redress.target_message_id == target.message_id
            )
            self.expect(
                ok,
                f"{d.recipient}'s signed receipt says {result} of {target.label!r}",
                "no receipt that verifies" if content is None else f"it says {said}",
            )

    async def do_sweep(self, step: sc.Step) -> None:
        for agency in await self._agencies(step):
            status = await self.api(
                f"{agency}/admin", "RetentionSweep", local_pb2.RetentionSweepRequest()
            )
            self.say(
                f"      {agency} swept: {status.last_expired} expired and {status.last_sunset} "
                f"sunset messages erased, {status.last_keys_destroyed} keys destroyed"
            )

    async def _agencies(self, step: sc.Step) -> list[str]:
        """The step's `agency` (one or a list), else every running node of the drill."""
        named = step.get("agency")
        if named is not None:
            return [named] if isinstance(named, str) else list(named)
        running = {a for a, (up, _, _) in (await self.control.processes()).items() if up}
        return [a for a in self.scenario.agencies if a in running]

    async def do_audit_verify(self, step: sc.Step) -> None:
        """As `accord audit verify`: the whole log recomputed, every checkpoint checked with the
        node's key from the directory; checkpoints an earlier step saw count as kept outside
        the node, so a log rewritten since is caught too."""
        for agency in await self._agencies(step):
            async with connect(self.home(agency), user="admin") as node:
                # A proof of the newest entry makes the node sign a checkpoint covering it, so
                # the whole log is compared with something signed, not only recomputed.
                newest = [
                    e.seq
                    async for c in node.api.AuditLog(
                        local_pb2.AuditLogRequest(limit=1), timeout=CALL_TIMEOUT
                    )
                    for e in c.entries
                ]
                if newest:
                    request = local_pb2.AuditProveRequest(seq=newest[-1])
                    await node.api.AuditProve(request, timeout=CALL_TIMEOUT)
                chunks = [
                    c
                    async for c in node.api.AuditLog(
                        local_pb2.AuditLogRequest(checkpoints=True), timeout=CALL_TIMEOUT
                    )
                ]
            origin = origin_for(self.spec.federation, agency)
            what = f"{agency}'s audit log verifies"
            if not chunks or chunks[0].origin != origin:
                self.expect(False, what, f"the node names another log than {origin}")
                continue
            key = NoteKey(origin, public_key_of(self.certificates[agency]))
            entries = [LogEntry(e.seq, e.data, e.leaf_hash) for c in chunks for e in c.entries]
            notes = list(chunks[0].checkpoints)
            report = verify_log(entries, notes, key, trusted=self.checkpoints.get(agency, []))
            self.checkpoints[agency] = notes
            findings = "; ".join(
                f"{f.kind.value} entry {f.seq}: {f.message}" for f in report.findings[:3]
            )
            self.expect(
                report.ok and report.checkpoints > 0,
                f"{what}: {report.entries} entries, {report.checkpoints} checkpoints",
                findings
                or ("" if report.checkpoints else "no signed checkpoint to compare it with"),
            )

    async def do_evidence(self, step: sc.Step) -> None:
        """Export the message's evidence bundle as `as` into the drill's output folder, check it
        as `accord evidence verify` does, and with openssl as its own VERIFY.sh does."""
        who = step.get("as")
        agency, _ = sc.split_user(who)
        sent = self.message(step.get("message"))
        request = local_pb2.EvidenceRequest(
            message_id=sent.message_id,
            sender=sent.agency,
            justification=step.get("justification", JUSTIFICATION),
        )
        what = f"{who} exports the evidence of {sent.label!r}"
        try:
            response = await self.api(who, "Evidence", request)
        except grpc.aio.AioRpcError as exc:
            self.expect(False, what, str(local_error(exc)))
            return
        folder = self.out / "evidence"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{sent.label}-{agency}"
        (folder / f"{name}.zip").write_bytes(response.bundle)
        self.say(f"      bundle written to {folder / f'{name}.zip'}")
        try:
            files = read_zip(response.bundle)
        except AccordError as exc:
            self.expect(False, f"{what}: a bundle", str(exc))
            return
        checks = check_bundle(files)
        failed = [c for c in checks if not c.ok]
        self.expect(
            not failed,
            f"{what}: all {len(checks)} checks of `accord evidence verify` pass",
            failed[0].line() if failed else "",
        )
        if shutil.which("openssl") is None:
            self.say("      no openssl here: VERIFY.sh not run")
            return
        unpacked = folder / name
        shutil.rmtree(unpacked, ignore_errors=True)
        for path, data in files.items():  # names read_zip allows: no absolute or ../ paths
            (unpacked / path).parent.mkdir(parents=True, exist_ok=True)
            (unpacked / path).write_bytes(data)
        proc = await asyncio.create_subprocess_exec(
            "sh",
            str(unpacked / "VERIFY.sh"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(proc.communicate(), 120)
        lines = output.decode(errors="replace").strip().splitlines()
        self.expect(
            proc.returncode == 0,
            f"{what}: its VERIFY.sh passes with openssl ({len(lines)} checks)",
            lines[-1] if lines else f"exit {proc.returncode}",
        )

    # ---- processes and network --------------------------------------------------------------

    async def do_kill(self, step: sc.Step) -> None:
        await self.control.kill(step.get("agency"))
        self.report.counts["kills"] += 1
        self.say(f"      {step.get('agency')} killed (SIGKILL)")

    async def do_restart(self, step: sc.Step) -> None:
        agency = step.get("agency")
        took = await self.control.restart(agency)
        self.report.counts["restarts"] += 1
        self.say(f"      {agency} serving again after {took:.1f} s")
        others = [a for a in self.scenario.agencies if a != agency]
        ways = [(a, agency) for a in others] + [(agency, a) for a in others]
        await self.drain(step, f"restart of {agency}", ways)

    async def _set(self, src: str, dst: str, mode: Mode, delay: float = 0.0) -> None:
        await self.control.fault(src, dst, mode, delay=delay)
        if mode == Mode.PASS:
            self.partitions.discard((src, dst))
        else:
            self.partitions.add((src, dst))

    async def do_partition(self, step: sc.Step) -> None:
        a, b = step.get("between")
        mode = Mode(step.get("mode", Mode.DROP))
        await self._set(a, b, mode)
        await self._set(b, a, mode)
        self.report.counts["partitions"] += 1
        self.say(f"      {a} and {b} partitioned ({mode.value})")

    async def do_heal(self, step: sc.Step) -> None:
        between = step.get("between")
        if between:
            a, b = between
            ways = [(a, b), (b, a)]
        else:
            ways = sorted(self.partitions)
        for src, dst in ways:
            await self._set(src, dst, Mode.PASS)
        label = f"heal {' '.join(between)}" if between else "heal all"
        await self.drain(step, label, ways)

    async def do_fault(self, step: sc.Step) -> None:
        src, dst, mode = step.get("from"), step.get("to"), Mode(step.get("mode"))
        await self._set(src, dst, mode, step.get("delay_ms", 0) / 1000)
        if mode == Mode.PASS:
            await self.drain(step, f"{src}->{dst} passing again", [(src, dst)])
        else:
            self.report.counts["faults"] += 1

    async def drain(self, step: sc.Step, after: str, ways: list[tuple[str, str]]) -> None:
        """Wait until nothing is queued on the given ways (sender, recipient) whose sender
        runs and that no fault still blocks; record how long it took."""
        ways = [w for w in ways if w not in self.partitions]
        if not ways:
            return
        started = time.monotonic()
        running = {a for a, (up, _, _) in (await self.control.processes()).items() if up}

        async def drained() -> bool | None:
            for src in {s for s, _ in ways if s in running}:
                peers = {p.peer: p.queued for p in (await outbox(self.home(src))).peers}
                if any(peers.get(dst, 0) for s, dst in ways if s == src):
                    return None
            return True

        done = await self.until(
            f"outboxes to drain after {after}", drained, within=self.within(step)
        )
        took = time.monotonic() - started
        if done:
            self.report.drains.append({"step": step.n, "after": after, "seconds": round(took, 3)})
            self.say(f"      outboxes drained in {took:.2f} s")
        else:
            self.expect(False, f"outboxes drain after {after}", f"still queued after {took:.1f} s")

    # ---- federation -------------------------------------------------------------------------

    def authority(self) -> FederationAuthority:
        return FederationAuthority(self.root / "federation")

    async def directory_loaded(
        self, step: sc.Step, serial: int, what: str, *, skip: str = ""
    ) -> None:
        """Wait until every running node but `skip` serves directory `serial`."""
        running = [
            a
            for a, (up, _, _) in (await self.control.processes()).items()
            if up and a != skip and a in self.scenario.agencies
        ]
        started = time.monotonic()

        async def loaded() -> bool | None:
            return await serves_serial(self.root, self.spec, running, serial) or None

        done = await self.until(
            f"{', '.join(running)} to load directory serial {serial}",
            loaded,
            within=self.within(step),
        )
        took = time.monotonic() - started
        self.expect(
            bool(done),
            f"{what}: every node serves directory serial {serial}",
            f"not after {took:.1f} s",
        )
        if done:
            self.say(f"      loaded by every node in {took:.2f} s")
        self._refresh_certificates()

    async def do_revoke(self, step: sc.Step) -> None:
        agency = step.get("agency")
        authority = self.authority()
        authority.revoke(now=cluster_now(self.root), agency=agency)
        serial = authority.directory().serial
        self.say(
            f"      {agency}'s certificate revoked; CRL and directory serial {serial} published"
        )
        await self.directory_loaded(step, serial, f"{agency} revoked", skip=agency)
        # The revoked node finds its own certificate revoked on its own next reload, which may
        # come after the others': until then it still sends (a later step may expect it not to).
        process = (await self.control.processes()).get(agency)
        if process is not None and process[0]:  # running

            async def stopped() -> bool | None:
                return await node_health(self.home(agency)) == "NOT_SERVING" or None

            await self.until(
                f"{agency}'s own node to stop serving", stopped, within=self.within(step)
            )

    async def do_publish(self, step: sc.Step) -> None:
        authority = self.authority()
        now = cluster_now(self.root)
        current = authority.directory()
        if step.get("agreement"):
            changes = dict(step.get("set", {}))
            target = step.get("agreement")
            updated = []
            for a in current.agreements:
                if a.id != target:
                    updated.append(a)
                    continue
                doc = {**agreement_to_dict(a), **changes}
                if "valid_days" in changes:
                    valid_until = now + timedelta(days=doc.pop("valid_days"))
                    doc["valid_until"] = valid_until.isoformat()
                try:
                    updated.append(agreement_from_dict(doc, f"step {step.n}: agreement {target}"))
                except PkiError as exc:
                    raise StepFailed(str(exc)) from exc
            published = authority.set_agreements(tuple(updated), now=now)
        else:
            published = authority.publish_directory(now=now)
        self.say(f"      directory serial {published.serial} published")
        await self.directory_loaded(step, published.serial, f"directory serial {published.serial}")

    async def do_expire_agreement(self, step: sc.Step) -> None:
        authority = self.authority()
        now = cluster_now(self.root)
        target = step.get("agreement")
        agreements = tuple(
            replace(a, valid_until=now - timedelta(seconds=1)) if a.id == target else a
            for a in authority.directory().agreements
        )
        published = authority.set_agreements(agreements, now=now)
        self.say(f"      agreement {target} ends now (directory serial {published.serial})")
        await self.directory_loaded(step, published.serial, f"agreement {target} expired")

    async def do_advance_clock(self, step: sc.Step) -> None:
        by = sc.seconds(step.get("by"))
        before = cluster_now(self.root)
        # A CRL valid both before and after the jump, so no node finds its CRL stale.
        self.authority().publish_crl(now=before, next_update=timedelta(days=7, seconds=by))
        set_clock_offset(self.root, clock_offset(self.root) + by)
        running = [a for a, (up, _, _) in (await self.control.processes()).items() if up]
        for agency in running:
            await advance_node_clock(self.home(agency), by)
        now = cluster_now(self.root).isoformat(timespec="seconds")
        self.say(f"      the cluster's clock is now {now}")

    async def do_wait(self, step: sc.Step) -> None:
        await asyncio.sleep(sc.seconds(step.get("seconds")))

    # ---- streams ----------------------------------------------------------------------------

    async def do_stream(self, step: sc.Step) -> None:
        stream = Stream(
            label=step.get("id"),
            sender=step.get("as"),
            to=step.get("to"),
            rate=float(step.get("rate", 10)),
            type=sc.type_name(step.get("type", "request_info")),
            purpose=step.get("purpose", "serious-crime-investigation"),
        )
        stream.task = asyncio.create_task(self._stream(stream))
        self.streams[stream.label] = stream
        self.say(
            f"      streaming {stream.rate:g} messages a second from {stream.sender} to {stream.to}"
        )

    async def _stream(self, s: Stream) -> None:
        """Each message gets its id and creation time here, so that a Send retried after the
        sender's node died is the same message (the node queues an id once)."""
        n = 0
        while not s.stop.is_set():
            n += 1
            content = pb.MessageContent(
                message_id=uuid7(),
                recipients=[s.to],
                type=f"MESSAGE_TYPE_{s.type}",
                purpose=s.purpose,
                legal_basis="Directive (EU) 2023/977",
                tlp="TLP_GREEN",
                handling_codes=["HANDLING_CODE_H0"],
                retention=pb.Retention(days=30),
                urgency="URGENCY_NORMAL",
            )
            content.created_at.FromDatetime(cluster_now(self.root))
            content.liaison.subject = f"stream {s.label} #{n}"
            content.liaison.text = f"message {n} of drill stream {s.label}"
            request = local_pb2.SendRequest(content=content)
            deadline = time.monotonic() + 60
            while True:
                try:
                    await self.api(s.sender, "Send", request, deadline=5)
                    break
                except (NodeNotRunningError, grpc.aio.AioRpcError) as exc:
                    code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
                    if (
                        code
                        not in (
                            None,
                            grpc.StatusCode.UNAVAILABLE,
                            grpc.StatusCode.DEADLINE_EXCEEDED,
                            grpc.StatusCode.CANCELLED,
                        )
                        or time.monotonic() > deadline
                    ):
                        raise
                    s.retries += 1
                    await asyncio.sleep(0.1)
            s.confirmed.append(content.message_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(s.stop.wait(), 1 / s.rate)

    async def do_stream_stop(self, step: sc.Step) -> None:
        s = self.streams[step.get("stream")]
        s.stop.set()
        if s.task is not None:
            try:
                await s.task
            except (NodeNotRunningError, grpc.aio.AioRpcError) as exc:
                raise StepFailed(f"stream {s.label}: a send failed for good: {exc}") from exc
        count = len(s.confirmed)
        self.say(f"      stream {s.label} stopped after {count} messages ({s.retries} retried)")

    async def do_expect_stream(self, step: sc.Step) -> None:
        """Count at both ends: every message the sender's node queued has an ACCEPTED receipt
        at the sender, and is in the receiver's inbox exactly once."""
        s = self.streams[step.get("stream")]
        if s.task is not None and not s.task.done():
            raise StepFailed(f"stream {s.label} is still running: stop it first (stream_stop)")
        sent = set(s.confirmed)
        receiver = f"{s.to}/officer"

        async def inbox_rows() -> list[str]:
            rows: list[str] = []
            before = ""
            while True:
                page = await self.api(
                    receiver, "Inbox", local_pb2.InboxRequest(limit=1000, before_message_id=before)
                )
                rows += [m.message_id for m in page.messages if m.message_id in sent]
                if len(page.messages) < 1000:
                    return rows
                before = page.messages[-1].message_id

        async def arrived() -> list[str] | None:
            rows = await inbox_rows()
            return rows if set(rows) >= sent else None

        rows = (
            await self.until(
                f"all {len(sent)} messages of stream {s.label} at {s.to}",
                arrived,
                within=self.within(step),
            )
            or await inbox_rows()
        )
        accepted = 0
        for mid in s.confirmed:
            r = await self.api(s.sender, "Receipts", local_pb2.ReceiptsRequest(message_id=mid))
            for d in r.deliveries:
                if d.state == "accepted" and self._verifies_receipt(d.recipient, d.receipt):
                    accepted += 1
                    self._latency(mid, d.recipient, d)
        unique = set(rows)
        lost = len(sent - unique)
        duplicated = len(rows) - len(unique)
        self.report.streams[s.label] = {
            "from": s.sender,
            "to": s.to,
            "sent": len(sent),
            "accepted": accepted,
            "received": len(rows),
            "unique": len(unique),
            "lost": lost,
            "duplicated": duplicated,
            "send_retries": s.retries,
        }
        least = step.get("min_messages", 1)
        self.expect(
            len(sent) >= least,
            f"stream {s.label} sent at least {least} messages",
            f"{len(sent)} sent",
        )
        self.expect(
            lost == 0, f"stream {s.label}: none of {len(sent)} lost at {s.to}", f"{lost} lost"
        )
        self.expect(
            duplicated == 0,
            f"stream {s.label}: none duplicated at {s.to}",
            f"{duplicated} duplicated",
        )
        self.expect(
            accepted == len(sent),
            f"stream {s.label}: every message receipted ACCEPTED at {sc.split_user(s.sender)[0]}",
            f"{accepted} of {len(sent)}",
        )


# ---- setting up and running a drill ------------------------------------------------------------


async def serves_serial(root: Path, spec: ClusterSpec, agencies: list[str], serial: int) -> bool:
    """Whether every one of `agencies`' nodes serves directory `serial` (or newer) now."""
    for agency in agencies:
        async with connect(root / spec.agency(agency).home, user="admin") as admin:
            policy = await admin.api.GetPolicy(local_pb2.PolicyRequest(), timeout=CALL_TIMEOUT)
        if json.loads(policy.policy_json)["directory_serial"] < serial:
            return False
    return True


async def prepare_running(
    root: Path, spec: ClusterSpec, scenario: sc.Scenario, control: Control
) -> None:
    """Bring a running cluster to what the scenario assumes: its users (created by the
    cluster's supervisor, which also gives them console passwords for its gateways) and
    agreements."""
    strangers = sorted(set(scenario.agencies) - set(spec.codes))
    if strangers:
        raise ClusterError(
            f"the cluster at {root} has no {', '.join(strangers)} (it has {', '.join(spec.codes)})"
        )
    if scenario.users:
        await control.create_users(scenario.users)
    agreements = scenario.agreements_at(cluster_now(root))
    if agreements is None:
        return
    authority = FederationAuthority(root / "federation")
    serial = authority.set_agreements(agreements, now=cluster_now(root)).serial
    deadline = time.monotonic() + scenario.timeout
    while not await serves_serial(root, spec, list(scenario.agencies), serial):
        if time.monotonic() > deadline:
            raise ClusterError(
                f"the cluster's nodes did not load the drill's agreements "
                f"(directory serial {serial}) within {scenario.timeout:g} s"
            )
        await asyncio.sleep(POLL)


def node_logs(root: Path, spec: ClusterSpec) -> dict[str, str]:
    return {a.code: tail(root / "logs" / f"{a.home}.log", 30) for a in spec.agencies}


def fresh_cluster(scenario: sc.Scenario) -> tuple[Path, ClusterSpec]:
    """A new cluster for the scenario, in a new directory under /tmp (short: the unix socket
    paths inside must stay under ~100 bytes)."""
    root = Path(tempfile.mkdtemp(prefix="accord-drill-", dir="/tmp"))
    spec = create_cluster(
        root,
        agencies=scenario.agencies,
        agreements=scenario.agreements_at(datetime.now(UTC)),
        users=[*default_users(scenario.agencies, scenario.purposes), *scenario.users],
    )
    return root, spec


async def run_drill(
    scenario: sc.Scenario,
    *,
    root: Path,
    spec: ClusterSpec,
    fresh: bool,
    say: Callable[[str], None],
    out: Path | None = None,
) -> Report:
    """Play `scenario` on a fresh cluster (`fresh`: started here, stopped at the end) or on
    the cluster running at `root`."""
    supervisor = Supervisor(root, spec) if fresh else None
    control: Control = supervisor or RemoteCluster(root, spec)
    report = Report(drill=scenario.name, file=str(scenario.path), cluster=str(root))
    report.started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    try:
        if supervisor is not None:
            say(f"starting a cluster of {', '.join(spec.codes)} in {root}")
            await supervisor.up()
        else:
            say(f"using the cluster running at {root}")
            await control.processes()  # fails clearly if it is not up
            await prepare_running(root, spec, scenario, control)
        engine = Engine(
            scenario, root=root, spec=spec, control=control, report=report, say=say, out=out
        )
        await engine.run()
    except ClusterError as exc:
        report.stopped = f"set-up: {exc}"
    finally:
        report.seconds = time.monotonic() - started
        if not report.passed:
            report.logs = node_logs(root, spec)
        if supervisor is not None:
            await supervisor.down()
    return report
