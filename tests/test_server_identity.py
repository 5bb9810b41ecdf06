"""A sender checks who it talks to before any envelope leaves.

TLS alone tells a client only that the server has *some* certificate of the federation CA for
the peer's DNS name; grpcio's client cannot say which. A node whose old key was replaced (and
revoked) could still pass TLS. The Hello proof makes the server sign a fresh nonce with the key
the directory lists now.
"""

from __future__ import annotations

from certs.ca import load_cert
from tests.harness import Federation, incident, node_send, until_delivered, wait_for

NL, DE = "NL-POL", "DE-BKA"


async def test_a_server_with_a_superseded_key_receives_nothing(fed3: Federation) -> None:
    nl = await fed3.start(NL)
    old_member = fed3.authority.directory().member(DE)
    assert old_member is not None
    # DE-BKA gets a new certificate (new key) and the old one is revoked; the old home, still
    # holding the old key, keeps running as an impostor at the address the directory names.
    fresh = fed3.authority.issue(
        agency=DE, endpoint="127.0.0.1:1", now=fed3.now, out=fed3.root / "de-new"
    )
    impostor = await fed3.start(DE)  # old key; start() points the directory at it
    # An honest node stops serving once its own certificate is revoked; an impostor runs
    # whatever code it likes, so this one skips that check and keeps answering.
    impostor.trust.check_own = lambda now: None  # type: ignore[method-assign]
    old_serial = load_cert(fed3.homes[DE] / "node.pem").serial_number
    assert old_serial != fresh.serial
    fed3.authority.revoke(now=fed3.now, serial=old_serial)
    fed3.reload_all()
    listed = fed3.authority.directory().member(DE)
    assert listed is not None and listed.certificate_sha256 != old_member.certificate_sha256

    sent = await node_send(nl, incident(to=[DE]))

    async def refused_with_reason() -> bool:
        (d,) = await nl.store.deliveries(sent.message_id)
        return d.state == "queued" and "did not prove" in d.last_error

    await wait_for(refused_with_reason)

    async def refused_again() -> bool:
        (d,) = await nl.store.deliveries(sent.message_id)
        return d.attempts >= 2

    await wait_for(refused_again)  # a second attempt, after backoff: refused the same way
    assert await impostor.store.count("messages") == 0
    assert await impostor.store.count("rejections") == 0


async def test_the_listed_key_passes_the_proof(fed3: Federation) -> None:
    nl, de, _ = await fed3.start_all()
    sent = await node_send(nl, incident(to=[DE]))

    await until_delivered(nl, sent)
    assert await de.store.count("messages") == 1
