"""Creating a node's home directory (`accord node init`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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
