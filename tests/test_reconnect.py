"""A queue drains as soon as its peer is back, not when a long backoff happens to end."""

from __future__ import annotations

import asyncio

from tests.harness import Federation, incident, node_send, until_delivered, wait_for

NL, DE = "NL-POL", "DE-BKA"


async def test_delivery_resumes_when_the_peer_listens_again(fed3: Federation) -> None:
    config = fed3.homes[NL] / "config.toml"
    config.write_text(
        config.read_text().replace("backoff_initial_seconds = 0.1", "backoff_initial_seconds = 8.0")
    )
    nl = await fed3.start(NL)
    de = await fed3.start(DE)
    port = de.port
    await fed3.stop(DE)
    sent = await node_send(nl, incident(to=[DE]))

    async def failed_once() -> bool:
        (d,) = await nl.store.deliveries(sent.message_id)
        return d.attempts >= 1

    await wait_for(failed_once)  # the link now sleeps 8-16 s before its next attempt
    # Waiting out a real timer: a probe (every 0.25 s) must see the port closed before the
    # peer comes back, or an open port is no news to the link.
    await asyncio.sleep(0.5)
    loop = asyncio.get_running_loop()
    back = loop.time()
    await fed3.start(DE, port=port)

    await until_delivered(nl, sent, timeout=6)
    assert loop.time() - back < 4, "delivery waited for the backoff timer"


async def test_a_peer_that_listens_but_refuses_keeps_the_full_backoff(fed3: Federation) -> None:
    """The probe must not turn a refusal into a retry storm."""
    nl, de, _ = await fed3.start_all()
    fed3.authority.revoke(now=fed3.now, agency=NL)  # DE now refuses NL; NL still lists DE
    de.reload()
    sent = await node_send(nl, incident(to=[DE]))
    await asyncio.sleep(3.0)  # the behaviour under test: how often it tries over real time
    (d,) = await nl.store.deliveries(sent.message_id)
    assert d.state == "queued"
    # backoff from 0.1 s, doubling: 5-6 attempts in 3 s; one every probe would make 12
    assert 1 <= d.attempts <= 7, d.attempts
