"""`accord gateway run` and `accord password set`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from accord.v1 import local_pb2
from node import config as config_mod
from node.cli_args import UsageError, _home_argument, _local_arguments, whole
from node.client import connect, resolve_home

MAX_LOGIN_RATE = 10_000


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen: expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def cmd_gateway_run(args: argparse.Namespace) -> int:
    from gateway.server import Tls, bind, server
    from gateway.state import Settings

    home = resolve_home(args.home)
    config = config_mod.load(home)  # a home that holds a node, checked as the node does
    host, port = _listen(args.listen)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if args.node_tls and args.tls_cert:
        raise UsageError("--node-tls or --tls-cert/--tls-key, not both")
    tls = None
    if args.node_tls:
        tls = Tls(config.path(config.tls.certificate), config.path(config.tls.key))
    elif args.tls_cert:
        tls = Tls(Path(args.tls_cert), Path(args.tls_key))
    for path in (tls.certificate, tls.key) if tls else ():
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
    settings = Settings(home=home, tls=tls is not None, login_attempts_per_minute=args.login_rate)
    # One line per request (route template, status, time: nothing personal), as operators expect.
    logging.getLogger("accord.gateway").setLevel(logging.INFO)

    async def run() -> None:
        try:
            sock = bind(host, port)
        except OSError as exc:
            raise UsageError(f"--listen {args.listen}: cannot listen: {exc.strerror}") from exc
        srv = server(settings, tls=tls)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: setattr(srv, "should_exit", True))
        task = await srv.serving(sock)
        if srv.started:
            scheme = "https" if tls else "http"
            url = f"{scheme}://{host}:{sock.getsockname()[1]}"
            print(f"gateway for {config.node.agency} ready on {url}", flush=True)
        await task
        sock.close()
        if not srv.started:
            raise UsageError("the gateway could not start; see the log above")

    asyncio.run(run())
    return 0


def _new_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != password:
        raise UsageError("the two passwords differ")
    return password


def cmd_password_set(args: argparse.Namespace) -> int:
    home = resolve_home(args.home)

    async def run() -> Any:
        # Asked for only once the node and the user's token are found: a wrong --home or --as
        # is said at once, not after the password was typed twice.
        async with connect(home, user=args.as_user) as node:
            password = await asyncio.to_thread(_new_password, args)
            request = local_pb2.SetPasswordRequest(new_password=password)
            return await node.api.SetPassword(request)

    answer = asyncio.run(run())
    ended = f"; {answer.sessions_revoked} session(s) ended" if answer.sessions_revoked else ""
    print(f"password set{ended}")
    return 0


def add_gateway(sub: Any) -> None:
    gw = sub.add_parser("gateway", help="HTTP/JSON API and web console for one node")
    gsub = gw.add_subparsers(dest="gateway_command", required=True, metavar="SUBCOMMAND")
    p = gsub.add_parser(
        "run",
        help="serve the gateway until SIGINT/SIGTERM",
        description="Serve the HTTP/JSON API and web console of the node at --home, through "
        "its local API, as each logged-in person or API token holder. Prints "
        "'gateway for CODE ready on URL' once listening.",
    )
    _home_argument(p)
    p.add_argument(
        "--listen",
        default="127.0.0.1:8443",
        help="HOST:PORT (default 127.0.0.1:8443; port 0 picks a free one)",
    )
    p.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", metavar="FILE", help="and this key (PEM)")
    p.add_argument(
        "--node-tls", action="store_true", help="serve HTTPS with the node's own certificate"
    )
    p.add_argument(
        "--login-rate",
        type=whole(1, MAX_LOGIN_RATE),
        default=10,
        metavar="N",
        help=f"login attempts per minute per client address, 1 to {MAX_LOGIN_RATE} (default 10)",
    )
    p.set_defaults(func=cmd_gateway_run)

    pw = sub.add_parser("password", help="your password for the gateway's console")
    psub = pw.add_subparsers(dest="password_command", required=True, metavar="SUBCOMMAND")
    p = psub.add_parser(
        "set",
        help="set your own password (with your user token: --as, $ACCORD_TOKEN)",
        description="Set the password you log in to the gateway with (12 characters or more). "
        "Your other login sessions end.",
    )
    p.add_argument(
        "--password-stdin", action="store_true", help="read it from the first line of stdin"
    )
    _local_arguments(p)
    p.set_defaults(func=cmd_password_set)
