-- Receipts signed a batch at a time carry an audit path to the signed batch root (see Receipt in
-- message.proto). Empty or NULL: the receipt was signed on its own.

ALTER TABLE messages ADD COLUMN receipt_proof BLOB;
ALTER TABLE rejections ADD COLUMN receipt_proof BLOB;
ALTER TABLE deliveries ADD COLUMN receipt_proof BLOB;
