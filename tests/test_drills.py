"""Drills as a user runs them: `accord drill run|check`, `accord cluster ...`, the shipped
drills, and the docker-compose file's commands."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from accord.v1 import message_pb2 as pb
from node.cli import build_parser
from node.cli_drill import describe
from node.drill import scenario
from node.drill.cluster import (
    COMPOSE_GATEWAY_HOST_PORT,
    COMPOSE_GATEWAY_PORT,
    ClusterError,
    RemoteCluster,
    Supervisor,
    create_cluster,
    load_spec,
)
from node.drill.engine import fresh_cluster, run_drill
from node.drill.scenario import ScenarioError
from tests.harness import wait_for
from tests.test_cli import accord, assert_usage_error, commands

ROOT = Path(__file__).resolve().parent.parent
DRILLS = sorted((ROOT / "drills").glob("*.toml"))
# Over ~15 s on this 2-core machine under load, or close to it.
SLOW = {"crash-and-partition", "revoked-agency", "purpose-and-expiry-refusals"}


def report_of(out: Path) -> dict:  # type: ignore[type-arg]
    doc: dict = json.loads((out / "report.json").read_text())  # type: ignore[type-arg]
    return doc


def test_the_shipped_drills_are_there() -> None:
    names = {p.stem for p in DRILLS}
    assert {"joint-task-force", "liaison-request-reply", "hot-pursuit", "crash-and-partition",
            "revoked-agency", "purpose-and-expiry-refusals",
            "retention-and-erasure"} <= names  # fmt: skip


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.stem in SLOW else [])
        for p in DRILLS
    ],
)
@pytest.mark.timeout(240)
async def test_every_shipped_drill_passes(path: Path, tmp_short: Path) -> None:
    run = await accord("drill", "run", path, "--out", tmp_short / "out", timeout=220)
    assert run.code == 0, run.out[-4000:] + run.err
    report = report_of(tmp_short / "out")
    assert report["passed"] is True and report["stopped"] is None
    assert report["steps"]["run"] == report["steps"]["total"] == len(scenario.load(path).steps)
    assert all(e["ok"] for e in report["expectations"]) and report["expectations"]
    assert "PASS" in run.out and (tmp_short / "out" / "report.md").exists()
    if path.stem == "crash-and-partition":
        counts = report["counts"]
        assert counts["kills"] >= 5 and counts["partitions"] >= 2, counts
        assert len(report["streams"]) == 2
        for stream in report["streams"].values():
            # Counted at both ends: the sender's receipts and the receiver's inbox.
            assert stream["sent"] >= 30
            assert stream["lost"] == 0 and stream["duplicated"] == 0, stream
            assert stream["accepted"] == stream["sent"] == stream["received"] == stream["unique"]
        assert report["outbox_drains"], "drain times after the faults"
        assert report["delivery_latency_ms"]["count"] >= 60


WRONG = """
[drill]
name = "wrong expectation"
agencies = ["NL-POL", "DE-BKA"]

[[step]]
do = "send"
as = "NL-POL/officer"
to = "DE-BKA"
type = "request_info"
purpose = "organised-crime"
id = "q"
body = { subject = "s", text = "t" }

[[step]]
do = "expect_receipt"
message = "q"
status = "REJECTED"
reason = "PURPOSE_NOT_PERMITTED"
within = 3
"""


async def test_a_wrong_expectation_fails_and_the_report_names_the_step(tmp_short: Path) -> None:
    drill = tmp_short / "wrong.toml"
    drill.write_text(WRONG)
    run = await accord("drill", "run", drill, "--out", tmp_short / "out", timeout=60)
    assert run.code == 1, run.out + run.err
    report = report_of(tmp_short / "out")
    assert report["passed"] is False
    (failed,) = [e for e in report["expectations"] if not e["ok"]]
    assert failed["step"] == 2 and failed["line"] == 15 and failed["do"] == "expect_receipt"
    assert "ACCEPTED" in failed["detail"]
    assert "| 2 (expect_receipt) | 15 | **FAIL**" in (tmp_short / "out" / "report.md").read_text()
    assert "FAIL: wrong expectation" in run.out
    assert set(report["logs"]) == {"NL-POL", "DE-BKA"}  # the nodes' logs on failure
    assert "cluster files kept in" in run.out
    kept = Path(run.out.split("cluster files kept in ")[1].split()[0])
    assert (kept / "cluster.json").exists() and not (kept / "control.sock").exists()
    # Drills go without gateways (docs/drills.md): no console passwords, no gateway started.
    assert not (kept / "passwords").exists() and not list((kept / "logs").glob("*-gateway.log"))
    shutil.rmtree(kept)


CLOCK = """
[drill]
name = "sunset by the clock"
agencies = ["NL-POL", "DE-BKA"]

