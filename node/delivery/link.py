"""The per-peer link: one long-lived bidirectional stream, fed from the durable outbox.

Like Synapse's per-destination queue: each peer has its own queue (here, the outbox rows for
that recipient in seq order) and its own backoff (node/delivery/backoff.py). Envelopes are
pipelined up to a window; the peer answers each with a receipt, in order, which is verified
against the peer's certificate from the signed directory and stored beside the sent message. A
broken stream is retried; everything not yet receipted is sent again on the next stream, in the
same order, and the peer's deduplication makes that exactly-once in its store.

While a stream is up, envelopes the store commits to the outbox are handed to the link with
their seq (`offer`) instead of being read back: the read was a thread round trip on every
batch, and with eight peers, eight of them in a row on one reader thread. The outbox stays the
source of truth: each stream starts by reading it (on a connection no other query shares, so
the read sees every commit made before it), and anything the hand-off may have missed (another
writer, a hand-off out of order, too many waiting) sends the link back to reading it. As a
safety net, an open stream compares, every `check_seconds`, what is still queued with what it
sent, holds or is writing (`_Session.check_loop`); anything it skipped makes it start again
from the outbox.
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

from cryptography.hazmat.primitives.asymmetric import ec

from node import signing, wire
from node.clock import Clock
from node.config import DeliverySection
from node.delivery.backoff import PROBE_SECONDS, Backoff
from node.errors import AccordError
from node.logs import event
from node.messages import ReceiptInfo, SignedEnvelope, SignedReceipt
from node.store import PendingEnvelope, Store
from node.transport.peer import CallFailed, Connector, EnvelopeStream, PeerChannel
from node.trust import Trust

log = logging.getLogger(__name__)


THREAD_BATCH = 16  # frames with at least this many receipts verify them in a worker thread
HANDOFF_MAX = 1024  # envelopes handed over and not yet sent; beyond that, read the outbox
# How often an open stream compares what it sent with the outbox (one small query): the longest
# a queued envelope the hand-off skipped can wait while the link is up.
OUTBOX_CHECK_SECONDS = 5.0


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


@dataclass(slots=True)
class Faults:
    """A test hook the link consults, so tests can break it without patching it; a node never
    sets it. `before_connect()` is called each time the link is about to connect; what it
    raises, the link's task meets there."""

    before_connect: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class ReceiptEvent:
    message_id: str
    recipient: str
    accepted: bool
    reason_code: str
    queued_at: datetime | None = None  # when the send was accepted into the outbox


