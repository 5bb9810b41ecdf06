"""`accord demo`: a three-agency exchange on loopback, end to end, with a report.

It does what an operator would: creates a federation (CA, certificates, a signed directory with
one cooperation agreement), initialises three node homes, starts three `accord node run`
processes, and then talks to each node only through its local API (`node.client.connect`), the
same way the CLI does. Every wait is bounded; the exit status is 0 only if every expectation
held.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2

from accord.v1 import local_pb2
from accord.v1 import message_pb2 as pb
from certs.ca import FederationAuthority, load_cert, write_private
from certs.directory import Agreement, load_directory
from node import samples
from node.client import Connection, NodeNotRunningError, connect, local_error, reason_of
from node.envelope import (
    MESSAGE_TYPES,
    parse_receipt,
    public_key_of,
    verify_envelope,
    verify_receipt,
)
from node.errors import ConfigError
from node.home import init_home

FEDERATION = "demo.accord.test"
AGENCIES = ("NL-POL", "DE-BKA", "FR-PN")
AGREEMENT_ID = "AGR-DEMO-2026"
PERMITTED_PURPOSES = (
    "serious-crime-investigation",
    "organised-crime",
    "counter-terrorism",
    "missing-persons",
)
# In the federation's purpose vocabulary, but not in the agreement: the refusal the demo shows.
REFUSED_PURPOSE = "cybercrime"
OFFICER = "officer"
JUSTIFICATION = "demo: verify what was exchanged and its signatures"

READY_TIMEOUT = 30.0
DELIVERY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
POLL = 0.05

T = TypeVar("T")


class DemoError(Exception):
    """A step that could not complete (as opposed to an expectation that did not hold)."""


@dataclass(slots=True)
class Report:
    checks: list[tuple[bool, str]] = field(default_factory=list)

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    def expect(self, ok: bool, what: str) -> bool:
        self.checks.append((ok, what))
        if not ok:
            self.say(f"   !! expectation failed: {what}")
        return ok

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for ok, _ in self.checks)


@dataclass(slots=True)
class RunningNode:
    agency: str
    home: Path
    endpoint: str
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    api: Any = None  # LocalApiStub once connected


# ---- set-up ------------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; all bound at once so they differ from each other."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def create_federation(root: Path, report: Report) -> list[RunningNode]:
    now = datetime.now(UTC)
    authority = FederationAuthority.init(root / "federation", federation=FEDERATION, now=now)
    nodes = []
    for agency, port in zip(AGENCIES, free_ports(len(AGENCIES)), strict=True):
        endpoint = f"127.0.0.1:{port}"
        issued = authority.issue(agency=agency, endpoint=endpoint, now=now)
        home = root / agency.lower()
        init_home(
            home,
            agency=agency,
            federation=FEDERATION,
            listen=endpoint,
            issued=issued.directory,
            directory=authority.directory_path,
            crl=authority.crl_path,
        )
        nodes.append(RunningNode(agency, home, endpoint, root / f"{agency.lower()}.log"))
    agreement = Agreement(
        id=AGREEMENT_ID,
        title="Demo agreement: serious and organised crime, terrorism, missing persons",
        parties=AGENCIES,
        purposes=PERMITTED_PURPOSES,
        message_types=MESSAGE_TYPES,
        max_retention_days=180,
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=365),
    )
    directory = authority.set_agreements((agreement,), now=now)
    report.say(f"federation {FEDERATION} in {root}")
    report.say(
        f"  CA, CRL and signed directory (serial {directory.serial}) in {authority.root}; "
        f"agreement {AGREEMENT_ID} among {', '.join(AGENCIES)}"
    )
    report.say(f"  permitted purposes: {', '.join(PERMITTED_PURPOSES)}; all message types")
    return nodes


async def start_node(node: RunningNode) -> None:
    log = node.log_path.open("wb")
    try:
        node.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "node.cli", "node", "run", "--home", str(node.home),
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    finally:
        log.close()  # the child holds its own descriptor
    node.started = time.monotonic()


async def wait_ready(node: RunningNode) -> float:
    """Wait until the node's local API answers a health check as SERVING; seconds since start.

    Connects as the bootstrap administrator, whose token the node writes on first start.
    """
    assert node.process is not None
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if node.process.returncode is not None:
            raise DemoError(
                f"{node.agency} exited with status {node.process.returncode} while starting:\n"
                + tail(node.log_path)
            )
        try:
            async with connect(node.home, user="admin") as conn:
                reply = await conn.health.Check(health_pb2.HealthCheckRequest(), timeout=2.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic() - node.started
        except (NodeNotRunningError, ConfigError, grpc.aio.AioRpcError):
            pass  # not listening yet, or no admin token yet
        await asyncio.sleep(POLL)
    raise DemoError(f"{node.agency} not ready after {READY_TIMEOUT:.0f} s:\n{tail(node.log_path)}")


async def enrol_officer(node: RunningNode, stack: contextlib.AsyncExitStack) -> None:
    """Create the liaison officer who sends and reads in the demo; connect as them.

    Administrators manage a node but never see traffic, so the exchange needs an operational
    user with purpose clearances (the refused purpose included: the refusal shown must come
    from the agreement, not from a missing clearance).
    """
    async with connect(node.home, user="admin") as admin:
        added = await admin.api.AddUser(
            local_pb2.AddUserRequest(
                name=OFFICER,
                role="liaison_officer",
                clearances=[*PERMITTED_PURPOSES, REFUSED_PURPOSE],
            )
        )
    # The administrator gets an enrolment code, never a token; the officer redeems it.
    async with connect(node.home, anonymous=True) as anyone:
        enrolled = await anyone.api.Enrol(
            local_pb2.EnrolRequest(name=OFFICER, code=added.enrolment_code)
        )
    tokens = node.home / "tokens"
    tokens.mkdir(mode=0o700, exist_ok=True)
    write_private(tokens / OFFICER, str(enrolled.token).encode())
    conn: Connection = await stack.enter_async_context(connect(node.home, user=OFFICER))
    node.api = conn.api


async def stop_node(node: RunningNode, report: Report) -> None:
    process = node.process
    if process is None or process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        report.expect(False, f"{node.agency} stops within {STOP_TIMEOUT:.0f} s of SIGTERM")
        return
    socket_gone = not (node.home / "node.sock").exists()
    report.say(f"  {node.agency} stopped (exit status {code})")
    report.expect(code == 0 and socket_gone, f"{node.agency} stops cleanly on SIGTERM")


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "    (no log)"
    return "\n".join(f"    | {line}" for line in text[-lines:]) or "    (log is empty)"


async def until(what: str, probe: Callable[[], Awaitable[T | None]], *, seconds: float) -> T:
    try:
        async with asyncio.timeout(seconds):
            while True:
                value = await probe()
                if value is not None:
                    return value
                await asyncio.sleep(POLL)  # the state lives in another process: poll it
    except TimeoutError:
        raise DemoError(f"timed out after {seconds:.0f} s waiting for {what}") from None


# ---- messages ----------------------------------------------------------------------------------


def incident_content() -> Any:
    content = samples.incident(
        to=["DE-BKA", "FR-PN"],
        retention_days=90,
        narrative="Armed robbery of a cash-in-transit vehicle; suspects fled east in a dark Audi.",
    )
    content.legal_basis = "Council Framework Decision 2006/960/JHA (Swedish Initiative)"
    content.urgency = pb.URGENCY_URGENT
    body = content.incident
    body.incident_id = "NL-POL-2026-0042"
    body.location.place = "Venlo, A67 near the German border"
    vehicle = body.entities.add(entity_id="v1")
    vehicle.vehicle.CopyFrom(
        pb.Vehicle(registration="B-XY 1234", registration_country="DE", make="Audi", colour="black")
    )
    vehicle.evaluation.CopyFrom(
        pb.Evaluation(source=pb.SOURCE_RELIABILITY_B, information=pb.INFORMATION_ACCURACY_2)
    )
    return content


def liaison_content(*, to: str, type_: Any, purpose: str, subject: str, text: str) -> Any:
    content = pb.MessageContent(
        recipients=[to],
        type=type_,
        purpose=purpose,
        legal_basis="Directive (EU) 2023/977, Art. 4",
        handling_codes=[pb.HANDLING_CODE_H0],
        tlp=pb.TLP_GREEN,
        retention=pb.Retention(days=60),
        urgency=pb.URGENCY_URGENT,
    )
    content.liaison.subject = subject
    content.liaison.text = text
    return content


def type_name(value: int) -> str:
    return str(pb.MessageType.Name(value)).removeprefix("MESSAGE_TYPE_")


class Demo:
    def __init__(self, nodes: list[RunningNode], report: Report, *, federation: Path) -> None:
        self.nodes = {n.agency: n for n in nodes}
        self.report = report
        self.step = 0
        # The published directory is what receipts and signatures are checked against, so the
        # demo's checks do not rest on any node's own view.
        self.directory = load_directory(
            federation / "directory.json", load_cert(federation / "ca.pem")
        )

    def api(self, agency: str) -> Any:
        return self.nodes[agency].api

    def heading(self, sender: str, content: Any) -> None:
        self.step += 1
        self.report.say()
        self.report.say(
            f"{self.step}. {sender} -> {', '.join(content.recipients)}  "
            f"{type_name(content.type)}  purpose {content.purpose}"
        )

    async def send(self, sender: str, content: Any) -> str:
        """Send, wait for every receipt, print and check them; the message id."""
        self.heading(sender, content)
        response = await self.api(sender).Send(local_pb2.SendRequest(content=content))
        mid = str(response.message_id)
        mine = await self.api(sender).Get(
            local_pb2.GetRequest(message_id=mid, sender=sender, justification=JUSTIFICATION)
        )
        sent_digest = hashlib.sha256(mine.envelope.content).digest()
        created = mine.content.created_at.ToDatetime(tzinfo=UTC)
        self.report.say(f"   message {mid}")
        self.report.say(f"   content sha256 {sent_digest.hex()}")

        async def all_receipted() -> Any:
            r = await self.api(sender).Receipts(local_pb2.ReceiptsRequest(message_id=mid))
            done = all(d.state != "queued" for d in r.deliveries)
            return r if done and len(r.deliveries) == len(content.recipients) else None

        receipts = await until(f"receipts for {mid}", all_receipted, seconds=DELIVERY_TIMEOUT)
        for d in receipts.deliveries:
            info = parse_receipt(d.receipt.content)
            member = self.directory.member(d.recipient)
            signed = member is not None and verify_receipt(
                public_key_of(member.certificate()),
                d.receipt.content,
                d.receipt.signature,
                d.receipt.proof,
            )
            latency_ms = (info.received_at - created).total_seconds() * 1000
            state = "ACCEPTED" if info.accepted else f"REJECTED {info.reason_code}"
            retained = info.retained_until.date().isoformat() if info.retained_until else "-"
            self.report.say(
                f"   {d.recipient:<7} {state:<9} receipt sha256 "
                f"{hashlib.sha256(d.receipt.content).hexdigest()[:16]}...  "
                f"latency {latency_ms:6.1f} ms  retained until {retained}"
            )
            self.report.expect(info.accepted, f"{d.recipient} accepts {mid} ({state})")
            self.report.expect(
                info.content_sha256 == sent_digest,
                f"{d.recipient}'s receipt names the digest of what {sender} sent",
            )
            self.report.expect(signed, f"{d.recipient}'s receipt signature verifies")
        return mid

    async def received(self, agency: str, mid: str) -> Any:
        """Wait until `agency` holds message `mid` in its inbox; its summary."""

        async def present() -> Any:
            inbox = await self.api(agency).Inbox(local_pb2.InboxRequest(limit=100))
            return next((m for m in inbox.messages if m.message_id == mid), None)

        return await until(f"{mid} in {agency}'s inbox", present, seconds=DELIVERY_TIMEOUT)

    async def refused(self, sender: str, content: Any, expected: str) -> None:
        self.heading(sender, content)
        try:
            response = await self.api(sender).Send(local_pb2.SendRequest(content=content))
        except grpc.aio.AioRpcError as exc:
            error = local_error(exc)
            self.report.say(f"   refused locally by {sender}: {reason_of(exc) or '?'}")
            self.report.say(f"   {error.detail.removeprefix(f'{error.reason}: ')}")
            self.report.expect(
                error.reason == expected, f"{sender} refuses it with {expected} ({error.reason})"
            )
            return
        self.report.expect(False, f"{sender} refuses it (it queued {response.message_id})")


async def exchange(demo: Demo) -> None:
    report = demo.report
    incident = await demo.send("NL-POL", incident_content())
    for agency in ("DE-BKA", "FR-PN"):
        held = await demo.received(agency, incident)
        report.expect(held.sender == "NL-POL", f"{agency}'s inbox lists the incident from NL-POL")
    at_de = await demo.api("DE-BKA").Get(
        local_pb2.GetRequest(message_id=incident, sender="NL-POL", justification=JUSTIFICATION)
    )
    member = demo.directory.member("NL-POL")
    envelope = at_de.envelope
    intact = member is not None and verify_envelope(
        public_key_of(member.certificate()), envelope.content, envelope.signature, envelope.proof
    )
    report.expect(intact, "DE-BKA holds the incident with NL-POL's signature intact")

    request = await demo.send(
        "DE-BKA",
        liaison_content(
            to="NL-POL",
            type_=pb.MESSAGE_TYPE_REQUEST_INFO,
            purpose="serious-crime-investigation",
            subject="Request: vehicle B-XY 1234 seen in Venlo robbery",
            text="Please provide the registered keeper and recent ANPR hits for B-XY 1234.",
        ),
    )
    await demo.received("NL-POL", request)
    reply_content = liaison_content(
        to="DE-BKA",
        type_=pb.MESSAGE_TYPE_REPLY,
        purpose="serious-crime-investigation",
        subject="Reply: vehicle B-XY 1234",
        text="Two ANPR hits on the A67 at 21:40 and 21:52; keeper details to follow.",
    )
    reply_content.in_reply_to = request
    reply_content.correlation_id = request
    reply = await demo.send("NL-POL", reply_content)
    held = await demo.received("DE-BKA", reply)
    report.expect(
        held.correlation_id == request, "DE-BKA files the reply in the thread of its request"
    )

    await demo.refused(
        "FR-PN",
        liaison_content(
            to="NL-POL",
            type_=pb.MESSAGE_TYPE_REQUEST_INFO,
            purpose=REFUSED_PURPOSE,
            subject="Request: phishing domain registrant",
            text="Who registered the domain used against Dutch and French banks?",
        ),
        expected="PURPOSE_NOT_PERMITTED",
    )


# ---- entry point -------------------------------------------------------------------------------


async def _run(root: Path, report: Report) -> None:
    nodes = create_federation(root, report)
    async with contextlib.AsyncExitStack() as stack:
        try:
            for node in nodes:
                await start_node(node)
            report.say()
            for node in nodes:
                seconds = await wait_ready(node)
                await enrol_officer(node, stack)
                assert node.process is not None
                report.say(
                    f"  {node.agency:<7} accord node run --home {node.home}  "
                    f"(pid {node.process.pid}, {node.endpoint}, ready in {seconds:.1f} s)"
                )
            report.say(f"  on each node, liaison officer {OFFICER!r} enrolled by the admin")
            await exchange(Demo(nodes, report, federation=root / "federation"))
        finally:
            report.say()
            report.say("stopping the nodes (SIGTERM)")
            await asyncio.gather(*(stop_node(n, report) for n in nodes))


def run_demo(*, directory: Path | None = None, keep: bool = False) -> int:
    if directory is not None:
        if directory.exists() and any(directory.iterdir()):
            raise ConfigError(f"--dir {directory} is not empty; give a new or empty directory")
        directory.mkdir(parents=True, exist_ok=True)
        root = directory.resolve()
    else:
        # Short, under /tmp: the unix socket paths inside must stay under ~100 bytes.
        root = Path(tempfile.mkdtemp(prefix="accord-demo-", dir="/tmp"))
    report = Report()
    report.say("Accord demo: three agencies exchanging over mutual TLS on loopback")
    started = time.monotonic()
    error: str | None = None
    try:
        asyncio.run(_run(root, report))
    except DemoError as exc:
        error = str(exc)
    except grpc.aio.AioRpcError as exc:
        error = f"local API call failed: {local_error(exc)}"
    if error:
        report.say(f"\ndemo stopped early: {error}")
    report.say()
    report.say("expectations")
    for ok, what in report.checks:
        report.say(f"  [{'pass' if ok else 'FAIL'}] {what}")
    passed = report.passed and error is None
    failed = sum(not ok for ok, _ in report.checks)
    report.say()
    if passed:
        report.say(
            f"PASS: all {len(report.checks)} expectations held ({time.monotonic() - started:.1f} s)"
        )
    else:
        report.say(f"FAIL: {failed} of {len(report.checks)} expectations failed" + (
            "; the run stopped early" if error else ""))  # fmt: skip
        for log in sorted(root.glob("*.log")):
            report.say(f"log {log}:\n{tail(log)}")
    if directory is None and not keep and passed:
        shutil.rmtree(root, ignore_errors=True)
    else:
        report.say(f"files kept in {root}")
    return 0 if passed else 1
