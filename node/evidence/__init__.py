"""Evidence bundles: one message's envelope, receipts, certificates and audit entries, checked
without Accord by the bundle's own VERIFY.sh (docs/evidence.md)."""
