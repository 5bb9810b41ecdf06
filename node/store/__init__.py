"""The node's SQLite store: migrations, named transactions, group commit, sealed bodies.

All SQL lives in this package. Writes go through one group-commit writer (writer.py): each
write path is a named transaction, either a method that runs one unit of work or a `*_txn`
builder whose statements commit in the same unit as another write (the access log row of a
send, a held message with its approval). Reads use a connection of their own beside the
writer (WAL mode); the links' outbox reads a third.

The surface other modules use, and all a second backend would need to provide:

`Store` (db.py), the messages, outbox and receipts:
- life: `Store.open(path, keys=, synchronous=, batch_max=, create=)`, `close()`,
  `observe_commits(observer)`, `check_master_key(created=)`;
- sealing: `seal_message(meta, content)`, `open_content(message)`;
- sending: `queue_outbound(message, recipients, content=, fresh_id=, on_commit=, also=)` (the
  message and its outbox rows in one commit; `on_commit` gets them, with their seqs, as it
  lands), `message_txn(message)` and `deliveries_txn(id, recipients)` builders,
  `record_receipts(...)`, `record_attempt(...)`;
- receiving: `admit(sender, arrivals, directory_serial=)` with the `message_txn` and
  `rejection_txn(...)` builders (deduplicated inside the commit), `sweep_rejections(...)`;
- the outbox: `queued_for(recipient, after_seq=, limit=)`, `queued_seqs(...)`,
  `recipients_with_queued()`, `outbox()`;
- reads: `get_message`, `list_messages`, `thread_types`, `replies_to`, `deliveries`,
  `deliveries_of`, `count`;
- trust marks: `high_waters(*names)`, `record_high_waters(marks)` (checked: ConfigError if
  node_state was altered);
- erasure: `erase_message(id, direction=, reason=, actor=)` (crypto-shredding at once, with a
  tombstone and an access log entry), `held(id, correlation_id)`; the sweeps and key moves
  behind it are in erasure.py.

`AccessStore` (access.py): users and enrolment, roles, clearances, four-eyes approvals
(`hold_for_approval`, `decide`), grants, audit entries (`log`, and the `log_txn` builder).
`AuditStore` (audit.py, `Store.audit`): the audit log's tree, checkpoints, queries and proofs;
its entries are appended by the writer in the commit of the action they record.
`LoginStore` (logins.py): passwords, failed logins, sessions. Both share the `Store`'s writer
and reader (`Store.writer`, `Store.reader`: this package's own plumbing, not for other
modules). `KeyRing` (keys.py): the master key, per-message data keys, wrapped by the bucket
keys of the `Keystore` (keystore.py, a file of its own beside the database), and the row MAC
key; rowmac.py binds the rows that grant access (users, clearances, enrolments, passwords,
sessions, pending changes, approvals, node_state) to it.
"""

from node.store.db import Delivery, PeerQueue, PendingEnvelope, StoredMessage
from node.store.erasure import Store

__all__ = ["Delivery", "PeerQueue", "PendingEnvelope", "Store", "StoredMessage"]
