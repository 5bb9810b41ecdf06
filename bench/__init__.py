"""Accord benchmarks: each measures the real node path against a bare gRPC baseline run alongside.

`python -m bench [--quick] [--only NAME] [--json PATH]`; see docs/benchmarks.md.
"""
