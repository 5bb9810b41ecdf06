-- A change to a user that gives access (a new user, a role or clearance they lacked, enabling
-- them) or sidelines an administrator (disabling or demoting one) waits here until an
-- administrator other than the one who asked approves it. One change per user at a time: a
-- new request replaces the one before. NULL: that part of the user stays as it is.
CREATE TABLE user_requests (
    user_name TEXT PRIMARY KEY REFERENCES users (name),
    role TEXT CHECK (role IN ('liaison_officer', 'supervisor', 'auditor', 'administrator')),
    clearances TEXT,  -- the whole new set, char(31)-separated
    enabled INTEGER CHECK (enabled IN (0, 1)),  -- 0: disable, 1: enable
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL
);
INSERT INTO user_requests (user_name, role, requested_by, requested_at)
SELECT user_name, role, requested_by, requested_at FROM role_requests;
DROP TABLE role_requests;

-- The single-administrator bootstrap (the first administrator adds the second alone) ends
-- for good once the node has had two active administrators: disabling or demoting one
-- afterwards does not bring it back.
INSERT INTO node_state (name, value)
SELECT 'had_two_administrators', 1
WHERE (SELECT count(*) FROM users
       WHERE role = 'administrator' AND disabled_at IS NULL AND pending = 0) >= 2;
