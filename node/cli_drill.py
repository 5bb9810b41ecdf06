"""`accord cluster ...` and `accord drill ...`: a local multi-agency cluster and scripted drills."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from node.cli_args import UsageError, _csv, _table, path_arg
from node.drill.cluster import (
    COMPOSE_GATEWAY_HOST_PORT,
    CONTROL_SOCKET,
    DEFAULT_AGENCIES,
    PID_FILE,
    READY_TIMEOUT,
    ClusterError,
    ClusterSpec,
    RemoteCluster,
    Supervisor,
    UserSpec,
    create_cluster,
    gateway_health,
    gateway_url,
    load_agreements,
    load_spec,
    node_health,
    outbox,
    password_path,
    tail,
    token_path,
)

DETACH_TIMEOUT = 2 * READY_TIMEOUT


def _root(value: str | None, *, fresh: bool = False) -> Path:
    if value:
        return Path(value).absolute()
    if not fresh:
        raise UsageError("--dir: name the cluster directory")
    # Short, under /tmp: the unix socket paths inside must stay under ~100 bytes.
    return Path(tempfile.mkdtemp(prefix="accord-cluster-", dir="/tmp"))


def _create(args: argparse.Namespace, root: Path) -> ClusterSpec:
    agencies = _csv(args.agencies) or list(DEFAULT_AGENCIES)
    agreements = load_agreements(Path(args.agreements), agencies) if args.agreements else None
    return create_cluster(
        root, agencies=agencies, agreements=agreements, compose=getattr(args, "compose", False)
    )


def describe(root: Path, spec: ClusterSpec) -> str:
    """The table `cluster up` and `cluster init` print: where each node and gateway is, each
    user's password and token files, and how to use them."""
    rows = [
        [a.code, a.endpoint, _gateway(spec, a.code), str(root / a.home / "node.sock"),
         str(root / a.home)]
        for a in spec.agencies
    ]  # fmt: skip
    first = spec.agencies[0]
    users = []
    for u in spec.users:
        if token_path(root, spec, u).exists():
            password = password_path(root, spec, u)
            users.append(
                [u.agency, u.name, u.role, str(password) if password.exists() else "-",
                 str(token_path(root, spec, u))]
            )  # fmt: skip
    officer = password_path(root, spec, UserSpec(first.code, "officer", "liaison_officer"))
    lines = [
        f"cluster {spec.federation} in {root}",
        "",
        _table(["AGENCY", "ENDPOINT", "GATEWAY", "LOCAL SOCKET", "HOME (--home)"], rows),
        "",
        "use the CLI against a node with --home and act as one of its users with --as, e.g.",
        f"  accord inbox --home {root / first.home} --as officer",
        f"  export ACCORD_HOME={root / first.home} ACCORD_USER=officer   # then: accord inbox",
        "or log in to a node's gateway (web console, HTTP/JSON API) with a user's password, e.g.",
        f"  {_gateway(spec, first.code)}/ as {officer.name}, password: cat {officer}",
        "",
        _table(["AGENCY", "USER", "ROLE", "PASSWORD", "TOKEN"], users),
        "",
        f"federation authority (CA, CRL, directory, agreements): {root / 'federation'}",
        f"logs (nodes, gateways): {root / 'logs'}",
    ]
    if not spec.compose:
        lines.append(
            f"proxies: {len(spec.proxies)} on loopback, one per ordered pair of nodes "
            "(drills inject faults there)"
        )
    return "\n".join(lines)


def _gateway(spec: ClusterSpec, code: str) -> str:
    """A gateway's URL on this machine (compose: where docker-compose.yml publishes it)."""
    if spec.compose:
        return f"http://127.0.0.1:{COMPOSE_GATEWAY_HOST_PORT + spec.codes.index(code)}"
    return gateway_url(spec.agency(code))


# ---- cluster init ------------------------------------------------------------------------------


