-- Redress (docs/redress.md). What an originator's redress did to a message this node holds:
-- one row per redress applied, the newest deciding. A message whose newest result is ERASED or
-- RETRACTED is not read, forwarded or replied to; HANDLING_UPDATED rows carry the terms in force.
CREATE TABLE redress_applied (
    sender TEXT NOT NULL,            -- the held row: who it came from, its id here
    message_id TEXT NOT NULL,
    redress_sender TEXT NOT NULL,    -- the redress row here (a relay's sender is the relaying holder)
    redress_id TEXT NOT NULL,
    origin_redress_id TEXT NOT NULL, -- the originator's redress (inside a relay: the inner one)
    origin_sender TEXT NOT NULL,     -- the originator, and its id of the message acted on
    origin_id TEXT NOT NULL,
    result TEXT NOT NULL,
    tlp TEXT NOT NULL,
    handling_codes TEXT NOT NULL,
    handling_conditions TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    relayed INTEGER NOT NULL DEFAULT 0,  -- passed on to the holders this node forwarded it to
    PRIMARY KEY (sender, message_id, redress_id)
);

-- Forwards this node sent: the originator's message each carries, so a redress of it is relayed
-- to every agency it went to.
CREATE TABLE forwards (
    forward_id TEXT PRIMARY KEY,
    origin_sender TEXT NOT NULL,
    origin_id TEXT NOT NULL,
    recipient TEXT NOT NULL
);
CREATE INDEX forwards_origin ON forwards (origin_sender, origin_id);

-- Relays this node sent, and the redress it received that each passes on: an answer to a relay
-- is reported to that redress's sender.
CREATE TABLE redress_relays (
    relay_id TEXT PRIMARY KEY,
    upstream TEXT NOT NULL,
    upstream_id TEXT NOT NULL,
    origin_redress_id TEXT NOT NULL,
    recipient TEXT NOT NULL
);
CREATE INDEX redress_relays_upstream ON redress_relays (upstream, upstream_id);

-- Onward holders of a redress, reported back hop by hop: pending when relayed to, then the
-- holder's own signed receipt.
CREATE TABLE redress_holders (
    origin_redress_id TEXT NOT NULL,
    holder TEXT NOT NULL,
    via TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'confirmed', 'refused')),
    result TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    receipt BLOB,
    receipt_signature BLOB,
    receipt_proof BLOB,
    answered_at TEXT,
    PRIMARY KEY (origin_redress_id, holder, via)
);
