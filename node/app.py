"""The node: its parts assembled whole by `Node.open`, and their life cycle.

`Node.open` builds every part with only the collaborators it needs, starts the servers and
returns a node that serves; nothing of it is missing afterwards. On any failure on the way,
whatever was started is stopped again before the error is raised. `Node.stop` ends it.

The parts, from the wire inwards (DESIGN.md's data flow): the federation servicer
(transport/federation.py) hands envelopes to the `Receiver` (delivery/receiver.py), which runs
the inbound checks (policy/inbound.py) and stores through the `Store` (store/); local users
reach `Operations` (operations.py) through the local API servicer (transport/local.py), and
their sends leave through `Outbound` (delivery/outbound.py) and the per-peer links
(delivery/links.py). `Activity` reports what they do; `Health` says whether the node serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from accord.v1 import federation_pb2, local_pb2, local_pb2_grpc
from certs.ca import load_key
from certs.errors import PkiError
from node import signing
from node.activity import Activity
from node.audit.checkpoint import Checkpoint, origin_for
from node.clock import Clock, OffsetClock, SystemClock
from node.config import DRILL_ONLY, Config
from node.delivery.budget import RefusalBudget, VolumeBudget
from node.delivery.link import PeerLink, ReceiptEvent
from node.delivery.links import Links
from node.delivery.outbound import Outbound
from node.delivery.receiver import Receiver
from node.errors import AccordError, ConfigError
from node.health import Health, check_own_certificate
from node.home import lock_home, tighten_secrets
from node.logins import Logins
from node.logs import event
from node.messages import PublishedPolicy
from node.metrics import Metrics
from node.operations import Operations
from node.policy import Policy
from node.policy.inbound import inbound_checks
from node.policy.published import document
from node.redress import RedressService
from node.retention import RetentionService, Sweeper
from node.signing import BatchSigner, Signer
from node.store import Store, StoredMessage, erasure
from node.store.access import AccessStore, log_txn
from node.store.holds import HoldStore
from node.store.keys import KeyRing
from node.store.logins import LoginStore
from node.transport.auth import FederationAuthInterceptor
from node.transport.federation import FederationServicer
from node.transport.local import LocalApiServicer
from node.transport.local_auth import LocalAuthInterceptor, RequestDecodingInterceptor
from node.transport.peer import Connector, Credentials
from node.trust import Trust
from node.watch import Watchers

log = logging.getLogger(__name__)

# Signature checks and SQLite run in worker threads; a worker that is done waits for the GIL up
# to the switch interval (5 ms by default) before the loop sees its result, and several such
# hops lie on each message's path. 0.5 ms keeps that off the latency.
SWITCH_INTERVAL = 0.0005
_TRUST_MARKS = ("crl_number", "directory_serial")
# Expired refusals are swept this often, at most this many rows at a time.
SWEEP_SECONDS = 60.0
SWEEP_ROWS = 1000
# Cyclic garbage collection: a collection of the oldest generation scanned every object the
# process holds and paused the event loop for ~25 ms every few seconds under load, a gen-1
# collection ~1.7 ms every few hundred messages. Objects that live as long as the node are
# frozen once it has started, and the youngest generation is collected after 10 000 net
# allocations instead of 700: most of a message's objects are freed by reference counting long
# before that.
GC_THRESHOLDS = (10_000, 20, 20)


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


def tune_collector() -> None:
    """For a process that runs a node (`accord node run`, the bench's sender), once the node
    has started: what it built (configuration, trust, policy, servers) outlives every message,
    so it is collected once and frozen out of later collections. Not in `Node.open` itself:
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


def frame_limit(config: Config) -> int:
    """The largest gRPC message the federation server takes (a frame of envelopes)."""
    return 4 * config.limits.max_message_bytes + (1 << 20)


@dataclass(frozen=True, slots=True)
class Identity:
    """This node's key and certificate, read from its home."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    credentials: Credentials

    @classmethod
    def load(cls, config: Config) -> Identity:
        key_path = config.path(config.tls.key)
        cert_path = config.path(config.tls.certificate)
        try:
            key = load_key(key_path)
        except (ValueError, PkiError) as exc:
            raise ConfigError(f"tls.key: {key_path} is not a PEM EC private key") from exc
        cert_pem = cert_path.read_bytes()
        try:
            certificate = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as exc:
            raise ConfigError(f"tls.certificate: {cert_path} is not a PEM certificate") from exc
        credentials = Credentials(
            key_pem=key_path.read_bytes(),
            cert_pem=cert_pem,
            ca_pem=config.path(config.tls.ca).read_bytes(),
        )
        return cls(key, certificate, credentials)


class Node:
    """A running node. Made only by `Node.open`."""

    def __init__(
        self,
        *,
        config: Config,
        clock: Clock,
        drill_clock: OffsetClock | None,
        identity: Identity,
        trust: Trust,
        lock: int,
        store: Store,
    ) -> None:
        self.config = config
        self.agency = config.node.agency
        self.clock = clock
        # The drill clock: only a drill-mode node has one, and only it can be moved.
        self.drill_clock = drill_clock
        self.trust = trust
        self.store = store
        store.clock = clock
        self._lock: int | None = lock  # descriptor holding the lock on HOME
        self._identity = identity
        self._policy: Policy | None = None
        self._trust_recorded = False  # the CRL number and directory serial are in the database
        limits = config.limits

        self.signer = Signer(identity.key)
        # The audit log (node/store/audit.py): the node's AuditSource for evidence bundles.
        self.audit = store.audit
        origin = origin_for(config.node.federation, config.node.agency)
        self.audit_key = self.signer.note_key(origin)
        store.audit.journal.every = config.audit.checkpoint_every
        store.audit.journal.sign = lambda size, root: self.signer.sign_checkpoint(
            Checkpoint(origin, size, root)
        )
        self.metrics = Metrics()
        self.watchers = Watchers()
        self.activity = Activity(metrics=self.metrics, watchers=self.watchers, clock=clock)
        self.access_store = AccessStore(store)
        self.logins = Logins(
            store=LoginStore(store), access=self.access_store, clock=clock, settings=config.login
        )
        connector = Connector(
            credentials=identity.credentials,
            federation=config.node.federation,
            endpoints=dict(config.drill.endpoints) if drill_clock and config.drill else {},
        )
        self.links = Links(
            lambda peer: PeerLink(
                peer=peer,
                agency=self.agency,
                trust=trust,
                store=store,
                clock=clock,
                connector=connector,
                delivery=config.delivery,
                max_message_bytes=limits.max_message_bytes,
                on_receipt=self._receipted,
            )
        )
        self.health = Health(
            trust=trust,
            clock=clock,
            crl_path=config.path(config.federation.crl),
            on_serving_again=self.links.notify_all,
        )
        skew = timedelta(seconds=limits.max_clock_skew_seconds)
        self.outbound = Outbound(
            agency=self.agency,
            trust=trust,
            policy=self.policy,
            store=store,
            access=self.access_store,
            signer=self.signer,
            batch_signer=BatchSigner(self.signer, batch_max=config.delivery.sign_batch),
            links=self.links,
            activity=self.activity,
            clock=clock,
            max_message_bytes=limits.max_message_bytes,
            clock_skew=skew,
        )
        self.redress = RedressService(
            agency=self.agency,
            store=store,
            outbound=self.outbound,
            clock=clock,
            member_key=self._member_key,
        )
        self.sweeper = Sweeper(
            store=store,
            clock=clock,
            agency=self.agency,
            directory=lambda: self.trust.directory,
            batch=config.retention.sweep_batch,
            share=config.retention.sweep_share,
        )
        self.operations = Operations(
            agency=self.agency,
            store=store,
            access=self.access_store,
            outbound=self.outbound,
            links=self.links,
            trust=trust,
            clock=clock,
            watchers=self.watchers,
            health=self.health,
            connector=connector,
            published=self.published_policy,
            drill_clock=drill_clock,
            redress=self.redress,
            retention=RetentionService(
                sweeper=self.sweeper, holds=HoldStore(store), settings=config.retention
            ),
            audit_key=self.audit_key,
            audit_source=self.audit,
        )
        budget = RefusalBudget(
            rate=limits.refusals_per_second,
            burst=limits.refusal_burst,
            cooldown=limits.refusal_cooldown_seconds,
            clock=time.monotonic,
        )
        volume = VolumeBudget(
            per_day=limits.peer_bytes_per_day, burst=limits.peer_bytes_burst, clock=time.monotonic
        )
        self.receiver = Receiver(
            agency=self.agency,
            signer=self.signer,
            store=store,
            clock=clock,
            checks=inbound_checks(
                agency=self.agency,
                max_message_bytes=limits.max_message_bytes,
                clock_skew=skew,
                policy=self.policy,
                member_key=self._member_key,
            ),
            directory_serial=lambda: self.policy().directory.serial,
            max_message_bytes=limits.max_message_bytes,
            on_stored=self._received,
            on_refused=self.activity.rejected,
            budget=budget,
            redress=self.redress,
            volume=volume,
        )
        self._federation = FederationServicer(
            receiver=self.receiver,
            policy_document=self.published_policy,
            signer=self.signer,
            max_envelopes_per_frame=limits.max_envelopes_per_frame,
            max_streams_per_peer=limits.max_streams_per_peer,
            receive_batch=config.delivery.receive_batch,
            batches_in_flight=config.delivery.batches_in_flight,
            budget=budget,
            on_refused=lambda peer, why: self._audit_event(
                "receive-stream", "refused", why, peer=peer
            ),
        )
        self._server = grpc.aio.server(
            interceptors=[
                FederationAuthInterceptor(trust=trust, clock=clock, on_refused=self._caller_refused)
            ],
            options=[
                ("grpc.max_receive_message_length", frame_limit(config)),
                ("grpc.max_send_message_length", frame_limit(config)),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.so_reuseport", 0),
            ],
        )
        self._server.add_generic_rpc_handlers((self._federation.handler(),))
        self._local = grpc.aio.server(
            interceptors=[
                LocalAuthInterceptor(
                    self.logins.authenticate,
                    still_valid=self.logins.still_valid,
                    on_refused=self.operations.unauthenticated,
                ),
                RequestDecodingInterceptor(),
            ]
        )
        local_pb2_grpc.add_LocalApiServicer_to_server(
            LocalApiServicer(self.operations, self.logins), self._local
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self._local)
        reflection.enable_server_reflection(
            (
                local_pb2.DESCRIPTOR.services_by_name["LocalApi"].full_name,
                federation_pb2.DESCRIPTOR.services_by_name["Federation"].full_name,
                reflection.SERVICE_NAME,
                health.SERVICE_NAME,
            ),
            self._local,
        )
        self.port = 0
        self.metrics_port = 0  # where /metrics is served (0: not served)
        self._local_started = False
        self._tasks: list[asyncio.Task[None]] = []

    # ---- assembly ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, config: Config, *, clock: Clock | None = None, drill: bool = False) -> Node:
        """A node that serves. `drill`: started by `accord node run --drill` for a drill
        cluster: the clock can be advanced over the local API and peers reached through the
        config's `[drill]` endpoints. Nothing of that exists on a node started without it.

        On any failure, whatever was started is stopped again (store threads, servers, the
        lock on HOME) before the error is raised: a node that did not start leaves nothing
        running to keep its process alive."""
        if config.drill is not None and not drill:
            raise ConfigError(DRILL_ONLY)
        drill_clock = OffsetClock() if drill else None
        clock = clock or drill_clock or SystemClock()
        identity = Identity.load(config)
        trust = Trust(
            federation=config.node.federation,
            ca_path=config.path(config.tls.ca),
            crl_path=config.path(config.federation.crl),
            directory_path=config.path(config.federation.directory),
        )
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        home = config.home
        os.chmod(home, 0o700)
        lock = lock_home(home)
        store: Store | None = None
        try:
            tighten_secrets(config)
            trust.load_initial()
            check_own_certificate(
                trust,
                certificate=identity.certificate,
                key=identity.key,
                agency=config.node.agency,
                now=clock.now(),
                path=config.path(config.tls.certificate),
            )
            store = await _open_store(config, trust)
            node = cls(
                config=config,
                clock=clock,
                drill_clock=drill_clock,
                identity=identity,
                trust=trust,
                lock=lock,
                store=store,
            )
        except BaseException:
            if store is not None:
                with contextlib.suppress(Exception):
                    await store.close()
            os.close(lock)
            raise
        try:
            await node._start()
        except BaseException:
            await node._abort()
            raise
        return node

    async def _start(self) -> None:
        self.health.check_crl()
        self._record_trust()
        self.store.observe_commits(self.metrics.observe_commit)
        self.metrics.watch(
            links=self.links, trust=self.trust, database=self.config.database, clock=self.clock
        )
        listen = self.config.node.listen
        check_can_listen(listen)
        server_creds = grpc.ssl_server_credentials(
            [(self._identity.credentials.key_pem, self._identity.credentials.cert_pem)],
            root_certificates=self._identity.credentials.ca_pem,
            require_client_auth=True,
        )
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
        self._local.add_insecure_port(f"unix:{sock}")
        self._local_started = True
        await self._local.start()
        os.chmod(sock, 0o600)
        for recipient in await self.store.recipients_with_queued():
            self.links.link(recipient)
        await self.redress.resume()
        self._tasks = [
            asyncio.create_task(self._reload_loop(), name="federation-reload"),
            asyncio.create_task(self._sweep_loop(), name="rejections-sweep"),
            asyncio.create_task(
                self.sweeper.run(self.config.retention.sweep_seconds), name="retention-sweep"
            ),
        ]
        if self.config.metrics.address:
            self.metrics_port = self.metrics.serve(self.config.metrics.address)
        await self.health.start()
        metrics_host = self.config.metrics.address.rpartition(":")[0]
        event(
            "node.started",
            agency=self.agency,
            listen=f"{listen.rpartition(':')[0]}:{self.port}",
            local_api=str(sock),
            metrics=f"{metrics_host}:{self.metrics_port}" if self.metrics_port else None,
        )

    async def _abort(self) -> None:
        """Undo a start that failed part-way; each step on its own, so one failure does not
        leave the rest running."""
        for server in (self._local, self._server):
            with contextlib.suppress(Exception):
                await server.stop(0)
        for task in self._tasks:
            task.cancel()
        self.metrics.stop()
        for link in self.links.values():
            with contextlib.suppress(Exception):
                await link.close()
        with contextlib.suppress(Exception):
            await self.store.close()
        if self._local_started:
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

        event("node.stopping", agency=self.agency)
        self.metrics.stop()
        await step(self.health.stop())
        for task in self._tasks:
            task.cancel()
        await step(self.redress.close())
        for link in self.links.values():
            await step(link.close())
        await step(self._local.stop(grace))
        await step(asyncio.gather(self._server.stop(grace), self._federation.drain()))
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

    # ---- trust, over time -------------------------------------------------------------------

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.federation.reload_seconds)
            self.reload()
            self.health.check_crl()

    def reload(self) -> bool:
        """Pick up a newer directory or CRL now (also done every reload_seconds), and check
        this node's own certificate again (a new CRL, or the clock, may have ended it)."""
        changed = self.trust.reload()
        if changed or not self._trust_recorded:
            self._record_trust()
        if changed:
            self._audit_reload()
            self.links.notify_all()
        self.health.watch_own_certificate()
        return changed

    def _record_trust(self) -> None:
        """Remember the newest CRL number and directory serial in the database, so that older
        files put back are refused after a restart too (`Trust.check_not_older`)."""
        assert self.trust.directory is not None
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

    def _received(self, message: StoredMessage) -> None:
        self.activity.received(message)
        self.redress.stored(message)

    def _receipted(self, receipt: ReceiptEvent) -> None:
        self.activity.receipted(receipt)
        self.redress.receipted(receipt)

    def _audit_reload(self) -> None:
        """The audit entry of a newer directory (its agreements) or CRL taking effect."""
        directory = self.trust.directory
        assert directory is not None
        agreements = ",".join(a.id for a in directory.agreements)
        self._audit_event(
            "reload-directory",
            "granted",
            f"directory serial {directory.serial} (agreements {agreements or 'none'}), "
            f"CRL number {self.trust.crl_number}",
        )

    def _caller_refused(self, why: str) -> None:
        """A federation call refused before any envelope was read (mutual TLS, identity)."""
        self.activity.caller_refused(why)
        self._audit_event("authenticate-peer", "refused", f"UNAUTHENTICATED: {why}")

    def _audit_event(self, action: str, outcome: str, detail: str, *, peer: str = "") -> None:
        """An audit entry by the node itself, from code that cannot wait for its commit."""
        entry = log_txn(
            at=self.clock.now(), user="node", action=action, outcome=outcome, detail=detail,
            peer=peer,
        )  # fmt: skip

        def done(unit: asyncio.Future[None]) -> None:
            if not unit.cancelled() and unit.exception() is not None:
                log.error("could not write the audit entry of %s: %s", action, unit.exception())

        try:
            self.store.writer.enqueue([entry]).add_done_callback(done)
        except RuntimeError as exc:  # the store is closing: the node is stopping
            log.error("could not write the audit entry of %s: %s", action, exc)

    def _member_key(self, agency: str) -> ec.EllipticCurvePublicKey | None:
        try:
            return self.trust.member_peer(agency, self.clock.now())[1].public_key
        except AccordError:
            return None

    # ---- policy -----------------------------------------------------------------------------

    def policy(self) -> Policy:
        """The agreements' rules under the directory loaded now."""
        directory = self.trust.directory
        assert directory is not None
        if self._policy is None or self._policy.directory is not directory:
            local = self.config.retention
            self._policy = Policy(
                directory=directory,
                agency=self.agency,
                local_max_retention_days=local.max_days or None,
                local_max_by_purpose=local.purpose,
                local_max_by_type=local.type,
            )
        return self._policy

    def published_policy(self) -> PublishedPolicy:
        """The policy document this node publishes (GetPolicy), signed now."""
        directory = self.trust.directory
        assert directory is not None
        data = document(
            directory=directory,
            agency=self.agency,
            limits=self.config.limits,
            retention=self.config.retention,
            frame_limit=frame_limit(self.config),
            now=self.clock.now(),
        )
        return PublishedPolicy(
            policy_json=data,
            signature=self.signer.sign(data, signing.POLICY),
            agency=self.agency,
            certificate_pem=self._identity.credentials.cert_pem.decode(),
        )

    # ---- refusals kept for resends ----------------------------------------------------------

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
        days = self.config.limits.rejection_retention_days
        return await self.store.sweep_rejections(
            before=self.clock.now() - timedelta(days=days), limit=SWEEP_ROWS
        )


async def _open_store(config: Config, trust: Trust) -> Store:
    """The node's database, checked against its master key and against the newest CRL and
    directory it has seen (older files put back are refused)."""
    key_path = config.master_key
    created = not key_path.exists()
    # A new key is written only once the database is known to hold nothing sealed.
    keys = KeyRing.generate() if created else KeyRing.load(key_path)
    store = await Store.open(
        config.database,
        keys=keys,
        synchronous=config.store.synchronous,
        batch_max=config.delivery.batch_max,
        create=False,
        keystore=config.keystore,
    )
    try:
        await store.check_master_key(created=created)
        await store.check_keystore()
        if created:
            keys.save(key_path)
        # Rows sealed before the keystore move under it before the node serves anything.
        moved = await erasure.rewrap_legacy(store)
        if moved:
            log.info("re-wrapped %d stored messages under the keystore", moved)
        seen = await store.high_waters(*_TRUST_MARKS)
        trust.check_not_older(
            crl_number=seen.get("crl_number", 0),
            directory_serial=seen.get("directory_serial", 0),
        )
    except BaseException:
        with contextlib.suppress(Exception):
            await store.close()
        raise
    return store
