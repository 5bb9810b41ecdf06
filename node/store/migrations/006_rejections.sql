-- Only final refusals of verified content are kept, each with the directory serial it was made
-- under: a copy that arrives under a newer directory is decided afresh.
ALTER TABLE rejections ADD COLUMN directory_serial INTEGER NOT NULL DEFAULT 0;
-- Stored refusals expire (limits.rejection_retention_days): swept oldest first, a bounded
-- number at a time.
CREATE INDEX rejections_received ON rejections (received_at);
