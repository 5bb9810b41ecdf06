"""Whether this node serves, and saying so: its own certificate's validity and the federation
CRL's freshness, in the log (once, then once a minute while a problem lasts) and in the gRPC
health service that `accord node health` and `accord status` read."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health, health_pb2

from node.clock import Clock
from node.errors import ConfigError, Unauthenticated
from node.trust import Trust

log = logging.getLogger(__name__)

# A stale CRL is logged at start and then this often while it lasts; one about to expire once.
CRL_WARN_SECONDS = 60.0
CRL_EXPIRING = timedelta(days=1)
# A certificate that stays invalid is logged again this often.
OWN_WARN_SECONDS = 60.0


def check_own_certificate(
    trust: Trust,
    *,
    certificate: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    agency: str,
    now: datetime,
    path: Path,
) -> None:
    """At start: this node's certificate (from `path`), checked like a peer's, or
    ConfigError."""
    try:
        trust.set_own(certificate, key, agency=agency)
        trust.check_own(now)
    except Unauthenticated as exc:
        raise ConfigError(
            f"tls.certificate: {path} cannot be used: {exc}; the node does not start with it"
        ) from exc


class Health:
    def __init__(
        self,
        *,
        trust: Trust,
        clock: Clock,
        crl_path: Path,
        on_serving_again: Callable[[], None],
    ) -> None:
        self._trust = trust
        self._clock = clock
        self._crl_path = crl_path
        self._on_serving_again = on_serving_again
        self.servicer = health.aio.HealthServicer()
        self.serving = "NOT_SERVING"  # what the health service answers, for `accord status`
        self.crl_warn_seconds = CRL_WARN_SECONDS
        self._own_problem: str | None = None  # why this node's own certificate fails, if it does
        self._own_logged_at = 0.0
        self._crl_state = ""
        self._crl_warned: float | None = None  # when the stale CRL was last logged
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._own_problem is None:
            await self.servicer.set("", health_pb2.HealthCheckResponse.SERVING)
            self.serving = "SERVING"

    async def stop(self) -> None:
        self.serving = "NOT_SERVING"
        await self.servicer.enter_graceful_shutdown()

    def check_crl(self) -> str:
        """Say, in the log, when the CRL is stale (at start, then once a minute while it lasts:
        the node refuses every peer meanwhile) or about to be, and when a fresh one ends it.
        Returns the CRL's state: "fresh", "expiring" (within a day) or "stale"."""
        next_update = self._trust.crl_next_update
        now = self._clock.now()
        if next_update is None or now > next_update:
            state = "stale"
        elif next_update - now < CRL_EXPIRING:
            state = "expiring"
        else:
            state = "fresh"
        monotonic = time.monotonic()
        if state == "stale":
            if self._crl_warned is None or monotonic - self._crl_warned >= self.crl_warn_seconds:
                self._crl_warned = monotonic
                log.warning(
                    "crl stale: the federation CRL expired at %s; refusing every peer until a "
                    "fresh one is published (accord certs crl) at %s",
                    next_update.isoformat() if next_update else "?",
                    self._crl_path,
                )
        elif self._crl_state == "stale":
            log.info("crl fresh again: next update %s", next_update)
        if state == "expiring" and self._crl_state != "expiring":
            log.warning("crl expiring: the federation CRL expires at %s", next_update)
        if state != "stale":
            self._crl_warned = None
        self._crl_state = state
        return state

    def watch_own_certificate(self) -> None:
        """While running: a node whose own certificate stops being valid stops serving (every
        peer and every send is refused by `Trust.check_current`, health says NOT_SERVING,
        links wait) and says so loudly, until it is valid again."""
        try:
            self._trust.check_own(self._clock.now())
            problem = None
        except Unauthenticated as exc:
            problem = str(exc)
        loop = asyncio.get_running_loop()
        if problem is None and self._own_problem is None:
            return
        if problem is not None and problem == self._own_problem:
            if loop.time() - self._own_logged_at >= OWN_WARN_SECONDS:
                self._own_logged_at = loop.time()
                log.error("still not serving: this node's own certificate: %s", problem)
            return
        self._own_problem = problem
        self._own_logged_at = loop.time()
        if problem is not None:
            log.error(
                "NOT SERVING: this node's own certificate is not valid now: %s; peers and sends "
                "are refused until it is (accord certs issue, then restart)",
                problem,
            )
            status = health_pb2.HealthCheckResponse.NOT_SERVING
            self.serving = "NOT_SERVING"
        else:
            log.warning("serving again: this node's own certificate is valid")
            status = health_pb2.HealthCheckResponse.SERVING
            self.serving = "SERVING"
            self._on_serving_again()
        task = loop.create_task(self.servicer.set("", status))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
