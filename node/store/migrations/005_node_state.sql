-- What a node must remember about itself across restarts, one value per name:
--   crl_number, directory_serial  the highest seen (an older file put back is refused at start)
CREATE TABLE node_state (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
