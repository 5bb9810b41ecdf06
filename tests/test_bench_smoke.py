"""The bench runner works: its quick path, baseline only, with tiny counts (not a timed test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.runner import main


@pytest.mark.timeout(30)
def test_bench_runner_quick_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "latest.json"
    code = main(["--quick", "--only", "baseline", "--scale", "0.01", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    [result] = report["results"]
    assert result["name"] == "baseline" and not result["error"]
    assert report["values"]["baseline.rate"] > 0
    assert report["machine"]["nproc"] >= 1
    printed = capsys.readouterr().out
    assert "bare stream rate" in printed and str(out) in printed
