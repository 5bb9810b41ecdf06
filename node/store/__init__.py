"""The node's SQLite store: migrations, named transactions, group commit, sealed bodies."""

from node.store.db import Delivery, PeerQueue, PendingEnvelope, Store, StoredMessage

__all__ = ["Delivery", "PeerQueue", "PendingEnvelope", "Store", "StoredMessage"]
