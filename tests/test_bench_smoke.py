"""The bench runner works: its quick path, baseline only, with tiny counts (not a timed test)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from bench.runner import main
from node.app import GC_THRESHOLDS, tune_collector, untune_collector
from tests.harness import Federation


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
    # The audit log's cost, from rounds without it in the same run.
    assert values["throughput.unaudited_rate"] > 0
    assert values["throughput.audit_cost"] < 1 and values["throughput.audit_cpu_cost"] < 1
    [cost] = [r for b in report["results"] for r in b["rows"] if "audit log" in r["metric"]]
    assert cost["target"] == "<= 10%" and "median of rounds" in cost["note"]


@pytest.mark.timeout(90)
def test_bench_sweep_runs_both_parts(tmp_path: Path) -> None:
    """The sweep benchmark with tiny counts: both its parts measure something (not a timed
    test)."""
    out = tmp_path / "latest.json"
    code = main(["--quick", "--only", "sweep", "--scale", "0.02", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    [result] = [r for r in report["results"] if r["name"] == "sweep"]
    assert not result["error"], result["error"]
    values = report["values"]
    assert values["sweep.small_ms"] > 0 and values["sweep.large_ms"] > 0
    assert values["sweep.load_rate"] > 0 and values["sweep.load_ratio"] > 0


async def test_a_node_stopped_after_the_collector_was_tuned_is_collected(
    fed3: Federation,
) -> None:
    """The bench runs node after node in its own process, tuned as `accord node run` is
    (objects frozen out of collections): once one stops and the tuning is undone, nothing of
    it stays, and the process's thresholds are what they were."""
    before = gc.get_threshold()
    node = await fed3.start("NL-POL")
    ref = weakref.ref(node)
    tune_collector()
    assert gc.get_threshold() == GC_THRESHOLDS and gc.get_freeze_count() > 0
    del node
    await fed3.stop("NL-POL")
    untune_collector()  # what bench.load.stopped does after stopping a node
    gc.collect()
    assert ref() is None
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("tool", "first", "last"),
    [
        # wraps node internals to time-stamp each stage, so it must keep up with them
        (["bench.trace", "--rate", "100", "--seconds", "0.5"], "50 messages at 100", "total"),
        (["bench.sched", "--rate", "100", "--seconds", "0.5"], "50 messages at 100", "  "),
        (["bench.lone", "--peers", "2", "--rounds", "5"], "first receiver:", "publish -> every"),
        # the profile's rows come last, after the receiver has stopped and written it
        (["bench.lone", "--rounds", "5", "--profile"], "first receiver:", "  "),
    ],
    ids=["trace", "sched", "lone", "lone-profile"],
)
def test_the_diagnostic_tools_run(tool: list[str], first: str, last: str) -> None:
    """The tools docs/benchmarks.md quotes, each run briefly in a process of its own (trace's
    wrappers are global)."""
    run = subprocess.run(
        [sys.executable, "-m", *tool],
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith(first), run.stdout
    assert lines[-1].startswith(last), run.stdout
