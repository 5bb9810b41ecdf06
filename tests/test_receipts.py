"""Receipts signed a batch at a time: one signature over a Merkle root, each receipt with its
audit path, each still checked on its own with the receiver's certificate (docs/evidence.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from accord.v1 import federation_pb2
from node.signing import (
    ENVELOPE,
    RECEIPT,
    Domain,
    digest,
    sign,
    sign_batch,
    signed_bytes,
    verify,
    verify_signed,
)
from node.wire import parse_receipt
from tests.harness import (
    Federation,
    RawExchange,
    batch_receipts,
    complete,
    incident,
    member_key,
    node_send,
    until_delivered,
    wait_for,
)

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"
KEY = ec.generate_private_key(ec.SECP256R1())


def contents(n: int) -> list[bytes]:
    return [f"receipt {i}".encode() * 7 for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 128, 129])
def test_every_receipt_of_a_batch_verifies_alone(n: int) -> None:
    signed = sign_batch(KEY, contents(n), RECEIPT)
    assert len({signature for signature, _ in signed}) == 1  # one signature for the batch
    for content, (signature, proof) in zip(contents(n), signed, strict=True):
        assert verify(KEY.public_key(), content, signature, RECEIPT, proof)
    depth = max(len(proof) for _, proof in signed) // 33
    assert depth == (n - 1).bit_length()  # log2 of the batch, rounded up


def test_a_receipt_alone_is_signed_over_its_content_as_before() -> None:
    ((signature, proof),) = sign_batch(KEY, [b"alone"], RECEIPT)
    assert proof == b""
    assert verify_signed(KEY.public_key(), b"alone", signature)


def test_a_batch_signature_is_over_the_root_not_any_content() -> None:
    batch = contents(4)
    signed = sign_batch(KEY, batch, RECEIPT)
    signature, proof = signed[2]
    assert not verify_signed(KEY.public_key(), batch[2], signature)
    root = signed_bytes(batch[2], proof, RECEIPT)
    assert root is not None and root.startswith(RECEIPT.root_prefix)
    assert verify_signed(KEY.public_key(), root, signature)


def test_forgeries_do_not_verify() -> None:
    batch = contents(8)
    signed = sign_batch(KEY, batch, RECEIPT)
    signature, proof = signed[3]
    public = KEY.public_key()
    # another receipt's content under this receipt's path
    assert not verify(public, batch[4], signature, RECEIPT, proof)
    # a content edited by one byte
    assert not verify(public, batch[3][:-1] + b"!", signature, RECEIPT, proof)
    # one bit of the path flipped, a side swapped, a step dropped, a step added
    flipped = bytearray(proof)
    flipped[10] ^= 1
    assert not verify(public, batch[3], signature, RECEIPT, bytes(flipped))
    swapped = bytes([1 - proof[0]]) + proof[1:]
    assert not verify(public, batch[3], signature, RECEIPT, swapped)
    assert not verify(public, batch[3], signature, RECEIPT, proof[33:])
    assert not verify(public, batch[3], signature, RECEIPT, proof + proof[:33])
    # not a path at all: a bad side byte, a length that is not whole steps, far too long
    assert signed_bytes(batch[3], b"\x02" + proof[1:], RECEIPT) is None
    assert signed_bytes(batch[3], proof[:-1], RECEIPT) is None
    assert signed_bytes(batch[3], proof[:33] * 40, RECEIPT) is None
    # another signer's signature over the same root
    other = ec.generate_private_key(ec.SECP256R1())
    other_signature, _ = sign_batch(other, batch, RECEIPT)[3]
    assert not verify(public, batch[3], other_signature, RECEIPT, proof)


async def test_a_node_signs_a_batch_once_and_each_receipt_stands_alone(fed3: Federation) -> None:
    """40 envelopes in one frame: one signature for all, refusal included, each receipt
    verifies with DE's key on its own, and a resend gets the very receipt (signature and path)
    an accepted envelope got the first time; the refusal (a bad signature, not kept) is decided
    afresh."""
    _nl, de, _fr = await fed3.start_all()
    nl_key, fr_key = member_key(fed3, NL), member_key(fed3, FR)
    good = [complete(incident(to=[DE]), sender=NL).SerializeToString() for _ in range(40)]
    frame = federation_pb2.EnvelopeBatch()
    for i, content in enumerate(good):
        key = fr_key if i == 7 else nl_key  # envelope 7 is signed with the wrong key
        frame.envelopes.add(content=content, signature=sign(key, content, ENVELOPE))
    de_key = de.signer.public_key
    async with RawExchange(fed3, as_agency=NL, to=de, batched=True) as raw:
        receipts = await batch_receipts(raw, frame.SerializeToString(), expect=40)
        infos = [parse_receipt(r.content) for r in receipts]
        assert [i.content_sha256 for i in infos] == [digest(c) for c in good]
        assert infos[7].reason_code == "BAD_SIGNATURE" and not infos[7].final
        accepted = [r for i, r in enumerate(receipts) if i != 7]
        assert all(parse_receipt(r.content).accepted for r in accepted)
        assert all(verify(de_key, r.content, r.signature, RECEIPT, r.proof) for r in receipts)
        assert all(r.proof for r in receipts)  # signed as a batch, not one by one
        assert len({r.signature for r in receipts}) == 1
        again = await batch_receipts(raw, frame.SerializeToString(), expect=40)
    assert [(r.content, r.signature, r.proof) for i, r in enumerate(again) if i != 7] == [
        (r.content, r.signature, r.proof) for r in accepted
    ]
    assert parse_receipt(again[7].content).reason_code == "BAD_SIGNATURE"


async def test_the_sender_stores_batch_receipts_that_verify_alone(fed3: Federation) -> None:
    nl, de, _fr = await fed3.start_all()
    sent = await asyncio.gather(*(node_send(nl, incident(to=[DE])) for _ in range(60)))

    await until_delivered(nl, *sent)
    de_key = de.signer.public_key
    proofs = 0
    for s in sent:
        (d,) = await nl.store.deliveries(s.message_id)
        assert d.receipt is not None and d.receipt_signature is not None
        assert verify(de_key, d.receipt, d.receipt_signature, RECEIPT, d.receipt_proof or b"")
        proofs += bool(d.receipt_proof)
    assert proofs > 0  # 60 concurrent sends: some answered in shared batches


async def test_a_receipt_whose_path_does_not_lead_to_the_signature_is_refused(
    fed3: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receiver that answers with a forged audit path: the sender stores nothing as receipted,
    keeps the messages queued and says why."""
    nl, de, _fr = await fed3.start_all()
    real = de.signer.sign_batch

    def forged(batch: Sequence[bytes], domain: Domain) -> list[tuple[bytes, bytes]]:
        return [(s, b"\x01" + bytes(32) + p) for s, p in real(batch, domain)]

    monkeypatch.setattr(de.signer, "sign_batch", forged)  # DE signs only receipts here
    sent = await asyncio.gather(*(node_send(nl, incident(to=[DE])) for _ in range(5)))

    async def refused_with_a_reason() -> bool:
        (d,) = await nl.store.deliveries(sent[0].message_id)
        return "does not verify" in d.last_error

    await wait_for(refused_with_a_reason, timeout=8)
    for s in sent:
        (d,) = await nl.store.deliveries(s.message_id)
        assert d.state == "queued" and d.receipt is None


def test_a_batch_signature_never_passes_for_a_receipt_signed_alone() -> None:
    batch = contents(2)
    signature, proof = sign_batch(KEY, batch, RECEIPT)[0]
    root_bytes = signed_bytes(batch[0], proof, RECEIPT)
    assert root_bytes is not None
    assert verify_signed(KEY.public_key(), root_bytes, signature)  # the signature is genuine
    assert not verify(KEY.public_key(), root_bytes, signature, RECEIPT, b"")  # but not a receipt