[[agreement]]
id = "AGR-SHORT"
purposes = ["missing-persons"]
max_retention_days = 30
valid_days = 2

[[step]]
do = "send"
as = "NL-POL"
to = "DE-BKA"
type = "request_info"
purpose = "missing-persons"
id = "early"
body = { subject = "s", text = "t" }

[[step]]
do = "expect_receipt"
message = "early"
status = "ACCEPTED"

[[step]]
do = "partition"
between = ["NL-POL", "DE-BKA"]

[[step]]
do = "send"
as = "NL-POL"
to = "DE-BKA"
type = "request_info"
purpose = "missing-persons"
id = "in-flight"
body = { subject = "s", text = "t" }

[[step]]
do = "advance_clock"
by = "3d"

[[step]]
do = "kill"
agency = "DE-BKA"

[[step]]
do = "restart"
agency = "DE-BKA"

[[step]]
do = "heal"

[[step]]
do = "expect_receipt"
message = "in-flight"
status = "REJECTED"
reason = "AGREEMENT_EXPIRED"

[[step]]
do = "send"
as = "DE-BKA"
to = "NL-POL"
type = "request_info"
purpose = "missing-persons"
body = { subject = "s", text = "t" }
expect = "refused"
reason = "AGREEMENT_EXPIRED"
"""


async def test_the_drill_clock_brings_a_sunset_to_every_node(tmp_short: Path) -> None:
    """Three days on the drill clock end a two-day agreement at both ends, on a node restarted
    after the jump too (it gets the cluster's offset when it starts)."""
    drill = tmp_short / "clock.toml"
    drill.write_text(CLOCK)
    run = await accord("drill", "run", drill, "--out", tmp_short / "out", timeout=60)
    assert run.code == 0, run.out[-4000:] + run.err
    report = report_of(tmp_short / "out")
    assert report["passed"] and len(report["expectations"]) == 5


REDRESS = """
[drill]
name = "redress, retention, audit and evidence steps"
agencies = ["NL-POL", "DE-BKA", "FR-PN"]

[[step]]
do = "send"
as = "NL-POL"
to = "DE-BKA"
type = "spontaneous_provision"
purpose = "organised-crime"
id = "m"
body = { subject = "s", text = "t" }

[[step]]
do = "expect_receipt"
message = "m"
status = "ACCEPTED"

[[step]]
do = "redress"
as = "NL-POL"
message = "m"
kind = "erase"
reason = "mistaken"
id = "e"

[[step]]
do = "expect_redress"
note = "wrong: FR-PN never held it"
message = "e"
holders = ["DE-BKA", "FR-PN"]
within = 2

[[step]]
do = "expect_redress"
note = "wrong: DE-BKA erased it, no hold kept it"
message = "m"
result = "HELD"
within = 1

[[step]]
do = "read"
note = "wrong: it was erased by its originator, not expired"
as = "DE-BKA"
message = "m"
justification = "drill check"
expect = "gone"
reason = "EXPIRED"
within = 1

[[step]]
do = "send"
as = "NL-POL"
to = "DE-BKA"
type = "spontaneous_provision"
purpose = "organised-crime"
id = "k"
retention_days = 1
body = { subject = "s", text = "kept a day" }

[[step]]
do = "expect_receipt"
message = "k"
status = "ACCEPTED"

[[step]]
do = "evidence"
as = "DE-BKA"
message = "k"

[[step]]
do = "advance_clock"
by = "2d"

[[step]]
do = "read"
note = "wrong: expired, but no sweep has erased it yet"
as = "DE-BKA"
message = "k"
justification = "drill check"
expect = "gone"
reason = "ERASED"
within = 1

[[step]]
do = "sweep"
agency = "DE-BKA"

[[step]]
do = "read"
as = "DE-BKA"
message = "k"
justification = "drill check"
expect = "gone"
reason = "ERASED"

[[step]]
do = "read"
note = "NL-POL did not sweep"
as = "NL-POL"
message = "k"
justification = "drill check"
expect = "gone"
reason = "EXPIRED"

[[step]]
do = "evidence"
note = "wrong: an erased message has no bundle"
as = "DE-BKA"
message = "m"

[[step]]
do = "audit_verify"

[[step]]
do = "send"
as = "NL-POL"
to = "DE-BKA"
type = "incident_publish"
purpose = "organised-crime"
id = "inc"
body = { incidentId = "NL-1", narrative = "first version" }

[[step]]
do = "expect_receipt"
message = "inc"
status = "ACCEPTED"

[[step]]
do = "redress"
as = "NL-POL"
message = "inc"
kind = "rectify"
body = { incidentId = "NL-1", narrative = "corrected version" }

[[step]]
do = "expect_redress"
message = "inc"
holders = "DE-BKA"

[[step]]
do = "read"
as = "DE-BKA"
message = "inc"
justification = "drill check"
contains = ["corrected version"]

[[step]]
do = "redress"
as = "NL-POL"
message = "k"
kind = "handling"
tlp = "RED"

[[step]]
do = "expect_redress"
note = "wrong: an expired message is not there to tighten"
message = "k"
within = 1
"""


async def test_redress_retention_audit_and_evidence_steps_hold_or_fail(tmp_short: Path) -> None:
    """Each new step passes where the nodes did what it expects and fails, named, where they
    did not: the redress's holders and result, a gone read's reason (REDRESSED, EXPIRED before
    a sweep, ERASED after), the sweep, the evidence bundle, the audit log."""
    drill = tmp_short / "redress.toml"
    drill.write_text(REDRESS)
    out = tmp_short / "out"
    run = await accord("drill", "run", drill, "--out", out, timeout=90)
    assert run.code == 1, run.out[-4000:] + run.err
    report = report_of(out)
    assert report["stopped"] is None, report["stopped"]
    failed = [(e["step"], e["what"], e["detail"]) for e in report["expectations"] if not e["ok"]]
    assert failed == [
        (4, "FR-PN holds 'm' and confirms ERASED", "not listed"),
        (5, "DE-BKA confirms ERASURE_REQUEST of 'm': HELD", "confirmed ERASED"),
        (5, "DE-BKA's signed receipt says HELD of 'm'", "it says ERASED"),
        (6, "DE-BKA reads 'm': refused, EXPIRED", failed[3][2]),
        (11, "DE-BKA reads 'k': refused, ERASED", failed[4][2]),
        (15, "DE-BKA exports the evidence of 'm'", failed[5][2]),
        # A handling update of a message the holder has erased: it says it erased it.
        (23, "DE-BKA confirms HANDLING_UPDATE of 'k': HANDLING_UPDATED", "confirmed ERASED"),
        (23, "DE-BKA's signed receipt says HANDLING_UPDATED of 'k'", "it says ERASED"),
    ], failed
    assert failed[3][2].startswith("refused: REDRESSED: ")
    assert failed[4][2].startswith("refused: EXPIRED: ")
    assert "REDRESSED" in failed[5][2]
    passed = [(e["step"], e["what"]) for e in report["expectations"] if e["ok"]]
    assert (4, "DE-BKA confirms ERASURE_REQUEST of 'm': ERASED") in passed
    assert (4, "DE-BKA's signed receipt says ERASED of 'm'") in passed
    assert any(s == 9 and "VERIFY.sh" in w for s, w in passed) == bool(shutil.which("openssl"))
    assert any(s == 9 and "evidence verify" in w for s, w in passed)
    assert (out / "evidence" / "k-DE-BKA.zip").stat().st_size > 0
    assert {w for s, w in passed if s == 13} == {"DE-BKA reads 'k': refused, ERASED"}
    assert {w.split(":")[0] for s, w in passed if s == 16} == {
        f"{a}'s audit log verifies" for a in ("NL-POL", "DE-BKA", "FR-PN")
    }
    assert (20, "DE-BKA confirms RECTIFICATION of 'inc': REPLACED") in passed
    assert (21, "'inc' as read at DE-BKA contains 'corrected version'") in passed
    shutil.rmtree(run.out.split("cluster files kept in ")[1].split()[0])


AUDIT = """
[drill]
name = "a changed audit log"
agencies = ["NL-POL", "DE-BKA"]

[[step]]
do = "audit_verify"
"""


async def test_audit_verify_finds_an_entry_changed_in_the_file(tmp_short: Path) -> None:
    path = tmp_short / "audit.toml"
    path.write_text(AUDIT)
    drill = scenario.load(path)
    root, spec = fresh_cluster(drill)
    try:
        with closing(sqlite3.connect(root / spec.agency("DE-BKA").home / "accord.db")) as db:
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
                db.execute(f"DROP TRIGGER {name}")
            db.execute(
                'UPDATE audit_log SET data = replace(data, \'"actor":"\', '
                '\'"actor":"mallory-\') WHERE seq = 1'
            )
            db.commit()
        report = await run_drill(drill, root=root, spec=spec, fresh=True, say=lambda _: None)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    verdicts = {e.what.split(":")[0]: (e.ok, e.detail) for e in report.expectations}
    assert verdicts["NL-POL's audit log verifies"] == (True, "")
    ok, detail = verdicts["DE-BKA's audit log verifies"]
    assert not ok and detail.startswith("CHANGED entry 1"), detail


async def test_a_step_that_cannot_be_carried_out_stops_the_drill(tmp_short: Path) -> None:
    drill = tmp_short / "twice.toml"
    drill.write_text(
        '[drill]\nname = "twice"\nagencies = ["NL-POL", "DE-BKA", "FR-PN"]\n\n'
        '[[step]]\ndo = "revoke"\nagency = "FR-PN"\n\n'
        '[[step]]\ndo = "revoke"\nagency = "FR-PN"\n\n'
        '[[step]]\ndo = "wait"\nseconds = 0\n'
    )
    run = await accord("drill", "run", drill, "--out", tmp_short / "out", timeout=60)
    assert run.code == 1 and "Traceback" not in run.out + run.err, run.out + run.err
    report = report_of(tmp_short / "out")
    assert report["stopped"].startswith("step 2 (line 9): no unrevoked certificate matches FR-PN")
    assert report["steps"] == {"total": 3, "run": 1}
    assert "stopped early: step 2 (line 9)" in run.out
    shutil.rmtree(run.out.split("cluster files kept in ")[1].split()[0])


# ---- malformed drills: refused before any node starts ------------------------------------------

BASE = """[drill]
name = "x"
agencies = ["NL-POL", "DE-BKA"]

[[step]]
do = "send"
as = "NL-POL/officer"
to = "DE-BKA"
type = "request_info"
purpose = "organised-crime"
id = "q"

[[step]]
"""


@pytest.mark.parametrize(
    ("tail", "line", "fragment"),
    [
        ('do = "teleport"\n', 14, "step 2: unknown step 'teleport'"),
        (
            'do = "kill"\nagency = "XX-NOPE"\n',
            15,
            "step 2 (kill): agency: unknown agency 'XX-NOPE'",
        ),
        (
            'do = "read"\nas = "DE-BKA/nobody"\nmessage = "q"\n',
            15,
            "unknown user 'nobody' on DE-BKA",
        ),
        (
            'do = "kill"\nagency = "DE-BKA"\nsignal = 9\n',
            16,
            "step 2 (kill): unknown field 'signal'",
        ),
        (
            'do = "send"\nas = "DE-BKA"\nto = "NL-POL"\ntype = "telepathy"\npurpose = "p"\n',
            17,
            "unknown message type 'telepathy'",
        ),
        (
            'do = "expect_receipt"\nmessage = "nope"\nstatus = "ACCEPTED"\n',
            15,
            "no message 'nope' defined by an earlier step",
        ),
        (
            'do = "send"\nas = "DE-BKA"\nto = "NL-POL"\ntype = "reply"\npurpose = "p"\n'
            'body = { subjekt = "x" }\n',
            19,
            "not a valid LiaisonBody for REPLY",
        ),
        ('do = "approve"\nas = "NL-POL/officer"\nmessage = "q"\n', 15, "is not a supervisor"),
        (
            'do = "send"\nas = "DE-BKA"\nto = "NL-POL"\ntype = "reply"\npurpose = "p"\n'
            'expected_in = "2d"\n',
            19,
            "step 2 (send): expected_in: only a delay_notice names when the answer is expected",
        ),
        (
            'do = "send"\nas = "DE-BKA"\nto = "NL-POL"\ntype = "reply"\npurpose = "p"\n'
            'tlp = "MAUVE"\n',
            19,
            "tlp: must be one of CLEAR, GREEN, AMBER, AMBER+STRICT, RED (got 'MAUVE')",
        ),
        (
            'do = "redress"\nas = "DE-BKA"\nmessage = "q"\nkind = "erase"\n',
            15,
            "step 2 (redress): 'q' was sent by NL-POL: only NL-POL redresses it",
        ),
        (
            'do = "redress"\nas = "NL-POL"\nmessage = "q"\nkind = "rectify"\n',
            17,
            'kind = "rectify" needs `body` (the corrected IncidentBody)',
        ),
        (
            'do = "redress"\nas = "NL-POL"\nmessage = "q"\nkind = "rectify"\n'
            'body = { narrativ = "x" }\n',
            18,
            "body: not a valid IncidentBody",
        ),
        (
            'do = "redress"\nas = "NL-POL"\nmessage = "q"\nkind = "erase"\ntlp = "RED"\n',
            18,
            "`tlp` does not go with kind = 'erase'",
        ),
        (
            'do = "redress"\nas = "NL-POL"\nmessage = "q"\nkind = "handling"\n',
            17,
            'kind = "handling" needs `tlp`, `handling` or `conditions`',
        ),
        (
            'do = "expect_redress"\nmessage = "q"\n',
            15,
            "message: no `redress` step before this one redresses 'q'",
        ),
        (
            'do = "read"\nas = "DE-BKA"\nmessage = "q"\njustification = "drill check"\n'
            'expect = "gone"\n',
            18,
            'expect = "gone" needs `reason` (ERASED, EXPIRED, REDRESSED)',
        ),
        (
            'do = "read"\nas = "DE-BKA"\nmessage = "q"\nreason = "EXPIRED"\n',
            17,
            '`reason` goes with expect = "gone"',
        ),
        (
            'do = "read"\nas = "DE-BKA"\nmessage = "q"\nexpect = "gone"\nreason = "ERASED"\n',
            17,
            'expect = "gone" needs a `justification`',
        ),
        (
            'do = "read"\nas = "DE-BKA"\nmessage = "q"\njustification = "drill check"\n'
            'expect = "gone"\nreason = "AGREEMENT_EXPIRED"\n',
            19,
            "reason: must be one of ERASED, EXPIRED, REDRESSED (got 'AGREEMENT_EXPIRED')",
        ),
        ('do = "sweep"\nagency = "XX-NOPE"\n', 15, "step 2 (sweep): agency: unknown agency"),
        (
            'do = "audit_verify"\nagency = ["DE-BKA", "XX-NOPE"]\n',
            15,
            "step 2 (audit_verify): agency: unknown agency 'XX-NOPE'",
        ),
        (
            'do = "evidence"\nas = "DE-BKA"\nmessage = "nope"\n',
            16,
            "step 2 (evidence): message: no message 'nope' defined by an earlier step",
        ),
    ],
)
def test_malformed_drills_name_file_and_line(
    tmp_short: Path, tail: str, line: int, fragment: str
) -> None:
    drill = tmp_short / "bad.toml"
    drill.write_text(BASE + tail)
    with pytest.raises(ScenarioError) as info:
        scenario.load(drill)
    assert str(info.value).startswith(f"{drill}:{line}: "), str(info.value)
    assert fragment in str(info.value)


async def test_a_malformed_drill_is_refused_before_any_node_starts(tmp_short: Path) -> None:
    drill = tmp_short / "bad.toml"
    drill.write_text(BASE + 'do = "kill"\nagency = "XX-NOPE"\n')
    before = set(Path("/tmp").glob("accord-drill-*"))
    run = await accord("drill", "run", drill, "--out", tmp_short / "out")
    assert_usage_error(run, f"{drill}:15:", "unknown agency 'XX-NOPE'")
    assert set(Path("/tmp").glob("accord-drill-*")) == before, "no cluster was created"
    assert run.out == "" and not (tmp_short / "out").exists()
    run = await accord("drill", "check", drill)
    assert_usage_error(run, f"{drill}:15:")


async def test_drill_check_accepts_the_shipped_drills() -> None:
    run = await accord("drill", "check", *DRILLS)
    assert run.code == 0, run.err
    assert run.out.count(": ok: ") == len(DRILLS)


# ---- the cluster -------------------------------------------------------------------------------


# A drill played on a running cluster: its agreement replaces the cluster's, its user is
# created, and it kills, restarts and partitions through the cluster's control socket.
ON_RUNNING = """
[drill]
name = "on a running cluster"
agencies = ["NL-POL", "DE-BKA"]

[[agreement]]
id = "AGR-RUNNING"
purposes = ["missing-persons"]
max_retention_days = 30

[[user]]
agency = "DE-BKA"
name = "analyst"
role = "liaison_officer"

[[step]]
do = "kill"
agency = "DE-BKA"

[[step]]
do = "send"
as = "NL-POL"
to = "DE-BKA"
type = "alert"
purpose = "missing-persons"
id = "q"
body = { subject = "s", text = "t" }

[[step]]
do = "restart"
agency = "DE-BKA"

[[step]]
do = "expect_inbox"
as = "DE-BKA/analyst"
has = ["q"]

[[step]]
do = "partition"
between = ["NL-POL", "DE-BKA"]

[[step]]
do = "heal"

[[step]]
do = "send"
as = "NL-POL"
to = "DE-BKA"
type = "alert"
purpose = "organised-crime"
body = { subject = "s", text = "t" }
expect = "refused"
reason = "PURPOSE_NOT_PERMITTED"
"""


def compose() -> dict[str, Any]:
    import yaml  # type: ignore[import-untyped, unused-ignore]

    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def gateway_healthcheck(port: int) -> list[str]:
    """The compose gateways' health check, run by this machine's Python against `port`."""
    test = compose()["services"]["nl-pol-gateway"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], test
    url = f"http://127.0.0.1:{COMPOSE_GATEWAY_PORT}/healthz"
    assert url in test[3], test
    return [sys.executable, "-c", test[3].replace(url, f"http://127.0.0.1:{port}/healthz")]


async def exit_status(argv: list[str]) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(proc.wait(), 30)


async def cluster_status(root: Path) -> tuple[int, dict[str, Any]]:
    run = await accord("cluster", "status", "--dir", root, "--json")
    assert run.err == "", run.err
    doc: dict[str, Any] = json.loads(run.out)
    return run.code, doc


def pid_of(process: str) -> int:
    assert process.startswith("running (pid "), process
    return int(process.removeprefix("running (pid ").rstrip(")"))


async def log_in(url: str, name: str, password: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=30) as web:
        return await web.post("/api/v1/login", json={"name": name, "password": password})


@pytest.mark.timeout(150)
async def test_cluster_up_detached_status_and_down(tmp_short: Path) -> None:
    root = tmp_short / "c"
    run = await accord("cluster", "up", "--dir", root, "--agencies", "NL-POL,DE-BKA", "--detach",
                       timeout=90)  # fmt: skip
    assert run.code == 0, run.out + run.err
    nl, de = load_spec(root).agencies
    assert f"accord inbox --home {root / 'nl-pol'} --as officer" in run.out
    assert str(root / "de-bka" / "tokens" / "supervisor") in run.out
    # The gateways' URLs, and each user's password file (0600) beside their token.
    password = root / "passwords" / "de-bka" / "officer"
    assert f"http://127.0.0.1:{nl.gateway}" in run.out and str(password) in run.out
    assert f"http://127.0.0.1:{de.gateway}" in run.out
    assert password.stat().st_mode & 0o777 == 0o600
    try:
        body = tmp_short / "b.json"
        body.write_text('{"subject": "s", "text": "t"}')
        sent = await accord("send", "--home", root / "nl-pol", "--as", "officer", "--to", "DE-BKA",
                            "--type", "request_info", "--purpose", "organised-crime",
                            "--body", body, "--retention-days", "30", "--tlp", "GREEN",
                            "--handling", "H0")  # fmt: skip
        assert sent.code == 0, sent.err
        message_id = sent.out.strip()

        # DE-BKA's officer logs in to DE-BKA's gateway with the generated password.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{de.gateway}", timeout=30) as web:
            wrong = await web.post("/api/v1/login", json={"name": "officer", "password": "x" * 24})
            assert wrong.status_code == 401, wrong.text
            login = await web.post(
                "/api/v1/login", json={"name": "officer", "password": password.read_text()}
            )
            assert login.status_code == 200, login.text
            me = await web.get("/api/v1/me")
            assert (me.status_code, me.json()["user"]["name"]) == (200, "officer")

            async def arrived() -> bool:
                answer = await web.get("/api/v1/messages")
                assert answer.status_code == 200, answer.text
                return message_id in [m["message_id"] for m in answer.json()["messages"]]

            await wait_for(arrived, timeout=15)
            inbox = await web.get("/inbox")
            assert inbox.status_code == 200
            assert ">officer</a>" in inbox.text and f'data-message-id="{message_id}"' in inbox.text

        code, doc = await cluster_status(root)
        assert code == 0, doc
        assert doc["up"] is True
        assert {n["health"] for n in doc["nodes"].values()} == {"SERVING"}
        assert doc["nodes"]["NL-POL"]["process"].startswith("running")
        (peer,) = doc["nodes"]["NL-POL"]["peers"]
        assert peer["peer"] == "DE-BKA" and peer["queued"] in (0, 1)
        for agency in (nl, de):
            gateway = doc["nodes"][agency.code]["gateway"]
            assert gateway["url"] == f"http://127.0.0.1:{agency.gateway}"
            assert gateway["health"] == "SERVING" and gateway["supervised"] is True
        nodes = doc["nodes"].values()
        pids = [pid_of(p) for n in nodes for p in (n["process"], n["gateway"]["process"])]
        table = await accord("cluster", "status", "--dir", root)
        assert table.code == 0 and f"http://127.0.0.1:{de.gateway}  running (pid" in table.out
        # The compose file's gateway health check passes against a gateway whose node serves.
        assert await exit_status(gateway_healthcheck(de.gateway)) == 0
        health = await accord("node", "health", "--home", root / "de-bka")
        assert (health.code, health.out.strip()) == (0, "SERVING")
        again = await accord("cluster", "up", "--dir", root, "--detach")
        assert_usage_error(again, "already up")

        drill = tmp_short / "on-running.toml"
        drill.write_text(ON_RUNNING)
        run = await accord("drill", "run", drill, "--cluster", root, "--out", tmp_short / "out",
                           timeout=90)  # fmt: skip
        assert run.code == 0, run.out[-4000:] + run.err
        report = report_of(tmp_short / "out")
        assert report["passed"] and report["counts"]["kills"] == 1
        assert (root / "de-bka" / "tokens" / "analyst").exists()  # the drill's own user ...
        analyst = root / "passwords" / "de-bka" / "analyst"  # ... with a console password
        answer = await log_in(f"http://127.0.0.1:{de.gateway}", "analyst", analyst.read_text())
        assert answer.status_code == 200, answer.text
        code, doc = await cluster_status(root)
        assert doc["nodes"]["DE-BKA"]["kills"] == 1

        # A node down: its gateway says so (503), and fails the compose health check. A gateway
        # killed: the cluster shows it. Either makes `cluster status` exit 1.
        await RemoteCluster(root, load_spec(root)).kill("DE-BKA")
        os.kill(pid_of(doc["nodes"]["NL-POL"]["gateway"]["process"]), signal.SIGKILL)

        async def noticed() -> dict[str, Any] | None:
            code, doc = await cluster_status(root)
            killed = doc["nodes"]["NL-POL"]["gateway"]["process"] == "killed (SIGKILL)"
            return doc if code == 1 and killed else None

        doc = await wait_for(noticed, timeout=20)
        assert doc["nodes"]["NL-POL"]["gateway"]["health"] == "DOWN"
        assert doc["nodes"]["DE-BKA"]["gateway"]["health"] == "NODE DOWN"
        assert doc["nodes"]["DE-BKA"]["gateway"]["process"].startswith("running")
        assert await exit_status(gateway_healthcheck(de.gateway)) == 1
    finally:
        down = await accord("cluster", "down", "--dir", root, timeout=60)
    assert down.code == 0, down.err
    code, doc = await cluster_status(root)
    assert code == 1 and doc["up"] is False
    assert {n["gateway"]["health"] for n in doc["nodes"].values()} == {"DOWN"}
    for pid in pids:  # no node or gateway process left
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert await exit_status(gateway_healthcheck(de.gateway)) == 1
    health = await accord("node", "health", "--home", root / "de-bka")
    assert_usage_error(health, "no node running")


async def test_a_gateway_that_cannot_start_stops_the_cluster_with_its_log(tmp_short: Path) -> None:
    spec = create_cluster(tmp_short / "c", agencies=["NL-POL", "DE-BKA"], users=[])
    supervisor = Supervisor(tmp_short / "c", spec, gateways=True)
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", spec.agency("DE-BKA").gateway))
        taken.listen()
        with pytest.raises(ClusterError) as info:
            await supervisor.up()
    finally:
        stopped = await supervisor.down()
        taken.close()
    assert str(info.value).startswith("the gateway of DE-BKA exited with status 2 while starting")
    assert "cannot listen: Address already in use" in str(info.value)  # its log's tail
    assert stopped["NL-POL gateway"] == 0 and stopped["NL-POL"] == stopped["DE-BKA"] == 0
    children = [*supervisor.nodes.values(), *supervisor.gateways.values()]
    assert all(c.process is not None and not c.running for c in children)


def test_cluster_agreements_come_from_a_file_in_the_cli_format(tmp_short: Path) -> None:
    from certs.ca import FederationAuthority
    from node.drill.cluster import ClusterError, load_agreements

    doc = [
        {
            "id": "AGR-F",
            "parties": ["NL-POL", "DE-BKA"],
            "purposes": ["missing-persons"],
            "message_types": ["ALERT"],
            "max_retention_days": 10,
            "valid_from": "2026-01-01T00:00:00+00:00",
            "valid_until": "2036-01-01T00:00:00+00:00",
        }
    ]
    path = tmp_short / "a.json"
    path.write_text(json.dumps(doc))
    agreements = load_agreements(path, ["NL-POL", "DE-BKA"])
    create_cluster(tmp_short / "c", agencies=["NL-POL", "DE-BKA"], agreements=agreements)
    published = FederationAuthority(tmp_short / "c" / "federation").directory().agreements
    assert [(a.id, a.purposes) for a in published] == [("AGR-F", ("missing-persons",))]
    with pytest.raises(ClusterError, match="AGR-F names DE-BKA, not among"):
        load_agreements(path, ["NL-POL", "FR-PN"])
    path.write_text("[]")
    with pytest.raises(ClusterError, match="non-empty JSON list"):
        load_agreements(path, ["NL-POL", "DE-BKA"])


def test_a_compose_cluster_names_nodes_by_service(tmp_short: Path) -> None:
    spec = create_cluster(tmp_short / "c", agencies=["NL-POL", "DE-BKA"], compose=True)
    assert [a.endpoint for a in spec.agencies] == ["nl-pol:7443", "de-bka:7443"]
    assert {a.gateway for a in spec.agencies} == {COMPOSE_GATEWAY_PORT}  # docker-compose.yml's
    # The table init prints gives the URLs docker-compose.yml publishes them on.
    table = describe(tmp_short / "c", spec)
    assert f"DE-BKA  de-bka:7443  http://127.0.0.1:{COMPOSE_GATEWAY_HOST_PORT + 1} " in table
    assert spec.proxies == {}
    config = (tmp_short / "c" / "nl-pol" / "config.toml").read_text()
    assert 'listen = "0.0.0.0:7443"' in config and "[drill" not in config


# ---- docker-compose ----------------------------------------------------------------------------


def test_every_command_the_compose_services_run_exists_in_the_cli() -> None:
    """Each service's command (and a node's healthcheck) is an `accord` command the parser
    knows, with options it accepts. (A gateway's healthcheck is Python: the next test.)"""
    parser = build_parser()
    known = {tuple(p) for p in commands(parser)}
    seen = 0
    for name, service in compose()["services"].items():
        runs = [service["command"]]
        if "healthcheck" in service:
            test = service["healthcheck"]["test"]
            assert test[0] == "CMD", name
            if test[1] == "python":
                assert name.endswith("-gateway"), name
            else:
                runs.append(test[1:])
        for run in runs:
            argv = shlex.split(run) if isinstance(run, str) else list(run)
            assert argv[0] == "accord", (name, argv)
            words = [w for w in argv[1:] if not w.startswith("-")]
            assert any(tuple(words[:n]) in known for n in (1, 2, 3)), (name, argv)
            parser.parse_args(argv[1:])  # exits (fails the test) on an unknown option
            seen += 1
    assert seen >= 13  # init, four nodes and their four healthchecks, four gateways


def test_each_compose_node_has_a_gateway_on_its_home() -> None:
    """Beside each node service, a gateway on the same home and volume, started once the node
    is healthy, listening where the cluster's description says, published on loopback, with a
    health check that asks its /healthz (run for real in the cluster test above)."""
    services = compose()["services"]
    nodes = {n: s for n, s in services.items() if s["command"][1:3] == ["node", "run"]}
    assert set(nodes) == {"nl-pol", "de-bka", "fr-pn", "be-fpp"}
    published = []
    for name, node in nodes.items():
        gateway = services[f"{name}-gateway"]
        argv = gateway["command"]
        assert argv[:3] == ["accord", "gateway", "run"], argv
        options = build_parser().parse_args(argv[1:])
        assert options.home == f"/cluster/{name}"
        assert options.listen == f"0.0.0.0:{COMPOSE_GATEWAY_PORT}"
        # What a browser on this machine names the published port by.
        assert options.server_name == ["127.0.0.1", "localhost"]
        assert options.insecure_http  # plain HTTP on the container's address, published on loopback
        assert node["command"][-2:] == ["--home", options.home]
        assert gateway["volumes"] == node["volumes"] == ["cluster:/cluster"]
        assert gateway["depends_on"] == {name: {"condition": "service_healthy"}}
        (port,) = gateway["ports"]
        host, host_port, container_port = port.split(":")
        assert (host, container_port) == ("127.0.0.1", str(COMPOSE_GATEWAY_PORT))
        published.append(host_port)
        assert gateway["healthcheck"]["test"] == services["nl-pol-gateway"]["healthcheck"]["test"]
    # In the order of init's --agencies, from where `cluster init --compose` says they are.
    init = services["init"]["command"]
    agencies = init[init.index("--agencies") + 1].lower().split(",")
    assert published == [str(COMPOSE_GATEWAY_HOST_PORT + i) for i in range(len(agencies))]
    assert agencies == list(nodes)
    gateway_healthcheck(0)  # the form the cluster test runs


SLOW_TO_NOTICE = """
[drill]
name = "revoked, slow to notice"
agencies = ["NL-POL", "DE-BKA", "BE-FPP"]

[[step]]
do = "revoke"
agency = "BE-FPP"
within = 15

[[step]]
do = "send"
as = "BE-FPP/officer"
to = "NL-POL"
type = "spontaneous_provision"
purpose = "counter-terrorism"
body = { subject = "s", text = "t" }
expect = "refused"
reason = "OWN_CERTIFICATE_INVALID"
"""


async def test_a_revoke_step_waits_for_the_revoked_node_itself(tmp_short: Path) -> None:
    """The revoked node finds its own certificate revoked on its own next reload, which may
    come after the others' (then, in revoked-agency.toml, BE-FPP's send right after the step
    is queued, not refused). Here BE-FPP reloads every 3 s, the others every 0.5 s: its send
    after the step is refused all the same."""
    path = tmp_short / "revoked.toml"
    path.write_text(SLOW_TO_NOTICE)
    drill = scenario.load(path)
    root, spec = fresh_cluster(drill)
    try:
        config = root / spec.agency("BE-FPP").home / "config.toml"
        config.write_text(
            config.read_text().replace("reload_seconds = 0.5", "reload_seconds = 3.0")
        )
        report = await run_drill(drill, root=root, spec=spec, fresh=True, say=lambda _: None)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert report.passed, report.summary()


@pytest.mark.parametrize("spelling", ["AMBER+STRICT", "TLP:AMBER+STRICT", "amber_strict"])
def test_a_drill_takes_tlp_in_every_spelling_the_cli_takes(tmp_short: Path, spelling: str) -> None:
    drill = tmp_short / "tlp.toml"
    drill.write_text(
        BASE.removesuffix("\n[[step]]\n").replace('id = "q"', f'id = "q"\ntlp = "{spelling}"')
    )
    (step,) = scenario.load(drill).steps
    content = scenario.build_content(step, lambda label: label, fail=AssertionError)
    assert content.tlp == pb.TLP_AMBER_STRICT
