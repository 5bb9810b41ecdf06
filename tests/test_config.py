"""The node's one TOML file: every mistake is refused at start with the field it is about."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from node import config as config_mod
from node.errors import ConfigError

NL = "NL-POL"


@pytest.fixture
def home(tmp_short: Path) -> Path:
    for name in ("node.key", "node.pem", "ca.pem"):
        (tmp_short / name).write_text("placeholder: parse only checks the files exist\n")
    return tmp_short


def base() -> dict[str, Any]:
    return {
        "node": {"agency": NL, "federation": "accord.test", "listen": "127.0.0.1:7443"},
        "tls": {"key": "node.key", "certificate": "node.pem", "ca": "ca.pem"},
        "delivery": {"backoff_initial_seconds": 0.1, "backoff_max_seconds": 30.0},
    }


def with_value(path: str, value: object) -> dict[str, Any]:
    raw = copy.deepcopy(base())
    section, _, key = path.partition(".")
    if key:
        raw.setdefault(section, {})[key] = value
    else:
        raw[section] = value
    return raw


def refused(raw: dict[str, Any], home: Path) -> str:
    with pytest.raises(ConfigError) as info:
        config_mod.parse(raw, home=home)
    return str(info.value)


def test_a_valid_config_parses_with_defaults(home: Path) -> None:
    cfg = config_mod.parse(base(), home=home)
    assert cfg.node.agency == NL
    assert cfg.node.listen == "127.0.0.1:7443"
    assert cfg.limits.max_message_bytes == 1024 * 1024
    assert cfg.delivery.window > 0
    assert cfg.path(cfg.tls.key) == home / "node.key"
    assert cfg.database.parent == home and cfg.master_key.parent == home


def test_what_init_writes_loads(home: Path) -> None:
    text = config_mod.render(
        agency=NL,
        federation="accord.test",
        listen="127.0.0.1:7443",
        directory="/nonexistent/directory.json",
        crl="/nonexistent/crl.pem",
    )
    (home / "config.toml").write_text(text)
    cfg = config_mod.load(home)
    assert cfg.node.agency == NL and cfg.federation.crl == "/nonexistent/crl.pem"


def test_section_mistakes_name_the_section(home: Path) -> None:
    assert refused({**base(), "nodes": {}}, home).startswith("nodes: unknown section")
    assert refused({"tls": base()["tls"]}, home).startswith("node: section missing")
    assert refused(with_value("node", "NL-POL"), home).startswith("node: must be a table")
    missing = {**base(), "node": {"federation": "accord.test"}}
    assert refused(missing, home) == "node: missing required field(s) agency"


NAN = float("nan")


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("node.listn", "127.0.0.1:1", "unknown field"),
        ("limits.max_mesage_bytes", 10, "unknown field"),
        ("limits.max_attachment_bytes", 52428800, "no longer a setting"),
        ("limits.max_message_bytes", "1MB", "expected int"),
        ("limits.max_message_bytes", 1.5, "expected int"),
        ("delivery.window", True, "expected int"),
        ("node.listen", 7443, "expected str"),
        ("federation.reload_seconds", "2s", "expected float"),
        ("node.agency", "nl-pol", "agency code"),
        ("node.agency", "NETHERLANDS", "agency code"),
        ("node.federation", "Accord Test", "DNS name"),
        ("node.listen", "localhost", "HOST:PORT"),
        ("node.listen", "127.0.0.1:99999", "HOST:PORT"),
        ("node.listen", ":7443", "HOST:PORT"),
        ("node.listen", "127.0.0.1:http", "HOST:PORT"),
        ("node.local_socket", "s" * 120, "longer"),
        ("limits.max_message_bytes", 0, "> 0"),
        ("limits.max_message_bytes", 2**40, "at most"),
        ("delivery.window", -1, "> 0"),
        ("delivery.backoff_initial_seconds", NAN, "> 0"),
        ("federation.reload_seconds", NAN, "> 0"),
        ("delivery.backoff_max_seconds", 0.05, ">="),
        ("store.synchronous", "OFF", "FULL"),
        ("limits.max_envelopes_per_frame", 100, "at least 512"),
        ("delivery.frame_envelopes", 513, "at most 512"),
        ("delivery.frame_envelopes", 0, "> 0"),
        ("delivery.frame_bytes", 2 << 20, "at most 1048576"),
        ("delivery.sign_batch", 0, "> 0"),
        ("delivery.receive_batch", -1, "> 0"),
        ("delivery.batches_in_flight", 0, "> 0"),
        ("limits.max_streams_per_peer", 0, "> 0"),
        ("limits.refusals_per_second", NAN, "> 0"),
        ("limits.refusal_burst", 0, "> 0"),
        ("limits.refusal_cooldown_seconds", -1.0, "> 0"),
        ("limits.rejection_retention_days", 0, "> 0"),
        ("limits.max_clock_skew_seconds", 0, "> 0"),
        ("limits.peer_bytes_per_day", 0, "> 0"),
        ("limits.peer_bytes_burst", 1000, "at least limits.max_message_bytes"),
        ("tls.key", "missing.key", "does not exist"),
        ("tls.certificate", "/nonexistent/node.pem", "does not exist"),
        ("tls.ca", ".", "does not exist"),
    ],
)
def test_each_mistake_names_its_field(home: Path, field: str, value: object, says: str) -> None:
    message = refused(with_value(field, value), home)
    assert message.startswith(f"{field}:"), message
    assert says in message, message


def test_numbers_are_accepted_where_they_make_sense(home: Path) -> None:
    raw = with_value("delivery.backoff_max_seconds", 5)  # an int where a float is expected
    cfg = config_mod.parse(raw, home=home)
    assert cfg.delivery.backoff_max_seconds == 5.0
    assert isinstance(cfg.delivery.backoff_max_seconds, float)


def test_load_names_the_file_when_it_is_missing_or_unreadable(home: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.toml not found; create it with `accord node"):
        config_mod.load(home)
    path = home / "config.toml"
    path.write_text('[node]\nagency = "NL-POL"\nfederation = accord.test\n')
    with pytest.raises(ConfigError, match=re.escape(f"{path}: not valid TOML")):
        config_mod.load(home)
    path.write_bytes(b"\xff\xfe[node]\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:")):
        config_mod.load(home)
    path.unlink()
    path.mkdir()
    with pytest.raises(ConfigError, match=re.escape(f"{path}:")):
        config_mod.load(home)


def test_load_reports_the_field_from_the_file(home: Path) -> None:
    (home / "config.toml").write_text(
        '[node]\nagency = "NL-POL"\nfederation = "accord.test"\n\n[delivery]\nwindow = "wide"\n'
    )
    with pytest.raises(ConfigError, match=r"^delivery\.window: expected int, got 'wide'$"):
        config_mod.load(home)
