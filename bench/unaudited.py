"""A node that appends nothing to its audit log: for the throughput benchmark's same-run
comparison only (what the log costs item 1). `python -m bench.unaudited node run --home H`
runs `accord node run` so; `unaudited(journal)` does it to a node in this process for a while.
No node outside the bench runs without its log: nothing in node/ can turn it off."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from node import cli
from node.store.audit import AuditJournal


def _append(conn: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
    """Entries dropped (the statements of the action still run)."""


def _seal(conn: sqlite3.Connection) -> None:
    """No checkpoint: nothing was appended."""


@contextlib.contextmanager
def unaudited(journal: AuditJournal) -> Iterator[None]:
    journal.append = _append  # type: ignore[method-assign]
    journal.seal = _seal  # type: ignore[method-assign]
    try:
        yield
    finally:
        del journal.append, journal.seal


def main() -> int:
    AuditJournal.append = lambda self, conn, rows: None  # type: ignore[method-assign]
    AuditJournal.seal = lambda self, conn: None  # type: ignore[method-assign]
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