async def _init_users(root: Path, spec: ClusterSpec) -> None:
    """Start the nodes long enough to create the users through their local API. Compose
    nodes all listen on the same port of their own container, so one at a time there."""
    supervisor = Supervisor(root, spec, gateways=True)  # so that the users get passwords
    try:
        if spec.compose:
            for code in supervisor.nodes:
                await supervisor.start(code)
                await supervisor.create_users([u for u in spec.users if u.agency == code])
                await supervisor.stop(code)
        else:
            await supervisor.start_all()
            await supervisor.create_users()
    finally:
        await supervisor.down()


def cmd_cluster_init(args: argparse.Namespace) -> int:
    root = _root(args.dir)
    if (root / "cluster.json").exists():
        print(f"{root} already holds a cluster; nothing to do")
        return 0
    spec = _create(args, root)
    asyncio.run(_init_users(root, spec))
    print(describe(root, spec))
    return 0


# ---- cluster up / down / status ----------------------------------------------------------------


async def _serve(root: Path, spec: ClusterSpec, *, announce: bool) -> int:
    supervisor = Supervisor(root, spec, gateways=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, supervisor.stopping.set)
    try:
        await supervisor.up()
        if announce:
            print(describe(root, spec))
            print("\nrunning; Ctrl-C stops every node and gateway", flush=True)
        else:
            print(f"cluster up at {datetime.now(UTC).isoformat()}", flush=True)
        await supervisor.stopping.wait()
    finally:
        codes = await supervisor.down()
        print(f"stopped: {', '.join(f'{k} ({v})' for k, v in codes.items())}", flush=True)
    return 0


def cmd_cluster_up(args: argparse.Namespace) -> int:
    root = _root(args.dir, fresh=True)
    if (root / "cluster.json").exists():
        if args.agencies or args.agreements:
            raise UsageError(
                f"{root} already holds a cluster; --agencies and --agreements "
                "apply only to a new one"
            )
        spec = load_spec(root)
    else:
        spec = _create(args, root)
    if (root / CONTROL_SOCKET).exists() and _alive(root):
        raise ClusterError(f"the cluster at {root} is already up (`accord cluster status`)")
    if spec.compose:
        raise ClusterError(f"{root} was made for docker-compose; run it with docker-compose up")
    if args.detach:
        return _detach(root, spec)
    return asyncio.run(_serve(root, spec, announce=not args.serve))


