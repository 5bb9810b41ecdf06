"""Drill mode on a node: the [drill] config section and the advanceable clock exist only on a
node started with `--drill`; a production node refuses both. Also the Outbox call and the
fault-injecting proxy that drill-mode links are routed through."""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from accord.v1 import local_pb2
from node import config as config_mod
from node.app import Node
from node.client import connect, local_error
from node.drill.proxy import FaultProxy, Mode
from node.errors import ConfigError
from tests.harness import Federation, add_user, liaison, node_send, wait_for
from tests.test_cli import accord, assert_usage_error

DRILL_SECTION = '\n[drill.endpoints]\nDE-BKA = "127.0.0.1:1"\n'


def with_drill_section(home: Path, text: str = DRILL_SECTION) -> None:
    path = home / config_mod.CONFIG_FILE
    path.write_text(path.read_text() + text)


async def advance(home: Path, seconds: float, *, user: str = "admin") -> local_pb2.ClockInfo:
    async with connect(home, user=user) as node:
        info: local_pb2.ClockInfo = await node.api.AdvanceClock(
            local_pb2.AdvanceClockRequest(seconds=seconds)
        )
        return info


async def start_drill_node(fed: Federation, agency: str) -> Node:
    cfg = config_mod.load(fed.homes[agency], drill=True)
    cfg = replace(cfg, node=replace(cfg.node, listen="127.0.0.1:0"))
    node = await Node.open(cfg, drill=True)
    fed.nodes[agency] = node
    fed.authority.set_endpoint(agency=agency, endpoint=f"127.0.0.1:{node.port}", now=fed.now)
    fed.reload_all()
    return node


# ---- config ------------------------------------------------------------------------------------


async def test_a_drill_section_is_refused_unless_the_node_runs_in_drill_mode(
    fed3: Federation,
) -> None:
    home = fed3.homes["NL-POL"]
    with_drill_section(home)
    with pytest.raises(ConfigError, match=r"drill: .*accord node run --drill"):
        config_mod.load(home, drill=False)
    readers = config_mod.load(home)  # the CLI reads the socket path from it
    assert readers.drill is not None and readers.drill.endpoints == {"DE-BKA": "127.0.0.1:1"}
    assert config_mod.load(home, drill=True).drill == readers.drill
    # Node itself refuses too, whoever loaded the config.
    with pytest.raises(ConfigError, match="drill"):
        await Node.open(readers)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("\n[drill]\nclock = 3\n", "drill.clock: unknown field"),
        ('\n[drill]\nendpoints = "x"\n', "drill.endpoints: must be a table"),
        ('\n[drill.endpoints]\nnl = "127.0.0.1:1"\n', "drill.endpoints.nl: not an agency code"),
        ('\n[drill.endpoints]\nDE-BKA = "nowhere"\n', "drill.endpoints.DE-BKA: expected HOST:PORT"),
        ("\n[drill.endpoints]\nDE-BKA = 7443\n", "drill.endpoints.DE-BKA: expected HOST:PORT"),
    ],
)
def test_bad_drill_sections_name_the_field(fed3: Federation, text: str, fragment: str) -> None:
    home = fed3.homes["NL-POL"]
    with_drill_section(home, text)
    with pytest.raises(ConfigError, match=fragment):
        config_mod.load(home, drill=True)


async def test_node_run_without_drill_refuses_a_drill_home(fed3: Federation) -> None:
    home = fed3.homes["NL-POL"]
    with_drill_section(home)
    run = await accord("node", "run", "--home", home)
    assert_usage_error(run, "drill: this section is only for nodes of a drill cluster")
    assert not (home / "node.sock").exists()


# ---- the clock ---------------------------------------------------------------------------------


async def test_a_production_node_refuses_to_move_its_clock(fed3: Federation) -> None:
    nl = await fed3.start("NL-POL")
    before = nl.clock.now()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await advance(fed3.homes["NL-POL"], 86400)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not started in drill mode" in (info.value.details() or "")
    assert abs((nl.clock.now() - before).total_seconds()) < 60
    assert nl.drill_clock is None


