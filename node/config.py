"""The node's configuration: one TOML file under --home, validated at start.

Every error names the offending field (e.g. `delivery.backoff_max_seconds: must be > 0`), and
unknown fields are errors too, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from certs.identity import AGENCY_CODE, FEDERATION_NAME
from node.errors import ConfigError

CONFIG_FILE = "config.toml"
# No node takes fewer envelopes in one frame (limits.max_envelopes_per_frame), so no node sends
# more (delivery.frame_envelopes): a lower cap would cut its peers' streams for nothing.
FRAME_ENVELOPES_FLOOR = 512
# Every node takes frames of 4 * its max_message_bytes + 1 MiB (Node.frame_limit): no node's
# frames are larger than this.
FRAME_BYTES_MAX = 1 << 20
_MAX_MESSAGE_BYTES = 256 * 1024 * 1024
_MAX_LOGIN_SECONDS = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class NodeSection:
    agency: str
    federation: str
    listen: str = "127.0.0.1:0"
    local_socket: str = "node.sock"


@dataclass(frozen=True, slots=True)
class TlsSection:
    key: str = "node.key"
    certificate: str = "node.pem"
    ca: str = "ca.pem"


@dataclass(frozen=True, slots=True)
class FederationSection:
    directory: str = "directory.json"
    crl: str = "crl.pem"
    reload_seconds: float = 2.0


@dataclass(frozen=True, slots=True)
class LimitsSection:
    max_message_bytes: int = 1024 * 1024
    # What one peer may cost this node (docs/security.md). Published in GetPolicy.
    max_envelopes_per_frame: int = 1024
    max_streams_per_peer: int = 8
    refusals_per_second: float = 10.0  # a peer's refusal budget refills at this rate ...
    refusal_burst: int = 1000  # ... up to this; past it the peer is slowed, past twice it ...
    refusal_cooldown_seconds: float = 60.0  # ... its streams end and it is refused this long
    rejection_retention_days: int = 30  # stored refusals are swept after this
    max_clock_skew_seconds: float = 300.0  # created_at further ahead of this node's clock: refused
    # Bytes of accepted messages one peer may have stored: this many a day, at most
    # peer_bytes_burst at once; past it, DEFERRED (VOLUME_EXCEEDED).
    peer_bytes_per_day: int = 1024 * 1024 * 1024
    peer_bytes_burst: int = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DeliverySection:
    """Retries, and every batching size on a message's path. Under load the fixed cost of each
    step (a gRPC frame, a signature, a verification, a commit) is paid once per batch, which
    is what keeps the cost per message low."""

    backoff_initial_seconds: float = 0.1
    backoff_max_seconds: float = 30.0
    window: int = 512  # envelopes in flight per peer stream
    frame_envelopes: int = FRAME_ENVELOPES_FLOOR  # envelopes per frame a link sends, at most
    frame_bytes: int = FRAME_BYTES_MAX  # a frame is closed once it reaches about this size
    sign_batch: int = 512  # sends signed with one signature, at most
    # Envelopes the receiver admits as one batch: smaller than the sender's window, so that
    # several batches are at different stages at once (signatures in a thread, checks on the
    # loop, the commit) while a queue drains.
    receive_batch: int = 128
    batches_in_flight: int = 8  # admitted batches per stream whose receipts are not yet sent
    batch_max: int = 512  # units of work (a send, a batch of envelopes, ...) per group commit


@dataclass(frozen=True, slots=True)
class StoreSection:
    synchronous: str = "FULL"


@dataclass(frozen=True, slots=True)
class AuditSection:
    checkpoint_every: int = 1000  # the node signs a checkpoint of its audit log this often


@dataclass(frozen=True, slots=True)
class LoginSection:
    """People's logins (the gateway): lockout after failed passwords, session lifetimes."""

    max_failures: int = 5  # failed logins in a row that lock the account
    lockout_seconds: float = 900.0  # how long it stays locked
    session_idle_seconds: float = 1800.0  # a session unused this long expires
    session_max_seconds: float = 43200.0  # and any session after this long


@dataclass(frozen=True, slots=True)
class DrillSection:
    """Only for a node started with `accord node run --drill` (a drill cluster): where to reach
    each peer instead of its directory endpoint (a fault-injecting proxy in front of it). The
    TLS name checked stays the peer's agency DNS name, so mTLS and the key proof still run end
    to end through the proxy."""

    endpoints: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetricsSection:
    address: str = ""  # HOST:PORT for Prometheus; empty: no metrics served
    allow_remote: bool = False  # a non-loopback listen address needs this


