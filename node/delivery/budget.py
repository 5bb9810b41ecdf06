"""A per-peer budget of refused envelopes, so that one member cannot exhaust a node.

Each peer agency has a token bucket: `burst` refusals, refilled at `rate` per second. A peer
within it is served as usual. Past it, each of its batches waits (up to MAX_DELAY seconds)
for the refusals it is over by to refill: the peer is slowed, and only that peer, since each
peer's batches are admitted in their own order. A peer that goes on and falls `burst` refusals
behind is cut off: its streams end and new ones are refused for `cooldown` seconds. Honest
nodes check what they send against the same agreements first (Policy.check_outbound), so
their refusals are rare. No I/O; the monotonic clock is passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MAX_DELAY = 1.0


class CooledDown(Exception):
    """The peer is refused for a while: too many of its envelopes were refused."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    blocked_until: float = 0.0


def _refilled(
    buckets: dict[str, _Bucket], agency: str, *, burst: float, rate: float, now: float
) -> _Bucket:
    """`agency`'s bucket (full when new), refilled at `rate` per second up to `burst`."""
    bucket = buckets.get(agency)
    if bucket is None:
        bucket = buckets[agency] = _Bucket(burst, now)
    bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
    bucket.at = now
    return bucket


class RefusalBudget:
    def __init__(
        self, *, rate: float, burst: int, cooldown: float, clock: Callable[[], float]
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._cooldown = cooldown
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def check(self, agency: str) -> None:
        """CooledDown if `agency` is in its cool-down."""
        bucket = self._buckets.get(agency)
        if bucket is not None:
            left = bucket.blocked_until - self._clock()
            if left > 0:
                raise CooledDown(
                    f"{agency} sent too many envelopes that were refused: refused for another "
                    f"{left:.0f} s"
                )

    def charge(self, agency: str, refusals: int) -> float:
        """Count `refusals` against `agency`; the seconds its batch should wait (0: within
        budget; a peer still over it waits whatever this batch holds). CooledDown if that
        puts it past its budget twice over."""
        self.check(agency)
        now = self._clock()
        bucket = _refilled(self._buckets, agency, burst=self._burst, rate=self._rate, now=now)
        bucket.tokens -= refusals
        if bucket.tokens >= 0:
            return 0.0
        if bucket.tokens < -self._burst:
            bucket.blocked_until = now + self._cooldown
            bucket.tokens = 0.0
            raise CooledDown(
                f"{agency} sent too many envelopes that were refused: its streams end and it "
                f"is refused for {self._cooldown:.0f} s"
            )
        return min(-bucket.tokens / self._rate, MAX_DELAY)


class VolumeBudget:
    """The bytes of accepted envelopes one peer may have stored: `burst` at once, refilled at
    `per_day` a day. An envelope past it is answered DEFERRED (VOLUME_EXCEEDED), nothing kept,
    and its sender sends it again later, so a member cannot fill the node's disk with
    messages the agreements allow. No I/O; the monotonic clock is passed in."""

    def __init__(self, *, per_day: int, burst: int, clock: Callable[[], float]) -> None:
        self._rate = per_day / 86400.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, agency: str) -> _Bucket:
        return _refilled(
            self._buckets, agency, burst=self._burst, rate=self._rate, now=self._clock()
        )

    def take(self, agency: str, size: int) -> bool:
        """Whether `agency` may have `size` more bytes stored now (then counted)."""
        bucket = self._bucket(agency)
        if bucket.tokens < size:
            return False
        bucket.tokens -= size
        return True

    def give_back(self, agency: str, size: int) -> None:
        """`size` bytes taken for envelopes that were not stored after all (copies)."""
        bucket = self._bucket(agency)
        bucket.tokens = min(self._burst, bucket.tokens + size)
