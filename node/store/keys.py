"""Per-message envelope encryption: a fresh AES-256-GCM data key per message, wrapped by a
bucket key of the keystore (keystore.py), which the master key wraps in turn. Destroying the
bucket key (crypto-shredding) makes every copy of the wrapped data key and ciphertext, in
backups and WAL files included, unreadable. Rows sealed before the keystore existed (key id
None) had their data key wrapped by the master key itself; migration 050 and
`erasure.rewrap_legacy` move them."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from certs.ca import write_private
from node.errors import AccordError
from node.store.keystore import OPEN, Keystore

_NONCE = 12
_CHECK = b"accord-master-key-check/v1"
_ROW_MAC = b"accord-row-mac/v1"

# A value a row MAC covers (rowmac.py).
RowValue = str | bytes | int | None


class SealError(AccordError):
    """The master key is missing or does not open a stored message."""


class KeyDestroyed(SealError):
    """The key that wrapped a message's data key was destroyed: the message is erased."""


@dataclass(frozen=True, slots=True)
class Sealed:
    ciphertext: bytes  # nonce || AES-GCM(data key, plaintext)
    wrapped_key: bytes  # nonce || AES-GCM(bucket key, data key)
    key_id: str | None = None  # the keystore key that wraps it (None: the master key)


class KeyRing:
    def __init__(self, master: bytes) -> None:
        if len(master) != 32:
            raise SealError("master key must be 32 bytes")
        self._master = AESGCM(master)
        # Kept in the database to recognise the key, and useless for anything else: a node
        # with sealed messages refuses to start with another key (or none), rather than
        # failing every read.
        self.check_value = hmac.new(master, _CHECK, hashlib.sha256).digest()
        self._raw = master
        # A key of its own (HKDF, its own label) for the MACs that bind the rows granting
        # access: the master key itself is used only to wrap data keys.
        self._row_key = HKDF(hashes.SHA256(), 32, salt=None, info=_ROW_MAC).derive(master)
        self.keystore: Keystore | None = None  # attached by Store.open
        # Data keys wrapped by each bucket key whose rows are not yet queued for commit (with
        # the time of the last seal): a key is not destroyed while a row it wraps is on its way.
        self._unsettled: dict[str, tuple[int, float]] = {}

    def open_keystore(self, path: Path) -> Keystore:
        self.keystore = Keystore(path, self._master)
        return self.keystore

    @classmethod
    def generate(cls) -> KeyRing:
        return cls(os.urandom(32))

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        return cls(path.read_bytes())

    def save(self, path: Path) -> None:
        write_private(path, self._raw)

    def seal(self, plaintext: bytes, aad: bytes, *, bucket: str = OPEN) -> Sealed:
        """`plaintext` under a fresh data key, wrapped by the current key of `bucket`."""
        # One read of the system's random source for the data key and both nonces.
        fresh = os.urandom(32 + 2 * _NONCE)
        data_key, n1, n2 = fresh[:32], fresh[32 : 32 + _NONCE], fresh[32 + _NONCE :]
        key_id, wrapping = self._wrapping(bucket)
        if key_id is not None:
            count, _ = self._unsettled.get(key_id, (0, 0.0))
            self._unsettled[key_id] = (count + 1, time.monotonic())
        return Sealed(
            ciphertext=n1 + AESGCM(data_key).encrypt(n1, plaintext, aad),
            wrapped_key=n2 + wrapping.encrypt(n2, data_key, aad),
            key_id=key_id,
        )

    def row_mac(self, table: str, values: Sequence[RowValue]) -> bytes:
        """HMAC-SHA256 over a row's table name and values, each typed and length-prefixed, so
        no two different rows encode alike."""
        mac = hmac.new(self._row_key, digestmod=hashlib.sha256)
        for value in (table, *values):
            if value is None:
                tag, data = b"n", b""
            elif isinstance(value, bytes):
                tag, data = b"b", value
            elif isinstance(value, bool | int):
                tag, data = b"i", str(int(value)).encode()
            else:
                tag, data = b"s", value.encode()
            mac.update(tag + len(data).to_bytes(4, "big") + data)
        return mac.digest()

    def row_ok(self, table: str, mac: object, values: Sequence[RowValue]) -> bool:
        return isinstance(mac, bytes) and hmac.compare_digest(mac, self.row_mac(table, values))

    def settle(self, key_id: str | None) -> None:
        """A row sealed under `key_id` is queued for commit (Store.message_txn)."""
        if key_id is None or key_id not in self._unsettled:
            return
        count, at = self._unsettled[key_id]
        if count <= 1:
            del self._unsettled[key_id]
        else:
            self._unsettled[key_id] = (count - 1, at)

    def unsettled(self, key_id: str, *, grace: float = 60.0) -> bool:
        """Whether a row sealed under `key_id` may still be on its way to the writer (a seal
        whose row never came, a refused send, counts only for `grace` seconds)."""
        entry = self._unsettled.get(key_id)
        return entry is not None and time.monotonic() - entry[1] < grace

    def _wrapping(self, bucket: str) -> tuple[str | None, AESGCM]:
        if self.keystore is None:
            return None, self._master
        return self.keystore.current(bucket)

    def data_key(self, sealed: Sealed, aad: bytes) -> bytes:
        """The message's data key; KeyDestroyed once its bucket key is gone."""
        if sealed.key_id is None:
            wrapping = self._master
        elif self.keystore is None:
            raise SealError("stored message does not open with this node's keys (no keystore)")
        else:
            found = self.keystore.key(sealed.key_id)
            if found is None:
                raise KeyDestroyed("the key that opened this message was destroyed (erased)")
            wrapping = found
        try:
            w = sealed.wrapped_key
            return wrapping.decrypt(w[:_NONCE], w[_NONCE:], aad)
        except InvalidTag as exc:
            raise SealError("stored message does not open with this node's keys") from exc

    def rewrap(self, sealed: Sealed, aad: bytes, *, bucket: str) -> Sealed:
        """The same ciphertext with its data key wrapped by the current key of `bucket`."""
        data_key = self.data_key(sealed, aad)
        key_id, wrapping = self._wrapping(bucket)
        nonce = os.urandom(_NONCE)
        return Sealed(sealed.ciphertext, nonce + wrapping.encrypt(nonce, data_key, aad), key_id)

    def open(self, sealed: Sealed, aad: bytes) -> bytes:
        data_key = self.data_key(sealed, aad)
        try:
            c = sealed.ciphertext
            return AESGCM(data_key).decrypt(c[:_NONCE], c[_NONCE:], aad)
        except InvalidTag as exc:
            raise SealError("stored message does not open with this node's keys") from exc


# How a row's associated data is built (messages.seal): 1 named the row only; 2 also binds the
# markings that decide who may read it, so a row whose purpose, TLP or handling codes were
# changed in the database no longer opens.
SEAL_VERSION = 2


def aad_for(
    sender: str,
    message_id: str,
    *,
    purpose: str,
    tlp: str,
    handling_codes: Sequence[str],
    version: int = SEAL_VERSION,
) -> bytes:
    """Binds a ciphertext to its row (one message's ciphertext cannot stand in for another)
    and to the row's access-relevant markings."""
    if version == 1:
        return f"{sender}/{message_id}".encode()
    fields = (sender, message_id, purpose, tlp, ",".join(handling_codes))
    return b"accord-seal/v2\x00" + "\x00".join(fields).encode()
