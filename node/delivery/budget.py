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
        budget). CooledDown if that puts it past its budget twice over."""
        self.check(agency)
        now = self._clock()
        bucket = self._buckets.get(agency)
        if bucket is None:
            bucket = self._buckets[agency] = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        if not refusals:
            return 0.0
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
