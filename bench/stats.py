"""Small statistics and pacing helpers shared by benchmarks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


async def pace(start: float, index: int, rate: float) -> None:
    """Sleep until the index-th event of an open-loop schedule at `rate` per second is due."""
    due = start + index / rate
    delay = due - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
