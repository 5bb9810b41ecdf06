"""The benchmark list, in run order. Adding a benchmark: one module in bench/benchmarks/ that
defines BENCHMARK, plus one line here."""

from __future__ import annotations

from bench.benchmarks import (
    audit,
    baseline,
    drain,
    fanout,
    latency,
    memory,
    sweep,
    throughput,
)
from bench.runner import Benchmark

SUITE: list[Benchmark] = [
    baseline.BENCHMARK,
    throughput.BENCHMARK,
    latency.BENCHMARK,
    fanout.BENCHMARK,
    drain.BENCHMARK,
    memory.BENCHMARK,
    audit.BENCHMARK,
    sweep.BENCHMARK,
]
