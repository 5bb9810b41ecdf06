"""The audit log as a transparency log: signed checkpoints (checkpoint.py) and what an auditor
checks (verify.py). See docs/audit.md."""
