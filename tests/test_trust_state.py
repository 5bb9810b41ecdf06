"""What a node trusts survives restarts and clocks: no rollback of the CRL or directory, a
directory that lapses fails closed, and a node refuses to run on its own bad certificate or
with the wrong master key."""

from __future__ import annotations

import logging
import os
import shutil
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from certs.ca import FederationAuthority
from node.cli import main
from node.client import connect
from node.clock import OffsetClock
from node.errors import ConfigError, Reason, Refused
from node.home import init_home
from tests.harness import (
    FEDERATION,
    Federation,
    RawExchange,
    complete,
    envelope_frame,
    incident,
    member_key,
    node_send,
    wait_for,
)
from tests.harness import held as wait_held

NL, DE = "NL-POL", "DE-BKA"


def published(fed2: Federation) -> dict[Path, bytes]:
    """The federation's published files as they are now (CRL, directory and its signature)."""
    paths = [fed2.authority.crl_path, fed2.authority.directory_path]
    paths.append(fed2.authority.directory_path.with_name("directory.json.sig"))
    return {p: p.read_bytes() for p in paths}


def put_back(files: dict[Path, bytes], *only: str) -> None:
    for path, data in files.items():
        if not only or path.name in only:
            path.write_bytes(data)


async def test_an_older_crl_or_directory_put_back_is_refused_after_a_restart(
    fed2: Federation,
) -> None:
    """Item 3: DE is revoked while NL runs; putting the previous CRL (or directory) back and
    restarting NL must not make DE's key good again: NL refuses to start, saying why."""
    await fed2.start(NL)
    before = published(fed2)
    fed2.authority.revoke(agency=DE, now=fed2.now)
    fed2.reload_all()
    current = published(fed2)
    await fed2.stop(NL)

    put_back(before, "crl.pem")
    with pytest.raises(ConfigError) as crl_refused:
        await fed2.start(NL)
    message = str(crl_refused.value)
    assert "older than number" in message and "accord certs crl" in message
    assert "\n" not in message

    put_back(current)
    put_back(before, "directory.json", "directory.json.sig")
    with pytest.raises(ConfigError, match=r"serial \d+, older than serial \d+"):
        await fed2.start(NL)

    put_back(current)
    nl = await fed2.start(NL)
    assert nl.trust.directory is not None and nl.trust.directory.member(DE) is None


async def test_a_lapsed_directory_fails_closed_until_it_is_signed_again(fed2: Federation) -> None:
    """Item 3: past its valid_until the directory is not trusted: peers are refused, sends are
    refused with a reason; `accord certs directory` signs it again and traffic resumes."""
    nl = await fed2.start(NL)
    de = await fed2.start(DE)
    fed2.authority.publish_directory(now=fed2.now, days=1)
    fed2.reload_all()
    clock = fed2.clock
    assert isinstance(clock, OffsetClock)
    clock.advance(timedelta(days=2))

    with pytest.raises(Refused) as refused:
        await node_send(nl, incident(to=[DE]))
    assert refused.value.reason == Reason.FEDERATION_STALE
    assert "directory" in str(refused.value) and "accord certs directory" in str(refused.value)
    content = complete(incident(to=[DE]), sender=NL).SerializeToString()
    async with RawExchange(fed2, as_agency=NL, to=de) as raw:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw.send(envelope_frame(content, member_key(fed2, NL)))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in (caught.value.details() or "")

    assert main(["certs", "directory", "--dir", str(fed2.authority.root), "--days", "30"]) == 0
    fed2.reload_all()
    sent = await node_send(nl, incident(to=[DE]))
    await wait_held(de, sent.message_id, sender=NL)


def install(fed2: Federation, agency: str, *, cert: Path, key: Path) -> None:
    """Put a certificate and key into `agency`'s node home, as an operator would."""
    home = fed2.homes[agency]
    shutil.copyfile(cert, home / "node.pem")
    shutil.copyfile(key, home / "node.key")


async def start_fails(fed2: Federation, agency: str) -> str:
    """Start a node that must refuse to start; its one-line reason."""
    with pytest.raises(ConfigError) as refused:
        await fed2.start(agency)
    message = str(refused.value)
    assert "\n" not in message and "tls.certificate" in message
    return message


