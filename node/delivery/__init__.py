"""Getting envelopes from one node's outbox into another's store, and receipts back."""
