"""Per-message envelope encryption: a fresh AES-256-GCM data key per message, wrapped by the
node's master key. Destroying the wrapped key (crypto-shredding) makes every copy of the
ciphertext, in backups and WAL files included, unreadable."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from certs.ca import write_private
from node.errors import AccordError

_NONCE = 12
_CHECK = b"accord-master-key-check/v1"
_ROW_MAC = b"accord-row-mac/v1"

# A value a row MAC covers (rowmac.py).
RowValue = str | bytes | int | None


class SealError(AccordError):
    """The master key is missing or does not open a stored message."""


@dataclass(frozen=True, slots=True)
class Sealed:
    ciphertext: bytes  # nonce || AES-GCM(data key, plaintext)
    wrapped_key: bytes  # nonce || AES-GCM(master key, data key)


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

    @classmethod
    def generate(cls) -> KeyRing:
        return cls(os.urandom(32))

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        return cls(path.read_bytes())

    def save(self, path: Path) -> None:
        write_private(path, self._raw)

    def seal(self, plaintext: bytes, aad: bytes) -> Sealed:
        # One read of the system's random source for the data key and both nonces.
        fresh = os.urandom(32 + 2 * _NONCE)
        data_key, n1, n2 = fresh[:32], fresh[32 : 32 + _NONCE], fresh[32 + _NONCE :]
        return Sealed(
            ciphertext=n1 + AESGCM(data_key).encrypt(n1, plaintext, aad),
            wrapped_key=n2 + self._master.encrypt(n2, data_key, aad),
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

    def open(self, sealed: Sealed, aad: bytes) -> bytes:
        try:
            w = sealed.wrapped_key
            data_key = self._master.decrypt(w[:_NONCE], w[_NONCE:], aad)
            c = sealed.ciphertext
            return AESGCM(data_key).decrypt(c[:_NONCE], c[_NONCE:], aad)
        except InvalidTag as exc:
            raise SealError("stored message does not open with this node's master key") from exc


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
