"""`accord audit`: verify, query, export and prove the node's audit log (auditors and
administrators, over the local API). Verification runs here, in the CLI, with the node's key
taken from the signed federation directory: a node cannot vouch for its own log."""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from accord.v1 import local_pb2
from certs.ca import load_cert
from certs.directory import load_directory
from node import config as config_mod
from node import merkle
from node.audit.checkpoint import CheckpointError, NoteKey, open_checkpoint
from node.audit.export import Export, ExportError, lines, parse, verify_export
from node.audit.verify import LogEntry, Report, format_time, parse_entry, verify_log
from node.cli_access import _call
from node.cli_args import (
    UsageError,
    _local_arguments,
    _table,
    agency_code,
    json_argument,
    message_id,
    path_arg,
    whole,
)
from node.client import connect, resolve_home
from node.signing import public_key_of
from node.text import printable

_ORIGIN = re.compile(r"^([^/]+)/agency/([A-Z0-9-]+)/audit$")


def _stream(args: argparse.Namespace, request: local_pb2.AuditLogRequest) -> list[Any]:
    home = resolve_home(args.home)

    async def run() -> list[Any]:
        async with connect(home, user=args.as_user) as node:
            return [chunk async for chunk in node.api.AuditLog(request)]

    return asyncio.run(run())


def _key(args: argparse.Namespace, origin: str) -> NoteKey:
    """The key that signs `origin`'s checkpoints: from --cert, else the agency's certificate in
    the federation directory the home's node trusts (signed by the federation CA)."""
    if args.cert:
        return NoteKey(origin, public_key_of(load_cert(Path(args.cert))))
    match = _ORIGIN.match(origin)
    if match is None:
        raise UsageError(f"{origin!r} is not an Accord audit log's origin")
    home = resolve_home(args.home)
    config = config_mod.load(home)
    if match.group(1) != config.node.federation:
        raise UsageError(
            f"the log is of federation {match.group(1)}, this home's is {config.node.federation}: "
            "give the node's certificate with --cert"
        )
    ca = load_cert(config.path(config.tls.ca))
    member = load_directory(config.path(config.federation.directory), ca).member(match.group(2))
    if member is None:
        raise UsageError(f"{match.group(2)} is not in the federation directory: use --cert")
    return NoteKey(origin, public_key_of(member.certificate()))


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{what} {path}: {exc.strerror}") from exc


# ---- verify ------------------------------------------------------------------------------------


def _report(report: Report, *, as_json: bool, source: str) -> int:
    if as_json:
        print(json.dumps({
            "source": source,
            "ok": report.ok,
            "entries": report.entries,
            "checkpoints": report.checkpoints,
            "sealed": report.sealed,
            "unsealed": report.unsealed,
            "root": base64.b64encode(report.root).decode(),
            "findings": [
                {"kind": f.kind.value, "seq": f.seq, "last": f.last, "other": f.other,
                 "checkpoint": f.checkpoint, "message": f.message}
                for f in report.findings
            ],
        }, indent=2))  # fmt: skip
    else:
        for f in report.findings:
            where = "" if f.seq is None else f" entry {f.seq}"
            if f.last is not None and f.last != f.seq:
                where = f" entries {f.seq}..{f.last}"
            print(f"{f.kind.value}{where}: {f.message}")
        state = "OK" if report.ok else f"{len(report.findings)} finding(s)"
        print(
            f"audit log {source}: {state}; {report.entries} entries, {report.checkpoints} "
            f"checkpoints verified, {report.sealed} entries sealed, {report.unsealed} not yet"
        )
    return 0 if report.ok else 1


def cmd_verify(args: argparse.Namespace) -> int:
    trusted = [_read(p, "trusted checkpoint") for p in args.trusted or ()]
    if args.file:
        try:
            export = parse(_read(args.file, "export"))
        except ExportError as exc:
            raise UsageError(f"{args.file}: {exc}") from exc
        key = _key(args, export.origin)
        return _report(verify_export(export, key, trusted=trusted), as_json=args.json,
                       source=args.file)  # fmt: skip
    chunks = _stream(args, local_pb2.AuditLogRequest(checkpoints=True))
    key = _key(args, chunks[0].origin)
    if key.vkey() != chunks[0].verifier_key:
        print(f"the node names another key than its directory certificate's: "
              f"{chunks[0].verifier_key}", file=sys.stderr)  # fmt: skip
    entries = [LogEntry(e.seq, e.data, e.leaf_hash) for c in chunks for e in c.entries]
    notes = list(chunks[0].checkpoints)
    report = verify_log(entries, notes, key, trusted=trusted)
    return _report(report, as_json=args.json, source=chunks[0].origin)


# ---- query -------------------------------------------------------------------------------------


