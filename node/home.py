"""A node's home directory: creating it (`accord node init`), and what a node running there
does to it at start (the lock that says it runs there, secrets kept private)."""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from certs.ca import load_cert, load_key, write_private
from certs.errors import PkiError
from certs.identity import agency_of
from node import config as config_mod
from node.errors import ConfigError
from node.policy.access import Role
from node.store.access import add_user_txn, log_txn
from node.store.db import create_database
from node.store.keys import KeyRing

log = logging.getLogger(__name__)

ISSUED_FILES = ("node.key", "node.pem", "ca.pem")
ADMIN = "admin"


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
    """Lay out a node home from the key and certificates the federation issued to it: config,
    master key, the database with its schema and the bootstrap administrator, whose token is
    left in HOME/tokens/admin.

    All or nothing: the home is built in a temporary sibling directory and renamed into place,
    so a failure leaves no half-made home behind to block the retry. The directory and CRL stay
    where the federation publishes them (the node reads, never writes, them); everything the
    node writes lives under `home`, 0700, secrets 0600.
    """
    if home.exists():
        if (home / config_mod.CONFIG_FILE).exists():
            raise ConfigError(f"{home} already holds a node; refusing to overwrite it")
        if not home.is_dir() or any(home.iterdir()):
            raise ConfigError(f"{home} exists and is not an empty directory; choose another --home")
    config_mod.check_listen(listen, "--listen")
    config_mod.check_socket(home.resolve() / "node.sock", "--home")
    for name in ISSUED_FILES:
        if not (issued / name).is_file():
            raise ConfigError(f"--certs: {issued / name} not found (run `accord certs issue`)")
    _check_issued(issued, agency=agency, federation=federation)
    home.parent.mkdir(parents=True, exist_ok=True)
    existed = home.exists()
    build = Path(tempfile.mkdtemp(prefix=f".{home.name}.init-", dir=home.parent))
    try:
        os.chmod(build, 0o700)
        for name in ISSUED_FILES:
            shutil.copyfile(issued / name, build / name)
            os.chmod(build / name, 0o600)
        text = config_mod.render(
            agency=agency,
            federation=federation,
            listen=listen,
            directory=str(directory.resolve()),
            crl=str(crl.resolve()),
        )
        write_private(build / config_mod.CONFIG_FILE, text.encode())
        keys = KeyRing.generate()
        keys.save(build / "master.key")
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        admin = add_user_txn(
            keys, name=ADMIN, role=Role.ADMINISTRATOR, token=token, purposes=(), now=now
        )
        admin.append(
            log_txn(at=now, user="node", action="add-user", outcome="granted",
                    detail=f"{ADMIN} as {Role.ADMINISTRATOR} (node init)")
        )  # fmt: skip
        create_database(build / "accord.db", keys, admin)
        (build / "tokens").mkdir(mode=0o700)
        write_private(build / "tokens" / ADMIN, token.encode())
        # rename(2) replaces an empty directory in one step; anything else in it, and it fails.
        os.rename(build, home)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    try:
        config_mod.load(home)  # what init wrote must load
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)
        if existed:
            home.mkdir(mode=0o700)
        raise
    return home / config_mod.CONFIG_FILE


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


LOCK_FILE = "node.lock"


def lock_home(home: Path) -> int:
    """Take the lock on HOME that says a node runs there (a second node on the same home would
    share its database and take over its socket), and write this process's id into it. The
    kernel releases the lock when the process ends, however it ends."""
    path = home / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ConfigError(
            f"another node is running on {home} (pid {holder} holds {path}); stop it first"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


# Files in HOME that hold secrets or messages: made 0600 at every start, whatever they were
# left as (a restore from backup, an operator's copy).
def tighten_secrets(config: config_mod.Config) -> None:
    paths = [config.path(config.tls.key), config.master_key, config.database, config.keystore]
    paths += [config.database.with_name(config.database.name + s) for s in ("-wal", "-shm")]
    tokens = config.home / "tokens"
    if tokens.is_dir():
        os.chmod(tokens, 0o700)
        paths += [p for p in tokens.iterdir() if p.is_file()]
    for path in paths:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(path, 0o600)
            log.warning("%s was readable by others (mode %o); made it 0600", path, mode)