async def test_a_drill_node_moves_its_clock_for_its_administrator_only(fed3: Federation) -> None:
    nl = await start_drill_node(fed3, "NL-POL")
    home = fed3.homes["NL-POL"]
    await add_user(nl, "officer", "liaison_officer")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await advance(home, 60, user="officer")
    assert local_error(info.value).denied == "ROLE"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await advance(home, -1)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    before = nl.clock.now()
    got = await advance(home, 3 * 86400)
    assert got.offset_seconds == 3 * 86400
    assert (nl.clock.now() - before).total_seconds() >= 3 * 86400
    assert (await advance(home, 0)).offset_seconds == 3 * 86400  # 0 reads it


# ---- routing through a proxy -------------------------------------------------------------------


async def test_a_drill_link_runs_mtls_end_to_end_through_the_proxy(fed3: Federation) -> None:
    de = await fed3.start("DE-BKA")
    proxy = FaultProxy("NL-POL>DE-BKA", ("127.0.0.1", de.port))
    await proxy.start()
    try:
        with_drill_section(
            fed3.homes["NL-POL"], f'\n[drill.endpoints]\nDE-BKA = "127.0.0.1:{proxy.port}"\n'
        )
        nl = await start_drill_node(fed3, "NL-POL")

        async def states(mid: str) -> list[str]:
            return [d.state for d in await nl.store.deliveries(mid)]

        first = await node_send(nl, liaison(to=["DE-BKA"]))

        async def accepted_first() -> bool:
            return await states(first.message_id) == ["accepted"]

        await wait_for(accepted_first)
        assert proxy.connections >= 1 and proxy.bytes > 0  # it went through the proxy

        proxy.set(Mode.DROP)
        held = await node_send(nl, liaison(to=["DE-BKA"]))
        await asyncio.sleep(1.0)  # a dropped way must keep it queued for this long
        assert await states(held.message_id) == ["queued"]
        async with connect(fed3.homes["NL-POL"], user="admin") as admin:
            peers = (await admin.api.Outbox(local_pb2.OutboxRequest())).peers
        (peer,) = peers
        assert peer.peer == "DE-BKA" and peer.queued == 1 and peer.HasField("last_receipt_at")
        assert peer.HasField("oldest_queued_at") and peer.last_error

        proxy.set(Mode.PASS)

        async def accepted_held() -> bool:
            return await states(held.message_id) == ["accepted"]

        await wait_for(accepted_held)
        async with connect(fed3.homes["NL-POL"], user="admin") as admin:
            (peer,) = (await admin.api.Outbox(local_pb2.OutboxRequest())).peers
        assert peer.queued == 0 and not peer.HasField("oldest_queued_at")
    finally:
        await proxy.close()


# ---- the proxy's modes, against a plain echo server --------------------------------------------


async def echo_server() -> asyncio.Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, "127.0.0.1", 0)


async def test_proxy_modes_pass_delay_blackhole_drop_reset() -> None:
    server = await echo_server()
    proxy = FaultProxy("A>B", ("127.0.0.1", server.sockets[0].getsockname()[1]))
    await proxy.start()
    loop = asyncio.get_running_loop()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"

        proxy.set(Mode.DELAY, delay=0.2)
        started = loop.time()
        writer.write(b"slow")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"slow"
        assert loop.time() - started >= 0.4  # 0.2 s each way

        proxy.set(Mode.BLACKHOLE)
        writer.write(b"held")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(4), 0.5)
        proxy.set(Mode.PASS)  # nothing was discarded: it flows on
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"held"

        proxy.set(Mode.DROP)
        assert await asyncio.wait_for(reader.read(10), 5) == b""  # closed (FIN)
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await asyncio.wait_for(reader.read(10), 5) == b""  # new ones too

        proxy.set(Mode.RESET)
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(10), 5)
        writer.close()
    finally:
        await proxy.close()
        server.close()


async def test_proxy_passes_on_a_reset_from_either_side() -> None:
    """A node killed with SIGKILL resets its connections; through the proxy its peer must see
    that at once, as it would on a real network, not only when its keepalive gives up
    (20 s + 10 s), which stalled the crash drill's outbox for half a minute."""
    accepted: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    proxy = FaultProxy("A>B", ("127.0.0.1", server.sockets[0].getsockname()[1]))
    await proxy.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        upstream = await asyncio.wait_for(accepted.get(), 5)
        sock = upstream.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        upstream.transport.abort()  # B dies: RST towards the proxy
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 5)
        writer.close()
    finally:
        await proxy.close()
        server.close()