class PeerLink:
    def __init__(
        self,
        *,
        peer: str,
        agency: str,
        trust: Trust,
        store: Store,
        clock: Clock,
        connector: Connector,
        delivery: DeliverySection,
        max_message_bytes: int,
        on_receipt: Callable[[ReceiptEvent], None] = lambda e: None,
    ) -> None:
        self.peer = peer
        self.agency = agency
        # What the peer's node said it checks in its last Hello (None: not connected yet).
        self.features: frozenset[str] | None = None
        self._trust = trust
        self._store = store
        self._clock = clock
        self._connector = connector
        self._cfg = delivery
        self._grpc_limit = 4 * max_message_bytes + (1 << 20)
        # Envelopes are packed into frames of about this size (one larger envelope goes alone).
        self._frame_bytes = min(delivery.frame_bytes, self._grpc_limit // 2)
        self._on_receipt = on_receipt
        self.backoff = Backoff(
            initial=delivery.backoff_initial_seconds,
            maximum=delivery.backoff_max_seconds,
            reachable=self._reachable,
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.restarts = 0  # link tasks that died and were started again
        self.skipped = 0  # queued envelopes a stream skipped, found by its check
        self.check_seconds = OUTBOX_CHECK_SECONDS
        self.handoff_max = HANDOFF_MAX
        self.failures = 0  # sessions that failed with something other than the peer's answer
        self.connected = False
        # For `accord status`: idle (nothing queued), connecting, connected, retrying (the
        # peer is down or refused us: last_error says why) or failing (this node's own fault).
        self.state = "idle"
        self.last_error = ""
        self.sent = 0
        self.receipted = 0
        # Envelopes handed over by `offer` since the stream's first outbox read, in seq order.
        # `_handed_complete`: together with what was read, they are everything queued.
        self._handed: collections.deque[PendingEnvelope] = collections.deque()
        self._handed_complete = False
        self._handoff_epoch = 0  # bumped whenever the hand-off may have missed something
        self._highest_seq = 0  # the highest seq offered or read on this stream
        self.outbox_reads = 0
        self.faults = Faults()

    # ---- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._wake.set()  # look for queued work left from before a restart
        self._closing = False
        self._task = asyncio.create_task(self._run(), name=f"link-{self.peer}")
        self._task.add_done_callback(self._ended)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

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
        asyncio.get_running_loop().call_later(self.backoff.initial, self._restart)

    def _restart(self) -> None:
        if not self._closing:
            self.start()

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except BaseException as exc:  # it died before: already logged; closing goes on
                log.debug("link to %s had ended with %s", self.peer, exc)
            self._task = None

    # ---- the hand-off -----------------------------------------------------------------------

    def notify(self) -> None:
        """Something was queued (or may now be sendable) that was not handed over: read the
        outbox again."""
        self._forget_handoff()
        self._wake.set()

    def offer(self, envelope: PendingEnvelope) -> None:
        """An envelope just committed to the outbox for this peer (seqs in commit order)."""
        if not self.connected:
            pass  # the next stream starts by reading the outbox
        elif len(self._handed) >= self.handoff_max or envelope.seq <= self._highest_seq:
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

    # ---- connecting, and trying again -------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # Cleared before the read, not after: a commit while the read is under way sets it
            # again, where clearing after an empty read would lose that wake-up.
            self._wake.clear()
            try:
                if not await self._store.queued_for(self.peer, limit=1):
                    self.state = "idle"
                    continue
                if self.faults.before_connect is not None:
                    self.faults.before_connect()
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
                    self.backoff.maximum,
                )
                log.debug("link to %s failed", self.peer, exc_info=True)
                self.failures += 1
                await self.backoff.after_own_failure()
            # A session that ended (the peer went away after taking some envelopes) may leave
            # work queued that no send or directory change will announce: look again.
            self._wake.set()

    async def _connect_with_backoff(self) -> None:
        async for attempt in self.backoff.attempts(LinkDown):
            with attempt:
                try:
                    self.state = "connecting"
                    await self._session()
                except LinkDown as exc:
                    self.state, self.last_error = "retrying", str(exc)
                    event("link.down", peer=self.peer, reason=str(exc))
                    self.backoff.ended(
                        unreachable=exc.unreachable, progress=exc.progress, deferred=exc.deferred
                    )
                    await self._store.record_attempt(recipient=self.peer, error=str(exc))
                    if exc.deferred:
                        # Still queued; sent again on a fresh stream after a short backoff.
                        await self.backoff.after_deferral()
                        return
                    if exc.progress:
                        return  # it worked for a while: reconnect at once, fresh backoff
                    raise

    async def _reachable(self) -> bool:
        try:
            member, _ = self._trust.member_peer(self.peer, self._clock.now())
            endpoint = self._connector.endpoint(self.peer, member.endpoint)
            host, _, port = endpoint.rpartition(":")
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
        self, channel: PeerChannel, public_key: ec.EllipticCurvePublicKey
    ) -> frozenset[str]:
        """TLS proved the server has *a* certificate of the federation CA for the peer's DNS
        name; grpcio cannot show which. Before any envelope leaves, the server must sign a fresh
        nonce with the key of the certificate the directory lists now (not a revoked one), and
        name the features protocol v1 needs. Returns the features it names."""
        nonce = os.urandom(32)
        try:
            signature, features = await channel.hello(nonce)
        except CallFailed as exc:
            raise LinkDown(str(exc), unreachable=exc.unreachable) from exc
        data = signing.hello_data(nonce, self.agency)
        if not signing.verify(public_key, data, signature, signing.HELLO):
            raise LinkDown(
                f"the server at {self.peer}'s endpoint did not prove it holds the key of the "
                "certificate the directory lists for it; nothing was sent"
            )
        missing = wire.missing_features(features)
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
        channel = self._connector.channel(
            self.peer, member.endpoint, max_message_bytes=self._grpc_limit, keepalive=True
        )
        async with channel:
            self.features = await self._check_server_key(channel, peer.public_key)
            await _Session(self, channel.exchange(), peer.public_key).run()

    def _check_trust(self) -> None:
        """Trust can change while a stream is open (a CRL revoking the peer, a stale CRL, a new
        directory): checked again before every batch."""
        try:
            self._trust.member_peer(self.peer, self._clock.now())
        except AccordError as exc:
            raise LinkDown(f"not sending to {self.peer}: {exc}") from exc


