"""The per-peer link: one long-lived bidirectional stream, fed from the durable outbox.

Like Synapse's per-destination queue: each peer has its own queue (here, the outbox rows for
that recipient in seq order) and its own backoff. Envelopes are pipelined up to a window; the
peer answers each with a receipt, in order, which is verified against the peer's certificate
from the signed directory and stored beside the sent message. A broken stream is retried with
exponential backoff and jitter; everything not yet receipted is sent again on the next stream,
in the same order, and the peer's deduplication makes that exactly-once in its store.

While a stream is up, envelopes committed by `Node.send` are handed to the link with their seq
(`offer`) instead of being read back from the outbox: the read was a thread round trip on every
batch, and with eight peers, eight of them in a row on one reader thread. The outbox stays the
source of truth: each stream starts by reading it (on a connection no other query shares, so
the read sees every commit made before it), and anything the hand-off may have missed (another
writer, a hand-off out of order, too many waiting) sends the link back to reading it. As a
safety net, an open stream compares, every OUTBOX_CHECK_SECONDS, what is still queued with what
it sent, holds or is writing (`check_loop`); anything it skipped makes it start again from the
outbox.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric import ec
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from accord.v1 import federation_pb2, federation_pb2_grpc, message_pb2
from certs.identity import agency_dns_name
from node.clock import Clock
from node.config import DeliverySection
from node.envelope import (
    FEATURES,
    FEATURES_KEY,
    FRAME_ENVELOPES,
    ReceiptInfo,
    hello_bytes,
    missing_features,
    parse_receipt,
    receipt_signed_bytes,
    verify,
)
from node.errors import AccordError
from node.logs import event
from node.store import PendingEnvelope, Store
from node.trust import Trust

log = logging.getLogger(__name__)


PROBE_SECONDS = 0.25
PROBE_RETRY_SECONDS = 0.5
THREAD_BATCH = 16  # frames with at least this many receipts verify them in a worker thread
HANDOFF_MAX = 1024  # envelopes handed over and not yet sent; beyond that, read the outbox
# How often an open stream compares what it sent with the outbox (one small query): the longest
# a queued envelope the hand-off skipped can wait while the link is up.
OUTBOX_CHECK_SECONDS = 5.0


# A peer that deferred an envelope (a DEFERRED receipt: it stored nothing and decided nothing) is
# sent it again after a backoff that starts at backoff_initial_seconds and stops growing here, so
# delivery resumes within seconds of the peer being able to take it (its disk has room again).
DEFERRED_MAX_SECONDS = 5.0


class LinkDown(Exception):
    def __init__(
        self,
        reason: str,
        *,
        progress: bool = False,
        unreachable: bool = False,
        deferred: bool = False,
    ) -> None:
        super().__init__(reason)
        self.progress = progress
        self.unreachable = unreachable  # the peer did not answer at all (gRPC UNAVAILABLE)
        self.deferred = deferred  # the peer answered an envelope DEFERRED: send it again soon


@dataclass(frozen=True, slots=True)
class ReceiptEvent:
    message_id: str
    recipient: str
    accepted: bool
    reason_code: str
    queued_at: datetime | None = None  # when the send was accepted into the outbox


@dataclass(frozen=True, slots=True)
class Credentials:
    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes

    def channel(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem, private_key=self.key_pem, certificate_chain=self.cert_pem
        )


class PeerLink:
    def __init__(
        self,
        *,
        peer: str,
        agency: str,
        federation: str,
        trust: Trust,
        store: Store,
        clock: Clock,
        credentials: Credentials,
        delivery: DeliverySection,
        max_message_bytes: int,
        on_receipt: Callable[[ReceiptEvent], None] = lambda e: None,
        endpoint_of: Callable[[str, str], str] = lambda agency, listed: listed,
    ) -> None:
        self.peer = peer
        self._endpoint_of = endpoint_of  # (agency, directory endpoint) -> where to connect
        # What the peer's node said it checks in its last Hello (None: not connected yet).
        self.features: frozenset[str] | None = None
        self.agency = agency
        self._federation = federation
        self._trust = trust
        self._store = store
        self._clock = clock
        self._credentials = credentials
        self._cfg = delivery
        self._grpc_limit = 4 * max_message_bytes + (1 << 20)
        # Envelopes are packed into frames of about this size (one larger envelope goes alone).
        self._frame_bytes = min(1 << 20, self._grpc_limit // 2)
        self._on_receipt = on_receipt
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.restarts = 0  # link tasks that died and were started again
        self.skipped = 0  # queued envelopes a stream skipped, found by check_loop
        self.check_seconds = OUTBOX_CHECK_SECONDS
        self.failures = 0  # sessions that failed with something other than the peer's answer
        self.connected = False
        # For `accord status`: idle (nothing queued), connecting, connected, retrying (the
        # peer is down or refused us: last_error says why) or failing (this node's own fault).
        self.state = "idle"
        self.last_error = ""
        self._woken_by_probe = False
        self._last_unreachable = False
        # Whether a failed connection may count as "the port was closed" for the probe; lost
        # when a probe-woken attempt fails, regained when a probe sees the port closed.
        self._assume_down = True
        self.sent = 0
        self.receipted = 0
        # Envelopes handed over by `offer` since the stream's first outbox read, in seq order.
        # `_handed_complete`: together with what was read, they are everything queued.
        self._handed: collections.deque[PendingEnvelope] = collections.deque()
        self._handed_complete = False
        self._handoff_epoch = 0  # bumped whenever the hand-off may have missed something
        self._highest_seq = 0  # the highest seq offered or read on this stream
        self.outbox_reads = 0
        self._deferrals = 0  # sessions in a row that ended on a DEFERRED receipt

    def start(self) -> None:
        self._wake.set()  # look for queued work left from before a restart
        self._closing = False
        self._task = asyncio.create_task(self._run(), name=f"link-{self.peer}")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A link task ends only when closed; one that died otherwise is logged and restarted,
        so that a peer's queue is never left unsent until the next restart."""
        if self._closing or task.cancelled():
            return
        error = task.exception()
        log.error("link to %s died (%s: %s); restarting it", self.peer, type(error).__name__, error)
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            return
        self.restarts += 1
        # Not at once: whatever killed it may still be there.
        asyncio.get_running_loop().call_later(self._cfg.backoff_initial_seconds, self._restart)

    def _restart(self) -> None:
        if not self._closing:
            self.start()

    def notify(self) -> None:
        """Something was queued (or may now be sendable) that was not handed over: read the
        outbox again."""
        self._forget_handoff()
        self._wake.set()

    def offer(self, envelope: PendingEnvelope) -> None:
        """An envelope just committed to the outbox for this peer (seqs in commit order)."""
        if not self.connected:
            pass  # the next stream starts by reading the outbox
        elif len(self._handed) >= HANDOFF_MAX or envelope.seq <= self._highest_seq:
            # At or below something already offered or read: usually an envelope the stream's
            # first outbox read already returned, whose offer came after it. Seqs are given out
            # in commit order, so nothing newer can be missing; the outbox is read again rather
            # than trusting the hand-off. (Too many waiting: the same.)
            self._forget_handoff()
        else:
            self._handed.append(envelope)
            self._highest_seq = envelope.seq
        self._wake.set()

    def _forget_handoff(self) -> None:
        self._handed.clear()
        self._handed_complete = False
        self._handoff_epoch += 1

    async def _next_batch(self, cursor: int, space: int) -> list[PendingEnvelope]:
        """Up to `space` queued envelopes after seq `cursor`, in seq order."""
        if self._handed_complete:
            batch: list[PendingEnvelope] = []
            while self._handed and len(batch) < space:
                envelope = self._handed.popleft()
                if envelope.seq > cursor:  # not already read from the outbox
                    batch.append(envelope)
            return batch
        epoch = self._handoff_epoch
        self.outbox_reads += 1
        batch = await self._store.queued_for(self.peer, after_seq=cursor, limit=space)
        if batch:
            self._highest_seq = max(self._highest_seq, batch[-1].seq)
        # The read saw every commit before it started; every commit after that was handed
        # over (unless something reset the hand-off meanwhile). So once a read comes back
        # short of its limit, the hand-off alone holds what is queued beyond it.
        if len(batch) < space and epoch == self._handoff_epoch:
            self._handed_complete = True
        return batch

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # it died before: already logged; closing goes on
                log.debug("link to %s had ended with %s", self.peer, exc)
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            try:
                if not await self._store.queued_for(self.peer, limit=1):
                    self._wake.clear()
                    self.state = "idle"
                    continue
                await self._connect_with_backoff()
            except Exception as exc:
                self.state, self.last_error = "failing", f"{type(exc).__name__}: {exc}"
                # Whatever went wrong (a stored message that does not open, the database), this
                # peer's queue must not be abandoned until a restart: said once, tried again.
                log.error(
                    "link to %s failed (%s: %s); retrying in %.1f s",
                    self.peer,
                    type(exc).__name__,
                    exc,
                    self._cfg.backoff_max_seconds,
                )
                log.debug("link to %s failed", self.peer, exc_info=True)
                self.failures += 1
                await asyncio.sleep(self._cfg.backoff_max_seconds)
            # A session that ended (the peer went away after taking some envelopes) may leave
            # work queued that no send or directory change will announce: look again.
            self._wake.set()

    async def _connect_with_backoff(self) -> None:
        retrying = AsyncRetrying(
            wait=wait_exponential_jitter(
                multiplier=self._cfg.backoff_initial_seconds,
                max=self._cfg.backoff_max_seconds,
                jitter=self._cfg.backoff_initial_seconds,
            ),
            retry=retry_if_exception_type(LinkDown),
            reraise=True,
            sleep=self._sleep_until_reachable,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    self.state = "connecting"
                    await self._session()
                except LinkDown as exc:
                    self.state, self.last_error = "retrying", str(exc)
                    event("link.down", peer=self.peer, reason=str(exc))
                    self._last_unreachable = exc.unreachable
                    await self._store.record_attempt(recipient=self.peer, error=str(exc))
                    if exc.deferred:
                        # Still queued; sent again on a fresh stream after a short backoff.
                        self._deferrals += 1
                        delay = min(
                            self._cfg.backoff_initial_seconds * 2 ** min(self._deferrals, 16),
                            DEFERRED_MAX_SECONDS,
                            self._cfg.backoff_max_seconds,
                        )
                        await asyncio.sleep(delay)
                        return
                    self._deferrals = 0
                    if exc.progress:
                        self._assume_down = True
                        return  # it worked for a while: reconnect at once, fresh backoff
                    raise

    async def _sleep_until_reachable(self, seconds: float) -> None:
        """The backoff sleep, cut short when the peer's port goes from closed to open.

        Exponential backoff alone leaves a queue waiting for up to backoff_max_seconds after
        the peer is back (30 s by default); a TCP connect every PROBE_SECONDS is far cheaper
        than a TLS handshake and lets the queue drain as soon as the peer listens again. Only
        a closed-then-open port ends the sleep early: a peer that listens but refuses us (a
        revoked certificate, a failed key proof) keeps the full backoff, never a retry storm.
        """
        loop = asyncio.get_running_loop()
        if self._woken_by_probe:
            # The port opened but the attempt that followed failed: a peer still starting up
            # accepts TCP before it serves calls. One more try soon, then the normal backoff.
            self._woken_by_probe = False
            self._assume_down = False
            seconds = min(seconds, PROBE_RETRY_SECONDS)
        deadline = loop.time() + seconds
        # The peer may have come up between the refused connection and the first probe.
        was_down = self._last_unreachable and self._assume_down
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(PROBE_SECONDS, remaining))
            if loop.time() >= deadline:
                return
            if not await self._reachable():
                was_down = self._assume_down = True
            elif was_down:
                self._woken_by_probe = True
                return

    async def _reachable(self) -> bool:
        try:
            member, _ = self._trust.member_peer(self.peer, self._clock.now())
            host, _, port = self._endpoint_of(self.peer, member.endpoint).rpartition(":")
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), PROBE_SECONDS
            )
        except (AccordError, OSError, TimeoutError, ValueError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    async def _check_server_key(
        self, stub: Any, public_key: ec.EllipticCurvePublicKey
    ) -> frozenset[str]:
        """TLS proved the server has *a* certificate of the federation CA for the peer's DNS
        name; grpcio cannot show which. Before any envelope leaves, the server must sign a fresh
        nonce with the key of the certificate the directory lists now (not a revoked one).
        Returns the features the peer says it understands."""
        nonce = os.urandom(32)
        try:
            hello = await stub.Hello(federation_pb2.HelloRequest(nonce=nonce), timeout=10)
        except grpc.aio.AioRpcError as exc:
            raise LinkDown(
                f"{exc.code().name}: {exc.details()}",
                unreachable=exc.code() == grpc.StatusCode.UNAVAILABLE,
            ) from exc
        if not verify(public_key, hello_bytes(nonce, self.agency), hello.signature):
            raise LinkDown(
                f"the server at {self.peer}'s endpoint did not prove it holds the key of the "
                "certificate the directory lists for it; nothing was sent"
            )
        features = frozenset(hello.features)
        missing = missing_features(features)
        if missing:
            raise LinkDown(
                f"{self.peer}'s node does not name {missing} in its Hello: it does not speak "
                "protocol v1 (batch-signed envelopes and receipts); nothing was sent"
            )
        return features

    async def _session(self) -> None:
        try:
            member, peer = self._trust.member_peer(self.peer, self._clock.now())
        except AccordError as exc:
            raise LinkDown(f"not sending to {self.peer}: {exc}") from exc
        options = [
            ("grpc.ssl_target_name_override", agency_dns_name(self._federation, self.peer)),
            ("grpc.max_send_message_length", self._grpc_limit),
            ("grpc.max_receive_message_length", self._grpc_limit),
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.enable_retries", 0),
        ]
        in_flight: collections.deque[PendingEnvelope] = collections.deque()
        window = asyncio.Semaphore(self._cfg.window)
        progress = False
        recording: set[asyncio.Future[None]] = set()
        # Fails (ending the stream at once, busy or idle) if a frame's receipts cannot be stored.
        unrecorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        async with grpc.aio.secure_channel(
            self._endpoint_of(self.peer, member.endpoint),
            self._credentials.channel(),
            options=options,
        ) as channel:
            stub = federation_pb2_grpc.FederationStub(channel)
            self.features = await self._check_server_key(stub, peer.public_key)
            # Several envelopes per frame: gRPC's cost is per frame, and it was the largest
            # per-message cost on both sides (docs/benchmarks.md).
            call = stub.ExchangeBatches(metadata=((FEATURES_KEY, ",".join(FEATURES)),))

            cursor = 0  # the highest seq sent on this stream
            unsettled: set[int] = set()  # seqs sent on this stream whose receipt is not stored
            writing: set[int] = set()  # seqs of the batch being written

            async def write_loop() -> None:
                nonlocal cursor
                while True:
                    self._wake.clear()
                    space = max(1, self._cfg.window - len(in_flight))
                    batch = await self._next_batch(cursor, space)
                    if not batch:
                        await self._wake.wait()
                        continue
                    writing.update(e.seq for e in batch)
                    try:
                        # Trust can change while the stream is open (a CRL revoking the peer,
                        # a stale CRL, a new directory): checked again before every batch.
                        self._trust.member_peer(self.peer, self._clock.now())
                    except AccordError as exc:
                        raise LinkDown(f"not sending to {self.peer}: {exc}") from exc
                    frame = federation_pb2.EnvelopeBatch()
                    size = 0
                    for env in batch:
                        await window.acquire()  # never waits: `space` bounded the batch
                        if frame.envelopes and (
                            size + len(env.content) > self._frame_bytes
                            or len(frame.envelopes) >= FRAME_ENVELOPES
                        ):
                            await call.write(frame)
                            frame, size = federation_pb2.EnvelopeBatch(), 0
                        in_flight.append(env)
                        unsettled.add(env.seq)
                        frame.envelopes.add(
                            content=env.content, signature=env.signature, proof=env.proof
                        )
                        size += len(env.content) + len(env.signature) + len(env.proof)
                        self.sent += 1
                        cursor = env.seq
                    await call.write(frame)
                    writing.clear()

            async def read_loop() -> None:
                while True:
                    frame = await call.read()
                    if frame is grpc.aio.EOF:
                        raise LinkDown("peer closed the stream", progress=progress)
                    receipts_in = list(frame.receipts)
                    # A frame's receipts are verified in a worker thread: OpenSSL releases the
                    # GIL while verifying, so the event loop (the sender's bottleneck) goes on.
                    if len(receipts_in) >= THREAD_BATCH:
                        oks = await asyncio.to_thread(verify_all, receipts_in)
                    else:
                        oks = verify_all(receipts_in)
                    taken = [take(answer, ok) for answer, ok in zip(receipts_in, oks, strict=True)]
                    decided = [t for t in taken if t[1].final]
                    if decided:
                        record(decided)
                    deferred = next((t for t in taken if not t[1].final), None)
                    if deferred is not None:
                        # Not a decision: the envelope stays queued and goes again, on a new
                        # stream, after a backoff (envelopes sent after it come again too; the
                        # peer answers those with the receipts it gave).
                        head, info, _ = deferred
                        raise LinkDown(
                            f"{self.peer} deferred {head.message_id} ({info.reason_code}: "
                            f"{info.reason_detail}); it stays queued and is sent again",
                            progress=progress,
                            deferred=True,
                        )

            def verify_all(answers: list[message_pb2.Receipt]) -> list[bool]:
                """Each receipt checked on its own; receipts signed as one batch share a
                signature over the same root, which is verified once."""
                checked: dict[tuple[bytes, bytes], bool] = {}
                oks = []
                for a in answers:
                    signed = receipt_signed_bytes(a.content, a.proof)
                    if signed is None:
                        oks.append(False)
                        continue
                    key = (signed, a.signature)
                    ok = checked.get(key)
                    if ok is None:
                        ok = checked[key] = verify(peer.public_key, signed, a.signature)
                    oks.append(ok)
                return oks

            def take(
                answer: message_pb2.Receipt, verified: bool
            ) -> tuple[PendingEnvelope, ReceiptInfo, message_pb2.Receipt]:
                """Match one receipt to the oldest envelope in flight and check it."""
                nonlocal progress
                if not in_flight:
                    raise LinkDown("receipt for nothing sent", progress=progress)
                head = in_flight[0]
                if not verified:
                    raise LinkDown("receipt signature does not verify", progress=progress)
                info = parse_receipt(answer.content)
                if info.content_sha256 != head.content_sha256 or info.receiver != self.peer:
                    raise LinkDown("receipt does not match the envelope sent", progress=progress)
                in_flight.popleft()
                window.release()
                progress = True
                return head, info, answer

            def record(
                taken: list[tuple[PendingEnvelope, ReceiptInfo, message_pb2.Receipt]],
            ) -> None:
                """A frame's receipts go to the store as one unit, without a task or a wait:
                the next frame is read while they commit (units commit in order)."""
                committed = self._store.record_receipts(
                    recipient=self.peer,
                    receipts=[
                        (head.message_id, info.accepted, info.reason_code, answer.content,
                         answer.signature, answer.proof)
                        for head, info, answer in taken
                    ],
                    at=self._clock.now(),
                )  # fmt: skip
                recording.add(committed)

                def recorded(fut: asyncio.Future[None]) -> None:
                    recording.discard(fut)
                    error = asyncio.CancelledError() if fut.cancelled() else fut.exception()
                    if error is not None:
                        # Still queued in the outbox: sent again on the next stream, and the
                        # peer answers the copy with the receipt it gave the first time.
                        log.error("receipts from %s not recorded: %s", self.peer, error)
                        if not unrecorded.done():
                            unrecorded.set_exception(
                                LinkDown(f"could not record receipts: {error}", progress=progress)
                            )
                        return
                    self.receipted += len(taken)
                    for head, _, _ in taken:
                        unsettled.discard(head.seq)
                    for head, info, _ in taken:
                        self._on_receipt(
                            ReceiptEvent(
                                head.message_id,
                                self.peer,
                                info.accepted,
                                info.reason_code,
                                head.queued_at,
                            )
                        )

                committed.add_done_callback(recorded)

            async def check_loop() -> None:
                """The safety net under the hand-off. A queued envelope the stream does not
                know of (neither sent on it, nor waiting in the hand-off, nor being written)
                was skipped if its seq is at or below the last one sent; above it, once the
                hand-off claims to hold everything queued, if it is still unknown at the next
                check (a commit's hand-off follows it within milliseconds, not seconds).
                Then the stream starts again, from the outbox."""
                suspects: set[int] = set()
                epoch = -1
                limit = self._cfg.window + HANDOFF_MAX + 64
                while True:
                    await asyncio.sleep(self.check_seconds)
                    # Taken before the read: a receipt stored after this moment is still in
                    # `known`; one stored before it is no longer queued in what the read sees.
                    up_to, complete, now_epoch = cursor, self._handed_complete, self._handoff_epoch
                    known = unsettled | writing | {e.seq for e in self._handed}
                    queued = await self._store.queued_seqs(self.peer, limit=limit)
                    unknown = [seq for seq in queued if seq not in known]
                    skipped = [seq for seq in unknown if seq <= up_to]
                    above = {seq for seq in unknown if seq > up_to} if complete else set()
                    if now_epoch == epoch:
                        skipped += sorted(above & suspects)
                    suspects, epoch = above, now_epoch
                    if skipped:
                        self.skipped += len(skipped)
                        log.warning(
                            "link to %s: %d queued envelope(s) were skipped by the stream "
                            "(seq %d to %d); starting again from the outbox",
                            self.peer,
                            len(skipped),
                            min(skipped),
                            max(skipped),
                        )
                        raise LinkDown("skipped queued envelopes", progress=True)

            # This stream starts from the outbox; hand-offs count from here on.
            self._forget_handoff()
            self._highest_seq = 0
            self.connected = True
            self.state = "connected"
            event("link.up", peer=self.peer, features=sorted(self.features))
            writer = asyncio.create_task(write_loop())
            reader = asyncio.create_task(read_loop())
            checker = asyncio.create_task(check_loop())
            try:
                done, _ = await asyncio.wait(
                    {writer, reader, checker, unrecorded}, return_when=asyncio.FIRST_EXCEPTION
                )
                for task in done:
                    task.result()
            except grpc.aio.AioRpcError as exc:
                raise LinkDown(f"{exc.code().name}: {exc.details()}", progress=progress) from exc
            except asyncio.InvalidStateError as exc:
                # call.write on a call that already failed (e.g. connection refused) raises this,
                # not AioRpcError; the call's own status says why.
                code, details = await call.code(), await call.details()
                raise LinkDown(f"{code.name}: {details}", progress=progress) from exc
            finally:
                self.connected = False
                self._forget_handoff()
                for task in (writer, reader, checker):
                    task.cancel()
                await asyncio.gather(writer, reader, checker, return_exceptions=True)
                call.cancel()
                if not unrecorded.done():
                    unrecorded.cancel()
                elif not unrecorded.cancelled():
                    unrecorded.exception()  # seen (raised above, or too late to matter)
                if recording:
                    # Shielded: a link closed meanwhile must not cancel the store's futures
                    # (the receipts commit anyway, and their events must still be announced).
                    await asyncio.shield(asyncio.gather(*recording, return_exceptions=True))
