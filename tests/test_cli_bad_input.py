"""Every `accord` command, given missing, malformed and out-of-range arguments: one line
`accord: error: ...`, exit status 2, never a traceback (issue 11, "Done when").

In-process (`node.cli.main`): a child process per case would cost minutes for the same code
path. A few cases run as real processes at the end, and tests/test_cli.py runs many more.
Commands that talk to a node run against real nodes, in a thread (the nodes serve in this
test's event loop; `main` runs its own).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.cli import build_parser
from tests.harness import ALL_PURPOSES, Federation, add_user, liaison, node_send
from tests.test_cli import Run, accord, assert_usage_error
from tests.test_cli_args import assert_one_line_error, run, subcommands

MESSAGE = "0190a0a0-0000-7000-8000-000000000001"
NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch, tmp_short: Path) -> Iterator[None]:
    for name in ("ACCORD_HOME", "ACCORD_USER", "ACCORD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # A command that took a bad path for the current directory must not write into the repo.
    (tmp_short / "cwd").mkdir()
    monkeypatch.chdir(tmp_short / "cwd")
    # `node run`, run in-process here, sets up the process's logging as a node process would:
    # undone after each test, so nodes served in this process do not log into what the CLI
    # is seen to print.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def places(tmp_short: Path) -> dict[str, Path]:
    """Paths a user could mistype: missing, a file where a directory belongs, and back."""
    empty = tmp_short / "empty"
    empty.mkdir()
    binary = tmp_short / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    broken = tmp_short / "broken.json"
    broken.write_text("{")
    return {
        "missing": tmp_short / "missing" / "deeper",
        "file": binary,
        "broken": broken,
        "empty": empty,
        "devnull": Path("/dev/null"),
    }


def good_values(places: dict[str, Path]) -> dict[str, str]:
    """A well-formed value for each argument (the node or federation they name need not
    exist: other arguments are what each case spoils)."""
    return {
        "dir": str(places["empty"]),
        "home": str(places["empty"]),
        "federation": str(places["empty"]),
        "agency": "NL-POL",
        "endpoint": "127.0.0.1:7443",
        "to": "DE-BKA",
        "type": "request_info",
        "purpose": "missing-persons",
        "body": str(places["broken"]),
        "file": str(places["broken"]),
        "id": MESSAGE,
        "name": "alice",
        "role": "auditor",
        "justification": "checking the case file",
        "third": "FR-PN",
        "reason": "grounds",
        "until": "2030-01-01T00:00:00+00:00",
        "seq": "5",
        "old": "4",
        "new": "8",
    }


def bad_values(places: dict[str, Path]) -> dict[str, list[str]]:
    missing, binary, devnull = str(places["missing"]), str(places["file"]), "/dev/null"
    return {
        "dir": [missing, devnull, binary, ""],
        "home": [missing, devnull, binary, ""],
        "federation": [missing, devnull],
        "certs": [missing, devnull],
        "out": [devnull + "/x"],
        "agency": ["nl-pol", "", "NL_POL", "X" * 200],
        "endpoint": ["nohost", "h:99999", ":1", "h:-1", ""],
        "listen": ["nonsense", "h:99999", ""],
        "to": ["nl-pol", ",,,", "NL-POL;DE-BKA", ""],
        "third": ["fr", ""],
        "peer": ["x", ""],
        "sender": ["de", ""],
        "type": ["gossip", "", "MESSAGE_TYPE_"],
        "body": [missing, binary, devnull, str(places["empty"]), str(places["broken"])],
        "file": [missing, binary, devnull, str(places["empty"])],
        "serial": ["zz", "", "-1"],
        "id": ["not-a-uuid", "", MESSAGE.upper(), MESSAGE + "0"],
        "reply_to": ["x"],
        "correlation": ["x"],
        "before": ["x", "0"],
        "in_reply_to": ["x"],
        "message": ["x"],
        "tlp": ["purple", ""],
        "handling": ["H9", "h0,x"],
        "onward": ["sometimes", ""],
        "reply_by": ["tomorrow", "2020-01-01T00:00:00+00:00", "2030-01-01T00:00:00"],
        "until": ["next spring", "", "2030-01-01T00:00:00"],
        "role": ["root", ""],
        "state": ["maybe"],
        "log_format": ["xml"],
        "log_level": ["loud"],
        "federation_name": ["Not A Name"],
        "as_user": ["nobody"],
        "name": ["Bad Name!"],
    }


# A directory that does not exist yet is what these create: not a mistake there.
CREATES = {("certs init-federation", "dir"), ("node init", "home"), ("cluster init", "dir")}


def leaf_commands() -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
    for path, parser in subcommands(build_parser()):
        # Run with good arguments (or none), it runs a cluster (its --dir is spoiled below).
        if path != ["cluster", "up"]:
            yield path, parser


def argv_for(parser: argparse.ArgumentParser, good: dict[str, str], *, spoil: str = "",
             value: str = "", omit: str = "") -> list[str] | None:  # fmt: skip
    """The command line with every required argument given a good value, `spoil` given
    `value`, `omit` left out; None if `spoil` is not an argument of this command."""
    argv: list[str] = []
    seen = False
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.dest == omit:
            continue
        if action.dest == spoil:
            seen = True
            text = value
        elif action.required or (not action.option_strings and action.nargs is None):
            text = good.get(action.dest, "x")
        else:
            continue
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            continue
        argv += [f"{action.option_strings[0]}={text}"] if action.option_strings else [text]
    if spoil and not seen:
        return None
    return argv


def test_missing_arguments(capsys: pytest.CaptureFixture[str], places: dict[str, Path]) -> None:
    good = good_values(places)
    cases = 0
    for path, parser in leaf_commands():
        required = [a.dest for a in parser._actions if a.required]
        for dest in required:
            argv = argv_for(parser, good, omit=dest)
            assert argv is not None
            result = run([*path, *argv], capsys)
            assert_one_line_error(result, "required")
            cases += 1
        # And nothing at all: required arguments missing, or no node home to act on.
        assert_one_line_error(run(path, capsys))
        cases += 1
    for group in (["certs"], ["node"], ["users"], ["approvals"], ["transfer"], ["policy"],
                  ["agreements"], []):  # fmt: skip
        assert_one_line_error(run(group, capsys), "required")
    assert cases > 60


def test_malformed_arguments(capsys: pytest.CaptureFixture[str], places: dict[str, Path]) -> None:
    good, bad = good_values(places), bad_values(places)
    cases = 0
    for path, parser in leaf_commands():
        for dest, values in bad.items():
            for value in values:
                if (" ".join(path), dest) in CREATES and value == str(places["missing"]):
                    continue
                argv = argv_for(parser, good, spoil=dest, value=value)
                if argv is None:
                    continue
                result = run([*path, *argv], capsys)
                assert result.code == 2 and result.err.count("\n") == 1, (path, argv, result)
                assert_one_line_error(result)
                cases += 1
    for value in (str(places["file"]) + "/cluster", "/dev/null", ""):
        assert_one_line_error(run(["cluster", "up", "--dir", value], capsys))
    assert cases > 250


def test_unknown_options_and_values_where_none_belong(
    capsys: pytest.CaptureFixture[str], places: dict[str, Path]
) -> None:
    good = good_values(places)
    for path, parser in subcommands(build_parser()):
        argv = argv_for(parser, good) or []
        # argparse names a missing argument before an unknown one (certs revoke's group).
        assert_one_line_error(run([*path, *argv, "--no-such-option"], capsys))
        assert_one_line_error(run([*path, *argv, "extra", "words"], capsys))


# ---- against running nodes --------------------------------------------------------------------


async def in_thread(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Run:
    return await asyncio.to_thread(run, argv, capsys)


async def test_malformed_arguments_against_running_nodes(
    fed3: Federation, capsys: pytest.CaptureFixture[str], tmp_short: Path
) -> None:
    """What only a node can judge (an unknown id, purpose, peer or user) is refused in one line
    too, and changes nothing."""
    for node in await fed3.start_all():
        await add_user(node, "officer", "liaison_officer", [*ALL_PURPOSES, "cybercrime"])
        await add_user(node, "sam", "supervisor")
    nl = fed3.nodes[NL]
    known = (await node_send(nl, liaison(to=[DE]))).message_id
    home = str(fed3.homes[NL])
    body = tmp_short / "body.json"
    body.write_text('{"subject": "s", "text": "t"}')
    me = ["--home", home, "--as", "officer"]
    send = ["send", *me, "--type", "request_info", "--body", str(body),
            "--tlp", "green", "--handling", "H0", "--retention-days", "30"]  # fmt: skip
    cases: list[tuple[list[str], str]] = [
        ([*send, "--to", "ZZ-NONE", "--purpose", "missing-persons"], "WRONG_RECIPIENT"),
        ([*send, "--to", NL, "--purpose", "missing-persons"], "WRONG_RECIPIENT"),
        ([*send, "--to", DE, "--purpose", "pizza-delivery"], "pizza-delivery"),
        ([*send, "--to", DE, "--purpose", "cybercrime"], "PURPOSE_NOT_PERMITTED"),
        ([*send, "--to", DE, "--purpose", "missing-persons", "--retention-days", "36500"],
         "RETENTION_EXCEEDS_AGREEMENT"),
        (["show", *me, MESSAGE, "--justification", "checking the case file"], "not found"),
        (["show", *me, known], "JUSTIFICATION"),
        (["receipts", *me, MESSAGE], "not found"),
        (["forward", *me, MESSAGE, "--to", FR, "--justification", "the suspect moved"],
         "not found"),
        (["transfer", "request", *me, MESSAGE, "--to", DE, "--third", FR, "--purpose",
          "pizza-delivery", "--reason", "why"], "pizza-delivery"),
        (["approvals", "approve", "--home", home, "--as", "sam", MESSAGE], "not found"),
        (["approvals", "reject", "--home", home, "--as", "sam", known, "--note", "no"],
         "not found"),
        (["approvals", "reject", "--home", home, "--as", "sam", known], "--note"),
        (["erase-request", *me, MESSAGE], "this node sent no message"),
        (["handling", *me, known], "--tlp"),
        (["redress", "status", *me, MESSAGE], "not found"),
        (["policy", "show", *me, "--peer", "ZZ-NONE"], "ZZ-NONE"),
        (["users", "add", "--home", home, "bob", "--role", "auditor", "--clearance", "pizza"],
         "unknown purpose"),
        (["users", "add", "--home", home, "officer", "--role", "auditor"], "exists"),
        (["users", "clearances", "--home", home, "nobody", "--clearance", "missing-persons"],
         "no user nobody"),
        (["users", "disable", "--home", home, "nobody"], "no user nobody"),
        (["users", "list", *me], "permission denied (ROLE)"),
        (["access-log", *me], "permission denied (ROLE)"),
        (["inbox", "--home", home, "--as", "nobody"], "no token for user 'nobody'"),
        (["status", "--home", home, "--as", "nobody"], "no token for user 'nobody'"),
        (["node", "run", "--home", home], "another node is running"),
        (["node", "init", "--home", home, "--agency", NL, "--federation",
          str(fed3.authority.root)], "already holds a node"),
        (["certs", "issue", "--dir", str(fed3.authority.root), "--agency", NL, "--endpoint",
          "127.0.0.1:1"], "--replace"),
        (["certs", "revoke", "--dir", str(fed3.authority.root), "--serial", "ab"],
         "no unrevoked certificate"),
        (["certs", "set-endpoint", "--dir", str(fed3.authority.root), "--agency", "ZZ-NONE",
          "--endpoint", "h:1"], "not a member"),
        (["agreements", "set", "--dir", str(fed3.authority.root), "--file", str(body)],
         "expected a JSON list"),
    ]  # fmt: skip
    before = await nl.store.count("messages")
    for argv, fragment in cases:
        result = await in_thread(argv, capsys)
        assert_one_line_error(result, fragment)
    assert await nl.store.count("messages") == before, "a refused command changed nothing"


async def test_a_few_of_them_as_real_processes(tmp_short: Path) -> None:
    """The console script's own exit path: the same one line and status 2."""
    runs = await asyncio.gather(
        accord("access-log", "--limit", "-1"),
        accord("certs", "issue", "--dir", tmp_short, "--agency", "NL-POL", "--endpoint", "h:1",
               "--days", "-3"),
        accord("certs", "crl", "--dir", tmp_short, "--hours", "0"),
        accord("show", "not-an-id"),
        accord("node", "init", "--home", tmp_short / "n", "--agency", "NL-POL",
               "--federation", tmp_short, "--listen", "nonsense"),
        accord("send", "--to", "DE-BKA", "--type", "reply", "--purpose", "p", "--body",
               tmp_short / "none.json"),
    )  # fmt: skip
    for result in runs:
        assert_usage_error(result)
    assert "-3 is out of range (1 to 3650)" in runs[1].err
    assert not (tmp_short / "n").exists()
