"""The node's configuration: one TOML file under --home, validated at start.

Every error names the offending field (e.g. `delivery.backoff_max_seconds: must be > 0`), and
unknown fields are errors too, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from certs.identity import AGENCY_CODE, FEDERATION_NAME
from node.errors import ConfigError

CONFIG_FILE = "config.toml"
_MAX_MESSAGE_BYTES = 256 * 1024 * 1024


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
    max_attachment_bytes: int = 50 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DeliverySection:
    backoff_initial_seconds: float = 0.1
    backoff_max_seconds: float = 30.0
    window: int = 512  # envelopes in flight per peer stream
    batch_max: int = 512  # envelopes per group commit


@dataclass(frozen=True, slots=True)
class StoreSection:
    synchronous: str = "FULL"


@dataclass(frozen=True, slots=True)
class MetricsSection:
    address: str = ""  # HOST:PORT for Prometheus; empty: no metrics served
    allow_remote: bool = False  # a non-loopback listen address needs this


@dataclass(frozen=True, slots=True)
class Config:
    home: Path
    node: NodeSection
    tls: TlsSection = field(default_factory=TlsSection)
    federation: FederationSection = field(default_factory=FederationSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    delivery: DeliverySection = field(default_factory=DeliverySection)
    store: StoreSection = field(default_factory=StoreSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)

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
    def socket(self) -> Path:
        return self.path(self.node.local_socket)


_SECTIONS: dict[str, type[Any]] = {
    "node": NodeSection,
    "tls": TlsSection,
    "federation": FederationSection,
    "limits": LimitsSection,
    "delivery": DeliverySection,
    "store": StoreSection,
    "metrics": MetricsSection,
}


def load(home: Path) -> Config:
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
    return parse(raw, home=home)


def parse(raw: dict[str, Any], *, home: Path) -> Config:
    for name in raw:
        if name not in _SECTIONS:
            raise ConfigError(f"{name}: unknown section (known: {', '.join(_SECTIONS)})")
    if "node" not in raw:
        raise ConfigError("node: section missing (needs agency and federation)")
    sections = {name: _section(name, cls, raw.get(name, {})) for name, cls in _SECTIONS.items()}
    config = Config(home=home, **sections)
    _validate(config)
    return config


def _section(name: str, cls: type[Any], values: Any) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{name}: must be a table")
    known = {f.name: f for f in fields(cls)}
    for key in values:
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
        "limits.max_attachment_bytes": c.limits.max_attachment_bytes,
        "delivery.backoff_initial_seconds": c.delivery.backoff_initial_seconds,
        "delivery.backoff_max_seconds": c.delivery.backoff_max_seconds,
        "delivery.window": c.delivery.window,
        "delivery.batch_max": c.delivery.batch_max,
    }
    for name, value in positive.items():
        if not value > 0:  # written so that nan is refused too
            raise ConfigError(f"{name}: must be > 0, got {value}")
    # The nodes' gRPC message limit is derived from it (4x plus headroom) and must fit a C int.
    if c.limits.max_message_bytes > _MAX_MESSAGE_BYTES:
        raise ConfigError(
            f"limits.max_message_bytes: at most {_MAX_MESSAGE_BYTES} (256 MiB), "
            f"got {c.limits.max_message_bytes}"
        )
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
        from node.metrics import check_listen as check_metrics_listen

        check_listen(c.metrics.address, "metrics.address")
        check_metrics_listen(c.metrics.address, allow_remote=c.metrics.allow_remote)
    for name in ("key", "certificate", "ca"):
        p = c.path(getattr(c.tls, name))
        if not p.is_file():
            raise ConfigError(f"tls.{name}: {p} does not exist")


def check_listen(value: str, what: str) -> str:
    """A HOST:PORT to listen on (port 0: any free port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{what}: expected HOST:PORT, got {value!r}")
    return value


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
max_attachment_bytes = 52428800

[delivery]
backoff_initial_seconds = 0.1
backoff_max_seconds = 30.0
window = 512
batch_max = 512

[store]
synchronous = "FULL"

[metrics]
# Prometheus metrics at http://HOST:PORT/metrics, e.g. "127.0.0.1:9464"; empty: not served.
# A non-loopback address also needs allow_remote = true.
address = ""
allow_remote = false
"""
