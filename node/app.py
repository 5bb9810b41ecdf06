"""The node: wires config, trust, store, policy, links and servers together."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from accord.v1 import federation_pb2, local_pb2, local_pb2_grpc, message_pb2
from certs.ca import load_key
from certs.directory import TLP_LABELS, agreement_to_dict
from certs.errors import PkiError
from node.clock import Clock, OffsetClock, SystemClock
from node.config import DRILL_ONLY, Config
from node.delivery.budget import RefusalBudget
from node.delivery.link import Credentials, PeerLink, ReceiptEvent
from node.delivery.receiver import Receiver
from node.envelope import check_created_at, digest, meta_of, set_time, sign
from node.errors import (
    TRANSIENT,
    AccordError,
    ConfigError,
    InvalidRequest,
    Reason,
    Refused,
    Unauthenticated,
)
from node.ids import uuid7
from node.logins import Logins
from node.logs import event
from node.metrics import Metrics
from node.onward import GRANT_DAYS
from node.operations import Operations
from node.policy import Policy
from node.signer import BatchSigner
from node.store import PendingEnvelope, Store, StoredMessage
from node.store.access import AccessStore
from node.store.keys import KeyRing
from node.store.logins import LoginStore
from node.store.writer import Statement
from node.transport.auth import FederationAuthInterceptor
from node.transport.federation import FederationServicer
from node.transport.local import LocalApiServicer
from node.transport.local_auth import LocalAuthInterceptor
from node.trust import NotCurrent, Trust

log = logging.getLogger(__name__)

# A stale CRL is logged at start and then this often while it lasts; one about to expire once.
CRL_WARN_SECONDS = 60.0
CRL_EXPIRING = timedelta(days=1)

SWITCH_INTERVAL = 0.0005
_TRUST_MARKS = ("crl_number", "directory_serial")
# Expired refusals are swept this often, at most this many rows at a time.
SWEEP_SECONDS = 60.0
SWEEP_ROWS = 1000
# Cyclic garbage collection: a collection of the oldest generation scanned every object the
# process holds and paused the event loop for ~25 ms every few seconds under load, a gen-1
# collection ~1.7 ms every few hundred messages (docs/benchmarks.md, third session). Objects
# that live as long as the node are frozen once it has started, and the youngest generation is
# collected after 10 000 net allocations instead of 700: most of a message's objects are freed
# by reference counting long before that.
GC_THRESHOLDS = (10_000, 20, 20)


LOCK_FILE = "node.lock"


def lock_home(home: Path) -> int:
    """Take the lock on HOME that says a node runs there (a second node on the same home would
    share its database and take over its socket), and write this process's id into it. The
    kernel releases the lock when the process ends, however it ends."""
    path = home / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ConfigError(
            f"another node is running on {home} (pid {holder} holds {path}); stop it first"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def check_can_listen(listen: str) -> None:
    """Fail with a clear error before grpcio tries (and logs its own lines) when the address is
    taken or not on this host. grpcio still reports what this misses (a race), as ConfigError."""
    host, _, port = listen.rpartition(":")
    if int(port) == 0:
        return
    try:
        infos = socket.getaddrinfo(
            host.strip("[]"), int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(f"node.listen: cannot resolve {host!r}: {exc.strerror}") from exc
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpcio binds
            try:
                probe.bind(address)
            except OSError as exc:
                raise ConfigError(
                    f"node.listen: cannot listen on {listen}: {exc.strerror}"
                ) from exc


# Files in HOME that hold secrets or messages: made 0600 at every start, whatever they were
# left as (a restore from backup, an operator's copy).
def tighten_secrets(config: Config) -> None:
    paths = [config.path(config.tls.key), config.master_key, config.database]
    paths += [config.database.with_name(config.database.name + s) for s in ("-wal", "-shm")]
    tokens = config.home / "tokens"
    if tokens.is_dir():
        os.chmod(tokens, 0o700)
        paths += [p for p in tokens.iterdir() if p.is_file()]
    for path in paths:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(path, 0o600)
            log.warning("%s was readable by others (mode %o); made it 0600", path, mode)


def tune_collector() -> None:
    """For a process that runs a node (`accord node run`, the bench's sender), once the node
    has started: what it built (configuration, trust, policy, servers) outlives every message,
    so it is collected once and frozen out of later collections. Not in `Node.start` itself:
    a test process starts hundreds of nodes."""
    gc.collect()
    gc.freeze()
    if not _thresholds_before:
        _thresholds_before.append(gc.get_threshold())
        gc.set_threshold(*GC_THRESHOLDS)


def untune_collector() -> None:
    """Undo `tune_collector`, for a process that goes on after its node stopped (the bench
    runs several in-process nodes one after another; tests run the bench): the stopped node's
    objects are collectable again, and the thresholds are what they were."""
    gc.unfreeze()
    if _thresholds_before:
        gc.set_threshold(*_thresholds_before.pop())


_thresholds_before: list[tuple[int, int, int]] = []  # what tune_collector replaced, if it did


# What Node.send commits with a message: (message id, recipients, held for approval) -> rows.
Record = Callable[[str, tuple[str, ...], bool], Sequence[Statement]]


@dataclass(frozen=True, slots=True)
class Sent:
    message_id: str
    recipients: tuple[str, ...]
    content: bytes
    pending_approval: bool = False


class Node:
    def __init__(self, config: Config, *, clock: Clock | None = None, drill: bool = False) -> None:
        """`drill`: started by `accord node run --drill` for a drill cluster: the clock can be
        advanced over the local API and peers reached through the config's `[drill]`
        endpoints. Nothing of that exists on a node started without it."""
        if config.drill is not None and not drill:
            raise ConfigError(DRILL_ONLY)
        self.config = config
        # The drill clock: only a drill-mode node has one, and only it can be moved.
        self.drill_clock: OffsetClock | None = OffsetClock() if drill else None
        self.clock: Clock = clock or self.drill_clock or SystemClock()
        self._endpoints = dict(config.drill.endpoints) if drill and config.drill else {}
        self.agency = config.node.agency
        self.trust = Trust(
            federation=config.node.federation,
            ca_path=config.path(config.tls.ca),
            crl_path=config.path(config.federation.crl),
            directory_path=config.path(config.federation.directory),
        )
        try:
            self.key: ec.EllipticCurvePrivateKey = load_key(config.path(config.tls.key))
        except (ValueError, PkiError) as exc:
            raise ConfigError(
                f"tls.key: {config.path(config.tls.key)} is not a PEM EC private key"
            ) from exc
        self.signer = BatchSigner(self.key)  # the envelopes of sends that start together
        self.cert_pem = config.path(config.tls.certificate).read_bytes()
        try:
            self._certificate = x509.load_pem_x509_certificate(self.cert_pem)
        except ValueError as exc:
            raise ConfigError(
                f"tls.certificate: {config.path(config.tls.certificate)} is not a PEM certificate"
            ) from exc
        self.credentials = Credentials(
            key_pem=config.path(config.tls.key).read_bytes(),
            cert_pem=self.cert_pem,
            ca_pem=config.path(config.tls.ca).read_bytes(),
        )
        self.store: Store | None = None
        self.links: dict[str, PeerLink] = {}
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._local: grpc.aio.Server | None = None
        self._reload_task: asyncio.Task[None] | None = None
        self._sweep_task: asyncio.Task[None] | None = None
        # Each open Watch: its queue and the user it serves (None in a queue: the user changed).
        self._watchers: dict[asyncio.Queue[StoredMessage | None], str] = {}
        self._receipt_listeners: list[Callable[[ReceiptEvent], None]] = []
        self.health = health.aio.HealthServicer()
        self.metrics = Metrics()
        self.metrics_port = 0  # where /metrics is served (0: not served)
        self._policy: Policy | None = None
        self._own_problem: str | None = None  # why this node's own certificate fails, if it does
        self._trust_recorded = False  # the CRL number and directory serial are in the database
        self._own_logged_at = 0.0
        self._background: set[asyncio.Task[None]] = set()
        self._lock: int | None = None  # descriptor holding the lock on HOME
        self._crl_state = ""
        self.serving = "NOT_SERVING"  # what the health service answers, for `accord status`
        self._crl_warned: float | None = None  # when the stale CRL was last logged

    # ---- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving. On any failure, whatever was started is stopped again (store threads,
        servers, the lock on HOME) before the error is raised: a node that did not start
        leaves nothing running to keep its process alive."""
        try:
            await self._start()
        except BaseException:
            await self._abort()
            raise

    async def _start(self) -> None:
        # Signature checks and SQLite run in worker threads; a worker that is done waits for
        # the GIL up to the switch interval (5 ms by default) before the loop sees its result,
        # and several such hops lie on each message's path. 0.5 ms keeps that off the latency.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        home = self.config.home
        os.chmod(home, 0o700)
        self._lock = lock_home(home)
        tighten_secrets(self.config)
        self.trust.load_initial()
        self._check_own_certificate()
        self.check_crl()
        key_path = self.config.master_key
        created = not key_path.exists()
        # A new key is written only once the database is known to hold nothing sealed.
        keys = KeyRing.generate() if created else KeyRing.load(key_path)
        self.store = await Store.open(
            self.config.database,
            keys=keys,
            synchronous=self.config.store.synchronous,
            batch_max=self.config.delivery.batch_max,
            create=False,
        )
        # A failure from here on closes the store (`start` undoes what `_start` began).
        await self.store.check_master_key(created=created)
        if created:
            keys.save(key_path)
        seen = await self.store.high_waters(*_TRUST_MARKS)
        self.trust.check_not_older(
            crl_number=seen.get("crl_number", 0),
            directory_serial=seen.get("directory_serial", 0),
        )
        self._record_trust()
        self.store.writer.observe = self.metrics.observe_commit
        self.metrics.watch(self)
        self.access_store = AccessStore(self.store)
        self.operations = Operations(self, self.access_store)
        self.logins = Logins(
            store=LoginStore(self.store),
            access=self.access_store,
            clock=self.clock,
            settings=self.config.login,
        )
        limits = self.config.limits
        budget = RefusalBudget(
            rate=limits.refusals_per_second,
            burst=limits.refusal_burst,
            cooldown=limits.refusal_cooldown_seconds,
            clock=time.monotonic,
        )
        self.receiver = Receiver(
            agency=self.agency,
            key=self.key,
            store=self.store,
            clock=self.clock,
            policy=self.policy,
            max_message_bytes=limits.max_message_bytes,
            on_stored=self._announce,
            on_refused=self._refused,
            member_key=self._member_key,
            budget=budget,
            clock_skew=timedelta(seconds=limits.max_clock_skew_seconds),
        )
        grpc_limit = self.frame_limit
        self._server = grpc.aio.server(
            interceptors=[
                FederationAuthInterceptor(
                    trust=self.trust, clock=self.clock, on_refused=self._caller_refused
                )
            ],
            options=[
                ("grpc.max_receive_message_length", grpc_limit),
                ("grpc.max_send_message_length", grpc_limit),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.so_reuseport", 0),
            ],
        )
        self._federation = FederationServicer(
            receiver=self.receiver,
            policy_document=self.signed_policy,
            sign=lambda data: sign(self.key, data),
            max_envelopes_per_frame=limits.max_envelopes_per_frame,
            max_streams_per_peer=limits.max_streams_per_peer,
            budget=budget,
        )
        self._server.add_generic_rpc_handlers((self._federation.handler(),))
        server_creds = grpc.ssl_server_credentials(
            [(self.credentials.key_pem, self.credentials.cert_pem)],
            root_certificates=self.credentials.ca_pem,
            require_client_auth=True,
        )
        listen = self.config.node.listen
        check_can_listen(listen)
        try:
            self.port = self._server.add_secure_port(listen, server_creds)
        except RuntimeError as exc:  # grpcio's "Failed to bind to address ..."
            raise ConfigError(
                f"node.listen: cannot listen on {listen}: the address is in use or not "
                "available on this host"
            ) from exc
        if self.port == 0:
            raise ConfigError(f"node.listen: cannot listen on {listen}")
        await self._server.start()

        sock = self.config.socket
        if sock.exists():
            sock.unlink()  # left by a node that died: the lock on HOME says none runs now
        self._local = grpc.aio.server(
            interceptors=[
                LocalAuthInterceptor(self.logins.authenticate, still_valid=self.logins.still_valid)
            ]
        )
        local_pb2_grpc.add_LocalApiServicer_to_server(LocalApiServicer(self), self._local)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._local)
        reflection.enable_server_reflection(
            (
                local_pb2.DESCRIPTOR.services_by_name["LocalApi"].full_name,
                federation_pb2.DESCRIPTOR.services_by_name["Federation"].full_name,
                reflection.SERVICE_NAME,
                health.SERVICE_NAME,
            ),
            self._local,
        )
        self._local.add_insecure_port(f"unix:{sock}")
        await self._local.start()
        os.chmod(sock, 0o600)

        for recipient in await self.store.recipients_with_queued():
            self.link(recipient)
        self._reload_task = asyncio.create_task(self._reload_loop(), name="federation-reload")
        self._sweep_task = asyncio.create_task(self._sweep_loop(), name="rejections-sweep")
        if self.config.metrics.address:
            self.metrics_port = self.metrics.serve(self.config.metrics.address)
        if self._own_problem is None:
            await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
            self.serving = "SERVING"
        event(
            "node.started",
            agency=self.agency,
            listen=f"{listen.rpartition(':')[0]}:{self.port}",
            local_api=str(sock),
            metrics=f"{self.config.metrics.address.rpartition(':')[0]}:{self.metrics_port}"
            if self.metrics_port
            else None,
        )

    async def _abort(self) -> None:
        """Undo a start that failed part-way; each step on its own, so one failure does not
        leave the rest running."""
        for server in (self._local, self._server):
            if server is not None:
                with contextlib.suppress(Exception):
                    await server.stop(0)
        for task in (self._reload_task, self._sweep_task):
            if task is not None:
                task.cancel()
        self.metrics.stop()
        for link in self.links.values():
            with contextlib.suppress(Exception):
                await link.close()
        if self.store is not None:
            with contextlib.suppress(Exception):
                await self.store.close()
        if self._local is not None:
            with contextlib.suppress(OSError):
                self.config.socket.unlink()
        self._unlock()

    async def stop(self, *, grace: float = 2.0) -> None:
        """Stop accepting, let in-flight streams finish for `grace` seconds, close the store.

        Each step runs even if an earlier one fails (a link task that died, a server that
        will not stop): the store must be closed, or its threads keep the process alive."""
        errors: list[BaseException] = []

        async def step(action: Awaitable[object]) -> None:
            try:
                await action
            except Exception as exc:
                log.error("while stopping: %s: %s", type(exc).__name__, exc)
                errors.append(exc)

        self.serving = "NOT_SERVING"
        event("node.stopping", agency=self.agency)
        self.metrics.stop()
        await step(self.health.enter_graceful_shutdown())
        for task in (self._reload_task, self._sweep_task):
            if task:
                task.cancel()
        for link in self.links.values():
            await step(link.close())
        if self._local:
            await step(self._local.stop(grace))
        if self._server:
            await step(asyncio.gather(self._server.stop(grace), self._federation.drain()))
        if self.store:
            await step(self.store.close())
        if self.config.socket.exists():
            self.config.socket.unlink()
        self._unlock()
        if errors:
            raise errors[0]

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the lock
            self._lock = None

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.federation.reload_seconds)
            self.reload()
            self.check_crl()

    def check_crl(self) -> str:
        """Say, in the log, when the CRL is stale (at start, then once a minute while it lasts:
        the node refuses every peer meanwhile) or about to be, and when a fresh one ends it.
        Returns the CRL's state: "fresh", "expiring" (within a day) or "stale"."""
        next_update = self.trust.crl_next_update
        now = self.clock.now()
        if next_update is None or now > next_update:
            state = "stale"
        elif next_update - now < CRL_EXPIRING:
            state = "expiring"
        else:
            state = "fresh"
        monotonic = time.monotonic()
        if state == "stale":
            if self._crl_warned is None or monotonic - self._crl_warned >= CRL_WARN_SECONDS:
                self._crl_warned = monotonic
                log.warning(
                    "crl stale: the federation CRL expired at %s; refusing every peer until a "
                    "fresh one is published (accord certs crl) at %s",
                    next_update.isoformat() if next_update else "?",
                    self.config.path(self.config.federation.crl),
                )
        elif self._crl_state == "stale":
            log.info("crl fresh again: next update %s", next_update)
        if state == "expiring" and self._crl_state != "expiring":
            log.warning("crl expiring: the federation CRL expires at %s", next_update)
        if state != "stale":
            self._crl_warned = None
        self._crl_state = state
        return state

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.sweep_rejections()
            except Exception as exc:  # the next sweep tries again; nothing is lost meanwhile
                log.warning("sweeping expired refusals failed: %s", exc)

    async def sweep_rejections(self) -> int:
        """Delete up to SWEEP_ROWS stored refusals older than limits.rejection_retention_days
        (a refusal is kept so that a resend gets the same receipt; senders resend within
        minutes, not months). Returns how many went."""
        assert self.store is not None
        days = self.config.limits.rejection_retention_days
        return await self.store.sweep_rejections(
            before=self.clock.now() - timedelta(days=days), limit=SWEEP_ROWS
        )

    @property
    def frame_limit(self) -> int:
        """The largest gRPC message the federation server takes (a frame of envelopes)."""
        return 4 * self.config.limits.max_message_bytes + (1 << 20)

    def reload(self) -> bool:
        """Pick up a newer directory or CRL now (also done every reload_seconds), and check
        this node's own certificate again (a new CRL, or the clock, may have ended it)."""
        changed = self.trust.reload()
        if changed or not self._trust_recorded:
            self._record_trust()
        if changed:
            for link in self.links.values():
                link.notify()
        self._watch_own_certificate()
        return changed

    def _check_own_certificate(self) -> None:
        """At start: this node's certificate, checked like a peer's, or ConfigError."""
        path = self.config.path(self.config.tls.certificate)
        try:
            self.trust.set_own(self._certificate, self.key, agency=self.agency)
            self.trust.check_own(self.clock.now())
        except Unauthenticated as exc:
            raise ConfigError(
                f"tls.certificate: {path} cannot be used: {exc}; the node does not start with it"
            ) from exc

    def _watch_own_certificate(self) -> None:
        """While running: a node whose own certificate stops being valid stops serving (every
        peer and every send is refused by `Trust.check_current`, health says NOT_SERVING,
        links wait) and says so loudly, until it is valid again."""
        try:
            self.trust.check_own(self.clock.now())
            problem = None
        except Unauthenticated as exc:
            problem = str(exc)
        loop = asyncio.get_running_loop()
        if problem is None and self._own_problem is None:
            return
        if problem is not None and problem == self._own_problem:
            if loop.time() - self._own_logged_at >= 60:
                self._own_logged_at = loop.time()
                log.error("still not serving: this node's own certificate: %s", problem)
            return
        self._own_problem = problem
        self._own_logged_at = loop.time()
        if problem is not None:
            log.error(
                "NOT SERVING: this node's own certificate is not valid now: %s; peers and sends "
                "are refused until it is (accord certs issue, then restart)",
                problem,
            )
            status = health_pb2.HealthCheckResponse.NOT_SERVING
            self.serving = "NOT_SERVING"
        else:
            log.warning("serving again: this node's own certificate is valid")
            status = health_pb2.HealthCheckResponse.SERVING
            self.serving = "SERVING"
            for link in self.links.values():
                link.notify()
        task = loop.create_task(self.health.set("", status))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _record_trust(self) -> None:
        """Remember the newest CRL number and directory serial in the database, so that older
        files put back are refused after a restart too (`Trust.check_not_older`)."""
        assert self.store is not None and self.trust.directory is not None
        marks = {
            "crl_number": self.trust.crl_number,
            "directory_serial": self.trust.directory.serial,
        }
        recorded = self.store.record_high_waters(marks)
        self._trust_recorded = True

        def done(unit: asyncio.Future[None]) -> None:
            if not unit.cancelled() and unit.exception() is not None:
                self._trust_recorded = False  # tried again on the next reload
                log.error(
                    "could not record the CRL number and directory serial: %s", unit.exception()
                )

        recorded.add_done_callback(done)

    def endpoint_of(self, agency: str, listed: str) -> str:
        """Where to reach `agency`'s node: its directory endpoint, unless a drill routes it
        through a proxy."""
        return self._endpoints.get(agency, listed)

    def _member_key(self, agency: str) -> ec.EllipticCurvePublicKey | None:
        try:
            return self.trust.member_peer(agency, self.clock.now())[1].public_key
        except AccordError:
            return None

    # ---- policy -----------------------------------------------------------------------------

    def policy(self) -> Policy:
        directory = self.trust.directory
        assert directory is not None
        if self._policy is None or self._policy.directory is not directory:
            self._policy = Policy(directory=directory, agency=self.agency)
        return self._policy

    def signed_policy(self) -> federation_pb2.SignedPolicy:
        directory = self.trust.directory
        assert directory is not None
        mine = [a for a in directory.agreements if self.agency in a.parties]
        limits = self.config.limits
        doc = {
            "agency": self.agency,
            "federation": directory.federation,
            "directory_serial": directory.serial,
            "issued_at": self.clock.now().isoformat(),
            "purposes": {p.code: p.description for p in directory.purposes},
            "agreements": [agreement_to_dict(a) for a in mine],
            "retention": {
                "rule": "retain_until = min(sender's retention, agreement maximum, local maximum)",
                "erasure": "crypto-shredding of the per-message data key; tombstone kept",
            },
            "directory_valid_until": directory.valid_until.isoformat(),
            "handling": {
                "codes": ["H0", "H1", "H2", "H3"],
                "tlp": list(TLP_LABELS),
                "required": "every message but a control message states its TLP, at least one "
                "handling code and a retention (else MARKINGS_MISSING)",
                "rule": "TLP and handling codes at most the agreement's",
            },
            "onward_transfer": {
                "rule": "per the original's onward rule; TLP:RED, TLP:AMBER+STRICT and H2 "
                "always need the originator's grant",
                "forward": "carries the originator's own envelope, never a forward, with terms "
                "at least as strict as the original's (else MARKINGS_LOOSENED)",
                "grant": "only the originator's counts: sent to the forwarding agency alone, "
                "naming the original, the third agency and the purpose, until its valid_until; "
                "the newest for the same original, forwarder and third agency decides",
            },
            "receipts": {
                "deferred": sorted(TRANSIENT),
                "rule": "only decisions about verified content are final; a DEFERRED receipt "
                "keeps nothing and the sender sends again",
            },
            "limits": {
                "max_message_bytes": limits.max_message_bytes,
                "max_frame_bytes": self.frame_limit,
                "max_envelopes_per_frame": limits.max_envelopes_per_frame,
                "max_streams_per_peer": limits.max_streams_per_peer,
                "refusals_per_second": limits.refusals_per_second,
                "refusal_burst": limits.refusal_burst,
                "refusal_cooldown_seconds": limits.refusal_cooldown_seconds,
                "rejection_retention_days": limits.rejection_retention_days,
                "max_clock_skew_seconds": limits.max_clock_skew_seconds,
            },
        }
        data = json.dumps(doc, indent=2, sort_keys=True).encode()
        return federation_pb2.SignedPolicy(
            policy_json=data,
            signature=sign(self.key, data),
            agency=self.agency,
            certificate_pem=self.cert_pem.decode(),
        )

    # ---- sending ----------------------------------------------------------------------------

    def link(self, recipient: str) -> PeerLink:
        link = self.links.get(recipient)
        if link is None:
            assert self.store is not None
            link = PeerLink(
                peer=recipient,
                agency=self.agency,
                federation=self.config.node.federation,
                trust=self.trust,
                store=self.store,
                clock=self.clock,
                credentials=self.credentials,
                delivery=self.config.delivery,
                max_message_bytes=self.config.limits.max_message_bytes,
                on_receipt=self._receipted,
                endpoint_of=self.endpoint_of,
            )
            self.links[recipient] = link
            link.start()
        return link

    def on_receipt(self, listener: Callable[[ReceiptEvent], None]) -> None:
        self._receipt_listeners.append(listener)

    def _receipted(self, receipt: ReceiptEvent) -> None:
        status = "accepted" if receipt.accepted else "rejected"
        self.metrics.receipts.labels(receipt.recipient, status).inc()
        latency = None
        if receipt.queued_at is not None:
            latency = max(0.0, (self.clock.now() - receipt.queued_at).total_seconds())
            self.metrics.latency.labels(receipt.recipient).observe(latency)
        if not receipt.accepted:
            self.metrics.refusals.labels("remote", receipt.reason_code).inc()
        event(
            "receipt.stored",
            message_id=receipt.message_id,
            peer=receipt.recipient,
            status=status,
            reason=receipt.reason_code,
            latency_ms=None if latency is None else round(latency * 1000, 1),
        )
        for listener in self._receipt_listeners:
            listener(receipt)

    async def send(
        self,
        draft: message_pb2.MessageContent,
        *,
        author: str = "",
        forward: bool = False,
        record: Record | None = None,
    ) -> Sent:
        """`_send`, counted and logged: one event per send, queued, held or refused."""
        known = draft.type in message_pb2.MessageType.values()
        type_name = message_pb2.MessageType.Name(draft.type) if known else str(draft.type)
        type_name = type_name.removeprefix("MESSAGE_TYPE_")
        try:
            sent = await self._send(draft, author=author, forward=forward, record=record)
        except Refused as exc:
            self.metrics.sent.labels(type_name, "refused").inc()
            self.metrics.refusals.labels("outbound", exc.reason.value).inc()
            event(
                "message.refused", message_id=draft.message_id, peer=list(draft.recipients),
                type=type_name, reason=exc.reason.value,
            )  # fmt: skip
            raise
        status = "held" if sent.pending_approval else "queued"
        self.metrics.sent.labels(type_name, status).inc()
        event(f"message.{status}", message_id=sent.message_id, peer=sent.recipients, type=type_name)
        return sent

    async def _send(
        self,
        draft: message_pb2.MessageContent,
        *,
        author: str = "",
        forward: bool = False,
        record: Record | None = None,
    ) -> Sent:
        """Check, sign, seal and queue a message; returns once it is in the durable outbox.

        A message the agreement marks as consequential is stored but held out of the outbox
        until a supervisor other than `author` approves it. Only `Operations.forward` makes a
        forward (`forward=True`): it checks the right to read the original, the originator's
        grant and its terms. `record(message_id, recipients, held)` gives statements (the
        access log entry of the send) that commit in the same unit as the message: both are
        stored, or neither.
        """
        assert self.store is not None
        if not forward and (
            draft.HasField("forwarded") or draft.HasField("transfer_authorisation")
        ):
            raise InvalidRequest(
                "content with `forwarded` or `transfer_authorisation` is a forward: use Forward "
                "(`accord forward`), which checks the originator's terms and grant"
            )
        now = self.clock.now()
        try:
            # A node that cannot vouch for its peers now sends nothing new (queued messages
            # wait): the same rule that refuses every peer, said to the user at once.
            self.trust.check_current(now)
        except NotCurrent as exc:
            raise Refused(exc.reason, str(exc)) from exc
        content = message_pb2.MessageContent()
        content.CopyFrom(draft)
        fresh_id = not content.message_id
        if fresh_id:
            content.message_id = uuid7()
        if content.sender and content.sender != self.agency:
            raise Refused(Reason.SENDER_MISMATCH, f"this node sends as {self.agency}")
        content.sender = self.agency
        if not content.HasField("created_at"):
            set_time(content.created_at, now)
        if (
            content.type == message_pb2.MESSAGE_TYPE_TRANSFER_AUTHORISATION_GRANT
            and content.control.granted
            and not content.control.HasField("valid_until")
        ):
            set_time(content.control.valid_until, now + timedelta(days=GRANT_DAYS))
        meta = meta_of(content)
        check_created_at(
            meta, now=now, skew=timedelta(seconds=self.config.limits.max_clock_skew_seconds)
        )
        threads = [meta.correlation_id]
        if meta.in_reply_to:
            replied = await self.store.get_message(meta.in_reply_to)
            if replied is None:
                raise InvalidRequest(
                    f"in_reply_to {meta.in_reply_to!r}: this node holds no such message (a "
                    "reply answers a message this node sent or received)"
                )
            threads.append(replied.correlation_id)
        # Four-eyes rules on replies look at the whole thread, not only in_reply_to: a reply
        # that names the hit by its correlation id alone, or answers another message of the
        # hit's thread, is the same reply.
        thread = await self.store.thread_types(ids=[meta.in_reply_to], threads=threads)
        decision = self.policy().check_outbound(meta, now=now, thread=thread)
        if not content.agreement_id:
            content.agreement_id = decision.agreement.id
        data = content.SerializeToString()
        if len(data) > self.config.limits.max_message_bytes:
            raise Refused(
                Reason.OVERSIZE,
                f"message is {len(data)} bytes; "
                f"the limit is {self.config.limits.max_message_bytes}",
            )
        if decision.needs_approval:
            # Signed alone: a message a supervisor may still reject must not leave even its
            # hash in the audit path of another envelope.
            signature, proof = sign(self.key, data), b""
        else:
            signature, proof = await self.signer.sign(data, recipients=meta.recipients)
        stored = StoredMessage.of(
            meta,
            agreement_id=content.agreement_id,
            direction="out",
            received_at=now,
            retain_until=decision.retain_until,
            content_sha256=digest(data),
            signature=signature,
            signature_proof=proof,
            sealed=self.store.seal_message(meta, data),
        )
        held = decision.needs_approval
        also = record(meta.message_id, meta.recipients, held) if record is not None else ()
        if held:
            await self.access_store.hold_for_approval(
                stored, recipients=meta.recipients, author=author, now=now, also=also
            )
            return Sent(meta.message_id, meta.recipients, data, pending_approval=True)

        def hand_over(queued: list[PendingEnvelope]) -> None:
            for envelope in queued:
                link = self.link(envelope.recipient)
                if fresh_id:
                    link.offer(envelope)
                else:
                    link.notify()  # the id may have been queued before: let the outbox say

        await self.store.queue_outbound(
            stored,
            meta.recipients,
            content=data,
            fresh_id=fresh_id,
            on_commit=hand_over,
            also=also,
        )
        return Sent(meta.message_id, meta.recipients, data)

    # ---- watching ---------------------------------------------------------------------------

    def watch(self, user: str) -> asyncio.Queue[StoredMessage | None]:
        queue: asyncio.Queue[StoredMessage | None] = asyncio.Queue(maxsize=1000)
        self._watchers[queue] = user
        return queue

    def unwatch(self, queue: asyncio.Queue[StoredMessage | None]) -> None:
        self._watchers.pop(queue, None)

    def end_watches(self, user: str) -> None:
        """End `user`'s open Watch streams: their account changed (disabled, role or
        clearances), so what they may see is decided again when they watch again."""
        for queue, name in list(self._watchers.items()):
            if name == user:
                del self._watchers[queue]
                if queue.full():
                    queue.get_nowait()  # room for the end marker; the stream ends anyway
                queue.put_nowait(None)

    def _refused(self, sender: str, message_id: str, reason: str) -> None:
        """An envelope from a peer this node refused (its REJECTED receipt is committed)."""
        self.metrics.received.labels("", "rejected").inc()
        self.metrics.refusals.labels("inbound", reason).inc()
        event("message.rejected", message_id=message_id, peer=sender, reason=reason)

    def _caller_refused(self, why: str) -> None:
        """A federation call refused before any envelope was read (authentication)."""
        self.metrics.refusals.labels("inbound", "UNAUTHENTICATED").inc()

    def _announce(self, message: StoredMessage) -> None:
        self.metrics.received.labels(message.type, "accepted").inc()
        event(
            "message.received", message_id=message.message_id, peer=message.sender,
            type=message.type,
        )  # fmt: skip
        for queue in list(self._watchers):
            if queue.full():
                self._watchers.pop(queue, None)  # a watcher that stopped reading is dropped
                log.warning("dropped a slow watcher")
            else:
                queue.put_nowait(message)
