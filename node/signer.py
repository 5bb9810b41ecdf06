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
        # (recipients, content, future), in the order the sends called
        self._pending: list[tuple[tuple[str, ...], bytes, Future[tuple[bytes, bytes]]]] = []
        self.batches = 0
        self.signed = 0

    def sign(self, content: bytes, *, recipients: Sequence[str]) -> Future[tuple[bytes, bytes]]:
        """(signature, proof) for `content`, once the turn's batch for these recipients is
        signed."""
        loop = asyncio.get_running_loop()
        fut: Future[tuple[bytes, bytes]] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((tuple(sorted(recipients)), content, fut))
        return fut

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        groups: dict[tuple[str, ...], list[int]] = {}
        for index, (audience, _, _) in enumerate(pending):
            groups.setdefault(audience, []).append(index)
        outcomes: dict[int, tuple[bytes, bytes] | Exception] = {}
        for indexes in groups.values():
            for at in range(0, len(indexes), BATCH_MAX):
                chunk = indexes[at : at + BATCH_MAX]
                try:
                    signed = sign_envelopes(self._key, [pending[i][1] for i in chunk])
                except Exception as exc:  # e.g. a key that cannot sign: every caller hears it
                    outcomes.update((i, exc) for i in chunk)
                    continue
                self.batches += 1
                self.signed += len(chunk)
                outcomes.update(zip(chunk, signed, strict=True))
        # Resolved in the order the sends called: each resumes, and queues its commit, in
        # that order, so batching does not reorder sends. (A send that reads the store first,
        # a reply or one with a caller-chosen id, can still be overtaken by a send made after
        # it, as before batch signing: order is promised for sends made one after another.)
        for index, (_, _, fut) in enumerate(pending):
            if fut.done():  # a caller that stopped waiting gets nothing
                continue
            outcome = outcomes[index]
            if isinstance(outcome, Exception):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)
