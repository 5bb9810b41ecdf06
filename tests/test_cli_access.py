"""The access-control commands, run as a user would: the real `accord` CLI against real nodes."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.harness import Federation, incident, wait_for

NL, DE = "NL-POL", "DE-BKA"
MARKINGS = ("--tlp", "amber", "--handling", "H0", "--retention-days", "30")


async def accord(*args: str, home: Path | None = None) -> tuple[int, str, str]:
    argv = [sys.executable, "-m", "node.cli", *args]
    if home is not None:
        argv += ["--home", str(home)]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def add_and_enrol(name: str, role: str, home: Path, *, approver: str = "admin2") -> None:
    """`users add` as the administrator, `users approve` as `approver` (every user but the
    bootstrap's second administrator needs one: `approver=""`), and `users enrol --save` with
    the code part(s), as the user."""
    code, out, err = await accord(
        "users", "add", name, "--role", role, "--clearance", "serious-crime-investigation",
        home=home,
    )  # fmt: skip
    assert code == 0, err
    parts = ["--code", out.strip()]
    if approver:
        assert "awaits a second administrator" in err
        code, out, err = await accord("users", "approve", name, "--as", approver, home=home)
        assert code == 0, err
        parts += ["--code", out.strip()]
    code, out, err = await accord("users", "enrol", name, *parts, "--save", home=home)
    assert code == 0, err
    assert (home / "tokens" / name).stat().st_mode & 0o777 == 0o600


async def test_users_read_approve_forward_policy_via_cli(fed3: Federation, tmp_path: Path) -> None:
    nl, de, _ = await fed3.start_all()
    nl_home, de_home = nl.config.home, de.config.home
    await add_and_enrol("admin2", "administrator", nl_home, approver="")  # bootstrap: alone
    await add_and_enrol("anna", "liaison_officer", nl_home)
    code, _, err = await accord("users", "add", "bad name!", "--role", "auditor", home=nl_home)
    assert code == 2 and "user name" in err
    code, _, err = await accord(
        "users", "add", "x", "--role", "auditor", "--clearance", "nonsense", home=nl_home
    )
    assert code == 2 and "unknown purpose" in err
    code, out, _ = await accord("users", "list", home=nl_home)
    assert "anna" in out and "liaison_officer" in out

    body = tmp_path / "incident.json"
    from google.protobuf import json_format

    body.write_text(json_format.MessageToJson(incident(to=[DE]).incident))
    code, out, err = await accord(
        "send",
        "--as",
        "anna",
        "--to",
        DE,
        "--type",
        "incident_publish",
        "--purpose",
        "serious-crime-investigation",
        "--body",
        str(body),
        *MARKINGS,
        home=nl_home,
    )
    assert code == 0, err
    message_id = out.strip().splitlines()[0]
    code, _, err = await accord(
        "send",
        "--to",
        DE,
        "--type",
        "incident_publish",
        "--purpose",
        "serious-crime-investigation",
        "--body",
        str(body),
        *MARKINGS,
        home=nl_home,
    )
    assert code == 2 and "administrator" in err  # the admin manages; it does not send

    await add_and_enrol("admin2", "administrator", de_home, approver="")  # bootstrap: alone
    await add_and_enrol("bert", "liaison_officer", de_home)
    await add_and_enrol("olga", "auditor", de_home)
    code, out, _ = await accord("users", "list", home=de_home)
    assert "olga" in out and "active" in out

    async def arrived() -> bool:
        return await de.store.count("messages") == 1

    await wait_for(arrived)
    code, _, err = await accord("show", message_id, "--as", "bert", home=de_home)
    assert code == 2 and "justification" in err
    code, out, err = await accord(
        "show",
        message_id,
        "--as",
        "bert",
        "--justification",
        "Case 2026/117 robbery suspect",
        home=de_home,
    )
    assert code == 0, err
    assert "Armed robbery" in out
    code, out, err = await accord("access-log", "--as", "olga", home=de_home)
    assert code == 0, err
    assert "consult" in out and "refused" in out and "granted" in out

    code, _, err = await accord(
        "forward",
        message_id,
        "--as",
        "bert",
        "--to",
        "FR-PN",
        "--justification",
        "suspect fled to France",
        home=de_home,
    )
    assert code == 2 and "ONWARD_TRANSFER_NOT_AUTHORISED" in err

    code, out, err = await accord(
        "policy", "show", "--as", "bert", "--peer", NL, "--json", home=de_home
    )
    assert code == 0, err
    assert json.loads(out)["agency"] == NL

    agreements = tmp_path / "agreements.json"
    agreements.write_text(
        json.dumps(
            [
                {
                    "id": "AGR-NEW",
                    "parties": [NL, DE],
                    "purposes": ["missing-persons"],
                    "message_types": ["REQUEST_INFO", "REPLY"],
                    "max_retention_days": 30,
                    "valid_from": "2026-01-01T00:00:00+00:00",
                    "valid_until": "2030-01-01T00:00:00+00:00",
                }
            ]
        )
    )
    fed_dir = str(fed3.authority.root)
    code, out, err = await accord("agreements", "set", "--dir", fed_dir, "--file", str(agreements))
    assert code == 0, err
    assert "1 agreement(s)" in out
    code, out, _ = await accord("agreements", "show", "--dir", fed_dir, "--json")
    assert json.loads(out)[0]["id"] == "AGR-NEW"
    agreements.write_text('[{"id": "AGR-BAD", "parties": ["NL-POL"]}]')
    code, _, err = await accord("agreements", "set", "--dir", fed_dir, "--file", str(agreements))
    assert code == 2
    assert "max_retention_days must be a whole number from 1 to 36500" in err
