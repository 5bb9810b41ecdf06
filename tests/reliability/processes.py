"""Two agencies' nodes as real `accord node run` processes, for fault injection: SIGKILL,
SIGSTOP, a full disk. The test talks to them only as an operator would: signals, the local API,
the database files read afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from accord.v1 import local_pb2
from node.client import connect
from node.drill.cluster import UserSpec, create_user
from node.errors import AccordError
from tests.harness import ALL_PURPOSES, Federation, free_port, liaison

REPO = Path(__file__).resolve().parents[2]
NL, DE = "NL-POL", "DE-BKA"
OFFICER = "officer"
READY_SECONDS = 20.0


def rows(home: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Read a node's database with a connection of our own: only what is committed."""
    uri = f"file:{home / 'accord.db'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
        return list(conn.execute(sql, params))


def tune(home: Path, **settings: str) -> None:
    """Change `key = value` lines of a node's config.toml (the first of each key)."""
    path = home / "config.toml"
    text = path.read_text()
    for key, value in settings.items():
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text, count=1)
        assert n == 1, key
    path.write_text(text)


@dataclass
class NodeProcess:
    agency: str
    home: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.home.parent / f"{self.agency.lower()}.log"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "node.cli", "node", "run", "--home", str(self.home),
                 "--log-format", "json"],
                cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        self.starts += 1

    async def ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while self.log.read_text(errors="replace").count("ready on port") < self.starts:
            assert self.proc is not None and self.proc.poll() is None, self.tail()
            assert time.monotonic() < deadline, f"{self.agency} not ready: {self.tail()}"
            await asyncio.sleep(0.05)

    async def restart(self) -> None:
        self.start()
        await self.ready()

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.tail()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.kills += 1

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    async def stop(self) -> int:
        """SIGTERM, and the exit status; a node that does not exit in time fails the test."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.proc.wait, 30)
        return code

    def ensure_gone(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                doc = json.loads(line)
                if doc.get("event") == name:
                    out.append(doc)
        return out

    def log_lines(self, fragment: str) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines()
                if fragment in line]  # fmt: skip


class Pair:
    """NL-POL sends to DE-BKA; both are processes with fixed ports, fast retries."""

    def __init__(self, root: Path, *, sender_home: Path | None = None) -> None:
        self.fed = Federation(root, [NL, DE])
        if sender_home is not None:  # e.g. on a small disk of the test's own
            shutil.move(self.fed.homes[NL], sender_home)
            self.fed.homes[NL] = sender_home
        self.nodes: dict[str, NodeProcess] = {}
        for agency in (NL, DE):
            home, port = self.fed.homes[agency], free_port()
            tune(home, listen=f'"127.0.0.1:{port}"', backoff_max_seconds="0.5")
            self.fed.authority.set_endpoint(
                agency=agency, endpoint=f"127.0.0.1:{port}", now=self.fed.now
            )
            self.nodes[agency] = NodeProcess(agency, home, port)
        self.sent: list[str] = []  # ids whose Send returned: in the sender's durable outbox
        self.failed: list[str] = []  # why a Send failed (node killed meanwhile, disk full)

    @property
    def sender(self) -> NodeProcess:
        return self.nodes[NL]

    @property
    def receiver(self) -> NodeProcess:
        return self.nodes[DE]

    async def start(self) -> None:
        for node in self.nodes.values():
            node.start()
        for node in self.nodes.values():
            await node.ready()
        if not (self.sender.home / "tokens" / OFFICER).exists():
            # Added by the bootstrap administrator and enrolled, as on any node.
            spec = UserSpec(NL, OFFICER, "liaison_officer", tuple(ALL_PURPOSES))
            await create_user(self.sender.home, spec)

    async def send(self, count: int, *, label: str = "m") -> None:
        """Send `count` messages one after another through the sender's local API; a send the
        node could not take (it was killed, its disk was full) is noted, not retried."""
        for i in range(count):
            try:
                async with connect(self.sender.home, user=OFFICER) as node:
                    reply = await node.api.Send(
                        local_pb2.SendRequest(content=liaison(to=[DE], text=f"{label}{i}")),
                        timeout=10,
                    )
                self.sent.append(reply.message_id)
            except (grpc.aio.AioRpcError, AccordError, OSError) as exc:
                self.failed.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.05)

    def outbox(self) -> list[tuple[str, str]]:
        """(message id, delivery state) of everything the sender stored, in send order."""
        return [
            (str(mid), str(state))
            for mid, state in rows(
                self.sender.home,
                "SELECT d.message_id, d.state FROM deliveries d "
                "JOIN messages m ON m.message_id = d.message_id AND m.direction = 'out' "
                "ORDER BY d.seq",
            )
        ]

    def received(self) -> list[str]:
        """Message ids the receiver stored from the sender, in the order it stored them."""
        sql = "SELECT message_id FROM messages WHERE sender = ? ORDER BY id"
        return [str(r[0]) for r in rows(self.receiver.home, sql, NL)]

    async def all_delivered(self, *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = [state for _, state in self.outbox()]
            if states and all(s == "accepted" for s in states):
                return
            assert time.monotonic() < deadline, (
                f"not delivered in {timeout} s: {len([s for s in states if s != 'accepted'])} "
                f"of {len(states)} still queued\n{self.sender.tail()}"
            )
            await asyncio.sleep(0.1)

    def account(self) -> dict[str, int]:
        """Messages counted at both ends: what the test relies on, and the figures it reports."""
        outbox = [mid for mid, _ in self.outbox()]
        received = self.received()
        return {
            "sent": len(self.sent),
            "stored_by_sender": len(outbox),
            "received": len(received),
            "lost": len(set(outbox) - set(received)) + len(set(self.sent) - set(outbox)),
            "duplicated": len(received) - len(set(received)),
            "out_of_order": int(received != [m for m in outbox if m in set(received)]),
            "kills": sum(n.kills for n in self.nodes.values()),
        }

    def cleanup(self) -> None:
        for node in self.nodes.values():
            node.ensure_gone()
