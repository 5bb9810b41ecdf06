"""Bad command lines, in-process: every mistake is one `accord: error:` line and exit status 2.

In-process (`node.cli.main`) because a child process per case would cost seconds for what is
the same code path; tests/test_cli.py runs the real console script.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from certs.ca import FederationAuthority
from certs.identity import fingerprint
from node.cli import build_parser, main
from tests.test_cli import Run, assert_usage_error


def run(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> Run:
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return Run(code, out, err)


def assert_one_line_error(result: Run, *fragments: str) -> None:
    """Exit 2, one `accord: error:` line naming the problem, no traceback."""
    assert_usage_error(result, *fragments)


def subcommands(
    parser: argparse.ArgumentParser, prefix: Sequence[str] = ()
) -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
    """Every command that runs something (a leaf of the command tree), with its parser."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield list(prefix), parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from subcommands(sub, [*prefix, name])


def numeric_options() -> Iterator[tuple[list[str], argparse.Action]]:
    for path, parser in subcommands(build_parser()):
        for action in parser._actions:
            if hasattr(action.type, "bounds"):
                yield path, action


def test_every_numeric_option_has_a_range_and_says_it() -> None:
    options = list(numeric_options())
    for path, parser in subcommands(build_parser()):
        for action in parser._actions:
            if action.type in (int, float):
                raise AssertionError(f"{path} {action.option_strings}: a number without a range")
    names = {(" ".join(path), a.option_strings[0]) for path, a in options}
    assert {("inbox", "--limit"), ("access-log", "--limit"), ("certs issue", "--days"),
            ("certs crl", "--hours"), ("send", "--retention-days")} <= names  # fmt: skip
    for path, action in options:
        _, high = action.type.bounds  # type: ignore[union-attr]
        assert action.help and f"{high:g}" in action.help, (path, action.option_strings)


def test_numbers_out_of_range_or_not_numbers_are_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for path, action in numeric_options():
        option = action.option_strings[0]
        low, high = action.type.bounds  # type: ignore[union-attr]
        for bad in (str(low - 1), str(high + 1), "-1", "x", "nan", "inf", ""):
            result = run([*path, f"{option}={bad}"], capsys)
            assert_one_line_error(result, f"argument {option}")


def test_certificate_days_and_crl_hours_refuse_what_would_be_born_stale(
    capsys: pytest.CaptureFixture[str],
) -> None:
    issue = ["certs", "issue", "--dir", "/nonexistent", "--agency", "NL-POL", "--endpoint", "h:1"]
    assert_one_line_error(run([*issue, "--days", "-3"], capsys), "-3 is out of range (1 to 3650)")
    assert_one_line_error(run([*issue, "--days", "0"], capsys), "0 is out of range")
    crl = ["certs", "crl", "--dir", "/nonexistent"]
    assert_one_line_error(run([*crl, "--hours", "-1"], capsys), "out of range (more than 0")
    assert_one_line_error(run([*crl, "--hours", "0"], capsys), "out of range (more than 0")
    assert_one_line_error(run(["access-log", "--limit", "-1"], capsys), "-1 is out of range")


def test_tlp_is_accepted_in_both_spellings_and_shown_as_tlp_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from certs.directory import tlp_label, tlp_name

    for typed in ("AMBER+STRICT", "amber+strict", "amber_strict", "TLP:AMBER+STRICT"):
        assert tlp_name(typed) == "AMBER_STRICT"
        assert tlp_label(tlp_name(typed) or "") == "AMBER+STRICT"
    assert tlp_name("purple") is None
    result = run(["send", "--home", "/nonexistent", "--to", "DE-BKA", "--type", "reply",
                  "--purpose", "p", "--body", "-", "--tlp", "purple"], capsys)  # fmt: skip
    assert_one_line_error(result, "CLEAR, GREEN, AMBER, AMBER+STRICT, RED")
    assert "AMBER_STRICT" not in result.err


def test_issuing_again_needs_replace_keeps_the_name_and_says_what_became_of_the_old(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fed = tmp_path / "fed"
    assert run(["certs", "init-federation", "--dir", str(fed)], capsys).code == 0
    issue = ["certs", "issue", "--dir", str(fed), "--agency", "NL-POL", "--endpoint", "h:7443"]
    assert run([*issue, "--name", "Politie"], capsys).code == 0
    first = x509.load_pem_x509_certificate((fed / "issued/NL-POL/node.pem").read_bytes())
    key = (fed / "issued/NL-POL/node.key").read_bytes()

    result = run(issue, capsys)
    assert_one_line_error(
        result, f"NL-POL already has a certificate (serial {first.serial_number:x})", "--replace"
    )
    assert (fed / "issued/NL-POL/node.key").read_bytes() == key, "nothing was replaced"

    result = run([*issue, "--replace"], capsys)
    assert result.code == 0, result
    assert f"previous certificate (serial {first.serial_number:x}) is no longer listed" in (
        result.out
    )
    assert f"it is not revoked: `accord certs revoke --dir {fed} --serial" in result.out
    authority = FederationAuthority(fed)
    member = authority.directory().member("NL-POL")
    assert member is not None and member.name == "Politie", "a re-issue keeps the name"
    second = x509.load_pem_x509_certificate((fed / "issued/NL-POL/node.pem").read_bytes())
    assert member.certificate_sha256 == fingerprint(second) != fingerprint(first)
    assert authority.unrevoked("NL-POL", datetime.now(UTC)) == [
        first.serial_number,
        second.serial_number,
    ]
