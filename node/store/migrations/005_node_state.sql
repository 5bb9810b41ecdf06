-- What a node must remember about itself across restarts, one value per name:
--   crl_number, directory_serial  the highest seen (an older file put back is refused at start)
--   master_key_check              HMAC-SHA256(master key, "accord-master-key-check/v1"): the node
--                                 refuses to start with another master.key, or none
CREATE TABLE node_state (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
