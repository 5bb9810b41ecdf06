"""Every signature a node makes or checks: one ECDSA P-256/SHA-256 scheme, with the domain (what
the signature vouches for) as a parameter.

A domain fixes the bytes signed. An item signed alone is signed over `domain.prefix + data`.
Envelopes and receipts can also be signed a batch at a time (docs/evidence.md): one signature
over `domain.root_prefix + Merkle root` of the batch (node/merkle.py, RFC 6962 hashing), each
item with its audit path (`proof`), so the signer's cost is per batch and every item still
verifies alone with the signer's certificate. The root prefixes differ per domain, so an
envelope root's signature never passes for a receipt root's, and no root signature passes for
an item signed alone.

Sends that reach `BatchSigner` in the same turn of the event loop and go to the same agencies
are signed as one batch: under load, the callers woken by one commit start their next sends in
the same turn, so the sender's signing cost, and the receiver's verifying cost, is per batch.
Batches are per recipient set, so the hashes in an envelope's audit path are of messages that
went to the same agencies: no agency is shown even the hash of a message it was not sent.
"""

from __future__ import annotations

import asyncio
import hashlib
from asyncio import Future
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from node import merkle
from node.audit.checkpoint import Checkpoint, NoteKey
from node.audit.checkpoint import sign as sign_note

_ECDSA = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True, slots=True)
class Domain:
    """What a signature vouches for. `prefix` goes before the data of an item signed alone;
    `root_prefix` (domains signed a batch at a time only) before the Merkle root of a batch."""

    name: str
    prefix: bytes = b""
    root_prefix: bytes = b""


# The Hello answer: the server proves it holds the key of the certificate the directory lists,
# over a fresh nonce bound to the caller's agency (`hello_data`; federation.proto).
HELLO = Domain("hello", prefix=b"accord-hello/v1\x00")
# The policy document a node publishes (GetPolicy).
POLICY = Domain("policy")
# Message contents (Envelope.signature) and receipt contents (Receipt.signature).
ENVELOPE = Domain("envelope", root_prefix=b"accord-envelope-root/v1\x00")
RECEIPT = Domain("receipt", root_prefix=b"accord-receipt-root/v1\x00")
_ROOT_PREFIXES = (ENVELOPE.root_prefix, RECEIPT.root_prefix)


def hello_data(nonce: bytes, caller: str) -> bytes:
    """What a server signs, under HELLO, to prove its key to `caller`."""
    return nonce + b"\x00" + caller.encode()


def digest(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


def sign(key: ec.EllipticCurvePrivateKey, data: bytes, domain: Domain) -> bytes:
    """A signature over `data` alone under `domain`."""
    return key.sign(domain.prefix + data, _ECDSA)


def sign_batch(
    key: ec.EllipticCurvePrivateKey, items: Sequence[bytes], domain: Domain
) -> list[tuple[bytes, bytes]]:
    """(signature, proof) for each item, with one signature for all of them (a lone item is
    signed alone, with an empty proof)."""
    if len(items) <= 1:
        return [(sign(key, item, domain), b"") for item in items]
    if not domain.root_prefix:
        raise ValueError(f"{domain.name} items are not signed a batch at a time")
    root, proofs = merkle.batch(items)
    signature = key.sign(domain.root_prefix + root, _ECDSA)
    return [(signature, proof) for proof in proofs]


def signed_bytes(data: bytes, proof: bytes, domain: Domain) -> bytes | None:
    """What the signature of `data` with this proof is over, or None when the proof is not well
    formed for the domain."""
    if not proof:
        # A batch root's signature never passes for an item signed alone, even one whose
        # bytes would parse: the two signed forms cannot be confused.
        if domain.root_prefix and data.startswith(_ROOT_PREFIXES):
            return None
        return domain.prefix + data
    if not domain.root_prefix:
        return None
    root = merkle.root_from_steps(merkle.leaf_hash(data), proof)
    return None if root is None else domain.root_prefix + root


def verify(
    public_key: ec.EllipticCurvePublicKey,
    data: bytes,
    signature: bytes,
    domain: Domain,
    proof: bytes = b"",
) -> bool:
    """Check one item on its own, signed alone (empty proof) or with its batch."""
    signed = signed_bytes(data, proof, domain)
    return signed is not None and verify_signed(public_key, signed, signature)


def verify_signed(public_key: ec.EllipticCurvePublicKey, signed: bytes, signature: bytes) -> bool:
    """Check a signature over bytes `signed_bytes` gave (callers that verify each distinct
    root of a batch once)."""
    try:
        public_key.verify(signature, signed, _ECDSA)
    except InvalidSignature:
        return False
    return True


def public_key_of(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("certificate does not hold an EC public key")
    return key


class Signer:
    """This node's signing key, and the only place it is used."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self.public_key = key.public_key()

    def sign(self, data: bytes, domain: Domain) -> bytes:
        return sign(self._key, data, domain)

    def sign_batch(self, items: Sequence[bytes], domain: Domain) -> list[tuple[bytes, bytes]]:
        return sign_batch(self._key, items, domain)

    def sign_checkpoint(self, checkpoint: Checkpoint) -> bytes:
        """The audit log's checkpoint as a signed note (node/audit/checkpoint.py). No other
        data this key signs can be taken for one: a note text starts with the log's origin
        line, a policy document with "{", everything else with its domain's prefix."""
        return sign_note(checkpoint, self._key)

    def note_key(self, origin: str) -> NoteKey:
        return NoteKey(origin, self.public_key)


class BatchSigner:
    """Signs the envelopes of sends that start together (see the module docstring)."""

    def __init__(self, signer: Signer, *, batch_max: int = 512) -> None:
        """`batch_max`: sends signed together, at most (delivery.sign_batch); the audit path
        grows by 33 bytes per doubling, 9 steps (297 bytes) at 512."""
        self._signer = signer
        self._batch_max = batch_max
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
            for at in range(0, len(indexes), self._batch_max):
                chunk = indexes[at : at + self._batch_max]
                try:
                    signed = self._signer.sign_batch([pending[i][1] for i in chunk], ENVELOPE)
                except Exception as exc:  # e.g. a key that cannot sign: every caller hears it
                    outcomes.update((i, exc) for i in chunk)
                    continue
                self.batches += 1
                self.signed += len(chunk)
                outcomes.update(zip(chunk, signed, strict=True))
        # Resolved in the order the sends called: each resumes, and queues its commit, in
        # that order, so batching does not reorder sends. (A send that reads the store first,
        # a reply or one with a caller-chosen id, can still be overtaken by a send made after
        # it: order is promised for sends made one after another.)
        for index, (_, _, fut) in enumerate(pending):
            if fut.done():  # a caller that stopped waiting gets nothing
                continue
            outcome = outcomes[index]
            if isinstance(outcome, Exception):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)
