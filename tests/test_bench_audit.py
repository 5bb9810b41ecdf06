"""The audit benchmark runs: tiny counts, no node (not a timed test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.benchmarks import audit
from bench.runner import Context
from bench.suite import SUITE


@pytest.mark.timeout(30)
async def test_the_audit_benchmark_runs(tmp_path: Path) -> None:
    assert audit.BENCHMARK in SUITE
    ctx = Context(quick=True, workdir=tmp_path, scale=0.05)  # 5 000 entries
    rows = await audit.run(ctx)
    assert ctx.values["audit.entries"] == 5_000
    assert ctx.values["audit.verify_rate"] > 0 and ctx.values["audit.hash_rate"] > 0
    assert [r.metric for r in rows] == [
        "verify 5,000 entries, 100 checkpoints",
        "append at 500 entries",
        "append at 5,000 entries",
    ]
    assert rows[2].baseline == ctx.values["audit.append_us_small"]
