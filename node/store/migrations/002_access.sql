-- Local users, their purpose clearances, four-eyes approvals and the access record.

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('liaison_officer', 'supervisor', 'auditor', 'administrator')),
    token_sha256 BLOB NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    disabled_at TEXT
);

CREATE TABLE clearances (
    user_name TEXT NOT NULL REFERENCES users (name),
    purpose TEXT NOT NULL,
    PRIMARY KEY (user_name, purpose)
);

-- Outbound messages held until a second person approves them (agreement approval_required).
CREATE TABLE approvals (
    message_id TEXT PRIMARY KEY,
    author TEXT NOT NULL,
    recipients TEXT NOT NULL,  -- comma-separated agency codes
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'rejected')),
    requested_at TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT,
    note TEXT NOT NULL DEFAULT ''
);

-- What a control message acts on, so grants and erasures are found without decrypting bodies.
ALTER TABLE messages ADD COLUMN control_target TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN third_agency TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN granted INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_control ON messages (control_target) WHERE control_target != '';

-- Every consultation, refusal of access, approval and disclosure by a local user (LED Art. 25).
CREATE TABLE access_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    user_name TEXT NOT NULL,
    action TEXT NOT NULL,
    message_id TEXT NOT NULL DEFAULT '',
    purpose TEXT NOT NULL DEFAULT '',
    justification TEXT NOT NULL DEFAULT '',
    recipient TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
