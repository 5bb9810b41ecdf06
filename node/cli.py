"""`accord`: the command line. Thin over the federation authority and the node's local API."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from certs.ca import FederationAuthority
from certs.errors import PkiError
from node import config as config_mod
from node.errors import AccordError

Handler = Callable[[argparse.Namespace], int]


def _now() -> datetime:
    return datetime.now(UTC)


# ---- certs -------------------------------------------------------------------------------------


def cmd_certs_init(args: argparse.Namespace) -> int:
    fa = FederationAuthority.init(Path(args.dir), federation=args.federation, now=_now())
    print(f"federation {fa.name} created in {fa.root}")
    print(f"  CA certificate: {fa.ca_path}\n  CRL: {fa.crl_path}\n  directory: {fa.directory_path}")
    return 0


def cmd_certs_issue(args: argparse.Namespace) -> int:
    fa = FederationAuthority(Path(args.dir))
    issued = fa.issue(
        agency=args.agency,
        endpoint=args.endpoint,
        name=args.name or "",
        days=args.days,
        now=_now(),
        out=Path(args.out) if args.out else None,
    )
    print(f"issued {issued.agency} certificate serial {issued.serial:x} into {issued.directory}")
    return 0


def cmd_certs_revoke(args: argparse.Namespace) -> int:
    fa = FederationAuthority(Path(args.dir))
    serials = fa.revoke(
        now=_now(), agency=args.agency, serial=int(args.serial, 16) if args.serial else None
    )
    for s in serials:
        print(f"revoked serial {s:x}")
    print(f"CRL republished: {fa.crl_path}; directory updated: {fa.directory_path}")
    return 0


def cmd_certs_crl(args: argparse.Namespace) -> int:
    from datetime import timedelta

    fa = FederationAuthority(Path(args.dir))
    path = fa.publish_crl(now=_now(), next_update=timedelta(hours=args.hours))
    print(f"CRL republished: {path} (next update in {args.hours} h)")
    return 0


def cmd_certs_endpoint(args: argparse.Namespace) -> int:
    fa = FederationAuthority(Path(args.dir))
    d = fa.set_endpoint(agency=args.agency, endpoint=args.endpoint, now=_now())
    print(f"directory serial {d.serial}: {args.agency} at {args.endpoint}")
    return 0


# ---- node --------------------------------------------------------------------------------------


def cmd_node_init(args: argparse.Namespace) -> int:
    from node.home import init_home

    fed = Path(args.federation)
    path = init_home(
        Path(args.home),
        agency=args.agency,
        federation=FederationAuthority(fed).name if args.federation_name is None else args.federation_name,
        listen=args.listen,
        issued=Path(args.certs) if args.certs else fed / "issued" / args.agency,
        directory=fed / "directory.json",
        crl=fed / "crl.pem",
    )
    print(f"node home ready: {path}")
    return 0


def cmd_node_run(args: argparse.Namespace) -> int:
    from node.app import Node

    config = config_mod.load(Path(args.home))

    async def run() -> None:
        node = Node(config)
        await node.start()
        print(f"{node.agency} ready on port {node.port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await node.stop(grace=5.0)

    asyncio.run(run())
    return 0


# ---- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accord", description="Accord: federated secure message exchange between agencies."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    certs = sub.add_parser("certs", help="federation PKI: CA, certificates, CRL, directory")
    csub = certs.add_subparsers(dest="certs_command", required=True, metavar="SUBCOMMAND")
    p = csub.add_parser("init-federation", help="create a federation CA, CRL and directory")
    p.add_argument("--dir", required=True, help="federation authority directory to create")
    p.add_argument("--federation", default="accord.test", help="federation DNS name")
    p.set_defaults(func=cmd_certs_init)
    p = csub.add_parser("issue", help="issue a node key and certificate and list it")
    p.add_argument("--dir", required=True, help="federation authority directory")
    p.add_argument("--agency", required=True, help="agency code, e.g. NL-POL")
    p.add_argument("--endpoint", required=True, help="HOST:PORT the node listens on")
    p.add_argument("--name", help="agency display name")
    p.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    p.add_argument("--out", help="where to write node.key/node.pem/ca.pem (default DIR/issued/CODE)")
    p.set_defaults(func=cmd_certs_issue)
    p = csub.add_parser("revoke", help="revoke a certificate and republish CRL and directory")
    p.add_argument("--dir", required=True, help="federation authority directory")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--agency", help="revoke every certificate of this agency")
    group.add_argument("--serial", help="revoke one certificate by serial (hex)")
    p.set_defaults(func=cmd_certs_revoke)
    p = csub.add_parser("crl", help="republish the CRL with a fresh nextUpdate")
    p.add_argument("--dir", required=True, help="federation authority directory")
    p.add_argument("--hours", type=float, default=168.0, help="hours until nextUpdate (default 168)")
    p.set_defaults(func=cmd_certs_crl)
    p = csub.add_parser("set-endpoint", help="change a member's endpoint in the directory")
    p.add_argument("--dir", required=True, help="federation authority directory")
    p.add_argument("--agency", required=True)
    p.add_argument("--endpoint", required=True, help="HOST:PORT")
    p.set_defaults(func=cmd_certs_endpoint)

    node = sub.add_parser("node", help="create and run a node")
    nsub = node.add_subparsers(dest="node_command", required=True, metavar="SUBCOMMAND")
    p = nsub.add_parser("init", help="create a node home from issued certificates")
    p.add_argument("--home", required=True, help="node home directory to create")
    p.add_argument("--agency", required=True, help="this node's agency code")
    p.add_argument("--federation", required=True, help="federation authority directory (published files)")
    p.add_argument("--federation-name", default=None, help=argparse.SUPPRESS)
    p.add_argument("--listen", default="127.0.0.1:7443", help="HOST:PORT for federation traffic")
    p.add_argument("--certs", help="directory with node.key, node.pem, ca.pem (default FED/issued/CODE)")
    p.set_defaults(func=cmd_node_init)
    p = nsub.add_parser("run", help="run the node until SIGINT/SIGTERM")
    p.add_argument("--home", required=True, help="node home directory")
    p.set_defaults(func=cmd_node_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func: Handler = args.func
    try:
        return func(args)
    except (AccordError, PkiError) as exc:
        print(f"accord: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
