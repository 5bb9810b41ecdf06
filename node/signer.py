"""Signing the envelopes of sends that start together with one signature.

Sends to the same recipients that reach the signer in the same turn of the event loop are
signed as one batch: one ECDSA signature over the Merkle root of their contents, each content
with its audit path (`sign_envelopes`). Batches are per recipient set, so the hashes in an
envelope's audit path are of messages that went to the same agencies: no agency is shown even
the hash of a message it was not sent. Under load, the callers woken by one commit start their
next sends in the same turn, so the sender's signing cost, and the receiver's verifying cost, is
per batch. A send alone is signed directly, as before. Each envelope still verifies alone with
the sender's certificate (`verify_envelope`), so the evidence stays per message.
"""

from __future__ import annotations

import asyncio
from asyncio import Future
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric import ec

from node.envelope import sign_envelopes

# The audit path grows by 33 bytes per doubling: 9 steps (297 bytes) at this size.
BATCH_MAX = 512


class BatchSigner:
    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self._pending: dict[tuple[str, ...], list[tuple[bytes, Future[tuple[bytes, bytes]]]]] = {}
        self.batches = 0
        self.signed = 0

    def sign(self, content: bytes, *, recipients: Sequence[str]) -> Future[tuple[bytes, bytes]]:
        """(signature, proof) for `content`, once the turn's batch for these recipients is
        signed."""
        loop = asyncio.get_running_loop()
        fut: Future[tuple[bytes, bytes]] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.setdefault(tuple(sorted(recipients)), []).append((content, fut))
        return fut

    def _flush(self) -> None:
        groups, self._pending = self._pending, {}
        for pending in groups.values():
            self._sign(pending)

    def _sign(self, pending: list[tuple[bytes, Future[tuple[bytes, bytes]]]]) -> None:
        for at in range(0, len(pending), BATCH_MAX):
            chunk = pending[at : at + BATCH_MAX]
            try:
                signed = sign_envelopes(self._key, [content for content, _ in chunk])
            except Exception as exc:  # e.g. a key that cannot sign: every caller hears it
                for _, fut in chunk:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.batches += 1
            self.signed += len(chunk)
            for (_, fut), result in zip(chunk, signed, strict=True):
                if not fut.done():  # a caller that stopped waiting gets nothing
                    fut.set_result(result)
