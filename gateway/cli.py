"""`accord gateway run` and `accord password set`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
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
MAX_FEEDS = 10_000


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen: expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _proxy(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IP address or network (10.0.0.5, 10.0.0.0/24)"
        ) from None


def _server_name(text: str) -> str:
    from gateway.auth import host_name

    name = host_name(text)
    if name is None or name != text.strip().lower().strip("[]").rstrip("."):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a host name or address without a port "
            "(gateway.example.org, 10.0.0.5, [::1])"
        )
    return name


def cmd_gateway_run(args: argparse.Namespace) -> int:
    from gateway.auth import ip_literal
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
    address = ip_literal(host)
    # Only this machine reaches a loopback address (a name other than localhost might be any).
    loopback = host == "localhost" or (address is not None and address.is_loopback)
    if tls is None and not loopback and not args.insecure_http:
        raise UsageError(
            f"--listen {args.listen}: plain HTTP off this machine carries passwords and session "
            "cookies in clear; serve HTTPS (--node-tls, or --tls-cert and --tls-key), or add "
            "--insecure-http if a TLS proxy or a private network protects it"
        )
    settings = Settings(
        home=home,
        tls=tls is not None,
        login_attempts_per_minute=args.login_rate,
        login_attempts_per_name=args.login_rate_per_name,
        trusted_proxies=tuple(args.trusted_proxy),
        max_feeds=args.max_feeds,
        # A name to listen on is one to answer (an address is: requests come in on it).
        server_names=(*args.server_name, *([] if address else [host])),
    )
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
        "--insecure-http",
        action="store_true",
        help="allow plain HTTP on an address other than loopback (passwords and session "
        "cookies then cross the network in clear: only behind a TLS proxy or on a private "
        "network)",
    )
    p.add_argument(
        "--login-rate",
        type=whole(1, MAX_LOGIN_RATE),
        default=10,
        metavar="N",
        help=f"login attempts per minute per client address, 1 to {MAX_LOGIN_RATE} (default 10)",
    )
    p.add_argument(
        "--login-rate-per-name",
        type=whole(1, MAX_LOGIN_RATE),
        default=5,
        metavar="N",
        help="of those, attempts per minute for one user name from one address, "
        f"1 to {MAX_LOGIN_RATE} (default 5)",
    )
    p.add_argument(
        "--server-name",
        type=_server_name,
        action="append",
        default=[],
        metavar="NAME",
        help="a host name browsers reach the gateway by (repeatable); requests for any other "
        "name than these, the address they came in on and localhost on loopback get 400",
    )
    p.add_argument(
        "--trusted-proxy",
        type=_proxy,
        action="append",
        default=[],
        metavar="ADDR",
        help="a reverse proxy (IP address or network, repeatable) whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; without one the client is the connection's peer",
    )
    p.add_argument(
        "--max-feeds",
        type=whole(1, MAX_FEEDS),
        default=200,
        metavar="N",
        help=f"live feeds (the inbox's server-sent events) open at once, 1 to {MAX_FEEDS} "
        "(default 200; each holds two file descriptors)",
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
