"""What a node trusts survives restarts and clocks: no rollback of the CRL or directory, a
directory that lapses fails closed, and a node refuses to run on its own bad certificate or
with the wrong master key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from node.cli import main
from node.clock import OffsetClock
from node.errors import ConfigError, Reason, Refused
from tests.harness import Federation, RawExchange, complete, envelope_frame, incident, member_key
from tests.harness import held as wait_held

NL, DE = "NL-POL", "DE-BKA"


@pytest.fixture
async def fed(tmp_short: Path) -> AsyncIterator[Federation]:
    federation = Federation(tmp_short, [NL, DE])
    yield federation
    await federation.stop_all()


def published(fed: Federation) -> dict[Path, bytes]:
    """The federation's published files as they are now (CRL, directory and its signature)."""
    paths = [fed.authority.crl_path, fed.authority.directory_path]
    paths.append(fed.authority.directory_path.with_name("directory.json.sig"))
    return {p: p.read_bytes() for p in paths}


def put_back(files: dict[Path, bytes], *only: str) -> None:
    for path, data in files.items():
        if not only or path.name in only:
            path.write_bytes(data)


async def test_an_older_crl_or_directory_put_back_is_refused_after_a_restart(
    fed: Federation,
) -> None:
    """Item 3: DE is revoked while NL runs; putting the previous CRL (or directory) back and
    restarting NL must not make DE's key good again: NL refuses to start, saying why."""
    await fed.start(NL)
    before = published(fed)
    fed.authority.revoke(agency=DE, now=fed.now)
    fed.reload_all()
    current = published(fed)
    await fed.stop(NL)

    put_back(before, "crl.pem")
    with pytest.raises(ConfigError) as crl_refused:
        await fed.start(NL)
    message = str(crl_refused.value)
    assert "older than number" in message and "accord certs crl" in message
    assert "\n" not in message

    put_back(current)
    put_back(before, "directory.json", "directory.json.sig")
    with pytest.raises(ConfigError, match=r"serial \d+, older than serial \d+"):
        await fed.start(NL)

    put_back(current)
    nl = await fed.start(NL)
    assert nl.trust.directory is not None and nl.trust.directory.member(DE) is None


async def test_a_lapsed_directory_fails_closed_until_it_is_signed_again(fed: Federation) -> None:
    """Item 3: past its valid_until the directory is not trusted: peers are refused, sends are
    refused with a reason; `accord certs directory` signs it again and traffic resumes."""
    nl = await fed.start(NL)
    de = await fed.start(DE)
    fed.authority.publish_directory(now=fed.now, days=1)
    fed.reload_all()
    clock = fed.clock
    assert isinstance(clock, OffsetClock)
    clock.advance(timedelta(days=2))

    with pytest.raises(Refused) as refused:
        await nl.send(incident(to=[DE]))
    assert refused.value.reason == Reason.FEDERATION_STALE
    assert "directory" in str(refused.value) and "accord certs directory" in str(refused.value)
    content = complete(incident(to=[DE]), sender=NL).SerializeToString()
    async with RawExchange(fed, as_agency=NL, to=de) as raw:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw.send(envelope_frame(content, member_key(fed, NL)))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in (caught.value.details() or "")

    assert main(["certs", "directory", "--dir", str(fed.authority.root), "--days", "30"]) == 0
    fed.reload_all()
    sent = await nl.send(incident(to=[DE]))
    await wait_held(de, sent.message_id, sender=NL)