def _alive(root: Path) -> int | None:
    """The supervisor's pid if it is running."""
    try:
        pid = int((root / PID_FILE).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _detach(root: Path, spec: ClusterSpec) -> int:
    log = root / "logs" / "cluster.log"
    with log.open("ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "cluster", "up", "--dir", str(root), "--serve"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in this terminal no longer reaches it
        )
    deadline = time.monotonic() + DETACH_TIMEOUT
    remote = RemoteCluster(root, spec)
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise ClusterError(
                f"the cluster failed to start (status {child.returncode}):\n" + tail(log)
            )
        try:
            running = asyncio.run(remote.processes())
        except ClusterError:
            time.sleep(0.1)
            continue
        if all(state[0] for state in running.values()):
            print(describe(root, spec))
            print(
                f"\nrunning in the background (pid {child.pid}); see `accord cluster status "
                f"--dir {root}`, stop with `accord cluster down --dir {root}`"
            )
            return 0
        time.sleep(0.1)
    child.kill()
    raise ClusterError(f"the cluster did not come up within {DETACH_TIMEOUT:.0f} s:\n{tail(log)}")


def cmd_cluster_down(args: argparse.Namespace) -> int:
    root = _root(args.dir)
    spec = load_spec(root)
    pid = _alive(root)
    if pid is None:
        print(f"no cluster running at {root}")
        return 0
    asyncio.run(RemoteCluster(root, spec).down())
    deadline = time.monotonic() + 30
    while _alive(root) == pid and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(root) == pid:
        raise ClusterError(f"the cluster (pid {pid}) did not stop within 30 s")
    print(f"cluster at {root} stopped")
    return 0


async def _status(root: Path, spec: ClusterSpec) -> dict[str, Any]:
    remote = RemoteCluster(root, spec)
    try:
        processes = await remote.processes()
        gateways = await remote.gateways()
    except ClusterError:
        processes = {a.code: (False, "cluster down", 0) for a in spec.agencies}
        gateways = {}
    nodes = {}
    for a in spec.agencies:
        home = root / a.home
        state = await node_health(home)
        peers = []
        if state == "SERVING":
            for p in (await outbox(home)).peers:
                peers.append(
                    {
                        "peer": p.peer,
                        "queued": p.queued,
                        "oldest_queued_at": _iso(p.oldest_queued_at),
                        "last_receipt_at": _iso(p.last_receipt_at),
                        "connected": p.connected,
                        "last_error": p.last_error,
                    }
                )
        _, process, killed = processes[a.code]
        _, gateway = gateways.get(a.code, (False, "not run by this cluster"))
        nodes[a.code] = {
            "process": process,
            "kills": killed,
            "health": state,
            "endpoint": a.endpoint,
            "peers": peers,
            "gateway": {
                "url": gateway_url(a),
                "process": gateway,
                "health": await gateway_health(a.gateway),
                "supervised": a.code in gateways,  # run by this cluster's supervisor
            },
        }
    return {"cluster": str(root), "up": _alive(root) is not None, "nodes": nodes}


def _iso(ts: Any) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return str(ts.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds"))


def cmd_cluster_status(args: argparse.Namespace) -> int:
    root = _root(args.dir)
    spec = load_spec(root)
    status = asyncio.run(_status(root, spec))
    serving = all(
        n["health"] == "SERVING"
        and (n["gateway"]["health"] == "SERVING" or not n["gateway"]["supervised"])
        for n in status["nodes"].values()
    )
    if args.json:
        print(json.dumps(status, indent=2))
        return 0 if serving else 1
    print(f"cluster {root}: {'up' if status['up'] else 'down'}")
    rows = []
    for code, n in status["nodes"].items():
        rows.append([code, n["process"], n["health"], "", "", "", ""])
        for p in n["peers"]:
            rows.append(
                [
                    "",
                    "",
                    "",
                    f"-> {p['peer']}",
                    str(p["queued"]),
                    "yes" if p["connected"] else "no",
                    (p["last_receipt_at"] or "-").replace("+00:00", "Z"),
                ]
            )
    print(_table(["AGENCY", "PROCESS", "HEALTH", "PEER", "QUEUED", "STREAM", "LAST RECEIPT"], rows))
    print()
    gateways = [
        [code, n["gateway"]["url"], n["gateway"]["process"], n["gateway"]["health"]]
        for code, n in status["nodes"].items()
    ]
    print(_table(["AGENCY", "GATEWAY", "PROCESS", "HEALTH"], gateways))
    return 0 if serving else 1


# ---- registration ------------------------------------------------------------------------------


def _cluster_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--agencies",
        action="append",
        metavar="CODE[,CODE]",
        help=f"agency codes (default {','.join(DEFAULT_AGENCIES)})",
    )
    p.add_argument(
        "--agreements",
        metavar="FILE.json",
        help="cooperation agreements, a JSON list as for `accord agreements set` (default: one "
        "agreement among all agencies; see README)",
    )


def add_cluster(sub: Any) -> None:
    cluster = sub.add_parser("cluster", help="a throwaway multi-agency federation on this machine")
    csub = cluster.add_subparsers(dest="cluster_command", required=True, metavar="SUBCOMMAND")
    p = csub.add_parser(
        "init",
        help="create a cluster's federation, node homes and users in a directory",
        description="Create a federation (CA, CRL, signed directory with agreements), one node "
        "home per agency and the users of each node (tokens in HOME/tokens, console passwords "
        "in DIR/passwords). Does nothing if DIR already holds a cluster.",
    )
    p.add_argument("--dir", required=True, type=path_arg, help="cluster directory (new or empty)")
    _cluster_arguments(p)
    p.add_argument(
        "--compose",
        action="store_true",
        help="for docker-compose: nodes named after their agency (nl-pol:7443), no drill mode",
    )
    p.set_defaults(func=cmd_cluster_init)

    p = csub.add_parser(
        "up",
        help="create (unless DIR holds one) and run a cluster until Ctrl-C, or --detach",
        description="Run one node per agency on loopback, a gateway (web console, HTTP/JSON "
        "API) beside each, fault-injecting proxies between the nodes and a control socket for "
        "drills; print where everything is, with each user's password and token files. Stays "
        "in the foreground until Ctrl-C unless --detach.",
    )
    p.add_argument("--dir", type=path_arg, help="cluster directory (default: a new one under /tmp)")
    _cluster_arguments(p)
    p.add_argument("--detach", action="store_true", help="run in the background and return")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # --detach's child
    p.set_defaults(func=cmd_cluster_up)

    p = csub.add_parser("down", help="stop a cluster started with `cluster up --detach`")
    p.add_argument("--dir", required=True, type=path_arg, help="cluster directory")
    p.set_defaults(func=cmd_cluster_down)

    p = csub.add_parser(
        "status",
        help="each node's process, health, and outbox per peer; each gateway's",
        description="Per node: process state, gRPC health on its local socket; per peer: "
        "envelopes waiting for a receipt, whether a stream is open, the last receipt. Per "
        "gateway: URL, process state, health (its /healthz: SERVING, NODE DOWN, DOWN). Exits 1 "
        "unless every node and every gateway the cluster runs is SERVING.",
    )
    p.add_argument("--dir", required=True, type=path_arg, help="cluster directory")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_cluster_status)


