"""The rows that grant access carry an HMAC (column `mac`), keyed from master.key.

Someone who can write accord.db but does not hold master.key can delete these rows (which
only takes access away) but cannot write one the node accepts: a session, a user's role,
clearances or token digest, an enrolment code, a password hash, a pending change or approval,
or a recorded value of the node's own (`node_state`). A row whose MAC fails grants nothing and
is logged. What a MAC cannot tell is an older genuine row put back (a replay): see
docs/security.md.

`node_state` also holds `recorded_names`, a MAC over the names of every other row in it, so
deleting a recorded value (a CRL number, the directory serial) is noticed at start.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence

from node.errors import ConfigError
from node.store.keys import KeyRing, RowValue

log = logging.getLogger(__name__)

# The columns each table's MAC covers, in order. Columns left out only take access away or
# count towards a limit (a password's failures, a session's last use).
COVERED: dict[str, tuple[str, ...]] = {
    "users": ("name", "role", "token_sha256", "disabled_at", "pending"),
    "clearances": ("user_name", "purpose"),
    "enrolments": ("user_name", "code_sha256", "second_sha256", "needs_second", "expires_at"),
    "user_requests": (
        "user_name",
        "role",
        "clearances",
        "enabled",
        "requested_by",
        "requested_at",
    ),
    "passwords": ("user_name", "hash"),
    "sessions": ("token_sha256", "user_name", "created_at", "expires_at", "revoked_at"),
    "approvals": ("message_id", "author", "recipients", "state", "decided_by"),
    "node_state": ("name", "value"),
}
ANCHOR = "recorded_names"
_TAMPERED = (
    "accord.db: node_state was altered ({what}): the node's recorded values (CRL number, "
    "directory serial, master key check) cannot be trusted; restore accord.db from backup"
)


def mac(keys: KeyRing, table: str, row: Mapping[str, object]) -> bytes:
    return keys.row_mac(table, [_value(row[c]) for c in COVERED[table]])


def verified(keys: KeyRing, table: str, row: Mapping[str, object], *, what: str) -> bool:
    """Whether `row` (with its `mac`) is one the node wrote; a row that is not is logged."""
    if keys.row_ok(table, row.get("mac"), [_value(row[c]) for c in COVERED[table]]):
        return True
    log.error(
        "accord.db: a %s row (%s) fails its integrity check and grants nothing "
        "(written outside the node?)",
        table,
        what,
    )
    return False


def insert(
    table: str, keys: KeyRing, row: Mapping[str, object], *, replace: bool = False
) -> tuple[str, Sequence[object]]:
    """The statement that inserts `row` with its MAC."""
    columns = [*row, "mac"]
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    return (
        f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        (*row.values(), mac(keys, table, row)),
    )


def update(
    conn: sqlite3.Connection,
    keys: KeyRing,
    table: str,
    key: tuple[str, object],
    changes: Mapping[str, object],
) -> bool:
    """Change one row, if it is one the node wrote (checked first, so a forged row is never
    signed over); False if it is missing or forged."""
    column, value = key
    covered = COVERED[table]
    found = conn.execute(
        f"SELECT {', '.join(covered)}, mac FROM {table} WHERE {column} = ?",  # noqa: S608 (as above)
        (value,),
    ).fetchone()
    if found is None:
        return False
    row = dict(zip((*covered, "mac"), found, strict=True))
    if not verified(keys, table, row, what=f"{column} {value}"):
        return False
    row.update(changes)
    sets = [*changes, "mac"]
    conn.execute(
        f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in sets)} "  # noqa: S608 (as above)
        f"WHERE {column} = ?",
        (*changes.values(), mac(keys, table, row), value),
    )
    return True


# ---- node_state ------------------------------------------------------------------------------


def read_state(conn: sqlite3.Connection, keys: KeyRing) -> dict[str, object]:
    return check_state(conn.execute("SELECT name, value, mac FROM node_state").fetchall(), keys)


def check_state(found: Iterable[Sequence[object]], keys: KeyRing) -> dict[str, object]:
    """Every value the node recorded about itself (node_state's rows), checked: ConfigError if
    a row is forged, one is missing, or the list of them is gone."""
    rows = {str(n): (v, m) for n, v, m in found}
    anchor = rows.pop(ANCHOR, None)
    if anchor is None:
        raise ConfigError(_TAMPERED.format(what="its list of recorded values is missing"))
    names = sorted(rows)
    listed = anchor[0].decode() if isinstance(anchor[0], bytes) else str(anchor[0])
    if not keys.row_ok("node_state", anchor[1], [ANCHOR, listed]):
        raise ConfigError(_TAMPERED.format(what="its list of recorded values was changed"))
    expected = [n for n in listed.split(",") if n]
    if names != expected:
        gone = sorted(set(expected) - set(names))
        what = f"{', '.join(gone)} deleted" if gone else "a value added"
        raise ConfigError(_TAMPERED.format(what=what))
    for name, (value, row_mac) in rows.items():
        if not keys.row_ok("node_state", row_mac, [name, _value(value)]):
            raise ConfigError(_TAMPERED.format(what=f"{name} changed"))
    return {name: value for name, (value, _) in rows.items()}


def put_state(
    conn: sqlite3.Connection,
    keys: KeyRing,
    name: str,
    value: int | bytes,
    *,
    at_least: bool = False,
) -> None:
    """Record `value` under `name` (`at_least`: keep a higher value already there), and the
    list of names with it. Over an altered node_state nothing is recorded (logged): the node
    refuses to start on it, and a unit that raised would fail the units committed with it."""
    try:
        current = read_state(conn, keys)
    except ConfigError as exc:
        log.error("%s; %s not recorded", exc, name)
        return
    if at_least and name in current and int(str(current[name])) >= int(value):
        return
    row = {"name": name, "value": value}
    conn.execute(*insert("node_state", keys, row, replace=True))
    names = ",".join(sorted({*current, name}))
    conn.execute(*insert("node_state", keys, {"name": ANCHOR, "value": names}, replace=True))


def seal_existing(conn: sqlite3.Connection, keys: KeyRing) -> None:
    """The migration step that adds the MACs: every row there is now is taken as the node's
    own (they were, until this version), and node_state's list of names is made."""
    for table, covered in COVERED.items():
        rows = conn.execute(f"SELECT rowid, {', '.join(covered)} FROM {table}").fetchall()  # noqa: S608 (as above)
        for rowid, *values in rows:
            row = dict(zip(covered, values, strict=True))
            conn.execute(
                f"UPDATE {table} SET mac = ? WHERE rowid = ?",  # noqa: S608 (as above)
                (mac(keys, table, row), rowid),
            )
    names = sorted(str(n) for (n,) in conn.execute("SELECT name FROM node_state"))
    conn.execute(*insert("node_state", keys, {"name": ANCHOR, "value": ",".join(names)}))


def _value(value: object) -> RowValue:
    if value is None or isinstance(value, str | bytes | int):
        return value
    raise TypeError(f"a row value of type {type(value).__name__}")