@dataclass(frozen=True, slots=True)
class RetentionSection:
    """This node's own retention limits (each message keeps the shortest of the sender's, the
    agreement's and these) and its sweeper."""

    sweep_seconds: float = 60.0  # how often expired messages are erased
    sweep_batch: int = 200  # rows erased per transaction (the writer is never held long)
    sweep_share: float = 0.1  # of the node's time, what the background sweeper may take
    max_days: int = 0  # a local maximum for every message; 0: none beyond the agreements'
    review_days: int = 7  # messages this close to expiry are listed by `accord review`
    purpose: dict[str, int] = field(default_factory=dict)  # local maximum per purpose code
    type: dict[str, int] = field(default_factory=dict)  # and per message type (INCIDENT_REPORT)

    def local_max_days(self, *, purpose: str, type: str) -> int | None:
        """The shortest local maximum that applies to a message (None: no local maximum)."""
        limits = [d for d in (self.purpose.get(purpose), self.type.get(type)) if d]
        if self.max_days:
            limits.append(self.max_days)
        return min(limits) if limits else None


@dataclass(frozen=True, slots=True)
class Config:
    home: Path
    node: NodeSection
    tls: TlsSection = field(default_factory=TlsSection)
    federation: FederationSection = field(default_factory=FederationSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    delivery: DeliverySection = field(default_factory=DeliverySection)
    store: StoreSection = field(default_factory=StoreSection)
    audit: AuditSection = field(default_factory=AuditSection)
    drill: DrillSection | None = None  # present only in a drill cluster's homes
    login: LoginSection = field(default_factory=LoginSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    retention: RetentionSection = field(default_factory=RetentionSection)

    def path(self, value: str) -> Path:
        """A configured path, relative to the node's home unless absolute."""
        p = Path(value)
        return p if p.is_absolute() else self.home / p

    @property
    def database(self) -> Path:
        return self.home / "accord.db"

    @property
    def master_key(self) -> Path:
        return self.home / "master.key"

    @property
    def keystore(self) -> Path:
        """The keys that open stored messages, apart from the database (docs/retention.md)."""
        return self.home / "accord-keys.db"

    @property
    def socket(self) -> Path:
        return self.path(self.node.local_socket)


_SECTIONS: dict[str, type[Any]] = {
    "node": NodeSection,
    "tls": TlsSection,
    "federation": FederationSection,
    "limits": LimitsSection,
    "delivery": DeliverySection,
    "store": StoreSection,
    "audit": AuditSection,
    "login": LoginSection,
    "metrics": MetricsSection,
}


DRILL_ONLY = (
    "drill: this section is only for nodes of a drill cluster (`accord cluster up`); "
    "start the node with `accord node run --drill`, or remove the section"
)


def load(home: Path, *, drill: bool | None = None) -> Config:
    """`drill`: True for a node started in drill mode, False for any other node (a `[drill]`
    section is refused), None for a tool that only reads the config (CLI, cluster)."""
    path = home / CONFIG_FILE
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path} not found; create it with `accord node init --home {home}`"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 ({exc.reason})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse(raw, home=home, drill=drill)


def parse(raw: dict[str, Any], *, home: Path, drill: bool | None = None) -> Config:
    for name in raw:
        if name not in (*_SECTIONS, "drill", "retention"):
            known = ", ".join((*_SECTIONS, "retention"))
            raise ConfigError(f"{name}: unknown section (known: {known})")
    if "node" not in raw:
        raise ConfigError("node: section missing (needs agency and federation)")
    if "drill" in raw and drill is False:
        raise ConfigError(DRILL_ONLY)
    sections = {name: _section(name, cls, raw.get(name, {})) for name, cls in _SECTIONS.items()}
    config = Config(
        home=home,
        **sections,
        drill=_drill(raw["drill"]) if "drill" in raw else None,
        retention=_retention(raw.get("retention", {})),
    )
    _validate(config)
    return config


def _drill(values: Any) -> DrillSection:
    if not isinstance(values, dict):
        raise ConfigError("drill: must be a table")
    for key in values:
        if key != "endpoints":
            raise ConfigError(f"drill.{key}: unknown field (known: endpoints)")
    endpoints = values.get("endpoints", {})
    if not isinstance(endpoints, dict):
        raise ConfigError('drill.endpoints: must be a table of AGENCY = "HOST:PORT"')
    for agency, endpoint in endpoints.items():
        if not AGENCY_CODE.match(agency):
            raise ConfigError(f"drill.endpoints.{agency}: not an agency code like NL-POL")
        if not isinstance(endpoint, str) or not _is_host_port(endpoint):
            raise ConfigError(f"drill.endpoints.{agency}: expected HOST:PORT, got {endpoint!r}")
    return DrillSection(endpoints=dict(endpoints))


_PURPOSE_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_TYPE_NAME = re.compile(r"^[A-Z][A-Z_]{0,63}$")


def _retention(values: Any) -> RetentionSection:
    """[retention] with its two tables of days: [retention.purpose] CODE = DAYS and
    [retention.type] TYPE = DAYS."""
    if not isinstance(values, dict):
        raise ConfigError("retention: must be a table")
    tables = {k: values[k] for k in ("purpose", "type") if k in values}
    scalars = {k: v for k, v in values.items() if k not in tables}
    section: RetentionSection = _section("retention", RetentionSection, scalars)
    parsed: dict[str, dict[str, int]] = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"retention.{name}: must be a table of {name.upper()} = DAYS")
        pattern = _PURPOSE_CODE if name == "purpose" else _TYPE_NAME
        example = "serious-crime-investigation" if name == "purpose" else "INCIDENT_REPORT"
        for key, days in table.items():
            if not pattern.match(key):
                raise ConfigError(f"retention.{name}.{key}: not a {name} like {example}")
            if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
                raise ConfigError(f"retention.{name}.{key}: expected days > 0, got {days!r}")
        parsed[name] = dict(table)
    return RetentionSection(
        sweep_seconds=section.sweep_seconds,
        sweep_batch=section.sweep_batch,
        sweep_share=section.sweep_share,
        max_days=section.max_days,
        review_days=section.review_days,
        purpose=parsed.get("purpose", {}),
        type=parsed.get("type", {}),
    )


