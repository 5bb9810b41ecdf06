-- The audit log as a transparency log (docs/audit.md): each row is a leaf of an RFC 6962 tree,
-- its canonical entry bytes and their leaf hash; audit_nodes keeps every complete subtree of
-- level 4 and up (level, index; smaller ones are folded from their 2..8 leaves), so proofs
-- cost O(log n) lookups; audit_checkpoints keeps every signed checkpoint (C2SP signed note). Nothing in the node updates or deletes a row of
-- these tables, and the triggers refuse it to anyone who tries through SQLite.

CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,  -- from 1: leaf seq - 1
    data TEXT NOT NULL,  -- node.audit.verify.canonical: the fields are read from here only
    leaf_hash BLOB NOT NULL
);
CREATE INDEX audit_log_message ON audit_log (json_extract(data, '$.message_id'));

CREATE TABLE audit_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE audit_checkpoints (
    size INTEGER PRIMARY KEY,
    note BLOB NOT NULL
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit entries are never changed'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit entries are never deleted'); END;
CREATE TRIGGER audit_nodes_no_update BEFORE UPDATE ON audit_nodes
BEGIN SELECT RAISE(ABORT, 'audit tree nodes are never changed'); END;
CREATE TRIGGER audit_nodes_no_delete BEFORE DELETE ON audit_nodes
BEGIN SELECT RAISE(ABORT, 'audit tree nodes are never deleted'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are never changed'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are never deleted'); END;

-- The access log's entries become the first entries of the audit log: moved by the store
-- when it opens (hashing needs Python), in their order, then this table is dropped.
ALTER TABLE access_log RENAME TO audit_import;
