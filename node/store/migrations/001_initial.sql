-- Messages this node sent (direction 'out') or received ('in'). The body is encrypted with its
-- own data key (AES-256-GCM), wrapped by the node's master key; erasing a message destroys the
-- wrapped key and ciphertext and leaves the row as a tombstone.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    type TEXT NOT NULL,
    purpose TEXT NOT NULL,
    agreement_id TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    in_reply_to TEXT NOT NULL,
    tlp TEXT NOT NULL,
    created_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    retain_until TEXT,
    content_sha256 BLOB NOT NULL,
    signature BLOB NOT NULL,
    ciphertext BLOB,
    wrapped_key BLOB,
    receipt BLOB,
    receipt_signature BLOB,
    erased_at TEXT,
    UNIQUE (sender, message_id)
);
CREATE INDEX messages_inbox ON messages (direction, message_id);

-- The durable outbox: one row per (message, recipient), delivered in seq order per recipient.
CREATE TABLE deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'accepted', 'rejected')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    receipt BLOB,
    receipt_signature BLOB,
    reason_code TEXT NOT NULL DEFAULT '',
    receipted_at TEXT,
    UNIQUE (message_id, recipient)
);
CREATE INDEX deliveries_queued ON deliveries (recipient, seq) WHERE state = 'queued';

-- Envelopes this node refused, with the receipt it gave, so a resend gets the same answer.
CREATE TABLE rejections (
    id INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    message_id TEXT NOT NULL,
    content_sha256 BLOB NOT NULL,
    reason_code TEXT NOT NULL,
    received_at TEXT NOT NULL,
    receipt BLOB NOT NULL,
    receipt_signature BLOB NOT NULL,
    UNIQUE (sender, message_id, content_sha256)
);