def _is_host_port(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    return bool(sep and host and port.isdigit() and int(port) <= 65535)


# Fields `accord node init` once wrote that the node no longer reads: named, with what to do,
# rather than refused as unknown.
_REMOVED = {
    "limits.max_attachment_bytes": "no longer a setting: the node never enforced it "
    "(attachments travel by reference; limits.max_message_bytes bounds a message); delete "
    "the line",
}


def _section(name: str, cls: type[Any], values: Any) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{name}: must be a table")
    known = {f.name: f for f in fields(cls)}
    for key in values:
        if f"{name}.{key}" in _REMOVED:
            raise ConfigError(f"{name}.{key}: {_REMOVED[f'{name}.{key}']}")
        if key not in known:
            raise ConfigError(f"{name}.{key}: unknown field (known: {', '.join(known)})")
    kwargs: dict[str, Any] = {}
    for key, f in known.items():
        if key not in values:
            continue
        value = values[key]
        expected = f.type if isinstance(f.type, str) else f.type.__name__
        if expected == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        python_type = {"str": str, "int": int, "float": float, "bool": bool}[expected]
        if isinstance(value, bool) != (python_type is bool) or not isinstance(value, python_type):
            raise ConfigError(f"{name}.{key}: expected {expected}, got {value!r}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        missing = [
            k for k, f in known.items() if k not in values and f.default is f.default_factory
        ]
        raise ConfigError(f"{name}: missing required field(s) {', '.join(missing)}") from exc


def _validate(c: Config) -> None:
    if not AGENCY_CODE.match(c.node.agency):
        raise ConfigError(f"node.agency: {c.node.agency!r} is not an agency code like NL-POL")
    if not FEDERATION_NAME.match(c.node.federation):
        raise ConfigError(
            f"node.federation: {c.node.federation!r} is not a DNS name like accord.test"
        )
    check_listen(c.node.listen, "node.listen")
    check_socket(c.socket, "node.local_socket")
    positive = {
        "federation.reload_seconds": c.federation.reload_seconds,
        "limits.max_message_bytes": c.limits.max_message_bytes,
        "limits.max_streams_per_peer": c.limits.max_streams_per_peer,
        "limits.refusals_per_second": c.limits.refusals_per_second,
        "limits.refusal_burst": c.limits.refusal_burst,
        "limits.refusal_cooldown_seconds": c.limits.refusal_cooldown_seconds,
        "limits.rejection_retention_days": c.limits.rejection_retention_days,
        "limits.max_clock_skew_seconds": c.limits.max_clock_skew_seconds,
        "limits.peer_bytes_per_day": c.limits.peer_bytes_per_day,
        "limits.peer_bytes_burst": c.limits.peer_bytes_burst,
        "delivery.backoff_initial_seconds": c.delivery.backoff_initial_seconds,
        "delivery.backoff_max_seconds": c.delivery.backoff_max_seconds,
        "delivery.window": c.delivery.window,
        "delivery.frame_envelopes": c.delivery.frame_envelopes,
        "delivery.frame_bytes": c.delivery.frame_bytes,
        "delivery.sign_batch": c.delivery.sign_batch,
        "delivery.receive_batch": c.delivery.receive_batch,
        "delivery.batches_in_flight": c.delivery.batches_in_flight,
        "delivery.batch_max": c.delivery.batch_max,
        "audit.checkpoint_every": c.audit.checkpoint_every,
        "login.max_failures": c.login.max_failures,
        "login.lockout_seconds": c.login.lockout_seconds,
        "login.session_idle_seconds": c.login.session_idle_seconds,
        "login.session_max_seconds": c.login.session_max_seconds,
        "retention.sweep_seconds": c.retention.sweep_seconds,
        "retention.sweep_batch": c.retention.sweep_batch,
        "retention.sweep_share": c.retention.sweep_share,
        "retention.review_days": c.retention.review_days,
    }
    for name, value in positive.items():
        if not value > 0:  # written so that nan is refused too
            raise ConfigError(f"{name}: must be > 0, got {value}")
    if c.retention.sweep_share > 1:
        raise ConfigError(
            f"retention.sweep_share: at most 1 (all of the node's time), got "
            f"{c.retention.sweep_share}"
        )
    if c.retention.max_days < 0:
        raise ConfigError(f"retention.max_days: must be >= 0 (0: none), got {c.retention.max_days}")
    # The nodes' gRPC message limit is derived from it (4x plus headroom) and must fit a C int.
    if c.limits.max_message_bytes > _MAX_MESSAGE_BYTES:
        raise ConfigError(
            f"limits.max_message_bytes: at most {_MAX_MESSAGE_BYTES} (256 MiB), "
            f"got {c.limits.max_message_bytes}"
        )
    if c.limits.peer_bytes_burst < c.limits.max_message_bytes:
        raise ConfigError(
            f"limits.peer_bytes_burst: at least limits.max_message_bytes "
            f"({c.limits.max_message_bytes}), or a message of the largest size is never taken; "
            f"got {c.limits.peer_bytes_burst}"
        )
    if not c.limits.max_envelopes_per_frame >= FRAME_ENVELOPES_FLOOR:
        raise ConfigError(
            f"limits.max_envelopes_per_frame: at least {FRAME_ENVELOPES_FLOOR} (what nodes may "
            f"send in one frame), got {c.limits.max_envelopes_per_frame}"
        )
    if c.delivery.frame_envelopes > FRAME_ENVELOPES_FLOOR:
        raise ConfigError(
            f"delivery.frame_envelopes: at most {FRAME_ENVELOPES_FLOOR} (what every node takes "
            f"in one frame), got {c.delivery.frame_envelopes}"
        )
    if c.delivery.frame_bytes > FRAME_BYTES_MAX:
        raise ConfigError(
            f"delivery.frame_bytes: at most {FRAME_BYTES_MAX} (what every node takes in one "
            f"frame), got {c.delivery.frame_bytes}"
        )
    for name in ("lockout_seconds", "session_idle_seconds", "session_max_seconds"):
        if getattr(c.login, name) > _MAX_LOGIN_SECONDS:  # also refuses inf
            raise ConfigError(f"login.{name}: at most {_MAX_LOGIN_SECONDS:.0f} (30 days)")
    if c.login.session_max_seconds < c.login.session_idle_seconds:
        raise ConfigError("login.session_max_seconds: must be >= login.session_idle_seconds")
    if c.delivery.backoff_max_seconds < c.delivery.backoff_initial_seconds:
        raise ConfigError(
            "delivery.backoff_max_seconds: must be >= delivery.backoff_initial_seconds"
        )
    # NORMAL would let a power loss undo a commit that a receipt already vouched for.
    if c.store.synchronous not in ("FULL", "EXTRA"):
        raise ConfigError(
            f"store.synchronous: must be FULL or EXTRA (receipts promise durability), "
            f"got {c.store.synchronous!r}"
        )
    if c.metrics.address:
        check_listen(c.metrics.address, "metrics.address")
        _check_metrics_address(c.metrics.address, allow_remote=c.metrics.allow_remote)
    for name in ("key", "certificate", "ca"):
        p = c.path(getattr(c.tls, name))
        if not p.is_file():
            raise ConfigError(f"tls.{name}: {p} does not exist")


def check_listen(value: str, what: str) -> str:
    """A HOST:PORT to listen on (port 0: any free port)."""
    if not _is_host_port(value):
        raise ConfigError(f"{what}: expected HOST:PORT, got {value!r}")
    return value


def _check_metrics_address(listen: str, *, allow_remote: bool) -> None:
    """Metrics say what a node is doing, to anyone who can reach them: loopback only unless
    the operator says otherwise."""
    host = listen.rpartition(":")[0].strip("[]")
    if allow_remote or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"metrics.address: {listen} is not a loopback address; set metrics.allow_remote = "
            "true to serve metrics beyond this host"
        )


