"""This node's links to its peers (node/delivery/link.py), one per peer, made on first use, and
the hand-off of what the store commits to the outbox."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from node.delivery.link import PeerLink
from node.store import PendingEnvelope


class Links(Mapping[str, PeerLink]):
    def __init__(self, make: Callable[[str], PeerLink]) -> None:
        """`make(peer)`: a new, not yet started link to `peer`."""
        self._make = make
        self._links: dict[str, PeerLink] = {}

    def __getitem__(self, peer: str) -> PeerLink:
        return self._links[peer]

    def __iter__(self) -> Iterator[str]:
        return iter(self._links)

    def __len__(self) -> int:
        return len(self._links)

    def link(self, peer: str) -> PeerLink:
        """The link to `peer`, made and started if there is none yet."""
        link = self._links.get(peer)
        if link is None:
            link = self._links[peer] = self._make(peer)
            link.start()
        return link

    def hand_over(self, queued: list[PendingEnvelope], *, fresh: bool) -> None:
        """Envelopes the store just committed to the outbox, in commit order. `fresh`: their
        message id was given by this node just now, so none of them was queued before; other
        ids may have been, and the outbox is read again instead."""
        for envelope in queued:
            link = self.link(envelope.recipient)
            if fresh:
                link.offer(envelope)
            else:
                link.notify()

    def notify(self, peers: Iterable[str]) -> None:
        """Something was queued for `peers` that was not handed over (an approval)."""
        for peer in peers:
            self.link(peer).notify()

    def notify_all(self) -> None:
        """What may be sent has changed (a new directory, this node serving again)."""
        for link in self._links.values():
            link.notify()

    async def close(self) -> None:
        for link in self._links.values():
            await link.close()
