"""`accord evidence`: export one message's evidence bundle, and check a bundle offline."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from node.cli_args import UsageError, _local_arguments, json_argument, message_id, path_arg
from node.client import connect, resolve_home


def cmd_evidence_export(args: argparse.Namespace) -> int:
    from accord.v1 import local_pb2

    out = Path(args.out)
    if out.exists():
        raise UsageError(f"{out} exists; choose another --out (a bundle is never overwritten)")
    home = resolve_home(args.home)

    async def export() -> Any:
        async with connect(home, user=args.as_user) as node:
            request = local_pb2.EvidenceRequest(
                message_id=args.id, sender=args.sender or "", justification=args.justification
            )
            return await node.api.Evidence(request)

    response = asyncio.run(export())
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    partial.write_bytes(response.bundle)
    try:
        os.link(partial, out)  # fails if `out` appeared meanwhile: nothing is overwritten
    finally:
        partial.unlink()
    print(f"wrote {out} ({len(response.bundle)} bytes)")
    print(f"check it anywhere with: unzip {out.name} -d bundle && sh bundle/VERIFY.sh")
    return 0


def cmd_evidence_verify(args: argparse.Namespace) -> int:
    from node.evidence.bundle import read_zip
    from node.evidence.verify import check_bundle

    checks = check_bundle(read_zip(Path(args.file).read_bytes()))
    passed = all(c.ok for c in checks)
    if args.json:
        doc = {
            "passed": passed,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        }
        print(json.dumps(doc, indent=2))
    else:
        for c in checks:
            print(c.line())
        print("all checks passed" if passed else f"failed: {checks[-1].name}")
    return 0 if passed else 1


def add_evidence(sub: Any) -> None:
    ev = sub.add_parser("evidence", help="evidence bundles: export one message's, check one")
    esub = ev.add_subparsers(dest="evidence_command", required=True, metavar="SUBCOMMAND")
    p = esub.add_parser(
        "export",
        help="write a sent or received message's evidence bundle (needs what reading it needs)",
    )
    p.add_argument("id", type=message_id, help="message id")
    p.add_argument("--out", required=True, type=path_arg, help="the zip file to write")
    p.add_argument("--sender", help="the sender, if the id alone is ambiguous")
    p.add_argument("--justification", required=True, help="why the evidence is exported (logged)")
    _local_arguments(p)
    p.set_defaults(func=cmd_evidence_export)
    p = esub.add_parser("verify", help="check a bundle offline, as its VERIFY.sh does")
    p.add_argument("file", type=path_arg, help="the bundle (zip)")
    json_argument(p, "print the checks as JSON")
    p.set_defaults(func=cmd_evidence_verify)


GROUPS = (add_evidence,)
