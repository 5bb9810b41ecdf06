"""Attacker (d): someone who can write files in a node's home (its database, its config, the
federation files it reads) but does not hold node.key or master.key."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import replace
from datetime import timedelta

import grpc

from node import config as config_mod
from node.app import Node
from node.errors import ConfigError
from node.wire import parse_receipt
from tests.attack.common import WHY, red_incident_at
from tests.gateway_harness import client, gateway
from tests.harness import (
    Federation,
    RawExchange,
    add_user,
    complete,
    envelope_frame,
    incident,
    member_key,
)

NL, DE = "NL-POL", "DE-BKA"


async def test_a_revoked_member_stays_revoked_when_the_state_row_is_deleted_too(
    fed2: Federation,
) -> None:
    """Issue 10 item 3, one step further: DE is revoked while NL runs, and NL records the new
    CRL number and directory serial in its database. With NL stopped, the attacker puts the
    previous signed CRL and directory back and deletes the two `node_state` rows. NL starts
    without a word, and DE's revoked key passes mutual TLS and has an envelope ACCEPTED.
    Secure: the high-water marks cannot be removed without the node noticing (bound to a key
    the attacker does not hold), so NL refuses to start or refuses DE."""
    nl = await fed2.start(NL)
    paths = [fed2.authority.crl_path, fed2.authority.directory_path]
    paths.append(fed2.authority.directory_path.with_name("directory.json.sig"))
    before = {p: p.read_bytes() for p in paths}
    fed2.authority.revoke(agency=DE, now=fed2.now)
    fed2.reload_all()
    assert nl.trust.directory is not None and nl.trust.directory.member(DE) is None
    home = nl.config.home
    await fed2.stop(NL)

    for path, data in before.items():
        path.write_bytes(data)
    db = sqlite3.connect(config_mod.load(home).database)
    with db:
        db.execute("DELETE FROM node_state WHERE name IN ('crl_number', 'directory_serial')")
    db.close()

    cfg = config_mod.load(home)
    try:
        restarted = await Node.open(
            replace(cfg, node=replace(cfg.node, listen="127.0.0.1:0")), clock=fed2.clock
        )
    except ConfigError:
        return  # refused to start, saying why: secure
    try:
        content = complete(incident(to=[NL]), sender=DE).SerializeToString()
        try:
            async with RawExchange(fed2, as_agency=DE, to=restarted) as raw:
                receipt = await raw.send(envelope_frame(content, member_key(fed2, DE)))
        except grpc.aio.AioRpcError as refused:
            assert refused.code() == grpc.StatusCode.UNAUTHENTICATED, refused
            return  # DE's revoked certificate refused: secure
        info = parse_receipt(receipt.content)
        assert not info.accepted, "after the rollback NL accepted an envelope from revoked DE"
    finally:
        await restarted.stop(grace=0.5)


async def test_a_session_written_into_the_database_opens_nothing(fed2: Federation) -> None:
    """The attacker can write DE's database but holds no token, password or key, and reaches
    DE's gateway over the network. It inserts a `sessions` row for supervisor `sam` with the
    SHA-256 of a token of its own choosing, then calls the gateway's API with that token as a
    bearer: the node takes it for sam and shows NL's TLP:RED content. docs/security.md says a
    database writer "cannot make a row readable to more people". Secure: credentials the node
    did not issue are not accepted (e.g. rows bound to a key the attacker does not hold)."""
    nl, de = await fed2.start_all()
    await add_user(de, "sam", "supervisor")
    red = await red_incident_at(nl, de)
    token = secrets.token_urlsafe(32)
    now = de.clock.now()
    db = sqlite3.connect(de.config.database)
    with db:
        db.execute(
            "INSERT INTO sessions (token_sha256, user_name, created_at, last_used_at, "
            "expires_at) VALUES (?, 'sam', ?, ?, ?)",
            (
                hashlib.sha256(token.encode()).digest(),
                now.isoformat(),
                now.isoformat(),
                (now + timedelta(hours=1)).isoformat(),
            ),
        )
    db.close()
    async with gateway(de) as url, client(url) as c:
        answer = await c.post(
            f"/api/v1/messages/{red}/read",
            json={"justification": WHY},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 401, (
        f"a session the node never issued read TLP:RED content: {answer.status_code} "
        f"{answer.text[:120]}"
    )
