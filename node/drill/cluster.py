"""A throwaway federation of several agencies on one machine: `accord cluster init|up|down|status`.

`create_cluster` lays out the files (federation authority, node homes, `cluster.json`);
`Supervisor` runs the nodes as `accord node run` processes, the fault-injecting proxies between
every ordered pair of them, a gateway per node (`accord gateway run`, for `cluster up`, not for
drills), and a control socket through which `accord drill run --cluster` and `accord cluster
status|down` reach a cluster that runs in another process. Users are created on the running
nodes through their local API, in `create_user` only; `set_password` gives one a generated
console password, as the user.

Cluster directory:

    cluster.json     agencies, ports, proxies, users (what `cluster status` and drills read)
    federation/      the federation authority (CA, CRL, signed directory with agreements)
    nl-pol/ ...      one node home per agency (tokens/ holds each user's token)
    passwords/nl-pol/USER  each user's console password (0600), for the gateways
    logs/CODE.log    each node's output, appended across restarts (CODE-gateway.log: its gateway)
    clock.json       how far the drill clock was advanced (re-applied to restarted nodes)
    control.sock     the supervisor's control socket, while the cluster is up
    supervisor.pid   its process id, while the cluster is up
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import grpc

from accord.v1 import local_pb2
from certs.ca import FederationAuthority, write_private
from certs.directory import Agreement, agreement_from_dict
from certs.errors import PkiError
from certs.identity import check_agency_code
from node import config as config_mod
from node.client import NodeNotRunningError, connect, health
from node.drill.proxy import FaultProxy, Mode
from node.errors import AccordError, ConfigError
from node.home import init_home
from node.wire import MESSAGE_TYPES

FEDERATION = "drill.accord.test"
DEFAULT_AGENCIES = ("NL-POL", "DE-BKA", "FR-PN", "BE-FPP")
DEFAULT_AGREEMENT_ID = "AGR-DRILL-2026"
PERMITTED_PURPOSES = (
    "serious-crime-investigation",
    "organised-crime",
    "counter-terrorism",
    "missing-persons",
)
CLUSTER_FILE = "cluster.json"
CLOCK_FILE = "clock.json"
CONTROL_SOCKET = "control.sock"
PID_FILE = "supervisor.pid"
PASSWORDS_DIR = "passwords"
COMPOSE_PORT = 7443
COMPOSE_GATEWAY_PORT = 8443  # in the gateway's own container
# docker-compose.yml publishes the gateways on the host's loopback from here, in agency order.
COMPOSE_GATEWAY_HOST_PORT = 8441
# Nodes of a cluster look for a new directory or CRL every half second and back off at most one
# second from an unreachable peer, so that drills measure the system, not its default timers.
TUNED = {"reload_seconds": "0.5", "backoff_max_seconds": "1.0"}
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
HEALTH_TIMEOUT = 2.0
POLL = 0.05


class ClusterError(AccordError):
    """A cluster that cannot be created, started or reached."""


@dataclass(frozen=True, slots=True)
class UserSpec:
    agency: str
    name: str
    role: str
    clearances: tuple[str, ...] = ()


def default_users(agencies: Sequence[str], purposes: Sequence[str]) -> list[UserSpec]:
    """On every node: two liaison officers, a supervisor (four eyes: never the author) and an
    auditor, each cleared for every purpose of the vocabulary, so that a refusal a drill shows
    comes from an agreement, not from a missing clearance."""
    roles = (
        ("officer", "liaison_officer"),
        ("officer2", "liaison_officer"),
        ("supervisor", "supervisor"),
        ("auditor", "auditor"),
    )
    return [UserSpec(a, name, role, tuple(purposes)) for a in agencies for name, role in roles]


@dataclass(frozen=True, slots=True)
class AgencySpec:
    code: str
    home: str  # relative to the cluster directory
    port: int  # where the node listens
    endpoint: str  # what the directory lists
    gateway: int  # where its gateway listens (loopback; compose: in the gateway's container)


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """What `cluster.json` holds."""

    federation: str
    agencies: tuple[AgencySpec, ...]
    proxies: dict[str, int] = field(default_factory=dict)  # "A>B" -> port of A's way to B
    users: tuple[UserSpec, ...] = ()
    compose: bool = False  # laid out for docker-compose: no drill mode, no proxies

    def agency(self, code: str) -> AgencySpec:
        for a in self.agencies:
            if a.code == code:
                return a
        raise ClusterError(f"{code} is not an agency of this cluster")

    @property
    def codes(self) -> list[str]:
        return [a.code for a in self.agencies]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ClusterSpec:
        raw = json.loads(text)
        return cls(
            federation=raw["federation"],
            agencies=tuple(AgencySpec(**a) for a in raw["agencies"]),
            proxies={str(k): int(v) for k, v in raw["proxies"].items()},
            users=tuple(
                UserSpec(u["agency"], u["name"], u["role"], tuple(u["clearances"]))
                for u in raw["users"]
            ),
            compose=bool(raw["compose"]),
        )


def pair(src: str, dst: str) -> str:
    return f"{src}>{dst}"


def load_spec(root: Path) -> ClusterSpec:
    path = root / CLUSTER_FILE
    try:
        return ClusterSpec.from_json(path.read_text())
    except FileNotFoundError as exc:
        raise ClusterError(
            f"{root} is not a cluster directory ({CLUSTER_FILE} missing); create one with "
            f"`accord cluster init --dir {root}`"
        ) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClusterError(f"{path}: unreadable cluster description: {exc}") from exc


# ---- creating the files ------------------------------------------------------------------------


def default_agreement(agencies: Sequence[str], now: datetime) -> Agreement:
    return Agreement(
        id=DEFAULT_AGREEMENT_ID,
        title="Drill agreement: serious and organised crime, terrorism, missing persons",
        parties=tuple(agencies),
        purposes=PERMITTED_PURPOSES,
        message_types=MESSAGE_TYPES,
        max_retention_days=180,
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=365),
        # A reply releasing data after a hit waits for a second person (Prüm-style).
        approval_required=("REPLY>HIT_NOTIFICATION",),
    )


def load_agreements(path: Path, agencies: Sequence[str]) -> tuple[Agreement, ...]:
    """Agreements from a JSON list in the format of `accord agreements set` (docs/policy.md)."""
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise ClusterError(f"--agreements {path}: cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ClusterError(f"--agreements {path}: not valid JSON: {exc}") from exc
    if not isinstance(raw, list) or not raw:
        raise ClusterError(f"--agreements {path}: expected a non-empty JSON list of agreements")
    try:
        agreements = tuple(agreement_from_dict(a, f"{path}[{i}]") for i, a in enumerate(raw))
    except PkiError as exc:
        raise ClusterError(str(exc)) from exc
    for a in agreements:
        strangers = sorted(set(a.parties) - set(agencies))
        if strangers:
            raise ClusterError(
                f"--agreements {path}: agreement {a.id} names {', '.join(strangers)}, not "
                f"among the cluster's agencies ({', '.join(agencies)})"
            )
    return agreements


def pick_ports(count: int) -> list[int]:
    """Ports free now, below the kernel's ephemeral range (32768+ on Linux), so that the
    port-0 listeners and outgoing connections of other programs rarely take one between
    `cluster init` and `cluster up`. A cluster keeps its ports across restarts: the directory
    lists them."""
    rng = random.SystemRandom()
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randrange(20000, 32000)
        if port in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    return ports


def _tune(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
        if n != 1:
            raise ClusterError(f"node config template has no single {key!r} line to tune")
    return text


def create_cluster(
    root: Path,
    *,
    agencies: Sequence[str] = DEFAULT_AGENCIES,
    agreements: tuple[Agreement, ...] | None = None,
    users: Sequence[UserSpec] | None = None,
    compose: bool = False,
    federation: str = FEDERATION,
) -> ClusterSpec:
    """Lay out a cluster in `root` (new or empty): federation, agreements, node homes.

    `compose`: for docker-compose, where each node is a service named after its agency
    (`nl-pol`) listening on port 7443 of its own container, with no drill mode.
    """
    codes = [check_agency_code(a) for a in agencies]
    if len(set(codes)) != len(codes) or len(codes) < 2:
        raise ClusterError("--agencies: name at least two different agency codes")
    if root.exists() and any(root.iterdir()):
        raise ClusterError(f"{root} is not empty; give a new or empty directory")
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    now = datetime.now(UTC)
    authority = FederationAuthority.init(root / "federation", federation=federation, now=now)
    pairs = [] if compose else [(a, b) for a in codes for b in codes if a != b]
    # One draw for nodes, gateways and proxies: two draws could hand out the same port twice.
    n = len(codes)
    drawn = pick_ports(2 * n + len(pairs)) if not compose else []
    ports = [COMPOSE_PORT] * n if compose else drawn[:n]
    gateways = [COMPOSE_GATEWAY_PORT] * n if compose else drawn[n : 2 * n]
    specs = []
    for code, port, gateway in zip(codes, ports, gateways, strict=True):
        home = code.lower()
        host = home if compose else "127.0.0.1"
        endpoint = f"{host}:{port}"
        # Ten years: a drill may advance the nodes' clocks by months.
        issued = authority.issue(agency=code, endpoint=endpoint, now=now, days=3650)
        init_home(
            root / home,
            agency=code,
            federation=federation,
            listen=f"0.0.0.0:{port}" if compose else endpoint,
            issued=issued.directory,
            directory=authority.directory_path,
            crl=authority.crl_path,
        )
        specs.append(AgencySpec(code, home, port, endpoint, gateway))
    proxies = {pair(a, b): p for (a, b), p in zip(pairs, drawn[2 * n :], strict=True)}
    for spec in specs:
        path = root / spec.home / config_mod.CONFIG_FILE
        text = _tune(path.read_text(), TUNED)
        if not compose:
            text += (
                "\n# Drill cluster only (`accord node run --drill`): peers are reached through "
                "the cluster's\n# fault-injecting proxies; TLS still checks each peer's agency "
                "name.\n[drill.endpoints]\n"
            )
            for other in codes:
                if other != spec.code:
                    text += f'{other} = "127.0.0.1:{proxies[pair(spec.code, other)]}"\n'
        path.write_text(text)
        config_mod.load(root / spec.home, drill=not compose)
    purposes = sorted(authority.directory().purpose_codes())
    authority.set_agreements(agreements or (default_agreement(codes, now),), now=now)
    cluster = ClusterSpec(
        federation=federation,
        agencies=tuple(specs),
        proxies=proxies,
        users=tuple(users if users is not None else default_users(codes, purposes)),
        compose=compose,
    )
    (root / "logs").mkdir(exist_ok=True)
    (root / CLUSTER_FILE).write_text(cluster.to_json())
    return cluster


# ---- users -------------------------------------------------------------------------------------


async def create_user(home: Path, user: UserSpec) -> Path:
    """Create a local user on the running node at `home` as its administrators would, redeem
    the enrolment code as the user would, and leave the user's token where the CLI looks for
    it (`HOME/tokens/NAME`, `--as NAME`).

    The one place the cluster creates users. A supervisor, auditor or administrator waits for
    a second administrator: the cluster's `admin2` (added by the bootstrap administrator alone,
    as a node with one administrator may) approves, and the user's code is the two
    administrators' parts joined with "+".
    """
    async with connect(home, user="admin") as admin:
        added = await admin.api.AddUser(
            local_pb2.AddUserRequest(
                name=user.name, role=user.role, clearances=list(user.clearances)
            )
        )
    code = added.enrolment_code
    if added.pending_approval:
        await _second_admin(home)
        async with connect(home, user=SECOND_ADMIN) as second:
            decided = await second.api.DecideUser(
                local_pb2.DecideUserRequest(name=user.name, approve=True)
            )
        code = f"{code}+{decided.enrolment_code}"
    return await _enrol(home, user.name, code)


SECOND_ADMIN = "admin2"


async def _second_admin(home: Path) -> None:
    """The node's second administrator, the first time one is needed."""
    if (home / "tokens" / SECOND_ADMIN).exists():
        return
    async with connect(home, user="admin") as admin:
        added = await admin.api.AddUser(
            local_pb2.AddUserRequest(name=SECOND_ADMIN, role="administrator")
        )
    await _enrol(home, SECOND_ADMIN, added.enrolment_code)