def check_socket(path: Path, what: str) -> None:
    if len(str(path)) > 100:
        raise ConfigError(f"{what}: {path} is longer than a unix socket path may be")


def render(*, agency: str, federation: str, listen: str, directory: str, crl: str) -> str:
    """The config file `accord node init` writes."""
    return f"""# Accord node configuration. Paths are relative to this directory unless absolute.
[node]
agency = "{agency}"
federation = "{federation}"
listen = "{listen}"
local_socket = "node.sock"

[tls]
key = "node.key"
certificate = "node.pem"
ca = "ca.pem"

[federation]
# The federation's published, signed directory and CRL. A newer signed directory is picked up
# without restart; a CRL past its nextUpdate makes the node refuse every peer (fail closed).
directory = "{directory}"
crl = "{crl}"
reload_seconds = 2.0

[limits]
max_message_bytes = 1048576
# What one peer may cost this node: envelopes in one frame, streams open at once, and a budget
# of refused envelopes (past it the peer is slowed, then cut off for the cool-down).
max_envelopes_per_frame = 1024
max_streams_per_peer = 8
refusals_per_second = 10.0
refusal_burst = 1000
refusal_cooldown_seconds = 60.0
rejection_retention_days = 30
# A message created further than this ahead of this node's clock is refused.
max_clock_skew_seconds = 300.0
# Bytes of accepted messages one peer may have stored: so many a day, at most the burst at
# once; past it the peer's messages are deferred (VOLUME_EXCEEDED) and sent again later.
peer_bytes_per_day = 1073741824
peer_bytes_burst = 16777216

[delivery]
backoff_initial_seconds = 0.1
backoff_max_seconds = 30.0
# Batching: envelopes in flight per peer stream; per frame sent, at most (and bytes); sends
# signed together, at most; envelopes the receiver admits as one batch, and such batches per
# stream awaiting their receipts; units of work per group commit.
window = 512
frame_envelopes = 512
frame_bytes = 1048576
sign_batch = 512
receive_batch = 128
batches_in_flight = 8
batch_max = 512

[store]
synchronous = "FULL"

[login]
# People logging in to the gateway: failed passwords in a row before the account locks, for
# how long, and how long a session lasts unused and at most.
max_failures = 5
lockout_seconds = 900.0
session_idle_seconds = 1800.0
session_max_seconds = 43200.0

[metrics]
# Prometheus metrics at http://HOST:PORT/metrics, e.g. "127.0.0.1:9464"; empty: not served.
# A non-loopback address also needs allow_remote = true.
address = ""
allow_remote = false

[retention]
# Each message is kept until the earliest of the sender's retention, the agreement's maximum and
# this node's own maximum (max_days, 0: none; per purpose and per message type in the tables
# below), then erased by the sweeper, which runs every sweep_seconds. `accord review` lists
# messages within review_days of expiry.
sweep_seconds = 60.0
sweep_batch = 200
# Between batches the background sweeper rests, so that it takes at most this share of the
# node's time (an on-demand sweep does not rest).
sweep_share = 0.1
max_days = 0
review_days = 7

[retention.purpose]
# serious-crime-investigation = 180

[retention.type]
# INCIDENT_REPORT = 365
"""
