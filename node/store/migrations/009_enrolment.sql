-- Users get no token from an administrator: a single-use, expiring enrolment code, which they
-- redeem for their token (only its SHA-256 is kept). Until then users.token_sha256 is the
-- digest of a random value nobody holds.
CREATE TABLE enrolments (
    user_name TEXT PRIMARY KEY REFERENCES users (name),
    code_sha256 BLOB NOT NULL,
    -- A supervisor, auditor or administrator needs a second part, from the approving
    -- administrator: NULL until then.
    second_sha256 BLOB,
    needs_second INTEGER NOT NULL DEFAULT 0,
    expires_at TEXT NOT NULL
);

-- A supervisor, auditor or administrator role, for a new user or by promotion, waits here
-- until an administrator other than the one who asked approves it.
CREATE TABLE role_requests (
    user_name TEXT PRIMARY KEY REFERENCES users (name),
    role TEXT NOT NULL CHECK (role IN ('supervisor', 'auditor', 'administrator')),
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL
);

-- A user created for a role that awaits approval has no access at all until approved.
ALTER TABLE users ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
