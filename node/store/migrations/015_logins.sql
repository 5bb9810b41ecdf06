-- People's passwords and login sessions (for the gateway). A password is stored only as an
-- argon2id hash (PHC string); a session token only as its SHA-256, like user tokens.

CREATE TABLE passwords (
    user_name TEXT PRIMARY KEY REFERENCES users (name),
    hash TEXT NOT NULL,
    set_at TEXT NOT NULL,
    -- Failed logins since the last success or lockout; reaching login.max_failures locks the
    -- account until locked_until.
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT
);

CREATE TABLE sessions (
    token_sha256 BLOB PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users (name),
    created_at TEXT NOT NULL,
    last_used_at TEXT NOT NULL,  -- idle expiry counts from here
    expires_at TEXT NOT NULL,  -- absolute expiry
    revoked_at TEXT
);
CREATE INDEX sessions_user ON sessions (user_name);
