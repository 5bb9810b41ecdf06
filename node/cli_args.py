"""What every `accord` command group shares (node/cli.py, node/cli_access.py, node/cli_drill.py,
gateway/cli.py): argument types and common arguments, the usage error, tables, and checking a
signature with a member's certificate from the signed directory."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from certs.ca import load_cert
from certs.errors import PkiError
from certs.identity import check_agency_code
from node import config as config_mod
from node.errors import AccordError

MAX_RETENTION_DAYS = 36500


class UsageError(AccordError):
    """A command line that names something impossible (bad type, bad file, ...)."""


def _home_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", type=path_arg, help="node home directory (default $ACCORD_HOME)")


def _local_arguments(p: argparse.ArgumentParser) -> None:
    """What every command over the local API takes: which node, and as which local user."""
    _home_argument(p)
    p.add_argument(
        "--as",
        dest="as_user",
        metavar="USER",
        help="act as this local user (token from $ACCORD_TOKEN or HOME/tokens/USER; "
        "default $ACCORD_USER, else admin)",
    )


def json_argument(p: argparse.ArgumentParser, what: str = "print JSON instead of a table") -> None:
    p.add_argument("--json", action="store_true", help=what)


def _choice(value: str, choices: Sequence[str], *, what: str, prefix: str = "") -> str:
    """Match a user-typed enum name: case-insensitive, '-'/'+' as '_', optional proto prefix."""
    name = value.strip().upper().replace("-", "_").replace("+", "_").removeprefix(prefix)
    if name not in choices:
        raise UsageError(f"{what} {value!r} is not one of: {', '.join(choices)}")
    return name


def whole(low: int, high: int) -> Callable[[str], int]:
    """argparse type: a whole number from `low` to `high`."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range ({low} to {high})")
        return value

    parse.bounds = (low, high)  # type: ignore[attr-defined]  # for the tests that walk options
    return parse


_MESSAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def message_id(text: str) -> str:
    """argparse type: a message id (a UUID, as the node gives them out)."""
    if not _MESSAGE_ID.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a message id (a UUID like 0190a0a0-0000-7000-8000-000000000001)"
        )
    return text.strip()


def path_arg(text: str) -> str:
    """argparse type: a path, never empty (an empty one would mean the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; name a file or directory")
    return text


def agency_code(text: str) -> str:
    """argparse type: an agency code such as NL-POL."""
    try:
        return check_agency_code(text.strip())
    except PkiError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def number(above: float, high: float) -> Callable[[str], float]:
    """argparse type: a number greater than `above`, at most `high` (nan and inf refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not above < value <= high:  # written so that nan is refused too
            raise argparse.ArgumentTypeError(
                f"{text.strip()} is out of range (more than {above:g}, at most {high:g})"
            )
        return value

    parse.bounds = (above, high)  # type: ignore[attr-defined]
    return parse


def _names(enum: Any, prefix: str) -> list[str]:
    """A protobuf enum's value names without prefix, leaving out the zero UNSPECIFIED."""
    return [str(v.name).removeprefix(prefix) for v in enum.DESCRIPTOR.values if v.number != 0]


def _csv(values: Sequence[str] | None) -> list[str]:
    return [v.strip() for value in values or () for v in value.split(",") if v.strip()]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)  # fmt: skip


def _check_signature(
    home: Path, agency: str, data: bytes, signature: bytes
) -> tuple[bool | None, str]:
    """Check a signature with `agency`'s certificate from the signed federation directory.

    None when it could not be checked (e.g. the signer has left the directory).
    """
    from certs.directory import load_directory
    from node.signing import public_key_of, verify_signed

    try:
        config = config_mod.load(home)
        ca = load_cert(config.path(config.tls.ca))
        member = load_directory(config.path(config.federation.directory), ca).member(agency)
    except (AccordError, PkiError) as exc:
        return None, f"not checked: {exc}"
    if member is None:
        return None, f"not checked: {agency} is not in the current federation directory"
    fp = member.certificate_sha256[:16]
    if verify_signed(public_key_of(member.certificate()), data, signature):
        return True, f"verifies with {agency}'s certificate (sha256 {fp}...)"
    return False, f"DOES NOT VERIFY with {agency}'s certificate (sha256 {fp}...)"


def _read_body(path: str, body: Any, *, type_name: str) -> None:
    """Parse a body file (protobuf JSON mapping) into `body`, with errors naming file and cause."""
    from google.protobuf import json_format  # type: ignore[import-untyped, unused-ignore]

    kind = body.DESCRIPTOR.name
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"--body {path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"--body {path}: not UTF-8 text") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--body {path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(doc, dict):
        raise UsageError(f"--body {path}: must be a JSON object (a {kind} for {type_name})")
    try:
        json_format.ParseDict(doc, body)
    except json_format.ParseError as exc:
        problem = " ".join(str(exc).split())
        raise UsageError(f"--body {path}: not a valid {kind} for {type_name}: {problem}") from exc
