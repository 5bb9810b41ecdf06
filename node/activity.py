"""What a node says about its work, in one place: for each send, arrival, refusal and receipt,
one event log line (node/logs.py) and the matching metrics (node/metrics.py); an arrival also
goes to the open watches, and a receipt to whoever listens for receipts (the bench)."""

from __future__ import annotations

from collections.abc import Callable

from node.clock import Clock
from node.delivery.link import ReceiptEvent
from node.logs import event
from node.metrics import Metrics
from node.store import StoredMessage
from node.watch import Watchers


class Activity:
    def __init__(self, *, metrics: Metrics, watchers: Watchers, clock: Clock) -> None:
        self._metrics = metrics
        self._watchers = watchers
        self._clock = clock
        self._receipt_listeners: list[Callable[[ReceiptEvent], None]] = []

    def on_receipt(self, listener: Callable[[ReceiptEvent], None]) -> None:
        self._receipt_listeners.append(listener)

    # ---- sends by local users ---------------------------------------------------------------

    def send_refused(
        self, *, message_id: str, recipients: tuple[str, ...], type_name: str, reason: str
    ) -> None:
        self._metrics.sent.labels(type_name, "refused").inc()
        self._metrics.refusals.labels("outbound", reason).inc()
        event(
            "message.refused", message_id=message_id, peer=list(recipients), type=type_name,
            reason=reason,
        )  # fmt: skip

    def sent(
        self, *, message_id: str, recipients: tuple[str, ...], type_name: str, held: bool
    ) -> None:
        status = "held" if held else "queued"
        self._metrics.sent.labels(type_name, status).inc()
        event(f"message.{status}", message_id=message_id, peer=recipients, type=type_name)

    # ---- envelopes from peers ---------------------------------------------------------------

    def received(self, message: StoredMessage) -> None:
        """An envelope from a peer, stored (its ACCEPTED receipt is committed)."""
        self._metrics.received.labels(message.type, "accepted").inc()
        event(
            "message.received", message_id=message.message_id, peer=message.sender,
            type=message.type,
        )  # fmt: skip
        self._watchers.announce(message)

    def rejected(self, sender: str, message_id: str, reason: str) -> None:
        """An envelope from a peer this node refused (its REJECTED receipt is committed)."""
        self._metrics.received.labels("", "rejected").inc()
        self._metrics.refusals.labels("inbound", reason).inc()
        event("message.rejected", message_id=message_id, peer=sender, reason=reason)

    def caller_refused(self, why: str) -> None:
        """A federation call refused before any envelope was read (authentication)."""
        self._metrics.refusals.labels("inbound", "UNAUTHENTICATED").inc()

    # ---- receipts for what this node sent ---------------------------------------------------

    def receipted(self, receipt: ReceiptEvent) -> None:
        status = "accepted" if receipt.accepted else "rejected"
        self._metrics.receipts.labels(receipt.recipient, status).inc()
        latency = None
        if receipt.queued_at is not None:
            latency = max(0.0, (self._clock.now() - receipt.queued_at).total_seconds())
            self._metrics.latency.labels(receipt.recipient).observe(latency)
        if not receipt.accepted:
            self._metrics.refusals.labels("remote", receipt.reason_code).inc()
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
