"""The bench runner: resolves which benchmarks to run, runs them in order, prints and saves.

A benchmark is a `Benchmark` (name, title, what it needs, an async `run`) declared in its own
module under bench/benchmarks/ and listed in bench/suite.py. The baseline always runs first, in
the same process tree and the same minute as the rest, so every figure can be read as a ratio
to what bare gRPC does on this machine right now.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
BASELINE = "baseline"


@dataclass(slots=True)
class Row:
    """One measured figure, with the same-run baseline figure and the target it is held to."""

    metric: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None  # value / baseline unless the benchmark says otherwise
    target: str = ""
    met: bool | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline:
            self.ratio = self.value / self.baseline


@dataclass(slots=True)
class Context:
    quick: bool
    workdir: Path
    scale: float = 1.0  # multiplies counts and durations (the smoke test runs tiny ones)
    values: dict[str, float] = field(default_factory=dict)  # shared between benchmarks
    notes: list[str] = field(default_factory=list)

    def count(self, quick: int, full: int) -> int:
        return max(1, round((quick if self.quick else full) * self.scale))

    def seconds(self, quick: float, full: float) -> float:
        return (quick if self.quick else full) * self.scale

    def scratch(self, name: str) -> Path:
        # Short paths: a node's unix socket path must stay under ~100 bytes.
        path = Path(tempfile.mkdtemp(prefix=f"b{name[:3]}", dir=self.workdir))
        return path


@dataclass(frozen=True, slots=True)
class Benchmark:
    name: str
    title: str
    run: Callable[[Context], Awaitable[list[Row]]]
    needs: tuple[str, ...] = ()


@dataclass(slots=True)
class Result:
    name: str
    title: str
    seconds: float
    rows: list[Row]
    error: str = ""


def resolve(suite: Sequence[Benchmark], only: Sequence[str]) -> list[Benchmark]:
    """The benchmarks to run, in suite order: those asked for, what they need, and the baseline."""
    by_name = {b.name: b for b in suite}
    unknown = [n for n in only if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    wanted = set(only or by_name) | {BASELINE}
    stack = list(wanted)
    while stack:
        for need in by_name[stack.pop()].needs:
            if need not in wanted:
                wanted.add(need)
                stack.append(need)
    return [b for b in suite if b.name in wanted]


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def table(results: Sequence[Result]) -> str:
    header = ("benchmark", "metric", "Accord", "unit", "baseline", "ratio", "target", "met")
    lines: list[tuple[str, ...]] = [header]
    for r in results:
        if r.error:
            lines.append((r.name, "ERROR", r.error[:60], "", "", "", "", "no"))
        for row in r.rows:
            met = "-" if row.met is None else ("yes" if row.met else "NO")
            lines.append((r.name, row.metric, _fmt(row.value), row.unit, _fmt(row.baseline),
                          _fmt(row.ratio), row.target, met))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


async def run_all(benchmarks: Sequence[Benchmark], ctx: Context) -> list[Result]:
    results = []
    for bench in benchmarks:
        print(f"# {bench.name}: {bench.title} ...", file=sys.stderr, flush=True)
        start = time.monotonic()
        try:
            rows = await bench.run(ctx)
            error = ""
        except Exception as exc:  # one failing benchmark must not hide the others' figures
            logging.getLogger("bench").exception("%s failed", bench.name)
            rows, error = [], f"{type(exc).__name__}: {exc}"
            if bench.name == BASELINE:
                raise
        seconds = time.monotonic() - start
        print(f"#   {bench.name} took {seconds:.1f} s", file=sys.stderr, flush=True)
        results.append(Result(bench.name, bench.title, seconds, rows, error))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    from bench.suite import SUITE

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts; under 2 minutes")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help=f"run only this benchmark (repeatable; the baseline always runs); "
                        f"one of {', '.join(b.name for b in SUITE)}")  # fmt: skip
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    benchmarks = resolve(SUITE, [n for part in args.only for n in part.split(",") if n])
    workdir = Path(tempfile.mkdtemp(prefix="accbench", dir="/tmp"))
    ctx = Context(quick=args.quick, workdir=workdir, scale=args.scale)
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    wall = time.monotonic()
    try:
        results = asyncio.run(run_all(benchmarks, ctx))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - wall

    # Item 1's ratio: the median of its rounds alternated with the bare stream.
    ratio = ctx.values.get("throughput.ratio")
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    report = {
        "date": started.isoformat(timespec="seconds"),
        "command": command.strip(),
        "quick": args.quick,
        "seconds": round(elapsed, 1),
        "machine": machine(),
        # Other work on the machine moves every figure; the ratios are what to compare.
        "loadavg_1min": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        "e2e_baseline_ratio": ratio,
        "values": ctx.values,
        "notes": ctx.notes,
        "results": [asdict(r) for r in results],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")

    m = report["machine"]
    load = report["loadavg_1min"]
    print(f"Accord benchmarks, {started:%Y-%m-%d %H:%M} UTC, {m['nproc']} x {m['cpu']}, "
          f"Python {m['python']}; {command.strip()}; {elapsed:.0f} s; "
          f"load average {load['before']} -> {load['after']}")  # fmt: skip
    print()
    print(table(results))
    for note in ctx.notes:
        print(f"note: {note}")
    print(f"results written to {args.json}")
    # Always the last line, so a reader (or a script) can check it; n/a when item 1 did not run.
    print(f"e2e/baseline ratio: {ratio:.2f}" if ratio is not None else "e2e/baseline ratio: n/a")
    return 1 if any(r.error for r in results) else 0