async def _enrol(home: Path, name: str, code: str) -> Path:
    async with connect(home, anonymous=True) as anyone:
        enrolled = await anyone.api.Enrol(local_pb2.EnrolRequest(name=name, code=code))
    tokens = home / "tokens"
    tokens.mkdir(mode=0o700, exist_ok=True)
    write_private(tokens / name, str(enrolled.token).encode())
    return tokens / name


def token_path(root: Path, spec: ClusterSpec, user: UserSpec) -> Path:
    return root / spec.agency(user.agency).home / "tokens" / user.name


def password_path(root: Path, spec: ClusterSpec, user: UserSpec) -> Path:
    """Outside the node's home: the node keeps only the password's hash, and nothing else of
    the cluster's reads this file."""
    return root / PASSWORDS_DIR / spec.agency(user.agency).home / user.name


async def set_password(home: Path, name: str, path: Path) -> None:
    """Give the user at `home` a generated console password, as the user (with their own
    token, as `accord password set` does: nobody else may set it), and write it to `path`
    (0600) once the node holds it."""
    password = secrets.token_hex(12)  # 96 bits; never starts with "-", which argparse takes
    async with connect(home, user=name) as me:
        await me.api.SetPassword(local_pb2.SetPasswordRequest(new_password=password))
    for folder in (path.parent.parent, path.parent):
        folder.mkdir(mode=0o700, exist_ok=True)
    write_private(path, password.encode())


