"""`accord erase-request|rectify|retract|handling ID` and `accord redress status ID`: redress
of a message this node sent, and who along the chain has applied it (docs/redress.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from accord.v1 import local_pb2
from accord.v1 import message_pb2 as pb
from node.cli_access import _call
from node.cli_args import (
    UsageError,
    _choice,
    _csv,
    _local_arguments,
    _names,
    _read_body,
    _table,
    json_argument,
    message_id,
)

_RESULT_WORDS = {
    "ERASED": "erased",
    "RETRACTED": "retracted",
    "REPLACED": "replaced",
    "HANDLING_UPDATED": "handling updated",
    "HELD": "kept: legal hold",
}


def _send(args: argparse.Namespace, request: local_pb2.RedressRequest, what: str) -> int:
    request.message_id = args.id
    request.reason = args.reason or ""
    response = _call(args, "Redress", request)
    print(response.message_id)
    print(
        f"{what} of {args.id} queued for {', '.join(response.recipients)}; "
        f"`accord redress status {args.id}` shows who has applied it",
        file=sys.stderr,
    )
    return 0


def cmd_erase_request(args: argparse.Namespace) -> int:
    return _send(args, local_pb2.RedressRequest(type=pb.MESSAGE_TYPE_ERASURE_REQUEST), "erasure")


def cmd_retract(args: argparse.Namespace) -> int:
    request = local_pb2.RedressRequest(type=pb.MESSAGE_TYPE_INCIDENT_RETRACT)
    return _send(args, request, "retraction")


def cmd_rectify(args: argparse.Namespace) -> int:
    request = local_pb2.RedressRequest(type=pb.MESSAGE_TYPE_RECTIFICATION)
    _read_body(args.body, request.corrected_incident, type_name="RECTIFICATION")
    return _send(args, request, "rectification")


def cmd_handling(args: argparse.Namespace) -> int:
    request = local_pb2.RedressRequest(type=pb.MESSAGE_TYPE_HANDLING_UPDATE)
    if args.tlp:
        tlp = _choice(args.tlp, _names(pb.Tlp, "TLP_"), what="--tlp", prefix="TLP_")
        request.tlp = pb.Tlp.Value(f"TLP_{tlp}")  # type: ignore[assignment]
    codes = _names(pb.HandlingCode, "HANDLING_CODE_")
    for c in _csv(args.handling):
        code = _choice(c, codes, what="--handling code", prefix="HANDLING_CODE_")
        request.handling_codes.append(pb.HandlingCode.Value(f"HANDLING_CODE_{code}"))  # type: ignore[arg-type]
    request.handling_conditions = args.conditions or ""
    if not (request.tlp or request.handling_codes or request.handling_conditions):
        raise UsageError("handling: give --tlp, --handling or --conditions (the new terms)")
    return _send(args, request, "handling update")


def cmd_redress_status(args: argparse.Namespace) -> int:
    response = _call(args, "RedressStatus", local_pb2.RedressStatusRequest(message_id=args.id))
    doc: list[dict[str, Any]] = [
        {
            "redress_id": r.redress_id,
            "type": r.type,
            "target": r.target_message_id,
            "created_at": r.created_at,
            "holders": [
                {
                    "agency": h.agency,
                    "via": h.via,
                    "state": h.state,
                    "result": h.result,
                    "detail": h.detail,
                    "answered_at": h.answered_at,
                }
                for h in r.holders
            ],
        }
        for r in response.redresses
    ]
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    if not doc:
        print(f"no redress of {args.id} was sent from this node")
        return 0
    for r in doc:
        print(f"{r['type']} {r['redress_id']} of {r['target']} ({r['created_at']})")
        rows = [
            [
                h["agency"],
                h["via"] or "-",
                h["state"],
                _RESULT_WORDS.get(h["result"], h["result"] or "-"),
                h["detail"] or "-",
            ]
            for h in r["holders"]
        ]
        print(_table(["holder", "via", "state", "done", "detail"], rows))
        print()
    return 0


def add_redress(sub: Any) -> None:
    def redress_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        p.add_argument("id", type=message_id, help="id of a message this node sent")
        p.add_argument("--reason", help="why (travels with the redress)")
        _local_arguments(p)
        return p

    p = redress_parser("erase-request", "ask every holder of a message you sent to erase it")
    p.set_defaults(func=cmd_erase_request)
    p = redress_parser("retract", "retract an incident you sent, at every holder")
    p.set_defaults(func=cmd_retract)
    p = redress_parser("rectify", "replace an incident you sent with a corrected version")
    p.add_argument(
        "--body", required=True, help="the corrected IncidentBody as JSON (a file, or - for stdin)"
    )
    p.set_defaults(func=cmd_rectify)
    p = redress_parser("handling", "tighten the TLP or handling of a message you sent")
    p.add_argument("--tlp", metavar="LEVEL", help="a stricter TLP (never lower)")
    p.add_argument("--handling", action="append", metavar="CODES", help="handling codes to add")
    p.add_argument("--conditions", help="handling conditions to add")
    p.set_defaults(func=cmd_handling)
    red = sub.add_parser("redress", help="who has applied the redress of a message you sent")
    rsub = red.add_subparsers(dest="redress_command", required=True, metavar="SUBCOMMAND")
    p = rsub.add_parser("status", help="every holder along the chain, and its answer")
    p.add_argument("id", type=message_id, help="id of the message (or of one of its redresses)")
    _local_arguments(p)
    json_argument(p)
    p.set_defaults(func=cmd_redress_status)


GROUPS = (add_redress,)
