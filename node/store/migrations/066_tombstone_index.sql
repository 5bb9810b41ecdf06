-- Tombstones by when they were erased: the report's erasures in a period and the metrics'
-- count of erased messages read this index, not the whole messages table.
CREATE INDEX messages_erased ON messages (erased_at) WHERE erased_at IS NOT NULL;