# ---- the clock ---------------------------------------------------------------------------------


def clock_offset(root: Path) -> float:
    """Seconds the cluster's drill clock runs ahead of the system clock."""
    try:
        return float(json.loads((root / CLOCK_FILE).read_text())["offset_seconds"])
    except FileNotFoundError:
        return 0.0
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClusterError(f"{root / CLOCK_FILE}: unreadable: {exc}") from exc


def set_clock_offset(root: Path, seconds: float) -> None:
    (root / CLOCK_FILE).write_text(json.dumps({"offset_seconds": seconds}) + "\n")


def cluster_now(root: Path) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=clock_offset(root))


async def advance_node_clock(home: Path, seconds: float) -> float:
    """Advance a drill-mode node's clock through its local API; its offset afterwards."""
    async with connect(home, user="admin") as admin:
        info = await admin.api.AdvanceClock(local_pb2.AdvanceClockRequest(seconds=seconds))
    return float(info.offset_seconds)


# ---- running it --------------------------------------------------------------------------------


@dataclass(slots=True)
class NodeProcess:
    """A node's process, or its gateway's."""

    agency: AgencySpec
    home: Path
    log: Path
    process: asyncio.subprocess.Process | None = None
    killed: int = 0
    starts: int = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def state(self) -> str:
        if self.process is None:
            return "not started"
        if self.process.returncode is None:
            return f"running (pid {self.process.pid})"
        if self.process.returncode == -signal.SIGKILL:
            return "killed (SIGKILL)"
        return f"exited ({self.process.returncode})"


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "    (no log)"
    return "\n".join(f"    | {line}" for line in text[-lines:]) or "    (log is empty)"


