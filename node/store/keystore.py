"""The keys that can open stored messages, kept apart from accord.db so that destroying one
also defeats every older copy of the database (docs/retention.md).

Each message's data key is wrapped by a bucket key held here, never by a key that outlives
the message: one bucket per UTC expiry day (`day_bucket`), one for held messages (`HOLD`) and
one for messages without a limit (`OPEN`). A bucket key is destroyed when its day has passed
and the sweep has erased what it wrapped; an early erasure rotates the bucket (a new key for
the rows that stay, the old one destroyed). The bucket keys are themselves wrapped by the
master key, so a copy of this file alone opens nothing.

A small SQLite file beside the database, written rarely (a new bucket, a destruction): its
journal is a rollback journal that is deleted at each commit (no WAL keeps old pages), and
secure_delete overwrites a destroyed key's bytes in the file itself.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from node.errors import ConfigError, StorageFull

_NONCE = 12
HOLD = "hold"  # held messages: kept past their day, until the hold is released
OPEN = "open"  # messages with no retention limit


def day_bucket(retain_until: datetime | None) -> str:
    """The bucket a message's key goes in: its UTC expiry day."""
    if retain_until is None:
        return OPEN
    return retain_until.astimezone(UTC).date().isoformat()


def bucket_ended(bucket: str, now: datetime) -> bool:
    """Whether a day bucket's day is over (HOLD and OPEN never end)."""
    if bucket in (HOLD, OPEN):
        return False
    return bucket < now.astimezone(UTC).date().isoformat()


class Keystore:
    def __init__(self, path: Path, master: AESGCM) -> None:
        self.path = path
        self._master = master
        self.created = not path.exists()  # made now, empty (a lost keystore is not started over)
        if self.created:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=DELETE")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, bucket TEXT NOT NULL, "
            "wrapped BLOB NOT NULL, created_at TEXT NOT NULL, current INTEGER NOT NULL)"
        )
        self._keys: dict[str, AESGCM] = {}
        self._current: dict[str, str] = {}
        # Another master key than the one that wrapped these keys: nothing opens, nothing is
        # added (Store.check_keystore refuses the start; the master key's own check, which
        # runs first, names the cause when it can).
        self.mismatch = False
        for key_id, bucket, wrapped, current in self._db.execute(
            "SELECT id, bucket, wrapped, current FROM keys"
        ):
            try:
                raw = self._master.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], key_id.encode())
            except InvalidTag:
                self.mismatch = True
                self._keys, self._current = {}, {}
                break
            self._keys[key_id] = AESGCM(raw)
            if current:
                self._current[bucket] = key_id

    def close(self) -> None:
        self._db.close()

    def check(self) -> None:
        if self.mismatch:
            raise ConfigError(
                f"{self.path.name} does not open with master.key: restore the keystore and "
                "master.key that belong together"
            )

    def key(self, key_id: str) -> AESGCM | None:
        """A bucket key by id; None once destroyed."""
        return self._keys.get(key_id)

    def current_id(self, bucket: str) -> str | None:
        return self._current.get(bucket)

    def current(self, bucket: str) -> tuple[str, AESGCM]:
        """The key new data keys of `bucket` are wrapped with, made (and on disk) if none."""
        key_id = self._current.get(bucket)
        if key_id is None:
            self.check()  # never a key wrapped by another master key beside the others
            key_id = self._create(bucket)
        return key_id, self._keys[key_id]

    def rotate(self, bucket: str) -> str:
        """A new current key for `bucket`; the old one stays until destroyed."""
        self.check()
        return self._create(bucket)

    def _create(self, bucket: str) -> str:
        raw = os.urandom(32)
        key_id = f"{bucket}/{os.urandom(8).hex()}"
        nonce = os.urandom(_NONCE)
        wrapped = nonce + self._master.encrypt(nonce, raw, key_id.encode())
        try:
            with self._db:
                self._db.execute("UPDATE keys SET current = 0 WHERE bucket = ?", (bucket,))
                self._db.execute(
                    "INSERT INTO keys (id, bucket, wrapped, created_at, current) "
                    "VALUES (?,?,?,?,1)",
                    (key_id, bucket, wrapped, datetime.now(UTC).isoformat()),
                )
        except sqlite3.OperationalError as exc:
            if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_FULL:
                raise StorageFull(
                    f"disk full: the node could not store a new key ({exc}); nothing was "
                    "kept. Free space on the disk that holds the node's home and try again"
                ) from exc
            raise
        self._keys[key_id] = AESGCM(raw)
        self._current[bucket] = key_id
        return key_id

    def buckets(self) -> dict[str, list[str]]:
        """Every key held, by bucket."""
        out: dict[str, list[str]] = {}
        for key_id in self._keys:
            out.setdefault(key_id.rsplit("/", 1)[0], []).append(key_id)
        return out

    def destroy(self, key_ids: list[str]) -> None:
        """Destroy keys for good: their rows are deleted and overwritten (secure_delete) in
        one transaction, whose rollback journal is then deleted."""
        if not key_ids:
            return
        with self._db:
            self._db.executemany("DELETE FROM keys WHERE id = ?", [(k,) for k in key_ids])
        for key_id in key_ids:
            self._keys.pop(key_id, None)
            bucket = key_id.rsplit("/", 1)[0]
            if self._current.get(bucket) == key_id:
                del self._current[bucket]
