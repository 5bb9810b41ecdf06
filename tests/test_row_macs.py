"""Rows that grant access are bound to master.key (node/store/rowmac.py): a row written or
changed in accord.db by someone without the key grants nothing, and is logged; node_state's
recorded values cannot be changed or deleted without the node refusing to start."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
from pathlib import Path

import argon2
import grpc
import pytest

from accord.v1 import local_pb2
from node import config as config_mod
from node.app import Node
from node.client import connect
from node.errors import ConfigError
from node.store import Store
from node.store.access import AccessStore
from node.store.db import _scripts
from node.store.keys import KeyRing
from tests.harness import Federation, add_user, approved_user

DE = "DE-BKA"
INTEGRITY = "fails its integrity check"


def write(node: Node, sql: str, params: tuple[object, ...] = ()) -> None:
    """What the attacker does: a plain write to the running node's database."""
    db = sqlite3.connect(node.config.database)
    with db:
        db.execute(sql, params)
    db.close()


async def whoami(node: Node, user: str) -> local_pb2.UserInfo | grpc.StatusCode:
    async with connect(node.config.home, user=user) as c:
        try:
            info: local_pb2.UserInfo = await c.api.WhoAmI(local_pb2.WhoAmIRequest())
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return info


async def test_rows_changed_in_the_database_grant_nothing(
    fed2: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    _, de = await fed2.start_all()
    await add_user(de, "otto", "liaison_officer", ["missing-persons"])
    await add_user(de, "olga", "liaison_officer", ["missing-persons"])
    caplog.set_level(logging.ERROR, logger="node.store.rowmac")

    # A role raised in place: the row no longer matches its MAC, so the user is nobody.
    write(de, "UPDATE users SET role = 'supervisor' WHERE name = 'otto'")
    assert await whoami(de, "otto") == grpc.StatusCode.UNAUTHENTICATED
    assert any(INTEGRITY in r.getMessage() and "otto" in r.getMessage() for r in caplog.records)

    # A clearance added: left out.
    write(
        de,
        "INSERT INTO clearances (user_name, purpose) VALUES ('olga', "
        "'serious-crime-investigation')",
    )
    olga = await whoami(de, "olga")
    assert isinstance(olga, local_pb2.UserInfo) and list(olga.clearances) == ["missing-persons"]

    # An enrolment code of the attacker's own for a user not enrolled yet: refused.
    await approved_user(de, "lena", "liaison_officer")
    write(
        de,
        "UPDATE enrolments SET code_sha256 = ?, needs_second = 0 WHERE user_name = 'lena'",
        (hashlib.sha256(b"MYCODE").digest(),),
    )
    async with connect(de.config.home, anonymous=True) as anon:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await anon.api.Enrol(local_pb2.EnrolRequest(name="lena", code="MYCODE"))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

    # A password hash of the attacker's choosing: the login is refused like a wrong password.
    password = "correct horse battery staple"
    write(
        de,
        "INSERT INTO passwords (user_name, hash, set_at) VALUES ('olga', ?, '2026-01-01')",
        (argon2.PasswordHasher().hash(password),),
    )
    async with connect(de.config.home, anonymous=True) as anon:
        with pytest.raises(grpc.aio.AioRpcError) as wrong:
            await anon.api.Login(local_pb2.LoginRequest(name="olga", password=password))
    assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("tamper", "says"),
    [
        ("UPDATE node_state SET value = 0 WHERE name = 'crl_number'", "crl_number changed"),
        ("DELETE FROM node_state WHERE name = 'recorded_names'", "is missing"),
        ("DELETE FROM node_state WHERE name = 'master_key_check'", "master_key_check deleted"),
        ("INSERT INTO node_state (name, value) VALUES ('x', 1)", "a value added"),
    ],
)
async def test_a_node_whose_recorded_values_were_altered_does_not_start(
    fed2: Federation, tamper: str, says: str
) -> None:
    de = await fed2.start(DE)
    home = de.config.home
    await fed2.stop(DE)
    write(de, tamper)
    try:
        started = await Node.open(config_mod.load(home), clock=fed2.clock)
    except ConfigError as refused:
        assert re.search(f"node_state was altered.*{says}", str(refused)), refused
    else:
        await started.stop(grace=0.5)
        pytest.fail("the node started over an altered node_state")


async def test_the_migration_binds_the_rows_already_there(tmp_short: Path) -> None:
    """A database from before the MACs: its rows are the node's own, and keep working."""
    path = tmp_short / "accord.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for version, name, sql in _scripts():
        if version < 41:
            db.executescript(
                f"BEGIN;\n{sql}\nINSERT INTO schema_migrations VALUES "
                f"({version}, '{name}', datetime('now'));\nCOMMIT;"
            )
    db.execute(
        "INSERT INTO users (name, role, token_sha256, created_at) "
        "VALUES ('ada', 'administrator', ?, '2026-01-01')",
        (os.urandom(32),),
    )
    db.execute("INSERT INTO clearances (user_name, purpose) VALUES ('ada', 'missing-persons')")
    db.execute("INSERT INTO node_state (name, value) VALUES ('crl_number', 7)")
    db.close()

    store = await Store.open(path, keys=KeyRing(os.urandom(32)), create=False)
    try:
        ada = await AccessStore(store).user("ada")
        assert ada is not None and ada.clearances == {"missing-persons"}
        assert await store.high_waters("crl_number") == {"crl_number": 7}
    finally:
        await store.close()
