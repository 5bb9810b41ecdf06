"""The node's log: one line per event, as text or as JSON for log shippers.

An event names what happened and carries the message id, the peer and the reason, never any
content: `event("receipt", message_id=..., peer=..., status="rejected", reason=...)`. As text
it is `receipt message_id=... peer=DE-BKA status=rejected reason=NO_AGREEMENT`; as JSON
`{"time": ..., "level": "INFO", "logger": "accord.events", "event": "receipt", ...}`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

EVENTS = logging.getLogger("accord.events")
FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")


def event(name: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event; fields that are empty or None are left out."""
    if not EVENTS.isEnabledFor(level):
        return  # the common case under load, when the level is above INFO: nothing built
    given = {k: v for k, v in fields.items() if v not in ("", None)}
    text = " ".join([name, *(f"{k}={_text(v)}" for k, v in given.items())])
    EVENTS.log(level, text, extra={"event": name, "fields": given})


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, then the event and its
    fields, or the message of a record that is not an event."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        name = getattr(record, "event", None)
        if name is not None:
            doc["event"] = name
            doc.update(getattr(record, "fields", {}))
        else:
            doc["message"] = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            doc["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(doc, default=str)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record comes (a test may swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure(*, level: str = "info", fmt: str = "text") -> None:
    """Set up the root logger for a process that runs a node: one handler on stderr (replacing
    one an earlier call installed; other handlers are left alone)."""
    handler = _Stderr()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _Stderr) or (
            isinstance(old, logging.StreamHandler) and old.stream in (sys.stderr, sys.stdout)
        ):
            root.removeHandler(old)  # basicConfig's, or ours from before
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiosqlite logs every statement with its parameters at DEBUG: personal data, token
    # digests, password hashes. Never written, whatever the node's level.
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold back what is logged inside: written out if the block succeeds, dropped if it
    fails. A node that cannot start says so in one line (its error), not after a page of
    what it did first."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    buffer = logging.handlers.MemoryHandler(capacity=1 << 20, flushLevel=logging.CRITICAL + 1)
    for h in handlers:
        root.removeHandler(h)
    root.addHandler(buffer)
    try:
        yield
    except BaseException:
        buffer.buffer.clear()
        raise
    finally:
        root.removeHandler(buffer)
        for h in handlers:
            root.addHandler(h)
        for record in buffer.buffer:
            for h in handlers:
                if record.levelno >= h.level:
                    h.handle(record)
        buffer.buffer.clear()
        buffer.close()
