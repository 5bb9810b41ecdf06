"""Prometheus metrics of one node, served over HTTP when `metrics.address` is set (off by
default, a loopback address unless `metrics.allow_remote`).

Each node has its own registry (a test process runs many nodes). Counters and histograms are
updated as things happen; what is state rather than events (outbox depth and age, link state,
CRL, directory) is read when Prometheus scrapes, from the node and from its database with a
read-only connection of the scrape's own.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from node.clock import Clock
from node.errors import ConfigError

if TYPE_CHECKING:
    from node.delivery.link import PeerLink
    from node.trust import Trust

log = logging.getLogger(__name__)

LINK_STATES = ("idle", "connecting", "connected", "retrying", "failing")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
COMMIT_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
COMMIT_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sent = Counter(
            "accord_messages_sent",
            "Messages local users sent, by type and status: queued (in the outbox), held "
            "(waiting for approval) or refused (by this node's own checks)",
            ["type", "status"],
            registry=r,
        )
        self.received = Counter(
            "accord_messages_received",
            "Envelopes from peers, by type and status: accepted (stored) or rejected (type "
            "empty when the envelope could not be read)",
            ["type", "status"],
            registry=r,
        )
        self.receipts = Counter(
            "accord_receipts",
            "Receipts stored for sent messages, by peer and status (accepted or rejected)",
            ["peer", "status"],
            registry=r,
        )
        self.refusals = Counter(
            "accord_refusals",
            "Refusals by reason code. direction: inbound (this node refused a peer's envelope "
            "or call), outbound (refused before sending), remote (a peer's REJECTED receipt)",
            ["direction", "reason"],
            registry=r,
        )
        self.latency = Histogram(
            "accord_delivery_latency_seconds",
            "From a send accepted into the outbox to the peer's receipt stored, by peer",
            ["peer"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_units = Histogram(
            "accord_group_commit_units",
            "Units of work (sends, batches of envelopes, receipts, log entries) per group commit",
            buckets=COMMIT_SIZE_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "accord_group_commit_seconds",
            "Seconds per group commit, statements and COMMIT (its fsync) included",
            buckets=COMMIT_SECONDS_BUCKETS,
            registry=r,
        )
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def observe_commit(self, units: int, seconds: float) -> None:
        self.commit_units.observe(units)
        self.commit_seconds.observe(seconds)

    def watch(
        self, *, links: Mapping[str, PeerLink], trust: Trust, database: Path, clock: Clock
    ) -> None:
        """Report the node's state at each scrape: its links, its trust, its outbox (read from
        `database` with a connection of the scrape's own), ages and staleness by the node's
        `clock` (a drill's offset clock included), as the node itself judges them."""
        self.registry.register(_StateCollector(links, trust, database, clock))

    def serve(self, listen: str) -> int:
        """Serve /metrics on HOST:PORT; the port bound (for port 0)."""
        host, _, port = listen.rpartition(":")
        try:
            server, thread = start_http_server(
                int(port), addr=host.strip("[]"), registry=self.registry
            )
        except OSError as exc:
            raise ConfigError(
                f"metrics.address: cannot listen on {listen}: {exc.strerror}"
            ) from exc
        self._server, self._thread = server, thread
        return int(server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


# What the audit log, the sweeper and legal holds have done, as the database records it (so the
# figures survive restarts and need no hook in the code that does it).
_RECORDS = {
    "accord_audit_entries": "Entries in the audit log",
    "accord_audit_checkpoint_size": "Tree size of the newest signed audit checkpoint",
    "accord_messages_erased": "Messages erased (tombstones): swept at expiry, sunset or redress",
    "accord_holds_in_force": "Legal holds in force",
}
_RECORDS_SQL = (
    "SELECT (SELECT max(seq) FROM audit_log), (SELECT max(size) FROM audit_checkpoints), "
    "(SELECT count(*) FROM messages WHERE erased_at IS NOT NULL), "
    "(SELECT count(*) FROM holds WHERE released_at IS NULL)"
)


class _StateCollector(Collector):
    def __init__(
        self, links: Mapping[str, PeerLink], trust: Trust, database: Path, clock: Clock
    ) -> None:
        self._links = links
        self._trust = trust
        self._database = database
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self._clock.now()
        depth = GaugeMetricFamily(
            "accord_outbox_depth", "Envelopes queued for a peer, not yet receipted", labels=["peer"]
        )
        oldest = GaugeMetricFamily(
            "accord_outbox_oldest_seconds",
            "Age of the oldest envelope queued for a peer",
            labels=["peer"],
        )
        outbox, records = self._read()
        for peer, (count, first) in outbox.items():
            depth.add_metric([peer], count)
            oldest.add_metric([peer], max(0.0, (now - first).total_seconds()))
        yield depth
        yield oldest
        for name, help_text in _RECORDS.items():
            gauge = GaugeMetricFamily(name, help_text)
            gauge.add_metric([], float(records.get(name, 0)))
            yield gauge
        state = GaugeMetricFamily(
            "accord_link_state",
            "The link to a peer: 1 for its current state, 0 for the others",
            labels=["peer", "state"],
        )
        for peer, link in list(self._links.items()):
            for name in LINK_STATES:
                state.add_metric([peer, name], 1.0 if link.state == name else 0.0)
        yield state
        next_update = self._trust.crl_next_update
        crl = GaugeMetricFamily(
            "accord_crl_next_update_timestamp_seconds",
            "When the federation CRL the node holds expires (it refuses every peer after it)",
        )
        crl.add_metric([], next_update.timestamp() if next_update else 0.0)
        yield crl
        stale = GaugeMetricFamily(
            "accord_crl_stale", "1 while the federation CRL is past its next update"
        )
        stale.add_metric([], 1.0 if next_update is None or now > next_update else 0.0)
        yield stale
        directory = self._trust.directory
        serial = GaugeMetricFamily("accord_directory_serial", "Serial of the loaded directory")
        serial.add_metric([], float(directory.serial) if directory else 0.0)
        yield serial

    def _read(self) -> tuple[dict[str, tuple[int, datetime]], dict[str, int]]:
        """The outbox by peer, and the figures of _RECORDS, in one read of the database."""
        uri = f"file:{self._database}?mode=ro"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=2)) as conn:
                rows = conn.execute(
                    "SELECT d.recipient, count(*), min(m.received_at) FROM deliveries d "
                    "JOIN messages m ON m.message_id = d.message_id AND m.direction = 'out' "
                    "WHERE d.state = 'queued' GROUP BY d.recipient"
                ).fetchall()
                records = dict(
                    zip(_RECORDS, conn.execute(_RECORDS_SQL).fetchone() or (), strict=False)
                )
        except sqlite3.Error as exc:
            log.warning("metrics: cannot read the database: %s", exc)
            return {}, {}
        outbox = {r: (int(n), datetime.fromisoformat(first)) for r, n, first in rows}
        return outbox, {k: int(v or 0) for k, v in records.items()}
