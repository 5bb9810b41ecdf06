"""Evidence bundles: exported by `accord evidence export` from real nodes after a real exchange,
checked by the bundle's own VERIFY.sh with the real openssl binary and by `accord evidence
verify`, good and with one byte flipped in each file in turn."""

from __future__ import annotations

import asyncio
import hashlib
import io
import shutil
import sqlite3
import subprocess
import zipfile
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from accord.v1 import message_pb2 as pb
from node import signing, wire
from node.evidence.bundle import read_zip
from node.evidence.verify import check_bundle
from tests.harness import Federation, add_user, liaison, member_key, until_delivered
from tests.test_cli import accord

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"
OFFICER = "officer"
WHY = "--justification=evidence for the prosecutor, case 2026/881"
pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@dataclass
class Exchange:
    fed: Federation
    ids: list[str]


async def exchange(fed: Federation) -> Exchange:
    """NL sends two requests to DE and FR in one turn (signed as one batch, so each envelope
    has an audit path), both receipted; NL's log then holds their sends."""
    nl, _, _ = await fed.start_all()
    await add_user(nl, OFFICER, "liaison_officer")
    officer = await nl.access_store.user(OFFICER)
    assert officer is not None
    drafts = [wire.draft(liaison(to=[DE, FR], text=f"Request {i}")) for i in range(2)]
    sent = await asyncio.gather(*(nl.operations.send(officer, d) for d in drafts))
    await until_delivered(nl, *sent)
    ids = [s.message_id for s in sent]
    await nl.operations.read(officer, message_id=ids[0], sender="", justification=WHY[16:])
    return Exchange(fed, ids)


async def export(fed: Federation, agency: str, message_id: str, out: Path) -> None:
    run = await accord(
        "evidence", "export", message_id, "--out", out, WHY,
        "--home", fed.homes[agency], "--as", OFFICER,
    )  # fmt: skip
    assert run.code == 0, run


def unpack(data: bytes, into: Path) -> Path:
    into.mkdir()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(into)
    return into


