"""The `accord` command line as a user runs it: real subprocesses against real nodes.

Nodes run in this test's event loop (tests.harness.Federation); the CLI runs as a child process
through asyncio, so the nodes keep serving while it waits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from node.cli import build_parser, main
from tests.harness import (
    ALL_PURPOSES,
    Federation,
    add_user,
    liaison,
    node_send,
    until_delivered,
    wait_for,
)

OFFICER = "officer"
# In the federation's purpose vocabulary but not in the test agreement.
UNPERMITTED_PURPOSE = "cybercrime"
JUSTIFICATION = "--justification=checking the request for the case file"


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


async def accord(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 30) -> Run:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    environment.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node.cli", *map(str, args),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def assert_usage_error(run: Run, *fragments: str) -> None:
    """Exit 2, one `accord: error:` line naming the problem, no traceback."""
    assert run.code == 2, run
    assert "Traceback" not in run.err, run.err
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("accord: error: "), run.err
    for fragment in fragments:
        assert fragment in lines[0], run.err


def commands(parser: argparse.ArgumentParser, prefix: Sequence[str] = ()) -> Iterator[list[str]]:
    """Every command path of the parser, the bare program included."""
    yield list(prefix)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, [*prefix, name])


# ---- no node needed ----------------------------------------------------------------------------


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    # In-process: one child per command would cost seconds for what is the same code path.
    paths = list(commands(build_parser()))
    assert ["send"] in paths and ["certs", "issue"] in paths and ["drill", "run"] in paths
    for path in paths:
        with pytest.raises(SystemExit) as exit_:
            main([*path, "--help"])
        assert exit_.value.code == 0, path
        out = capsys.readouterr().out
        assert out.startswith(f"usage: accord {' '.join(path)}".rstrip()), (path, out)


async def test_console_script_runs() -> None:
    script = Path(sys.executable).with_name("accord")
    proc = await asyncio.create_subprocess_exec(
        script, "send", "--help", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    assert b"--retention-days" in out and b"LiaisonBody otherwise" in out


async def test_certs_init_issue_revoke_write_the_files(tmp_short: Path) -> None:
    fed = tmp_short / "fed"
    run = await accord("certs", "init-federation", "--dir", fed, "--federation", "cli.test")
    assert run.code == 0, run
    assert "federation cli.test created" in run.out
    for name in ("ca.key", "ca.pem", "crl.pem", "directory.json", "directory.json.sig"):
        assert (fed / name).is_file(), name
    assert stat.S_IMODE((fed / "ca.key").stat().st_mode) == 0o600

    run = await accord("certs", "issue", "--dir", fed, "--agency", "NL-POL",
                       "--endpoint", "127.0.0.1:7443", "--name", "Politie")  # fmt: skip
    assert run.code == 0, run
    issued = fed / "issued" / "NL-POL"
    assert f"into {issued}" in run.out
    cert = x509.load_pem_x509_certificate((issued / "node.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "spiffe://cli.test/agency/NL-POL" in san.get_values_for_type(
        x509.UniformResourceIdentifier
    )
    assert stat.S_IMODE((issued / "node.key").stat().st_mode) == 0o600
    assert "NL-POL" in (fed / "directory.json").read_text()

    run = await accord("certs", "revoke", "--dir", fed, "--agency", "NL-POL")
    assert run.code == 0, run
    assert f"revoked serial {cert.serial_number:x}" in run.out
    crl = x509.load_pem_x509_crl((fed / "crl.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert json.loads((fed / "directory.json").read_text())["members"] == []

    assert_usage_error(
        await accord("certs", "revoke", "--dir", fed, "--agency", "NL-POL"),
        "no unrevoked certificate matches NL-POL",
    )


async def test_certs_errors_are_one_clear_line(tmp_short: Path) -> None:
    fed = tmp_short / "fed"
    assert (await accord("certs", "init-federation", "--dir", fed)).code == 0
    runs = await asyncio.gather(
        accord("certs", "issue", "--dir", fed, "--agency", "nl-pol", "--endpoint", "h:1"),
        accord("certs", "issue", "--dir", fed, "--agency", "NL-POL", "--endpoint", "nohost"),
        accord("certs", "issue", "--dir", tmp_short / "none", "--agency", "NL-POL",
               "--endpoint", "h:1"),
        accord("certs", "init-federation", "--dir", fed),
        accord("certs", "revoke", "--dir", fed, "--serial", "zz"),
    )  # fmt: skip
    assert_usage_error(runs[0], "agency code 'nl-pol' is not of the form", "e.g. NL-POL")
    assert_usage_error(runs[1], "endpoint 'nohost' must be HOST:PORT")
    assert_usage_error(runs[2], "is not a federation directory", "init-federation")
    assert_usage_error(runs[3], "refusing to overwrite")
    assert_usage_error(runs[4], "--serial: 'zz' is not a hexadecimal serial")


async def test_node_init_creates_a_home_and_refuses_to_overwrite(tmp_short: Path) -> None:
    fed, home = tmp_short / "fed", tmp_short / "nl"
    assert (await accord("certs", "init-federation", "--dir", fed)).code == 0
    issue = ("certs", "issue", "--dir", fed, "--agency", "NL-POL", "--endpoint", "127.0.0.1:7443")
    assert (await accord(*issue)).code == 0
    init = ("node", "init", "--home", home, "--agency", "NL-POL", "--federation", fed)

    run = await accord(*init)
    assert run.code == 0, run
    assert "node home ready" in run.out
    config = (home / "config.toml").read_text()
    assert 'agency = "NL-POL"' in config and 'federation = "accord.test"' in config
    assert stat.S_IMODE(home.stat().st_mode) == 0o700

    assert_usage_error(await accord(*init), "already holds a node", "refusing to overwrite")
    assert (home / "config.toml").read_text() == config
    assert_usage_error(
        await accord("node", "init", "--home", tmp_short / "de", "--agency", "DE-BKA",
                     "--federation", fed, "--listen", "127.0.0.1:7444"),
        "not found (run `accord certs issue`)",
    )  # fmt: skip


async def test_no_running_node_is_a_clear_error(tmp_short: Path) -> None:
    home = tmp_short / "nowhere"
    home.mkdir()
    sock = home / "node.sock"
    hint = f"start it with `accord node run --home {home}`"
    run = await accord("inbox", "--home", home)
    assert_usage_error(run, f"no node running at {home} (socket {sock} missing)", hint)
    # $ACCORD_HOME stands in for --home.
    run = await accord(
        "receipts", "0190a0a0-0000-7000-8000-000000000001", env={"ACCORD_HOME": str(home)}
    )
    assert_usage_error(run, f"no node running at {home}", hint)
    assert_usage_error(await accord("inbox"), "pass --home DIR or set ACCORD_HOME")


async def test_bad_send_arguments_name_the_problem(tmp_short: Path) -> None:
    good = tmp_short / "body.json"
    good.write_text('{"subject": "s", "text": "t"}')
    broken = tmp_short / "broken.json"
    broken.write_text('{"subject": "s",\n  "text": }')
    wrong = tmp_short / "wrong.json"
    wrong.write_text('{"subjekt": "s"}')
    listed = tmp_short / "list.json"
    listed.write_text("[]")

    def send(body: Path, type_: str = "request_info", *extra: str) -> Awaitable[Run]:
        return accord("send", "--home", tmp_short, "--to", "DE-BKA", "--type", type_,
                      "--purpose", "missing-persons", "--body", body, *extra)  # fmt: skip

    runs = await asyncio.gather(
        send(broken),
        send(wrong),
        send(listed),
        send(tmp_short / "missing.json"),
        send(good, "incident_publish"),
        send(good, "gossip"),
        send(good, "reply", "--tlp", "purple"),
        send(good, "reply", "--handling", "H0,H9"),
        send(good, "reply", "--retention-days", "0"),
        accord("send", "--to", "DE-BKA"),
    )
    assert_usage_error(runs[0], f"--body {broken}: not valid JSON", "line 2 column 11")
    assert_usage_error(runs[1], f"--body {wrong}: not a valid LiaisonBody for REQUEST_INFO",
                       'no field named "subjekt"')  # fmt: skip
    assert_usage_error(runs[2], f"--body {listed}: must be a JSON object")
    assert_usage_error(runs[3], "missing.json: cannot read: No such file or directory")
    assert_usage_error(runs[4], "not a valid IncidentBody for INCIDENT_PUBLISH")
    assert_usage_error(runs[5], "--type 'gossip' is not one of: REQUEST_INFO, REPLY")
    assert_usage_error(runs[6], "--tlp 'purple' is not one of: CLEAR, GREEN, AMBER")
    assert_usage_error(runs[7], "--handling code 'H9' is not one of: H0, H1, H2, H3")
    assert_usage_error(runs[8], "argument --retention-days: 0 is out of range (1 to 36500)")
    assert_usage_error(
        runs[9], "send: the following arguments are required: --type, --purpose, --body",
        "see `accord send --help`",
    )  # fmt: skip


# ---- against running nodes ---------------------------------------------------------------------


@pytest.fixture
async def running(fed3: Federation) -> AsyncIterator[Federation]:
    for node in await fed3.start_all():
        await add_user(node, OFFICER, "liaison_officer", [*ALL_PURPOSES, UNPERMITTED_PURPOSE])
    yield fed3


# The provider's terms every message states.
MARKINGS = ("--tlp", "green", "--handling", "H0", "--retention-days", "30")


async def officer(fed: Federation, agency: str, *args: str | Path) -> Run:
    return await accord(*args, "--home", fed.homes[agency], "--as", OFFICER)


async def test_send_inbox_show_receipts_and_reply(running: Federation, tmp_short: Path) -> None:
    fed = running
    body = tmp_short / "request.json"
    body.write_text(json.dumps({"subject": "Missing minor", "text": "Last seen near Aachen."}))
    run = await officer(
        fed, "NL-POL", "send", "--to", "DE-BKA,FR-PN", "--type", "Request_Info",
        "--purpose", "missing-persons", "--body", body, "--retention-days", "30",
        "--tlp", "amber+strict", "--handling", "H0,H2", "--onward", "forbidden", "--urgent",
        "--legal-basis", "Directive (EU) 2023/977",
    )  # fmt: skip
    assert run.code == 0, run
    message_id = run.out.strip()
    assert len(message_id) == 36 and "queued for DE-BKA, FR-PN" in run.err

    nl = fed.nodes["NL-POL"]

    await until_delivered(nl, message_id)

    inbox = await officer(fed, "DE-BKA", "inbox")
    assert inbox.code == 0, inbox
    header, *rows = inbox.out.splitlines()
    assert header.split() == ["ID", "SENDER", "TYPE", "PURPOSE", "URGENCY", "RECEIVED",
                              "DEADLINE", "LEFT", "STATUS", "THREAD", "RETAIN-UNTIL",
                              "DAYS-LEFT"]  # fmt: skip
    assert [r.split()[:5] for r in rows] == [
        [message_id, "NL-POL", "REQUEST_INFO", "missing-persons", "URGENT"]
    ]
    # Retention 30 days, counted on the node's clock from receipt.
    assert [r.split()[-1] for r in rows] in (["30.0"], ["29.9"])

    shown = await officer(fed, "DE-BKA", "show", message_id, "--json", JUSTIFICATION)
    assert shown.code == 0, shown
    doc = json.loads(shown.out)
    assert doc["sender"] == "NL-POL" and doc["signature_valid"] is True
    assert doc["content"]["liaison"] == {
        "subject": "Missing minor",
        "text": "Last seen near Aachen.",
    }
    assert doc["content"]["tlp"] == "TLP_AMBER_STRICT"
    assert doc["content"]["handling_codes"] == ["HANDLING_CODE_H0", "HANDLING_CODE_H2"]
    assert doc["content"]["onward_transfer"] == "ONWARD_TRANSFER_FORBIDDEN"
    assert doc["content"]["retention"] == {"days": 30}
    text = await officer(fed, "DE-BKA", "show", message_id, JUSTIFICATION)
    assert text.code == 0, text
    assert f"content sha256: {doc['content_sha256']}" in text.out
    assert "verifies with NL-POL's certificate" in text.out
    retain = [line for line in text.out.splitlines() if line.startswith("retain until:")]
    assert len(retain) == 1 and retain[0].split()[-1] != "-"
    assert doc["retain_until"] is not None

    receipts = await officer(fed, "NL-POL", "receipts", message_id, "--json")
    assert receipts.code == 0, receipts
    deliveries = json.loads(receipts.out)["deliveries"]
    assert [d["recipient"] for d in deliveries] == ["DE-BKA", "FR-PN"]
    for d in deliveries:
        assert d["state"] == "ACCEPTED" and d["reason_code"] == ""
        assert d["content_sha256"] == doc["content_sha256"]
        assert d["receipt_signature_valid"] is True and d["received_at"]
    table = await officer(fed, "NL-POL", "receipts", message_id)
    assert table.code == 0, table
    states = {line.split()[0]: line.split()[1:3] for line in table.out.splitlines()[2:4]}
    assert states == {"DE-BKA": ["ACCEPTED", "-"], "FR-PN": ["ACCEPTED", "-"]}
    assert doc["content_sha256"] in table.out

    reply_body = tmp_short / "reply.json"
    reply_body.write_text('{"subject": "Re: missing minor", "text": "Found safe."}')
    run = await officer(fed, "DE-BKA", "send", "--to", "NL-POL", "--type", "reply",
                        "--purpose", "missing-persons", "--body", reply_body,
                        *MARKINGS, "--reply-to", message_id)  # fmt: skip
    assert run.code == 0, run
    reply_id = run.out.strip()

    async def reply_arrived() -> list[dict[str, str]]:
        listed = await officer(fed, "NL-POL", "inbox", "--json")
        return [m for m in json.loads(listed.out) if m["message_id"] == reply_id]

    (reply,) = await wait_for(reply_arrived)
    assert reply["correlation_id"] == message_id and reply["type"] == "REPLY"


async def test_refusals_and_denials_print_their_code(running: Federation, tmp_short: Path) -> None:
    fed = running
    body = tmp_short / "b.json"
    body.write_text('{"subject": "s", "text": "t"}')
    base = ("send", "--type", "request_info", "--body", body, *MARKINGS)
    unpermitted, stranger, no_reason, admin = await asyncio.gather(
        officer(fed, "FR-PN", *base, "--to", "NL-POL", "--purpose", UNPERMITTED_PURPOSE),
        officer(fed, "FR-PN", *base, "--to", "XX-NONE", "--purpose", "missing-persons"),
        officer(fed, "FR-PN", "show", "01a20000-0000-7000-8000-000000000000", JUSTIFICATION),
        accord("inbox", "--home", fed.homes["FR-PN"], "--as", "admin"),
    )
    assert_usage_error(
        unpermitted,
        "refused (PURPOSE_NOT_PERMITTED): agreement AGR-TEST does not permit the purpose "
        f"'{UNPERMITTED_PURPOSE}'",
    )
    assert_usage_error(stranger, "refused (WRONG_RECIPIENT): XX-NONE is not a federation member")
    assert_usage_error(no_reason, "not found: no message 01a20000-")
    assert_usage_error(admin, "permission denied (ROLE)")
    fr = fed.nodes["FR-PN"]
    assert await fr.store.count("deliveries") == 0


async def test_show_needs_a_justification(running: Federation, tmp_short: Path) -> None:
    fed = running
    body = tmp_short / "b.json"
    body.write_text('{"subject": "s", "text": "t"}')
    run = await officer(fed, "NL-POL", "send", "--to", "DE-BKA", "--type", "alert",
                        "--purpose", "counter-terrorism", "--body", body, *MARKINGS)  # fmt: skip
    assert run.code == 0, run
    run = await officer(fed, "NL-POL", "show", run.out.strip())
    assert_usage_error(run, "permission denied (JUSTIFICATION)", "justification")


async def test_receipts_signed_in_a_batch_check_alone_from_the_cli(running: Federation) -> None:
    """Receipts a peer signed a batch at a time: `accord receipts` checks each one on its own
    (its audit path up to the signed root) and says so."""
    nl = running.nodes["NL-POL"]
    sent = await asyncio.gather(*(node_send(nl, liaison(to=["DE-BKA"])) for _ in range(40)))

    await until_delivered(nl, *sent)
    batched = []
    for s in sent:
        (d,) = await nl.store.deliveries(s.message_id)
        if d.receipt_proof:
            batched.append(s.message_id)
    assert batched, "40 concurrent sends: some receipts share a batch signature"
    run = await officer(running, "NL-POL", "receipts", batched[0], "--json")
    assert run.code == 0, run
    (d,) = json.loads(run.out)["deliveries"]
    assert d["receipt_signature_valid"] is True and d["receipt_proof"]
    assert "signed in a batch, audit path of" in d["receipt_signature_check"]

    # An audit path altered at rest (one bit of one sibling hash) no longer leads to the root.
    with sqlite3.connect(running.homes["NL-POL"] / "accord.db") as db:
        (proof,) = db.execute(
            "SELECT receipt_proof FROM deliveries WHERE message_id = ?", (batched[0],)
        ).fetchone()
        altered = proof[:5] + bytes([proof[5] ^ 1]) + proof[6:]
        db.execute(
            "UPDATE deliveries SET receipt_proof = ? WHERE message_id = ?", (altered, batched[0])
        )
    run = await officer(running, "NL-POL", "receipts", batched[0], "--json")
    (d,) = json.loads(run.out)["deliveries"]
    assert d["receipt_signature_valid"] is False
    assert "DOES NOT VERIFY" in d["receipt_signature_check"]


async def test_show_checks_a_batch_signed_envelope_alone(running: Federation) -> None:
    """Sends that start together share one signature: `accord show` at the receiver checks the
    envelope on its own (its audit path up to the signed root), and catches a path altered at
    rest."""
    nl, de = running.nodes["NL-POL"], running.nodes["DE-BKA"]
    sent = await asyncio.gather(*(node_send(nl, liaison(to=["DE-BKA"])) for _ in range(8)))

    async def arrived() -> bool:
        return await de.store.count("messages") >= len(sent)

    await wait_for(arrived, timeout=8)
    target = sent[3].message_id
    run = await officer(running, "DE-BKA", "show", target, "--json", JUSTIFICATION)
    assert run.code == 0, run
    doc = json.loads(run.out)
    assert doc["signature_valid"] is True and doc["signature_proof"]
    assert "signed in a batch, audit path of 3 step(s)" in doc["signature_check"]

    with sqlite3.connect(running.homes["DE-BKA"] / "accord.db") as db:
        (proof,) = db.execute(
            "SELECT signature_proof FROM messages WHERE message_id = ?", (target,)
        ).fetchone()
        altered = proof[:9] + bytes([proof[9] ^ 1]) + proof[10:]
        db.execute(
            "UPDATE messages SET signature_proof = ? WHERE message_id = ?", (altered, target)
        )
    run = await officer(running, "DE-BKA", "show", target, "--json", JUSTIFICATION)
    doc = json.loads(run.out)
    assert doc["signature_valid"] is False
