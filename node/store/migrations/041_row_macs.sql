-- The rows that grant access carry an HMAC-SHA256 keyed from master.key (node/store/rowmac.py):
-- a row written into the database by anyone else grants nothing. This version's Python step
-- (rowmac.seal_existing) computes the MACs of the rows already there, in the same transaction.
ALTER TABLE users ADD COLUMN mac BLOB;
ALTER TABLE clearances ADD COLUMN mac BLOB;
ALTER TABLE enrolments ADD COLUMN mac BLOB;
ALTER TABLE user_requests ADD COLUMN mac BLOB;
ALTER TABLE passwords ADD COLUMN mac BLOB;
ALTER TABLE sessions ADD COLUMN mac BLOB;
ALTER TABLE approvals ADD COLUMN mac BLOB;
ALTER TABLE node_state ADD COLUMN mac BLOB;
