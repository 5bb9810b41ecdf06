"""Purpose limitation as code: pure checks over the directory's agreements (no I/O)."""

from node.policy.agreements import Decision, Policy

__all__ = ["Decision", "Policy"]