class Supervisor:
    """Runs a cluster's nodes and proxies in this process's event loop.

    `gateways`: also a gateway per node, and console passwords for the users it creates
    (`cluster up`, `cluster init`; drills go without, to stay fast).
    """

    def __init__(self, root: Path, spec: ClusterSpec, *, gateways: bool = False) -> None:
        self.root = root
        self.spec = spec
        self.nodes = {
            a.code: NodeProcess(a, root / a.home, root / "logs" / f"{a.home}.log")
            for a in spec.agencies
        }
        self.with_gateways = gateways
        self.gateways = {
            a.code: NodeProcess(a, root / a.home, root / "logs" / f"{a.home}-gateway.log")
            for a in spec.agencies
        }
        self.proxies: dict[str, FaultProxy] = {}
        self._control: asyncio.Server | None = None
        self.stopping = asyncio.Event()

    # ---- nodes ------------------------------------------------------------------------------

    def node(self, agency: str) -> NodeProcess:
        try:
            return self.nodes[agency]
        except KeyError:
            raise ClusterError(f"{agency} is not an agency of this cluster") from None

    async def start(self, agency: str) -> float:
        """Start the agency's node and wait until it serves; seconds it took."""
        n = self.node(agency)
        if n.running:
            raise ClusterError(f"{agency} is already running")
        args = ["node", "run", "--home", str(n.home)]
        if not self.spec.compose:
            args.append("--drill")
        started = time.monotonic()
        await self._spawn(n, args)

        async def serving() -> bool:
            return await node_health(n.home) == "SERVING"

        await self._wait_ready(n, agency, serving)
        offset = clock_offset(self.root)
        if offset > 0 and not self.spec.compose:
            await advance_node_clock(n.home, offset)  # a fresh process starts on system time
        return time.monotonic() - started

    async def _spawn(self, n: NodeProcess, args: Sequence[str]) -> None:
        """`accord ARGS` as a child process, its output appended to its log."""
        n.starts += 1
        with n.log.open("ab") as log:
            log.write(f"--- start {n.starts} at {datetime.now(UTC).isoformat()}\n".encode())
            log.flush()
            n.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "node.cli", *args,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip

    async def _wait_ready(
        self, n: NodeProcess, what: str, ready: Callable[[], Awaitable[bool]]
    ) -> None:
        assert n.process is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if n.process.returncode is not None:
                raise ClusterError(
                    f"{what} exited with status {n.process.returncode} while "
                    f"starting:\n{tail(n.log)}"
                )
            if await ready():
                return
            await asyncio.sleep(POLL)
        raise ClusterError(f"{what} not ready after {READY_TIMEOUT:.0f} s:\n{tail(n.log)}")

    async def kill(self, agency: str) -> None:
        """SIGKILL: no shutdown, no flush; what the node acknowledged must survive it."""
        n = self.node(agency)
        if not n.running:
            raise ClusterError(f"{agency} is not running; nothing to kill")
        assert n.process is not None
        n.process.kill()
        await n.process.wait()
        n.killed += 1

    async def stop(self, agency: str) -> int:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; the exit status."""
        return await _terminate(self.node(agency), agency)

    async def restart(self, agency: str) -> float:
        if self.node(agency).running:
            await self.stop(agency)
        return await self.start(agency)

    async def start_all(self) -> None:
        await asyncio.gather(*(self.start(code) for code in self.nodes))

    async def create_users(self, users: Sequence[UserSpec] = ()) -> list[UserSpec]:
        """Create the users (default: the cluster's) whose token is not there yet, and, in a
        cluster with gateways, give each without one a console password; the users created."""
        wanted = users or self.spec.users
        created = []
        for user in wanted:
            if not token_path(self.root, self.spec, user).exists():
                await create_user(self.node(user.agency).home, user)
                created.append(user)
        if self.with_gateways:
            # All at once: each node hashes (argon2id, ~0.1 s each) two at a time.
            paths = [(u, password_path(self.root, self.spec, u)) for u in wanted]
            await _settle(
                *(
                    set_password(self.node(u.agency).home, u.name, path)
                    for u, path in paths
                    if not path.exists()
                )
            )
        return created

    # ---- gateways ---------------------------------------------------------------------------

    def gateway(self, agency: str) -> NodeProcess:
        self.node(agency)  # an agency of the cluster
        return self.gateways[agency]

    async def start_gateway(self, agency: str) -> None:
        """Start the agency's gateway on its loopback port; wait until it answers that its
        node serves."""
        g = self.gateway(agency)
        what = f"the gateway of {agency}"
        if g.running:
            raise ClusterError(f"{what} is already running")
        listen = f"127.0.0.1:{g.agency.gateway}"
        await self._spawn(g, ["gateway", "run", "--home", str(g.home), "--listen", listen])

        async def serving() -> bool:
            return await gateway_health(g.agency.gateway) == "SERVING"

        await self._wait_ready(g, what, serving)

    async def stop_gateway(self, agency: str) -> int:
        return await _terminate(self.gateway(agency), f"the gateway of {agency}")

    async def start_gateways(self) -> None:
        await _settle(*(self.start_gateway(code) for code in self.gateways))

    def gateway_states(self) -> dict[str, tuple[bool, str]]:
        """Per agency: running, the gateway process's state; empty without gateways."""
        if not self.with_gateways:
            return {}
        return {code: (g.running, g.state()) for code, g in self.gateways.items()}

    # ---- faults -----------------------------------------------------------------------------

    async def start_proxies(self) -> None:
        for key, port in self.spec.proxies.items():
            _, dst = key.split(">")
            target = self.spec.agency(dst)
            proxy = FaultProxy(key, ("127.0.0.1", target.port), port=port)
            await proxy.start()
            self.proxies[key] = proxy

    async def fault(self, src: str, dst: str, mode: Mode, *, delay: float = 0.0) -> None:
        """Set the way from `src`'s node to `dst`'s (one direction)."""
        proxy = self.proxies.get(pair(src, dst))
        if proxy is None:
            raise ClusterError(f"no proxy from {src} to {dst} in this cluster")
        proxy.set(mode, delay=delay)

    async def processes(self) -> dict[str, tuple[bool, str, int]]:
        """Per agency: running, a description of the process's state, times killed."""
        return {code: (n.running, n.state(), n.killed) for code, n in self.nodes.items()}

    def faults(self) -> dict[str, str]:
        return {
            k: p.mode.value + (f" {p.delay * 1000:.0f} ms" if p.mode == Mode.DELAY else "")
            for k, p in self.proxies.items()
        }

    # ---- life cycle -------------------------------------------------------------------------

    async def up(self) -> None:
        """Proxies, nodes, users (and gateways), control socket."""
        await self.start_proxies()
        await self.start_all()
        if self.with_gateways:
            # A gateway takes a second or two to import; meanwhile the nodes hash passwords.
            await _settle(self.create_users(), self.start_gateways())
        else:
            await self.create_users()
        await self.serve_control()

    async def down(self) -> dict[str, int]:
        """Stop every gateway, node (SIGTERM) and proxy; each one's exit status, by agency
        ("NL-POL") and gateway ("NL-POL gateway")."""
        if self._control is not None:
            self._control.close()
        started = [code for code, g in self.gateways.items() if g.process is not None]
        results = await asyncio.gather(
            *(self.stop_gateway(code) for code in started),
            *(self.stop(code) for code in self.nodes),
            return_exceptions=True,
        )
        names = [f"{code} gateway" for code in started] + list(self.nodes)
        codes = dict(zip(names, results, strict=True))
        for proxy in self.proxies.values():
            await proxy.close()
        for name in (CONTROL_SOCKET, PID_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self.root / name).unlink()
        return {k: v if isinstance(v, int) else -1 for k, v in codes.items()}

    # ---- control socket ---------------------------------------------------------------------

    async def serve_control(self) -> None:
        path = self.root / CONTROL_SOCKET
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._control = await asyncio.start_unix_server(self._serve, path=str(path))
        os.chmod(path, 0o600)
        (self.root / PID_FILE).write_text(f"{os.getpid()}\n")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    reply = {"ok": True, "result": await self._command(json.loads(line))}
                except (AccordError, ValueError, KeyError, TypeError) as exc:
                    reply = {"ok": False, "error": str(exc)}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _command(self, request: dict[str, Any]) -> Any:
        op = request["op"]
        if op == "start":
            return await self.start(request["agency"])
        if op == "kill":
            return await self.kill(request["agency"])
        if op == "stop":
            return await self.stop(request["agency"])
        if op == "restart":
            return await self.restart(request["agency"])
        if op == "fault":
            mode = Mode(request["mode"])
            return await self.fault(request["from"], request["to"], mode, delay=request["delay"])
        if op == "processes":
            return await self.processes()
        if op == "gateways":
            return self.gateway_states()
        if op == "faults":
            return self.faults()
        if op == "create_users":
            users = [
                UserSpec(u["agency"], u["name"], u["role"], tuple(u["clearances"]))
                for u in request["users"]
            ]
            return [u.name for u in await self.create_users(users)]
        if op == "down":
            self.stopping.set()
            return None
        raise ClusterError(f"unknown control operation {op!r}")


class Control(Protocol):
    """What the drill engine does to a cluster's processes and network: an in-process
    Supervisor, or a RemoteCluster reached through the control socket."""

    async def start(self, agency: str) -> float: ...
    async def kill(self, agency: str) -> None: ...
    async def stop(self, agency: str) -> int: ...
    async def restart(self, agency: str) -> float: ...
    async def fault(self, src: str, dst: str, mode: Mode, *, delay: float = 0.0) -> None: ...
    async def processes(self) -> dict[str, tuple[bool, str, int]]: ...
    async def create_users(self, users: Sequence[UserSpec]) -> list[UserSpec]: ...


class RemoteCluster:
    """The control socket of a cluster that runs in another process (`cluster up`), with the
    same operations the drill engine uses on an in-process Supervisor."""

    def __init__(self, root: Path, spec: ClusterSpec) -> None:
        self.root = root
        self.spec = spec

    async def call(self, op: str, **fields: Any) -> Any:
        path = self.root / CONTROL_SOCKET
        try:
            reader, writer = await asyncio.open_unix_connection(str(path))
        except OSError as exc:
            raise ClusterError(
                f"no cluster running at {self.root} ({path}: {exc.strerror}); start it with "
                f"`accord cluster up --dir {self.root}`"
            ) from exc
        try:
            writer.write(json.dumps({"op": op, **fields}).encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), READY_TIMEOUT + STOP_TIMEOUT)
        finally:
            writer.close()
        if not line:
            raise ClusterError(f"the cluster at {self.root} closed its control socket")
        reply = json.loads(line)
        if not reply["ok"]:
            raise ClusterError(reply["error"])
        return reply["result"]

    async def start(self, agency: str) -> float:
        return float(await self.call("start", agency=agency))

    async def kill(self, agency: str) -> None:
        await self.call("kill", agency=agency)

    async def stop(self, agency: str) -> int:
        return int(await self.call("stop", agency=agency))

    async def restart(self, agency: str) -> float:
        return float(await self.call("restart", agency=agency))

    async def fault(self, src: str, dst: str, mode: Mode, *, delay: float = 0.0) -> None:
        await self.call("fault", **{"from": src, "to": dst, "mode": mode.value, "delay": delay})

    async def processes(self) -> dict[str, tuple[bool, str, int]]:
        raw = await self.call("processes")
        return {k: (bool(v[0]), str(v[1]), int(v[2])) for k, v in raw.items()}

    async def create_users(self, users: Sequence[UserSpec]) -> list[UserSpec]:
        names = set(await self.call("create_users", users=[asdict(u) for u in users]))
        return [u for u in users if u.name in names]

    async def gateways(self) -> dict[str, tuple[bool, str]]:
        raw = await self.call("gateways")
        return {k: (bool(v[0]), str(v[1])) for k, v in raw.items()}

    async def down(self) -> None:
        await self.call("down")


