"""`accord node run` that cannot start: one line, a non-zero exit, nothing left running.

Real processes: what kept a failed node alive were threads (the store's) that only a real
interpreter exit shows.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from tests.harness import Federation, free_port
from tests.test_cli import accord, assert_usage_error
from tests.test_delivery import set_listen

NL, DE = "NL-POL", "DE-BKA"


def garbage(name: str) -> Callable[[Path], None]:
    def spoil(home: Path) -> None:
        (home / name).write_bytes(b"-----BEGIN GARBAGE-----\nnot at all\n")

    return spoil


def not_a_database(home: Path) -> None:
    (home / "accord.db").write_bytes(b"this is not SQLite at all" * 400)


def malformed(home: Path) -> None:
    """Page 2 of the database (a table's b-tree) overwritten: SQLite sees a damaged image."""
    path = home / "accord.db"
    data = bytearray(path.read_bytes())
    data[4096:8192] = b"\xff" * 4096
    path.write_bytes(bytes(data))


def empty(home: Path) -> None:
    (home / "accord.db").write_bytes(b"")


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "key": (garbage("node.key"), "tls.key: "),
    "certificate": (garbage("node.pem"), "tls.certificate: "),
    "not-a-database": (not_a_database, "database: file is not a database; restore accord.db"),
    "malformed": (malformed, "database: database disk image is malformed; restore accord.db"),
    "empty": (empty, "home initialised but database empty"),
}


async def test_start_up_failures_are_one_line_and_leave_nothing_running(tmp_short: Path) -> None:
    fed = Federation(tmp_short, [NL, DE])
    try:
        homes: dict[str, Path] = {}
        for case, (spoil, _) in CASES.items():
            home = tmp_short / case
            shutil.copytree(fed.homes[NL], home)
            spoil(home)
            homes[case] = home
        busy = tmp_short / "busy"
        shutil.copytree(fed.homes[NL], busy)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            set_listen(busy, f"127.0.0.1:{taken.getsockname()[1]}")
            # The same home as a node already running (in this process, holding the lock).
            await fed.start(DE)
            runs = await asyncio.gather(
                *(accord("node", "run", "--home", home, timeout=30) for home in homes.values()),
                accord("node", "run", "--home", busy, timeout=30),
                accord("node", "run", "--home", fed.homes[DE], timeout=30),
            )
        # Each returned within the timeout: the process exited, nothing kept it alive.
        for (case, (_, fragment)), result in zip(CASES.items(), runs, strict=False):
            assert_usage_error(result, fragment)
            assert "ready on port" not in result.out, case
        assert_usage_error(runs[-2], "node.listen: cannot listen on", "Address already in use")
        assert_usage_error(runs[-1], f"another node is running on {fed.homes[DE]}", "stop it first")
        assert (tmp_short / "empty" / "accord.db").stat().st_size == 0
        assert fed.nodes[DE].health is not None and (fed.homes[DE] / "node.sock").exists(), (
            "the refused second node must not take the running node's socket"
        )
    finally:
        await fed.stop_all()


async def test_a_node_that_stops_releases_its_home(tmp_short: Path) -> None:
    """The lock is the node's, not the home's: stopped (or killed), the next start works."""
    fed = Federation(tmp_short, [NL, DE])
    try:
        port = free_port()
        await fed.start(NL, port=port)
        await fed.stop(NL)
        await fed.start(NL, port=port)
    finally:
        await fed.stop_all()
