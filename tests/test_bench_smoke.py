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


@pytest.mark.timeout(60)
def test_bench_item_1_alternates_an_odd_number_of_rounds(tmp_path: Path) -> None:
    """Item 1 with real nodes and tiny counts: the ratio held to the target is the median of
    an odd number of rounds, each an Accord burst beside a bare one (not a timed test)."""
    out = tmp_path / "latest.json"
    code = main(["--quick", "--only", "throughput", "--scale", "0.05", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    values = report["values"]
    assert values["throughput.rate"] > 0 and values["throughput.bare_rate"] > 0
    assert values["throughput.ratio_min"] <= values["throughput.ratio"]
    assert values["throughput.ratio"] <= values["throughput.ratio_max"]
    assert report["e2e_baseline_ratio"] == values["throughput.ratio"]
    [row] = [r for b in report["results"] for r in b["rows"] if r["metric"].startswith("accepted")]
    assert "medians of 3 rounds" in row["note"]