async def test_a_node_refuses_to_start_on_a_certificate_it_must_not_use(
    fed2: Federation, tmp_short: Path
) -> None:
    """Item 4: revoked, expired, not yet valid, from another CA, of another agency, or not
    matching the node's key: each is one clear line, and the node does not start."""
    issued = fed2.authority.root / "issued"
    own = issued / NL / "node.pem", issued / NL / "node.key"

    def extra(name: str, **changes: object) -> tuple[Path, Path]:
        made = fed2.authority.issue(
            agency=NL,
            endpoint="127.0.0.1:1",
            now=fed2.now,
            out=tmp_short / name,
            publish=False,
            **changes,  # type: ignore[arg-type]
        )
        return made.cert_path, made.key_path

    foreign_ca = FederationAuthority.init(tmp_short / "other", federation=FEDERATION, now=fed2.now)
    foreign = foreign_ca.issue(agency=NL, endpoint="127.0.0.1:1", now=fed2.now)
    cases: list[tuple[tuple[Path, Path], str]] = [
        (extra("expired", not_before=fed2.now - timedelta(days=9), days=-1), "expired"),
        (extra("early", not_before=fed2.now + timedelta(days=1)), "not valid before"),
        ((foreign.cert_path, foreign.key_path), "not issued by the federation CA"),
        ((issued / DE / "node.pem", issued / DE / "node.key"), f"{DE}'s certificate"),
        ((own[0], issued / DE / "node.key"), "does not match this node's key"),
    ]
    for (cert, key), says in cases:
        install(fed2, NL, cert=cert, key=key)
        assert says in await start_fails(fed2, NL)
    install(fed2, NL, cert=own[0], key=own[1])
    fed2.authority.revoke(agency=NL, now=fed2.now)
    assert "revoked" in await start_fails(fed2, NL)


async def test_a_running_node_whose_certificate_lapses_stops_serving_until_it_is_valid(
    fed2: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 4: checked again on every reload. Its own certificate not valid (here: the clock
    moved before its start of validity), the node says NOT_SERVING, refuses peers and sends,
    logs it; valid again, it serves again and what waited is delivered."""
    nl = await fed2.start(NL)
    de = await fed2.start(DE)
    clock = fed2.clock
    assert isinstance(clock, OffsetClock)
    clock.advance(timedelta(hours=-1))  # before every certificate of the federation
    caplog.set_level(logging.ERROR, logger="node.app")
    de.reload()
    assert any("NOT SERVING" in r.getMessage() for r in caplog.records)

    async def status() -> int:
        async with connect(de.config.home) as c:
            reply = await c.health.Check(health_pb2.HealthCheckRequest(), timeout=2.0)
            return int(reply.status)

    async def not_serving() -> bool:
        return await status() == int(health_pb2.HealthCheckResponse.NOT_SERVING)

    await wait_for(not_serving)
    with pytest.raises(Refused) as refused:
        await node_send(de, incident(to=[NL]))
    assert refused.value.reason == Reason.OWN_CERTIFICATE_INVALID
    content = complete(incident(to=[DE]), sender=NL).SerializeToString()
    async with RawExchange(fed2, as_agency=NL, to=de) as raw:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw.send(envelope_frame(content, member_key(fed2, NL)))
    assert "own certificate" in (caught.value.details() or "")

    clock.advance(timedelta(hours=1))
    de.reload()

    async def serving() -> bool:
        return await status() == int(health_pb2.HealthCheckResponse.SERVING)

    await wait_for(serving)
    sent = await node_send(de, incident(to=[NL]))
    await wait_held(nl, sent.message_id, sender=DE)


def test_node_init_refuses_another_agencys_certificate(fed2: Federation, tmp_short: Path) -> None:
    issued = fed2.authority.root / "issued"
    with pytest.raises(ConfigError, match=f"is {DE}'s certificate, not {NL}'s"):
        init_home(
            tmp_short / "x",
            agency=NL,
            federation=FEDERATION,
            listen="127.0.0.1:0",
            issued=issued / DE,
            directory=fed2.authority.directory_path,
            crl=fed2.authority.crl_path,
        )
    assert not (tmp_short / "x").exists()


async def test_a_node_refuses_to_start_without_its_master_key(fed2: Federation) -> None:
    """Item 12: with messages sealed under master.key, a node whose master.key is missing or
    another key refuses to start (and makes no new key); with the right key it serves them."""
    nl = await fed2.start(NL)
    de = await fed2.start(DE)
    sent = await node_send(nl, incident(to=[DE]))
    await wait_held(de, sent.message_id, sender=NL)
    await fed2.stop(DE)
    key_path = fed2.homes[DE] / "master.key"
    original = key_path.read_bytes()

    key_path.unlink()
    with pytest.raises(ConfigError, match=r"master\.key is missing") as missing:
        await fed2.start(DE)
    assert "\n" not in str(missing.value)
    assert not key_path.exists()
    key_path.write_bytes(os.urandom(32))
    with pytest.raises(ConfigError, match=r"not the key accord\.db was sealed with"):
        await fed2.start(DE)

    key_path.write_bytes(original)
    de = await fed2.start(DE)
    row = await de.store.get_message(sent.message_id, sender=NL)
    assert row is not None and de.store.open_content(row) == sent.content


async def test_a_fresh_node_records_its_master_key(fed2: Federation) -> None:
    """Item 12: even before any message, the database knows its key: deleting master.key
    after the first start is refused too."""
    await fed2.start(NL)
    await fed2.stop(NL)
    (fed2.homes[NL] / "master.key").unlink()
    with pytest.raises(ConfigError, match=r"master\.key is missing"):
        await fed2.start(NL)