def verify_sh(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(folder / "VERIFY.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def flipped(files: dict[str, bytes], name: str) -> dict[str, bytes]:
    """`files` with one byte of `name` flipped (its middle byte); an empty file (a proof of
    something signed alone) has no byte to flip, so one is added."""
    data = bytearray(files[name])
    if data:
        data[len(data) // 2] ^= 0x01
    else:
        data.append(0)
    return {**files, name: bytes(data)}


def expected_check(name: str) -> str:
    """The check that a change to file `name` must fail."""
    top, _, rest = name.partition("/")
    if name == "ca.pem":
        return "federation CA"
    if name.startswith("directory.json"):
        return "directory"
    if top == "certs":
        return f"certificate of {rest.removesuffix('.pem')}"
    if top == "envelope":
        return "envelope"
    if top == "receipts":
        return f"receipt of {rest.split('/')[0]}"
    if name == "audit/checkpoint.txt":
        return "audit checkpoint"
    if top == "audit":
        return f"audit entry {rest.split('.')[0]}"
    raise AssertionError(f"no check covers {name}")


def write_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


# README.txt is read by people, not by any check; VERIFY.sh is the checker itself (a reader
# runs Accord's published copy; `accord evidence verify` refuses any other).
NOT_EVIDENCE = ("README.txt", "VERIFY.sh")


async def test_a_sent_message_bundle_passes_and_every_flipped_byte_is_named(
    fed3: Federation, tmp_short: Path
) -> None:
    ex = await exchange(fed3)
    out = tmp_short / "evidence.zip"
    await export(fed3, NL, ex.ids[0], out)
    files = read_zip(out.read_bytes())
    audit_files = sorted(n for n in files if n.startswith("audit/") and n.endswith(".json"))
    # The node's own log: the send, the read, and this export itself (logged before the
    # bundle is built, so the checkpoint in the bundle covers it).
    assert len(audit_files) == 3 and "audit/checkpoint.txt" in files
    assert {f"receipts/{DE}/proof.bin", f"receipts/{FR}/proof.bin"} <= set(files)
    assert files["envelope/proof.bin"], "two sends in one turn are signed as one batch"
    for code in (NL, DE, FR):
        assert f"certs/{code}.pem" in files

    good = verify_sh(unpack(out.read_bytes(), tmp_short / "good"))
    assert good.returncode == 0, good.stdout + good.stderr
    lines = good.stdout.splitlines()
    assert lines[-1] == "all checks passed"
    assert "FAIL" not in good.stdout
    entries = [f"audit entry {n.split('/')[1].split('.')[0]}" for n in audit_files]
    checks = ["federation CA", "directory", "envelope", f"receipt of {DE}", f"receipt of {FR}"]
    for name in (*checks, "audit checkpoint", *entries):
        assert any(line.startswith(f"ok: {name}:") for line in lines), (name, good.stdout)
    run = await accord("evidence", "verify", out)
    assert run.code == 0, run
    assert run.out.splitlines()[-1] == "all checks passed"
    assert [c.name for c in check_bundle(files) if not c.ok] == []

    for at, name in enumerate(sorted(files)):
        bad = flipped(files, name)
        python = check_bundle(bad)
        if name == "README.txt":
            assert all(c.ok for c in python), name
            continue
        if name == "VERIFY.sh":
            assert (python[-1].ok, python[-1].name) == (False, "VERIFY.sh")
            continue
        want = expected_check(name)
        assert (python[-1].ok, python[-1].name) == (False, want), (name, python[-1])
        folder = unpack(write_zip(bad), tmp_short / f"flip{at}")
        result = verify_sh(folder)
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        last = result.stdout.splitlines()[-1]
        assert last.startswith(f"FAIL: {want}:"), (name, result.stdout)
        shutil.rmtree(folder)


async def test_a_received_message_bundle_proves_the_receivers_own_audit_entries(
    fed3: Federation, tmp_short: Path
) -> None:
    ex = await exchange(fed3)
    await add_user(fed3.nodes[DE], OFFICER, "liaison_officer")
    out = tmp_short / "received.zip"
    run = await accord(
        "evidence", "export", ex.ids[1], "--out", out, WHY,
        "--home", fed3.homes[DE], "--as", OFFICER,
    )  # fmt: skip
    assert run.code == 0, run
    assert "no audit part" not in run.out
    files = read_zip(out.read_bytes())
    assert sorted(n for n in files if n.startswith("receipts/")) == [
        f"receipts/{DE}/content.bin",
        f"receipts/{DE}/proof.bin",
        f"receipts/{DE}/signature.der",
    ]
    result = verify_sh(unpack(out.read_bytes(), tmp_short / "received"))
    assert result.returncode == 0, result.stdout + result.stderr
    # DE's own log: it collected the message (and the export below is logged too).
    assert f"ok: audit checkpoint: {DE}'s log at size" in result.stdout, result.stdout
    # The export is a consultation, logged on the side that made it.
    rows = await fed3.nodes[DE].access_store.entries(message_id=ex.ids[1])
    assert [(r.action, r.outcome, r.user) for r in rows][:1] == [
        ("export-evidence", "granted", OFFICER)
    ]


async def test_export_needs_what_reading_needs_and_refusals_are_logged(
    fed3: Federation, tmp_short: Path
) -> None:
    ex = await exchange(fed3)
    nl = fed3.nodes[NL]
    await add_user(nl, "auditor", "auditor")
    home = fed3.homes[NL]
    out = tmp_short / "x.zip"
    run = await accord("evidence", "export", ex.ids[0], "--out", out, WHY,
                       "--home", home, "--as", "auditor")  # fmt: skip
    assert run.code == 2 and "permission denied (ROLE)" in run.err, run
    run = await accord("evidence", "export", ex.ids[0], "--out", out, "--justification=x",
                       "--home", home, "--as", OFFICER)  # fmt: skip
    assert run.code == 2 and "JUSTIFICATION" in run.err, run
    assert not out.exists()
    rows = await nl.access_store.entries(message_id=ex.ids[0])
    refused = [(r.user, r.outcome) for r in rows if r.action == "export-evidence"]
    assert refused == [(OFFICER, "refused"), ("auditor", "refused")]
    out.write_bytes(b"kept")
    run = await accord("evidence", "export", ex.ids[0], "--out", out, WHY,
                       "--home", home, "--as", OFFICER)  # fmt: skip
    assert run.code == 2 and "exists" in run.err and out.read_bytes() == b"kept", run


async def test_verify_refuses_what_is_not_a_bundle(tmp_short: Path) -> None:
    junk = tmp_short / "junk.zip"
    junk.write_bytes(b"not a zip")
    run = await accord("evidence", "verify", junk)
    assert run.code == 2 and run.err.startswith("accord: error: not a zip file"), run
    stray = tmp_short / "stray.zip"
    stray.write_bytes(write_zip({"../etc/passwd": b"x"}))
    run = await accord("evidence", "verify", stray)
    assert run.code == 2 and "is not a file of an evidence bundle" in run.err, run


async def test_no_bundle_for_an_erased_message_or_a_member_no_longer_listed(
    fed3: Federation, tmp_short: Path
) -> None:
    ex = await exchange(fed3)
    home = fed3.homes[NL]
    # Erasure destroys the content (crypto-shredding): done here as the sweeper will, in the
    # database file itself.
    with closing(sqlite3.connect(home / "accord.db", timeout=5)) as conn, conn:
        conn.execute(
            "UPDATE messages SET ciphertext = NULL, wrapped_key = NULL, erased_at = ? "
            "WHERE message_id = ?",
            (datetime.now(UTC).isoformat(), ex.ids[1]),
        )
    run = await accord("evidence", "export", ex.ids[1], "--out", tmp_short / "e.zip", WHY,
                       "--home", home, "--as", OFFICER)  # fmt: skip
    assert run.code == 2 and "refused (ERASED)" in run.err and "tombstone" in run.err, run
    # A recipient revoked and dropped from the directory: its certificate, which checks its
    # receipt, can no longer be put in the bundle.
    fed3.authority.revoke(agency=FR, now=fed3.now)
    fed3.reload_all()
    run = await accord("evidence", "export", ex.ids[0], "--out", tmp_short / "f.zip", WHY,
                       "--home", home, "--as", OFFICER)  # fmt: skip
    assert run.code == 2 and f"{FR} is no longer in the federation directory" in run.err, run
    assert not (tmp_short / "e.zip").exists() and not (tmp_short / "f.zip").exists()


async def test_genuine_parts_of_another_exchange_do_not_pass(
    fed3: Federation, tmp_short: Path
) -> None:
    """Every signature verifies, but the parts do not belong together: a receipt of the other
    message, a receipt (signed with the receiver's real key) of another content under this
    message's id, an audit entry about the other message."""
    ex = await exchange(fed3)
    bundles = []
    for n, message_id in enumerate(ex.ids):
        out = tmp_short / f"b{n}.zip"
        await export(fed3, NL, message_id, out)
        bundles.append(read_zip(out.read_bytes()))
    this, other = bundles
    receipt = f"receipts/{DE}"
    swapped = {**this, **{k: v for k, v in other.items() if k.startswith(receipt)}}
    forged_content = pb.ReceiptContent.FromString(this[f"{receipt}/content.bin"])
    forged_content.content_sha256 = hashlib.sha256(other["envelope/content.bin"]).digest()
    forged = forged_content.SerializeToString()
    key = member_key(fed3, DE)
    forged_files = {
        **this,
        f"{receipt}/content.bin": forged,
        f"{receipt}/signature.der": signing.sign(key, forged, signing.RECEIPT),
        f"{receipt}/proof.bin": b"",
    }
    theirs = next(n for n in sorted(other) if n.endswith(".json") and n not in this)
    seq = theirs.split("/")[1].split(".")[0]
    foreign = {**this, theirs: other[theirs], f"audit/{seq}.proof": other[f"audit/{seq}.proof"]}
    cases = [
        (swapped, f"receipt of {DE}", "for another message"),
        (forged_files, f"receipt of {DE}", "receipted content digest differs"),
        (foreign, f"audit entry {seq}", "is not about message"),
    ]
    for at, (files, name, why) in enumerate(cases):
        python = check_bundle(files)
        assert (python[-1].ok, python[-1].name) == (False, name), python[-1]
        assert why in python[-1].detail
        result = verify_sh(unpack(write_zip(files), tmp_short / f"case{at}"))
        assert result.returncode == 1, result.stdout
        assert result.stdout.splitlines()[-1].startswith(f"FAIL: {name}: {why}"), result.stdout


async def test_a_bundle_stripped_of_its_audit_part_fails(fed3: Federation, tmp_short: Path) -> None:
    """Taking the audit files out must not turn the audit checks into a skip."""
    ex = await exchange(fed3)
    out = tmp_short / "evidence.zip"
    await export(fed3, NL, ex.ids[0], out)
    stripped = {n: d for n, d in read_zip(out.read_bytes()).items() if not n.startswith("audit/")}
    python = check_bundle(stripped)
    assert (python[-1].ok, python[-1].name) == (False, "audit"), python[-1]
    result = verify_sh(unpack(write_zip(stripped), tmp_short / "stripped"))
    assert result.returncode == 1, result.stdout
    assert result.stdout.splitlines()[-1].startswith("FAIL: audit: the bundle has no audit part")
