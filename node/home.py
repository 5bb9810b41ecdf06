"""Creating a node's home directory (`accord node init`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from certs.ca import load_cert, load_key
from certs.errors import PkiError
from certs.identity import agency_of
from node import config as config_mod
from node.errors import ConfigError


def init_home(
    home: Path,
    *,
    agency: str,
    federation: str,
    listen: str,
    issued: Path,
    directory: Path,
    crl: Path,
) -> Path:
    """Lay out a node home from the key and certificates the federation issued to it.

    The directory and CRL stay where the federation publishes them (the node reads, never
    writes, them); everything the node writes lives under `home`, 0700, secrets 0600.
    """
    if (home / config_mod.CONFIG_FILE).exists():
        raise ConfigError(f"{home} already holds a node; refusing to overwrite it")
    for name in ("node.key", "node.pem", "ca.pem"):
        if not (issued / name).is_file():
            raise ConfigError(f"--certs: {issued / name} not found (run `accord certs issue`)")
    _check_issued(issued, agency=agency, federation=federation)
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    for name in ("node.key", "node.pem", "ca.pem"):
        shutil.copyfile(issued / name, home / name)
        os.chmod(home / name, 0o600)
    text = config_mod.render(
        agency=agency,
        federation=federation,
        listen=listen,
        directory=str(directory.resolve()),
        crl=str(crl.resolve()),
    )
    path = home / config_mod.CONFIG_FILE
    path.write_text(text)
    os.chmod(path, 0o600)
    config_mod.load(home)  # what init wrote must load
    return path


def _check_issued(issued: Path, *, agency: str, federation: str) -> None:
    """The certificate handed over is this agency's and matches its key (the node checks it
    fully, CRL and validity included, every time it starts)."""
    try:
        cert = load_cert(issued / "node.pem")
        key = load_key(issued / "node.key")
        named = agency_of(cert, federation)
    except (PkiError, ValueError) as exc:
        raise ConfigError(f"--certs: {issued}: {exc}") from exc
    if named != agency:
        raise ConfigError(
            f"--certs: {issued / 'node.pem'} is {named}'s certificate, not {agency}'s"
        )
    if cert.public_key().public_bytes(*_SPKI) != key.public_key().public_bytes(*_SPKI):
        raise ConfigError(f"--certs: {issued / 'node.pem'} does not match {issued / 'node.key'}")


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
