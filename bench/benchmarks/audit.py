"""The audit log's tree: verification of a whole log, and the cost of one append.

In memory, no node: 1 000 000 generated entries (100 000 quick) in their canonical encoding,
each with its stored leaf hash, and 100 signed checkpoints, one every 1 % of the log (plus one
kept outside). `node.audit.verify.verify_log` checks them all, timed against hashing the same bytes
in a plain Python loop. Appends are timed on the tree's right edge at 10 000 entries and at the
full size, in alternated rounds (the median of each): the per-append cost must not grow with
the log.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ec

from bench.runner import Benchmark, Context, Row
from bench.stats import median
from node.audit.checkpoint import Checkpoint, NoteKey, origin_for, sign
from node.audit.verify import AuditEntry, LogEntry, canonical, verify_log
from node.merkle import Frontier

VERIFY_RATE = 100_000.0  # entries/s
FLAT = 1.25  # an append at the full size may cost at most this much more than at 10 000
CHECKPOINTS = 100  # signed over the log, evenly: one every 10 000 entries of 1 000 000
ORIGIN = origin_for("accord.test", "NL-POL")


def template() -> bytes:
    """A realistic entry (a consultation with a justification), as a %-template over seq,
    checked against the canonical encoding so generation need not run json per entry."""
    at = datetime(2026, 11, 25, 20, 9, 1, 123456, tzinfo=UTC)

    def one(seq: int) -> bytes:
        return canonical(
            AuditEntry(
                seq=seq,
                at=at,
                actor="alice",
                action="consult",
                message_id=f"0193a1b2-c3d4-7e5f-8a9b-{seq:012d}",
                peer="DE-BKA",
                purpose="criminal-investigation",
                justification=f"case 2026/{seq}",
                outcome="ok",
            )
        )

    text = one(987_654_321).replace(b"000987654321", b"%012d").replace(b"987654321", b"%d")
    for seq in (1, 12_345, 999_999):
        assert text % (seq, seq, seq) == one(seq), "the template no longer matches canonical()"
    return text


def generate(
    n: int, key: ec.EllipticCurvePrivateKey, deadline: float, small: int
) -> tuple[list[LogEntry], list[bytes], Frontier, Frontier]:
    """n entries (fewer if the deadline passes), their checkpoints, and the right edge at
    `small` entries and at the end."""
    text = template()
    sha256 = hashlib.sha256
    frontier = Frontier()
    at_small = frontier
    entries: list[LogEntry] = []
    notes: list[bytes] = []
    every = max(1, n // CHECKPOINTS)
    for seq in range(1, n + 1):
        data = text % (seq, seq, seq)
        leaf = sha256(b"\x00" + data).digest()
        entries.append(LogEntry(seq, data, leaf))
        frontier.append(leaf)
        if seq == small:
            at_small = frontier.copy()
        if seq % every == 0:
            notes.append(sign(Checkpoint(ORIGIN, seq, frontier.root()), key))
        if seq % 4096 == 0 and time.monotonic() > deadline:
            break
    return entries, notes, at_small, frontier


def append_seconds(start: Frontier, leaves: list[bytes]) -> float:
    frontier = start.copy()
    append = frontier.append
    begin = time.perf_counter()
    for leaf in leaves:
        append(leaf)
    return time.perf_counter() - begin


async def run(ctx: Context) -> list[Row]:
    n = ctx.count(100_000, 1_000_000)
    small = max(1, min(10_000, n // 10))
    key = ec.generate_private_key(ec.SECP256R1())
    deadline = time.monotonic() + ctx.seconds(30.0, 120.0)
    entries, notes, at_small, at_full = generate(n, key, deadline, small)
    if len(entries) < n:
        ctx.notes.append(f"audit: generation stopped at {len(entries)} of {n} entries (time)")
    n = len(entries)
    kept = notes[len(notes) // 2 : len(notes) // 2 + 1]  # one checkpoint kept outside

    sha256 = hashlib.sha256
    begin = time.perf_counter()
    for e in entries:
        sha256(b"\x00" + e.data).digest()
    hash_rate = n / (time.perf_counter() - begin)

    begin = time.perf_counter()
    report = verify_log(entries, notes, NoteKey(ORIGIN, key.public_key()), trusted=kept)
    verify_rate = n / (time.perf_counter() - begin)
    if not report.ok or report.entries != n:
        raise RuntimeError(f"the generated log does not verify: {report.findings[:1]}")

    del entries
    # The same appends timed on the right edge at both sizes, alternated.
    leaves = [sha256(b"%d" % i).digest() for i in range(ctx.count(20_000, 100_000))]
    rounds = 3 if ctx.quick else 5
    at_10k, at_n = [], []
    for _ in range(rounds):
        at_10k.append(append_seconds(at_small, leaves) / len(leaves) * 1e6)
        at_n.append(append_seconds(at_full, leaves) / len(leaves) * 1e6)
    small_us, full_us = median(at_10k), median(at_n)

    ctx.values.update(
        {
            "audit.entries": n,
            "audit.verify_rate": verify_rate,
            "audit.hash_rate": hash_rate,
            "audit.append_us_small": small_us,
            "audit.append_us_full": full_us,
        }
    )
    return [
        Row(
            f"verify {n:,} entries, {len(notes)} checkpoints",
            verify_rate,
            "entries/s",
            baseline=hash_rate,
            target=f">= {VERIFY_RATE:,.0f}/s",
            met=verify_rate >= VERIFY_RATE,
            note="baseline: the same bytes' leaf hashes in a plain loop",
        ),
        Row(f"append at {small:,} entries", small_us, "us", note=f"median of {rounds} rounds"),
        Row(
            f"append at {n:,} entries",
            full_us,
            "us",
            baseline=small_us,
            target=f"<= {FLAT}x at {small:,}",
            met=full_us <= FLAT * small_us,
            note=f"{len(leaves):,} appends per round, alternated with the row above",
        ),
    ]


BENCHMARK = Benchmark(
    name="audit", title="audit log: verify a whole log; append cost at 10k and 1M", run=run
)