def _when(text: str) -> str:
    """A date or RFC 3339 time as the entries write theirs (UTC, microseconds)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or time (like 2026-11-29 or 2026-11-29T10:00Z)"
        ) from exc
    return format_time(value if value.tzinfo else value.replace(tzinfo=UTC))


def _request(args: argparse.Namespace, **more: Any) -> local_pb2.AuditLogRequest:
    return local_pb2.AuditLogRequest(
        message_id=args.message or "",
        actor=args.user or "",
        peer=args.peer or "",
        action=args.action or "",
        since=args.since or "",
        until=args.until or "",
        **more,
    )


def cmd_query(args: argparse.Namespace) -> int:
    chunks = _stream(args, _request(args, limit=args.limit))
    entries = [parse_entry(e.data) for c in chunks for e in c.entries]
    if args.json:
        print(json.dumps([json.loads(e.data) for c in chunks for e in c.entries], indent=2))
        return 0
    rows = [
        [str(e.seq), format_time(e.at)[:19], e.actor or "-", e.action, e.outcome,
         e.message_id or "-", e.peer or "-", (e.justification or e.detail or "-")[:60]]
        for e in entries
    ]  # fmt: skip
    headers = ["seq", "at", "actor", "action", "outcome", "message", "peer", "why / detail"]
    print(_table(headers, [[printable(c) for c in r] for r in rows]))
    return 0


# ---- export ------------------------------------------------------------------------------------


def _bound(text: str) -> tuple[int, str]:
    """--from/--to: an entry number, or a date or time."""
    return (int(text), "") if text.strip().isdigit() else (0, _when(text))


def cmd_export(args: argparse.Namespace) -> int:
    first, since = args.from_ or (1, "")
    last, until = args.to or (0, "")
    request = local_pb2.AuditLogRequest(
        first=first or 1, last=last, since=since, until=until, checkpoints=True
    )
    home = resolve_home(args.home)

    async def run() -> Export:
        async with connect(home, user=args.as_user) as node:
            chunks = [chunk async for chunk in node.api.AuditLog(request)]
            head = chunks[0]
            entries = [LogEntry(e.seq, e.data, e.leaf_hash) for c in chunks for e in c.entries]
            notes = list(head.checkpoints)
            if not entries:
                raise UsageError("no audit entries in that range")
            sizes = [open_checkpoint(n, _key(args, head.origin)).size for n in notes]
            export = Export(head.origin, head.verifier_key, entries[0].seq, entries[-1].seq, 0,
                            entries, [], notes)  # fmt: skip
            for old, new in itertools.pairwise(sizes):
                proof = await node.api.AuditConsistency(
                    local_pb2.AuditConsistencyRequest(old_size=old, new_size=new)
                )
                export.consistency[old, new] = list(proof.hashes)
            if args.from_ or args.to:
                # A range: each entry with its proof in one checkpoint that covers the last (the
                # latest, signed now if it does not), connected to the others by a proof.
                latest = await node.api.AuditProve(local_pb2.AuditProveRequest(seq=export.last))
                export.size = open_checkpoint(latest.checkpoint, _key(args, head.origin)).size
                if latest.checkpoint not in notes:
                    export.checkpoints.append(latest.checkpoint)
                    if sizes:
                        proof = await node.api.AuditConsistency(
                            local_pb2.AuditConsistencyRequest(
                                old_size=sizes[-1], new_size=export.size
                            )
                        )
                        export.consistency[sizes[-1], export.size] = list(proof.hashes)
                for entry in entries:
                    proof = await node.api.AuditProve(
                        local_pb2.AuditProveRequest(seq=entry.seq, size=export.size)
                    )
                    export.proofs.append(list(proof.hashes))
            return export

    try:
        export = asyncio.run(run())
    except CheckpointError as exc:
        raise UsageError(f"the node's checkpoint does not verify: {exc}") from exc
    Path(args.out).write_text("".join(lines(export)))
    print(f"{len(export.entries)} entries ({export.first}..{export.last}) and "
          f"{len(export.checkpoints)} checkpoints written to {args.out}")  # fmt: skip
    return 0


# ---- proofs ------------------------------------------------------------------------------------


def cmd_prove(args: argparse.Namespace) -> int:
    proof = _call(args, "AuditProve", local_pb2.AuditProveRequest(seq=args.seq, size=args.size))
    entry_text = proof.entry.decode()
    checkpoint = proof.checkpoint.decode()
    hashes = [base64.b64encode(h).decode() for h in proof.hashes]
    if args.json:
        print(json.dumps({"seq": proof.seq, "entry": entry_text, "proof": hashes,
                          "checkpoint": checkpoint}, indent=2))  # fmt: skip
        return 0
    note = _checked(args, proof.checkpoint)
    ok = merkle.verify_inclusion(
        merkle.leaf_hash(proof.entry), proof.seq - 1, note[0], list(proof.hashes), note[1]
    )
    print(f"entry {proof.seq}: {entry_text}")
    print(f"in checkpoint of size {note[0]}, root {base64.b64encode(note[1]).decode()}")
    print("proof (RFC 9162 inclusion, leaf first; docs/audit.md, (a)):")
    for h in hashes:
        print(f"  {h}")
    print(f"checkpoint:\n{checkpoint}", end="")
    print(f"check: {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


def _checked(args: argparse.Namespace, note: bytes) -> tuple[int, bytes]:
    text = note.decode().splitlines()
    try:
        checkpoint = open_checkpoint(note, _key(args, text[0] if text else ""))
    except CheckpointError as exc:
        raise UsageError(f"the node's checkpoint is refused: {exc}") from exc
    return checkpoint.size, checkpoint.root


def cmd_consistency(args: argparse.Namespace) -> int:
    request = local_pb2.AuditConsistencyRequest(old_size=args.old, new_size=args.new)
    proof = _call(args, "AuditConsistency", request)
    hashes = [base64.b64encode(h).decode() for h in proof.hashes]
    if args.json:
        print(json.dumps({"old_checkpoint": proof.old_checkpoint.decode(),
                          "new_checkpoint": proof.checkpoint.decode(), "proof": hashes},
                         indent=2))  # fmt: skip
        return 0
    (m, r1), (n, r2) = _checked(args, proof.old_checkpoint), _checked(args, proof.checkpoint)
    ok = merkle.verify_consistency(m, n, list(proof.hashes), r1, r2)
    print(f"checkpoint {m}: root {base64.b64encode(r1).decode()}")
    print(f"checkpoint {n}: root {base64.b64encode(r2).decode()}")
    print("proof (RFC 9162 consistency; docs/audit.md, (b)):")
    for h in hashes:
        print(f"  {h}")
    print(f"check: {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


# ---- parser ------------------------------------------------------------------------------------


def _position(text: str) -> int:
    """argparse type: an entry's number or a tree size (a whole number from 1)."""
    value = text.strip()
    if not value.isdigit() or not 1 <= int(value) < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r} is not an entry number (1, 2, ...)")
    return int(value)


