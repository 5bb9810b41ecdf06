-- Envelopes signed with the other sends of their batch carry an audit path to the signed batch
-- root (see Envelope in message.proto). Empty or NULL: the envelope was signed on its own.

ALTER TABLE messages ADD COLUMN signature_proof BLOB;
