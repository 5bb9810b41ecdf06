"""Open Watch streams: each one's queue of arrivals, and the user it serves."""

from __future__ import annotations

import asyncio
import logging

from node.store import StoredMessage

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000  # arrivals a watcher may fall behind by before it is dropped


class Watchers:
    def __init__(self) -> None:
        # Each open Watch: its queue and the user it serves (None in a queue: the user changed).
        self._queues: dict[asyncio.Queue[StoredMessage | None], str] = {}

    def __len__(self) -> int:
        return len(self._queues)

    def watch(self, user: str) -> asyncio.Queue[StoredMessage | None]:
        queue: asyncio.Queue[StoredMessage | None] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._queues[queue] = user
        return queue

    def unwatch(self, queue: asyncio.Queue[StoredMessage | None]) -> None:
        self._queues.pop(queue, None)

    def end(self, user: str) -> None:
        """End `user`'s open Watch streams: their account changed (disabled, role or
        clearances), so what they may see is decided again when they watch again."""
        for queue, name in list(self._queues.items()):
            if name == user:
                del self._queues[queue]
                if queue.full():
                    queue.get_nowait()  # room for the end marker; the stream ends anyway
                queue.put_nowait(None)

    def announce(self, message: StoredMessage) -> None:
        for queue in list(self._queues):
            if queue.full():
                self._queues.pop(queue, None)  # a watcher that stopped reading is dropped
                log.warning("dropped a slow watcher")
            else:
                queue.put_nowait(message)
