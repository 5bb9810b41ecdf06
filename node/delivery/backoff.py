"""When a link tries its peer again: every wait of a link is decided here.

- A stream that failed before it delivered anything: exponential backoff with jitter
  (tenacity), from `initial` up to `maximum`, cut short by a probe when the peer's port goes
  from closed to open (`sleep`).
- A peer that answered an envelope DEFERRED (it stored and decided nothing): sent it again after
  a backoff that starts at `initial` and stops growing at DEFERRED_MAX_SECONDS, so delivery
  resumes within seconds of the peer being able to take it (its disk has room again).
- A failure of this node's own (a stored message that does not open, the database): `maximum`.
- A link task that died: restarted after `initial`, not at once (whatever killed it may still be
  there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

PROBE_SECONDS = 0.25
PROBE_RETRY_SECONDS = 0.5
DEFERRED_MAX_SECONDS = 5.0


class Backoff:
    def __init__(
        self, *, initial: float, maximum: float, reachable: Callable[[], Awaitable[bool]]
    ) -> None:
        """`reachable`: whether a plain TCP connect to the peer's endpoint succeeds now."""
        self.initial = initial
        self.maximum = maximum
        self._reachable = reachable
        self._woken_by_probe = False
        self._last_unreachable = False
        # Whether a failed connection may count as "the port was closed" for the probe; lost
        # when a probe-woken attempt fails, regained when a probe sees the port closed.
        self._assume_down = True
        self._deferrals = 0  # sessions in a row that ended on a DEFERRED receipt

    def attempts(self, retry_on: type[BaseException]) -> AsyncRetrying:
        """Attempts that are retried, after the backoff, while they raise `retry_on`."""
        return AsyncRetrying(
            wait=wait_exponential_jitter(
                multiplier=self.initial, max=self.maximum, jitter=self.initial
            ),
            retry=retry_if_exception_type(retry_on),
            reraise=True,
            sleep=self.sleep,
        )

    def ended(self, *, unreachable: bool, progress: bool, deferred: bool) -> None:
        """A session ended: the peer did not answer at all (`unreachable`), it took envelopes
        first (`progress`), or it deferred one."""
        self._last_unreachable = unreachable
        if not deferred:
            self._deferrals = 0
            if progress:
                self._assume_down = True

    async def after_deferral(self) -> None:
        self._deferrals += 1
        await asyncio.sleep(
            min(
                self.initial * 2 ** min(self._deferrals, 16),
                DEFERRED_MAX_SECONDS,
                self.maximum,
            )
        )

    async def after_own_failure(self) -> None:
        await asyncio.sleep(self.maximum)

    async def sleep(self, seconds: float) -> None:
        """The backoff sleep, cut short when the peer's port goes from closed to open.

        Exponential backoff alone leaves a queue waiting for up to `maximum` after the peer is
        back (30 s by default); a TCP connect every PROBE_SECONDS is far cheaper than a TLS
        handshake and lets the queue drain as soon as the peer listens again. Only a
        closed-then-open port ends the sleep early: a peer that listens but refuses us (a
        revoked certificate, a failed key proof) keeps the full backoff, never a retry storm.
        """
        loop = asyncio.get_running_loop()
        if self._woken_by_probe:
            # The port opened but the attempt that followed failed: a peer still starting up
            # accepts TCP before it serves calls. One more try soon, then the normal backoff.
            self._woken_by_probe = False
            self._assume_down = False
            seconds = min(seconds, PROBE_RETRY_SECONDS)
        deadline = loop.time() + seconds
        # The peer may have come up between the refused connection and the first probe.
        was_down = self._last_unreachable and self._assume_down
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(PROBE_SECONDS, remaining))
            if loop.time() >= deadline:
                return
            if not await self._reachable():
                was_down = self._assume_down = True
            elif was_down:
                self._woken_by_probe = True
                return
