-- Legal holds: a supervisor's hold on one message or on a whole correlation id keeps it from
-- being swept until released (node/retention.py). A hold is never deleted; releasing it records
-- who and when.
CREATE TABLE holds (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL DEFAULT '',
    correlation_id TEXT NOT NULL DEFAULT '',
    justification TEXT NOT NULL,
    held_by TEXT NOT NULL,
    held_at TEXT NOT NULL,
    released_by TEXT NOT NULL DEFAULT '',
    released_at TEXT,
    release_note TEXT NOT NULL DEFAULT '',
    CHECK ((message_id = '') != (correlation_id = ''))
);
CREATE INDEX holds_message ON holds (message_id) WHERE released_at IS NULL AND message_id != '';
CREATE INDEX holds_correlation ON holds (correlation_id)
    WHERE released_at IS NULL AND correlation_id != '';
-- The messages received under one agreement, found without a scan when its sunset rule erases
-- them.
CREATE INDEX messages_agreement ON messages (agreement_id) WHERE erased_at IS NULL;
