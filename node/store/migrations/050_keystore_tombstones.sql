-- Data keys wrapped by a keystore key (keystore.py) rather than by the master key: key_id names
-- it (NULL: wrapped by the master key, a row sealed before the keystore; the node re-wraps
-- those when it opens the database, Store.rewrap_legacy). An erased row keeps its metadata as a
-- tombstone, with why and by whom it was erased; the sweeper finds expired rows through
-- messages_expiry, which holds only rows not yet erased.
ALTER TABLE messages ADD COLUMN key_id TEXT;
ALTER TABLE messages ADD COLUMN erase_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN erased_by TEXT NOT NULL DEFAULT '';
CREATE INDEX messages_expiry ON messages (retain_until) WHERE erased_at IS NULL;
CREATE INDEX messages_key ON messages (key_id) WHERE erased_at IS NULL;