async def outbox(home: Path) -> Any:
    """The node's outbox per peer (`Outbox` on its local API, as its administrator)."""
    async with connect(home, user="admin") as admin:
        return await admin.api.Outbox(local_pb2.OutboxRequest())


async def _settle(*aws: Awaitable[Any]) -> None:
    """Await all, then raise the first failure: unlike a plain gather, nothing is still
    starting a process when the caller goes on to stop the cluster."""
    for result in await asyncio.gather(*aws, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result


async def _terminate(n: NodeProcess, what: str) -> int:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT; the exit status."""
    if not n.running:
        return n.process.returncode if n.process and n.process.returncode is not None else 0
    assert n.process is not None
    n.process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(n.process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        n.process.kill()
        await n.process.wait()
        raise ClusterError(f"{what} did not stop within {STOP_TIMEOUT:.0f} s") from None


def gateway_url(agency: AgencySpec) -> str:
    return f"http://127.0.0.1:{agency.gateway}"


async def gateway_health(port: int) -> str:
    """What a cluster gateway's `/healthz` says: SERVING (its node answers), NODE DOWN (503),
    DOWN (nothing answers), or the HTTP status."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(
                    f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                answer = await reader.read()  # a few bytes; the gateway closes after them
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return "DOWN"
    status = answer.split(b"\r\n", 1)[0].split()
    if len(status) < 2:
        return "DOWN"
    return {b"200": "SERVING", b"503": "NODE DOWN"}.get(status[1], f"HTTP {status[1].decode()}")


async def node_health(home: Path) -> str:
    try:
        return await health(home)
    except (NodeNotRunningError, ConfigError):
        return "DOWN"
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