# ---- drills ------------------------------------------------------------------------------------


def cmd_drill_check(args: argparse.Namespace) -> int:
    from node.drill import scenario

    for name in args.files:
        s = scenario.load(Path(name))
        print(f"{name}: ok: {s.name!r}, {len(s.steps)} steps, agencies {', '.join(s.agencies)}")
    return 0


def cmd_drill_run(args: argparse.Namespace) -> int:
    import shutil

    from node.drill import scenario
    from node.drill.engine import fresh_cluster, run_drill

    path = Path(args.file)
    s = scenario.load(path)  # every mistake in the file is reported before any node starts
    out = Path(args.out) if args.out else Path("drill-reports") / path.stem
    print(f"drill {s.name!r} ({path}, {len(s.steps)} steps)", flush=True)
    if s.description:
        print(f"  {s.description}", flush=True)
    if args.cluster:
        root = Path(args.cluster).absolute()
        spec = load_spec(root)
    else:
        root, spec = fresh_cluster(s)
    report = asyncio.run(
        run_drill(
            s,
            root=root,
            spec=spec,
            fresh=not args.cluster,
            say=lambda t: print(t, flush=True),
            out=out,
        )
    )
    report.write(out)
    print()
    print(report.table())
    print()
    print(report.summary())
    if not report.passed:
        for agency, text in report.logs.items():
            print(f"log of {agency} (last lines):\n{text}")
    print(f"report: {out / 'report.md'} and {out / 'report.json'}")
    if not args.cluster:
        if report.passed and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"cluster files kept in {root}")
    return 0 if report.passed else 1


def add_drill(sub: Any) -> None:
    drill = sub.add_parser("drill", help="scripted drills against a cluster (drills/*.toml)")
    dsub = drill.add_subparsers(dest="drill_command", required=True, metavar="SUBCOMMAND")
    p = dsub.add_parser(
        "check",
        help="validate drill files without running them",
        description="Parse and check drill files (steps, agencies, users, fields, message "
        "types, bodies); errors name the file and line.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="drill scenario (TOML)")
    p.set_defaults(func=cmd_drill_check)
    p = dsub.add_parser(
        "run",
        help="play a drill against a fresh cluster (or --cluster DIR) and report",
        description="Check the file, start a fresh cluster (or use the running one at "
        "--cluster), play every step, write report.json and report.md to --out. Exits 1 if any "
        "expectation failed, 2 if the file is not a valid drill.",
    )
    p.add_argument(
        "file", metavar="FILE", help="drill scenario (TOML), e.g. drills/joint-task-force.toml"
    )
    p.add_argument("--cluster", metavar="DIR", help="a cluster running with `cluster up`")
    p.add_argument("--out", metavar="DIR", help="report folder (default drill-reports/NAME)")
    p.add_argument("--keep", action="store_true", help="keep a fresh cluster's files after a pass")
    p.set_defaults(func=cmd_drill_run)


GROUPS = (add_cluster, add_drill)
