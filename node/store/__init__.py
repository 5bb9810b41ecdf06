"""The node's SQLite store: migrations, named transactions, group commit, sealed bodies."""

from node.store.db import Delivery, PendingEnvelope, Store, StoredMessage

__all__ = ["Delivery", "PendingEnvelope", "Store", "StoredMessage"]
