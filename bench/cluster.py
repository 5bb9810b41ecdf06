"""Throwaway federations for benchmarks: real PKI, real node homes, receivers in subprocesses.

Receivers run in their own processes, one per node (the machine has two cores; one process
would put sender and receiver under one GIL); senders run in the bench process and are driven
through the node's one send (`Outbound.send`) directly. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from accord.v1 import message_pb2 as pb
from certs.ca import FederationAuthority
from certs.directory import Agreement
from node import config as config_mod
from node import samples
from node.app import Node, tune_collector
from node.home import init_home
from node.wire import MESSAGE_TYPES

FEDERATION = "accord.bench"
PURPOSE = "serious-crime-investigation"
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Cluster:
    """A federation authority and one node home per agency, each with a fixed loopback port."""

    def __init__(self, root: Path, agencies: Sequence[str]) -> None:
        now = datetime.now(UTC)
        self.root = root
        self.authority = FederationAuthority.init(root / "fed", federation=FEDERATION, now=now)
        self.homes: dict[str, Path] = {}
        self.ports: dict[str, int] = {}
        for agency in agencies:
            port = free_port()
            issued = self.authority.issue(agency=agency, endpoint=f"127.0.0.1:{port}", now=now)
            home = root / agency.lower()
            init_home(
                home,
                agency=agency,
                federation=FEDERATION,
                listen=f"127.0.0.1:{port}",
                issued=issued.directory,
                directory=self.authority.directory_path,
                crl=self.authority.crl_path,
            )
            # The per-peer volume budget guards against a member flooding the disk; the load
            # here is that flood on purpose, and what is measured is the node without the guard.
            toml = home / config_mod.CONFIG_FILE
            toml.write_text(
                toml.read_text()
                .replace("peer_bytes_per_day = 1073741824", f"peer_bytes_per_day = {1 << 40}")
                .replace("peer_bytes_burst = 16777216", f"peer_bytes_burst = {1 << 34}")
            )
            self.homes[agency] = home
            self.ports[agency] = port
        agreement = Agreement(
            id="AGR-BENCH",
            title="Benchmark agreement",
            parties=tuple(agencies),
            purposes=(PURPOSE,),
            message_types=MESSAGE_TYPES,
            max_retention_days=365,
            valid_from=now - timedelta(days=1),
            valid_until=now + timedelta(days=365),
        )
        self.authority.set_agreements((agreement,), now=now)

    async def start_in_process(self, agency: str) -> Node:
        cfg = config_mod.load(self.homes[agency])
        listen = f"127.0.0.1:{self.ports[agency]}"
        node = await Node.open(replace(cfg, node=replace(cfg.node, listen=listen)))
        tune_collector()  # as `accord node run` does
        return node

    def database(self, agency: str) -> Path:
        return self.homes[agency] / "accord.db"


def thread_files(pid: int, *names: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Each live thread of a process: tid -> (its name, the event loop's thread marked; the
    text of each of `names` under /proc/PID/task/TID). A thread that ends while it is read is
    left out."""
    out: dict[str, tuple[str, dict[str, str]]] = {}
    task = Path(f"/proc/{pid}/task")
    for tid in os.listdir(task):
        try:
            name = (task / tid / "comm").read_text().strip()
            files = {n: (task / tid / n).read_text() for n in names}
        except OSError:  # the thread ended meanwhile (FileNotFoundError, ProcessLookupError)
            continue
        out[tid] = (name + (" (event loop)" if tid == str(pid) else ""), files)
    return out


def cpu_seconds(pid: int) -> float:
    """CPU seconds a process's threads have run, to the nanosecond: the sum of each thread's
    /proc/PID/task/TID/schedstat (its first field). /proc/PID/stat counts in clock ticks
    (10 ms here), too coarse for the few hundred lone round trips a quick run makes (it read 0
    or 3 000 us per message); it is the fallback on a kernel without schedstat. A thread that
    ended is no longer counted; a node's and the echo server's threads live as long as the
    process."""
    if not Path(f"/proc/{pid}/task/{pid}/schedstat").exists():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    threads = thread_files(pid, "schedstat").values()
    return sum(int(files["schedstat"].split()[0]) for _, files in threads) / 1e9


class Child:
    """A child process that prints one `... ready on port N` line per server it runs."""

    def __init__(self, argv: Sequence[str], *, expected: int, log: Path) -> None:
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            argv, cwd=REPO, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL
        )
        self._expected = expected

    @classmethod
    def node(
        cls, home: Path, *, log: Path, profile: Path | None = None, unaudited: bool = False
    ) -> Child:
        """A node run the way an operator runs it: `accord node run --home HOME`; with
        `profile`, under cProfile, which writes there when the node stops; `unaudited`:
        appending nothing to its audit log (bench/unaudited.py, for a comparison)."""
        # Warnings only: the figures measure delivery, not one event line per message.
        entry = "bench.unaudited" if unaudited else "node.cli"
        argv = [sys.executable, "-m", entry, "node", "run", "--home", str(home),
                "--log-level", "warning"]  # fmt: skip
        if profile is not None:
            argv[1:1] = ["-m", "cProfile", "-o", str(profile)]
        return cls(argv, expected=1, log=log)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def ready(self, *, within: float = 30.0) -> None:
        """Wait for every server in the process to print its `ready on port` line."""
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        seen = 0
        deadline = time.monotonic() + within
        while seen < self._expected:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.proc.args!r} did not become ready")
            line = await asyncio.wait_for(asyncio.to_thread(stdout.readline), left)
            if not line:
                raise RuntimeError(
                    f"child process exited with {self.proc.wait()}; see {self._log.name}"
                )
            if b"ready on port " in line:
                seen += 1

    def cpu_seconds(self) -> float:
        """CPU time the process's live threads have used (`cpu_seconds`)."""
        return cpu_seconds(self.pid)

    def rss_kib(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) of the process in KiB."""
        fields: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
        return fields["VmRSS"], fields["VmHWM"]

    def stop(self, *, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def incident(*, to: Sequence[str], narrative_bytes: int = 620) -> pb.MessageContent:
    """An INCIDENT_PUBLISH whose signed envelope is about 1 KB on the wire."""
    text = samples.ROBBERY + " "
    narrative = (text * (narrative_bytes // len(text) + 1))[:narrative_bytes]
    return samples.incident(to=to, purpose=PURPOSE, narrative=narrative)