Taken = tuple[PendingEnvelope, ReceiptInfo, SignedReceipt]


class _Session:
    """One stream to the peer: what it has sent and awaits receipts for, and the three loops
    that write to it, read from it and check it against the outbox."""

    def __init__(
        self, link: PeerLink, stream: EnvelopeStream, peer_key: ec.EllipticCurvePublicKey
    ) -> None:
        self.link = link
        self.stream = stream
        self.peer_key = peer_key
        self.window = asyncio.Semaphore(link._cfg.window)
        self.in_flight: collections.deque[PendingEnvelope] = collections.deque()
        self.progress = False  # a receipt was taken on this stream
        self.cursor = 0  # the highest seq sent on this stream
        self.unsettled: set[int] = set()  # seqs sent on this stream whose receipt is not stored
        self.writing: set[int] = set()  # seqs of the batch being written
        self.recording: set[asyncio.Future[None]] = set()
        # Fails (ending the stream at once, busy or idle) if a frame's receipts cannot be stored.
        self.unrecorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def down(self, reason: str, **kind: bool) -> LinkDown:
        return LinkDown(reason, progress=self.progress, **kind)

    async def run(self) -> None:
        link = self.link
        # This stream starts from the outbox; hand-offs count from here on.
        link._forget_handoff()
        link._highest_seq = 0
        link.connected = True
        link.state = "connected"
        event("link.up", peer=link.peer, features=sorted(link.features or ()))
        tasks = [
            asyncio.create_task(self.write_loop()),
            asyncio.create_task(self.read_loop()),
            asyncio.create_task(self.check_loop()),
        ]
        try:
            done, _ = await asyncio.wait(
                {*tasks, self.unrecorded}, return_when=asyncio.FIRST_EXCEPTION
            )
            for task in done:
                task.result()
        except CallFailed as exc:
            raise self.down(str(exc)) from exc
        finally:
            link.connected = False
            link._forget_handoff()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.stream.cancel()
            if not self.unrecorded.done():
                self.unrecorded.cancel()
            elif not self.unrecorded.cancelled():
                self.unrecorded.exception()  # seen (raised above, or too late to matter)
            if self.recording:
                # Shielded: a link closed meanwhile must not cancel the store's futures
                # (the receipts commit anyway, and their events must still be announced).
                await asyncio.shield(asyncio.gather(*self.recording, return_exceptions=True))

    async def write_loop(self) -> None:
        link = self.link
        window, frame_bytes = link._cfg.window, link._frame_bytes
        frame_envelopes = link._cfg.frame_envelopes
        while True:
            link._wake.clear()
            space = max(1, window - len(self.in_flight))
            batch = await link._next_batch(self.cursor, space)
            if not batch:
                await link._wake.wait()
                continue
            self.writing.update(e.seq for e in batch)
            link._check_trust()
            frame: list[SignedEnvelope] = []
            size = 0
            for env in batch:
                await self.window.acquire()  # never waits: `space` bounded the batch
                if frame and (
                    size + len(env.content) > frame_bytes or len(frame) >= frame_envelopes
                ):
                    await self.stream.write(frame)
                    frame, size = [], 0
                self.in_flight.append(env)
                self.unsettled.add(env.seq)
                frame.append(SignedEnvelope(env.content, env.signature, env.proof))
                size += len(env.content) + len(env.signature) + len(env.proof)
                link.sent += 1
                self.cursor = env.seq
            await self.stream.write(frame)
            self.writing.clear()

    async def read_loop(self) -> None:
        while True:
            receipts = await self.stream.read()
            if receipts is None:
                raise self.down("peer closed the stream")
            # A frame's receipts are verified in a worker thread: OpenSSL releases the GIL
            # while verifying, so the event loop (the sender's bottleneck) goes on.
            if len(receipts) >= THREAD_BATCH:
                oks = await asyncio.to_thread(self.verify_all, receipts)
            else:
                oks = self.verify_all(receipts)
            taken = [self.take(r, ok) for r, ok in zip(receipts, oks, strict=True)]
            decided = [t for t in taken if t[1].final]
            if decided:
                self.record(decided)
            deferred = next((t for t in taken if not t[1].final), None)
            if deferred is not None:
                # Not a decision: the envelope stays queued and goes again, on a new stream,
                # after a backoff (envelopes sent after it come again too; the peer answers
                # those with the receipts it gave).
                head, info, _ = deferred
                raise self.down(
                    f"{self.link.peer} deferred {head.message_id} ({info.reason_code}: "
                    f"{info.reason_detail}); it stays queued and is sent again",
                    deferred=True,
                )

    def verify_all(self, receipts: list[SignedReceipt]) -> list[bool]:
        """Each receipt checked on its own; receipts signed as one batch share a signature over
        the same root, which is verified once."""
        checked: dict[tuple[bytes, bytes], bool] = {}
        oks = []
        for r in receipts:
            signed = signing.signed_bytes(r.content, r.proof, signing.RECEIPT)
            if signed is None:
                oks.append(False)
                continue
            key = (signed, r.signature)
            ok = checked.get(key)
            if ok is None:
                ok = checked[key] = signing.verify_signed(self.peer_key, signed, r.signature)
            oks.append(ok)
        return oks

    def take(self, receipt: SignedReceipt, verified: bool) -> Taken:
        """Match one receipt to the oldest envelope in flight and check it."""
        if not self.in_flight:
            raise self.down("receipt for nothing sent")
        head = self.in_flight[0]
        if not verified:
            raise self.down("receipt signature does not verify")
        info = wire.parse_receipt(receipt.content)
        if info.content_sha256 != head.content_sha256 or info.receiver != self.link.peer:
            raise self.down("receipt does not match the envelope sent")
        self.in_flight.popleft()
        self.window.release()
        self.progress = True
        return head, info, receipt

    def record(self, taken: list[Taken]) -> None:
        """A frame's receipts go to the store as one unit, without a task or a wait: the next
        frame is read while they commit (units commit in order)."""
        link = self.link
        committed = link._store.record_receipts(
            recipient=link.peer,
            receipts=[
                (head.message_id, info.accepted, info.reason_code, r.content, r.signature, r.proof)
                for head, info, r in taken
            ],
            at=link._clock.now(),
        )
        self.recording.add(committed)

        def recorded(fut: asyncio.Future[None]) -> None:
            self.recording.discard(fut)
            error = asyncio.CancelledError() if fut.cancelled() else fut.exception()
            if error is not None:
                # Still queued in the outbox: sent again on the next stream, and the peer
                # answers the copy with the receipt it gave the first time.
                log.error("receipts from %s not recorded: %s", link.peer, error)
                if not self.unrecorded.done():
                    self.unrecorded.set_exception(self.down(f"could not record receipts: {error}"))
                return
            link.receipted += len(taken)
            for head, _, _ in taken:
                self.unsettled.discard(head.seq)
            for head, info, _ in taken:
                link._on_receipt(
                    ReceiptEvent(
                        head.message_id, link.peer, info.accepted, info.reason_code, head.queued_at
                    )
                )

        committed.add_done_callback(recorded)

    async def check_loop(self) -> None:
        """The safety net under the hand-off. A queued envelope the stream does not know of
        (neither sent on it, nor waiting in the hand-off, nor being written) was skipped if its
        seq is at or below the last one sent; above it, once the hand-off claims to hold
        everything queued, if it is still unknown at the next check (a commit's hand-off
        follows it within milliseconds, not seconds). Then the stream starts again, from the
        outbox."""
        link = self.link
        suspects: set[int] = set()
        epoch = -1
        limit = link._cfg.window + link.handoff_max + 64
        while True:
            await asyncio.sleep(link.check_seconds)
            # Taken before the read: a receipt stored after this moment is still in `known`;
            # one stored before it is no longer queued in what the read sees.
            up_to, complete, now_epoch = self.cursor, link._handed_complete, link._handoff_epoch
            known = self.unsettled | self.writing | {e.seq for e in link._handed}
            queued = await link._store.queued_seqs(link.peer, limit=limit)
            unknown = [seq for seq in queued if seq not in known]
            skipped = [seq for seq in unknown if seq <= up_to]
            above = {seq for seq in unknown if seq > up_to} if complete else set()
            if now_epoch == epoch:
                skipped += sorted(above & suspects)
            suspects, epoch = above, now_epoch
            if skipped:
                link.skipped += len(skipped)
                log.warning(
                    "link to %s: %d queued envelope(s) were skipped by the stream "
                    "(seq %d to %d); starting again from the outbox",
                    link.peer,
                    len(skipped),
                    min(skipped),
                    max(skipped),
                )
                raise LinkDown("skipped queued envelopes", progress=True)
