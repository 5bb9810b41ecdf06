"""Retention sweeps: their cost follows the number of expired messages, not the number stored,
and a sweep running beside item 1's load barely slows it.

1. O(expired): a store (Store.open, synchronous=FULL) seeded with 1 000 and with 100 000
   (20 000 quick) sealed-size rows; each round makes the 100 oldest expired and times the
   node's sweep (Sweeper.sweep: find through the index on retain_until, erase in batches,
   retire keys). The median at the large size must stay within 2x of the small one.
2. Beside the load: item 1's set-up (sender in this process, receiver `accord node run`); the
   sender's store is seeded with rows to expire, and rounds of saturating load alternate with
   and without a sweep erasing 3 000 (2 000 quick) of them at the same time on the sender's
   own writer, paced as the background sweeper is. The median of the rounds' ratios (with /
   without) must be at least 0.90.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from bench.cluster import Cluster
from bench.load import running
from bench.runner import Benchmark, Context, Row
from bench.stats import median
from node.clock import SystemClock
from node.retention import Sweeper
from node.store import Store
from node.store.keys import KeyRing

EXPIRED = 100
WITHIN = 2.0  # the large store's sweep may cost at most this much more than the small one's
LOAD_KEPT = 0.90  # the load's rate with a sweep beside it, at least this share of without
FAR = "2099-01-01T00:00:00+00:00"
PAST = "2000-01-01T00:00:00+00:00"


def seed(db: Path, count: int) -> None:
    """`count` sent rows the size of item 1's messages, none expired, straight into SQLite."""
    now = datetime.now(UTC).isoformat()
    body = os.urandom(760)
    rows = (
        (
            str(uuid.UUID(int=i)),
            "NL-POL",
            "out",
            "INCIDENT_PUBLISH",
            "serious-crime-investigation",
            "AGR-BENCH",
            str(uuid.UUID(int=i)),
            "",
            "AMBER",
            now,
            now,
            FAR,
            os.urandom(32),
            os.urandom(72),
            body,
            os.urandom(60),
            "bench/seeded",
        )
        for i in range(count)
    )
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        conn.executemany(
            "INSERT INTO messages (message_id, sender, direction, type, purpose, agreement_id, "
            "correlation_id, in_reply_to, tlp, created_at, received_at, retain_until, "
            "content_sha256, signature, ciphertext, wrapped_key, key_id) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        conn.commit()


def expire(db: Path, count: int) -> int:
    """Make the `count` oldest live seeded rows expired, as a node's are: messages kept for the
    same time expire in the order they came; how many."""
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        changed = conn.execute(
            "UPDATE messages SET retain_until = ? WHERE id IN (SELECT id FROM messages "
            "WHERE erased_at IS NULL AND key_id = 'bench/seeded' ORDER BY id LIMIT ?)",
            (PAST, count),
        ).rowcount
        conn.commit()
    return int(changed)


async def sweep_among(ctx: Context, stored: int, rounds: int) -> list[float]:
    """Seconds per sweep of EXPIRED rows among `stored`, one per round."""
    root = ctx.scratch("sweep")
    db = root / "accord.db"
    store = await Store.open(db, keys=KeyRing(os.urandom(32)))
    seed(db, stored)
    sweeper = Sweeper(
        store=store, clock=SystemClock(), agency="NL-POL", directory=lambda: None, batch=200
    )
    took: list[float] = []
    try:
        for _ in range(rounds):
            expire(db, EXPIRED)
            result = await sweeper.sweep()
            if result.expired != EXPIRED:
                raise RuntimeError(f"a sweep erased {result.expired}, not {EXPIRED}")
            took.append(result.seconds)
    finally:
        await store.close()
    return took


async def beside_load(ctx: Context) -> tuple[float, float, float, int, float, int]:
    """Median msgs/s of rounds without and with a sweep beside them, the median of each
    round's ratio, rows each sweep erased, the sweeps' median seconds, and in how many rounds
    the sweep ended before the load (it then slowed the whole of what it was beside)."""
    root = ctx.scratch("sweepload")
    cluster = Cluster(root, ["NL-POL", "DE-BKA"])
    per_sweep = ctx.count(2_000, 3_000)
    rounds = 3 if ctx.quick else 5  # as `load_rounds` in run()
    db = cluster.homes["NL-POL"] / "accord.db"
    without: list[float] = []
    with_sweep: list[float] = []
    sweeps: list[float] = []
    inside = 0
    async with running(cluster, root, peers=["DE-BKA"]) as (sender, _):
        sweeper = sender.node.sweeper
        await sender.saturate(count=ctx.count(500, 2000), seconds=5.0)  # warm up
        seed(db, per_sweep * rounds)  # once the node has checked its key against real rows
        count, seconds = ctx.count(20_000, 40_000), ctx.seconds(8.0, 15.0)
        for round_ in range(rounds):
            order = (False, True) if round_ % 2 == 0 else (True, False)
            for swept in order:
                if swept:
                    expire(db, per_sweep)
                    load = asyncio.create_task(sender.saturate(count=count, seconds=seconds))
                    result = await sweeper.sweep(paced=True)  # as the background sweeper
                    inside += not load.done()
                    sent, elapsed = await load
                    sweeps.append(result.seconds)
                    with_sweep.append(sent / elapsed)
                else:
                    sent, elapsed = await sender.saturate(count=count, seconds=seconds)
                    without.append(sent / elapsed)
    ratios = [w / p for w, p in zip(with_sweep, without, strict=True)]
    return median(without), median(with_sweep), median(ratios), per_sweep, median(sweeps), inside


async def run(ctx: Context) -> list[Row]:
    rounds = 5 if ctx.quick else 9
    least = EXPIRED * (rounds + 1)  # each round's 100 are erased; a tiny --scale needs more
    small_n = max(least, ctx.count(1_000, 1_000))
    large_n = max(least, ctx.count(20_000, 100_000))
    # Alternated sizes would need two stores open at once; each size runs its rounds in turn,
    # the small one first and last, so neither always runs on a warmer machine.
    small = await sweep_among(ctx, small_n, rounds)
    large = await sweep_among(ctx, large_n, rounds)
    small += await sweep_among(ctx, small_n, rounds)
    small_s, large_s = median(small), median(large)
    plain, swept, ratio, per_sweep, sweep_s, inside = await beside_load(ctx)
    load_rounds = 3 if ctx.quick else 5
    ctx.values.update(
        {
            "sweep.small_ms": small_s * 1e3,
            "sweep.large_ms": large_s * 1e3,
            "sweep.load_rate": plain,
            "sweep.load_rate_swept": swept,
            "sweep.load_ratio": ratio,
        }
    )
    return [
        Row(
            f"sweep {EXPIRED} expired among {small_n:,}",
            small_s * 1e3,
            "ms",
            note=f"median of {len(small)} sweeps",
        ),
        Row(
            f"sweep {EXPIRED} expired among {large_n:,}",
            large_s * 1e3,
            "ms",
            baseline=small_s * 1e3,
            target=f"<= {WITHIN}x at {small_n:,}",
            met=large_s <= WITHIN * small_s,
            note=f"median of {len(large)} sweeps",
        ),
        Row(
            f"item 1 load with a sweep of {per_sweep:,} beside it",
            swept,
            "msgs/s",
            baseline=plain,
            ratio=ratio,
            target=f">= {LOAD_KEPT:.0%} of without",
            met=ratio >= LOAD_KEPT,
            note=f"ratio: median of alternated rounds' ratios; a paced sweep took "
            f"{sweep_s:.2f} s, within the load in {inside} of {load_rounds} rounds",
        ),
    ]


BENCHMARK = Benchmark(
    name="sweep",
    title="retention sweep: cost by expired not stored; beside item 1's load",
    run=run,
)