def _cert_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cert",
        type=path_arg,
        help="the node's certificate (PEM) to check checkpoints with (default: the agency's "
        "certificate in the federation directory of --home)",
    )


def add_audit(sub: Any) -> None:
    audit = sub.add_parser("audit", help="verify, query, export and prove the audit log (auditor)")
    asub = audit.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    p = asub.add_parser(
        "verify",
        help="recompute the log's tree, check every checkpoint; exit 1 on any finding",
        description="Recompute the audit log's Merkle tree, check every checkpoint's signature "
        "and that each extends the one before, and name the first entry changed, removed, "
        "inserted or reordered. Exits 0 if nothing is found, 1 otherwise.",
    )
    p.add_argument("--file", type=path_arg, help="check an export (`accord audit export`) offline")
    p.add_argument(
        "--trusted",
        nargs="+",
        type=path_arg,
        metavar="CHECKPOINT",
        help="checkpoint notes kept outside the node (a rewritten log is caught against them)",
    )
    _cert_argument(p)
    _local_arguments(p)
    json_argument(p, "print the report as JSON")
    p.set_defaults(func=cmd_verify)

    p = asub.add_parser("query", help="audit entries by message, user, peer, action and time")
    p.add_argument("--message", type=message_id, help="entries about this message id")
    p.add_argument("--user", help="entries by this local user (`node`: by the node itself)")
    p.add_argument("--peer", type=agency_code, help="entries about this agency")
    p.add_argument("--action", help="entries of this action (consult, send, collect, ...)")
    p.add_argument("--since", type=_when, help="entries at or after this date or time")
    p.add_argument("--until", type=_when, help="entries before this date or time")
    p.add_argument("--limit", type=whole(1, 100_000), default=200, metavar="N",
                   help="the N latest entries selected, 1 to 100000 (default 200)")  # fmt: skip
    _local_arguments(p)
    json_argument(p)
    p.set_defaults(func=cmd_query)

    p = asub.add_parser("export", help="write entries and checkpoints as JSON lines")
    p.add_argument(
        "--from", dest="from_", type=_bound, help="first entry number, or a date or time"
    )
    p.add_argument(
        "--to", type=_bound, help="last entry number, or a date or time (entries before it)"
    )
    p.add_argument("--out", required=True, type=path_arg, help="the file to write")
    _cert_argument(p)
    _local_arguments(p)
    p.set_defaults(func=cmd_export)

    p = asub.add_parser("prove", help="an entry's inclusion proof against a signed checkpoint")
    p.add_argument("seq", type=_position, help="the entry's number")
    p.add_argument("--size", type=_position, default=0,
                   help="against the checkpoint of this size (default: the latest)")  # fmt: skip
    _cert_argument(p)
    _local_arguments(p)
    json_argument(p)
    p.set_defaults(func=cmd_prove)

    p = asub.add_parser("consistency", help="a consistency proof between two checkpoints")
    p.add_argument("old", type=_position, help="the older checkpoint's size")
    p.add_argument("new", type=_position, help="the newer checkpoint's size")
    _cert_argument(p)
    _local_arguments(p)
    json_argument(p)
    p.set_defaults(func=cmd_consistency)


GROUPS = (add_audit,)
